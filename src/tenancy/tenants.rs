//! The admin operations on tenants: create, list, read, rename, deactivate, reactivate and hard
//! delete. Each write updates the tenant cache (and, on delete, the key cache) after it commits.
use super::store;
use super::{parse_name, Plan, Slug, Status, Tenant, DEFAULT_TENANT_ID};
use super::{TenantCache, TenantId};
use crate::auth::keys::Keys;
use crate::auth::AdminProof;
use crate::clock::Clock;
use crate::config::Feature;
use crate::config::Flags;
use crate::db::sql::conflict_on_unique;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::observe::Observe;
use crate::pagination::{Page, PageRequest};
use crate::settings::store::write_version;
use crate::settings::Settings;
use crate::settings::TenantSettings;
use crate::time::to_micros;
use crate::time::Micros;
use crate::usage::service::Usage;
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

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
}

const DUPLICATE_SLUG: &str = "a tenant with this slug already exists";

/// The tenancy area: tenants (with the cache every request resolves through) and their
/// members. Deleting a tenant tells the other areas to forget it.
#[derive(Clone)]
pub struct Tenancy {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    flags: Flags,
    pub(super) cache: Arc<TenantCache>,
    /// Told when a tenant's members change or the tenant is deleted.
    pub(super) keys: Keys,
    settings: TenantSettings,
    usage: Usage,
    observe: Observe,
}

/// What a tenant's deletion must reach beyond its own rows.
pub struct Dependents {
    pub keys: Keys,
    pub settings: TenantSettings,
    pub usage: Usage,
    pub observe: Observe,
}

impl Tenancy {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        flags: Flags,
        cache: TenantCache,
        dependents: Dependents,
    ) -> Tenancy {
        Tenancy {
            db,
            clock,
            flags,
            cache: Arc::new(cache),
            keys: dependents.keys,
            settings: dependents.settings,
            usage: dependents.usage,
            observe: dependents.observe,
        }
    }

    pub(super) fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// The cache, shared with an area that looks tenants up by id (the queue's scheduler).
    pub fn shared_cache(&self) -> Arc<TenantCache> {
        self.cache.clone()
    }

    /// The clock the tenancy area reads, for its background purge.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The cache the tenant resolver reads on every request.
    pub fn cache(&self) -> &TenantCache {
        &self.cache
    }

    /// A tenant by id or slug, from memory; 404 when there is none.
    pub fn find(&self, _: &AdminProof, id_or_slug: &str) -> Result<Arc<Tenant>, ApiError> {
        let found = match TenantId::parse(id_or_slug) {
            Some(id) => self.cache.get(id),
            None => self.cache.get_by_slug(id_or_slug),
        };
        found.ok_or_else(|| ApiError::NotFound("no tenant with this id or slug".into()))
    }

    pub async fn create(&self, _: &AdminProof, new: NewTenant) -> Result<Tenant, ApiError> {
        self.flags.require(Feature::MultiTenant)?;
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let now = st.now();
                let id = TenantId::new_random();
                let slug = match new.slug {
                    Some(s) => s,
                    None => free_slug(&tx, Slug::derive(&new.name))?,
                };
                store::insert_tenant(&tx, id, &new.name, &slug, new.plan, now)
                    .map_err(|e| conflict_on_unique(e, DUPLICATE_SLUG))?;
                let settings = write_version(&tx, id, 1, &new.settings, "admin", now)?;
                let t =
                    store::tenant(&tx, id)?.ok_or_else(|| ApiError::internal("tenant vanished"))?;
                lifecycle_event(&tx, now, Kind::TenantCreated, &t)?;
                tx.commit()?;
                st.cache.put(t.clone());
                st.settings.created(id, settings);
                Ok(t)
            })
            .await
    }

    pub async fn list(
        &self,
        _: &AdminProof,
        status: Option<Status>,
        page: PageRequest<(Micros, String)>,
    ) -> Result<Page<Tenant>, ApiError> {
        self.db
            .run(move |c| {
                let (after_t, after_id) = page.after.clone().unwrap_or((i64::MIN, String::new()));
                let rows = store::list_tenants(c, status, &(after_t, after_id), page.fetch())?;
                Ok(Page::from_rows(rows, page.limit, |t| {
                    (t.created_at, t.id.to_string())
                }))
            })
            .await
    }

    pub async fn update(
        &self,
        admin: &AdminProof,
        id_or_slug: &str,
        patch: TenantPatch,
    ) -> Result<Tenant, ApiError> {
        let id = self.find(admin, id_or_slug)?.id;
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let mut t = store::tenant(&tx, id)?
                    .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
                if let Some(n) = patch.name {
                    t.name = n;
                }
                if let Some(s) = patch.slug {
                    t.slug = s;
                }
                if let Some(p) = patch.plan {
                    t.plan = p;
                }
                store::update_tenant(&tx, &t, st.now())
                    .map_err(|e| conflict_on_unique(e, DUPLICATE_SLUG))?;
                let t =
                    store::tenant(&tx, id)?.ok_or_else(|| ApiError::internal("tenant vanished"))?;
                lifecycle_event(&tx, st.now(), Kind::TenantUpdated, &t)?;
                tx.commit()?;
                st.cache.put(t.clone());
                Ok(t)
            })
            .await
    }

    /// Deactivates (soft delete) or reactivates; setting the status it already has changes nothing.
    pub async fn set_status(
        &self,
        admin: &AdminProof,
        id_or_slug: &str,
        status: Status,
    ) -> Result<Tenant, ApiError> {
        let id = self.find(admin, id_or_slug)?.id;
        if id == DEFAULT_TENANT_ID && status == Status::Inactive {
            return Err(ApiError::Conflict(
                "the default tenant cannot be deactivated".into(),
            ));
        }
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let now = st.now();
                let deactivated_at = (status == Status::Inactive).then_some(now);
                let changed = store::set_status(&tx, id, status, deactivated_at, now)?;
                let t = store::tenant(&tx, id)?
                    .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
                if changed == 1 {
                    let kind = match status {
                        Status::Inactive => Kind::TenantDeactivated,
                        Status::Active => Kind::TenantReactivated,
                    };
                    lifecycle_event(&tx, now, kind, &t)?;
                }
                tx.commit()?;
                st.cache.put(t.clone());
                Ok(t)
            })
            .await
    }

    /// Hard delete of an inactive tenant and, by cascade, everything it owns.
    pub async fn delete(
        &self,
        admin: &AdminProof,
        id_or_slug: &str,
        confirm: Option<&str>,
    ) -> Result<(), ApiError> {
        let t = self.find(admin, id_or_slug)?;
        if t.id == DEFAULT_TENANT_ID {
            return Err(ApiError::Conflict(
                "the default tenant cannot be deleted".into(),
            ));
        }
        if confirm != Some(t.slug.as_str()) {
            return Err(ApiError::InvalidRequest(
                "confirm must be the tenant's slug (?confirm=<slug>)".into(),
            ));
        }
        let id = t.id;
        let st = self.clone();
        self.db
            .write(move |c| {
                let n = store::delete_inactive(c, id)?;
                if n == 0 {
                    return Err(match store::tenant(c, id)? {
                        Some(_) => ApiError::Conflict(
                            "only an inactive tenant can be deleted; deactivate it first".into(),
                        ),
                        None => ApiError::NotFound("no such tenant".into()),
                    });
                }
                st.forget(id);
                Ok(())
            })
            .await
    }

    /// Drops a deleted tenant from every cache, right after the deletion commits (under the
    /// write lock), so nothing in memory still names it.
    pub(super) fn forget(&self, id: TenantId) {
        self.cache.remove(id);
        self.keys.forget_tenant(id);
        self.settings.forget(id);
        self.usage.forget_tenant(id);
        self.observe.forget_tenant(id);
    }
}

/// Tenant lifecycle changes are made by the admin; the event carries the tenant as it now is.
fn lifecycle_event(c: &Connection, at: Micros, kind: Kind, t: &Tenant) -> Result<(), ApiError> {
    let data = json!({"slug": t.slug.as_str(), "name": t.name, "plan": t.plan.as_str(),
                      "status": t.status.as_str(), "actor": "admin"});
    let msg = format!(
        "tenant {} {}",
        t.slug,
        kind.event_type().trim_start_matches("tenant.")
    );
    events::record(c, at, NewEvent::of(kind, t.id, msg, data))?;
    Ok(())
}

/// The derived slug, or the same with `-2`, `-3`, ... when taken.
fn free_slug(c: &Connection, base: Slug) -> Result<Slug, ApiError> {
    let taken = |s: &Slug| -> Result<bool, ApiError> { Ok(store::slug_taken(c, s)?) };
    if !taken(&base)? {
        return Ok(base);
    }
    for n in 2..1000 {
        let s = base.with_suffix(n);
        if !taken(&s)? {
            return Ok(s);
        }
    }
    Err(ApiError::Conflict(
        "no free slug could be derived from this name; give one".into(),
    ))
}
