//! What the admin asks of tenants, parsed and checked before any write: a new tenant (with
//! version 1 of its settings) and a patch of name, slug and plan.
use super::{parse_name, Plan, Slug, Tenant};
use crate::error::ApiError;
use crate::settings::Settings;

pub struct NewTenant {
    pub name: String,
    pub slug: Option<Slug>,
    pub plan: Plan,
    /// Version 1 of its settings: the template's (or the defaults), then the given partial.
    pub settings: Settings,
}

impl NewTenant {
    pub fn parse(
        name: &str,
        slug: Option<&str>,
        plan: Option<&str>,
        template: Option<&str>,
        settings: Option<&serde_json::Value>,
    ) -> Result<Self, ApiError> {
        let bad = ApiError::InvalidRequest;
        let (base, template_plan) = match template {
            None => (Settings::default(), Plan::Basic),
            Some(t) => Settings::template(t)
                .ok_or_else(|| bad("template must be trial, startup or enterprise".into()))?,
        };
        let settings = match settings {
            Some(patch) => base.patched(patch)?,
            None => base,
        };
        Ok(NewTenant {
            name: parse_name(name, "name").map_err(bad)?,
            slug: slug.map(Slug::parse).transpose().map_err(bad)?,
            plan: plan
                .map(Plan::parse)
                .transpose()
                .map_err(bad)?
                .unwrap_or(template_plan),
            settings,
        })
    }
}

#[derive(Default)]
pub struct TenantPatch {
    pub name: Option<String>,
    pub slug: Option<Slug>,
    pub plan: Option<Plan>,
}

impl TenantPatch {
    pub fn parse(
        name: Option<&str>,
        slug: Option<&str>,
        plan: Option<&str>,
    ) -> Result<Self, ApiError> {
        let bad = ApiError::InvalidRequest;
        Ok(TenantPatch {
            name: name
                .map(|n| parse_name(n, "name"))
                .transpose()
                .map_err(bad)?,
            slug: slug.map(Slug::parse).transpose().map_err(bad)?,
            plan: plan.map(Plan::parse).transpose().map_err(bad)?,
        })
    }

    /// Writes the patch's fields over `t`'s.
    pub(super) fn apply(self, t: &mut Tenant) {
        if let Some(n) = self.name {
            t.name = n;
        }
        if let Some(s) = self.slug {
            t.slug = s;
        }
        if let Some(p) = self.plan {
            t.plan = p;
        }
    }
}
