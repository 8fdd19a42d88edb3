//! Tenants: the model, slugs, the in-memory tenant cache, tenant resolution (`TenantCtx`),
//! membership, and the admin operations on tenants.
pub mod cache;
pub mod input;
pub mod members;
pub mod members_pg;
pub mod purge;
pub mod resolve;
pub mod slug;
pub mod store;
pub mod store_pg;
pub mod tenants;
pub mod tenants_pg;
pub mod transfer;
pub mod transfer_pg;

pub use cache::TenantCache;
pub use resolve::TenantCtx;
pub use slug::Slug;

use crate::time::Micros;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant's id. Its own type, so a key id or an event id cannot be passed where a tenant is
/// meant, and so a tenant id read from the store is parsed once (a damaged one is an error,
/// never the nil id, which is the default tenant's).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(Uuid);

impl TenantId {
    pub const fn from_uuid(id: Uuid) -> TenantId {
        TenantId(id)
    }

    pub fn new_random() -> TenantId {
        TenantId(Uuid::new_v4())
    }

    pub fn parse(s: &str) -> Option<TenantId> {
        Uuid::parse_str(s).ok().map(TenantId)
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Stored as the hyphenated text every tenant-owned table keys on.
impl rusqlite::ToSql for TenantId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.0.to_string()))
    }
}

impl rusqlite::types::FromSql for TenantId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let text = v.as_str()?;
        TenantId::parse(text).ok_or_else(|| {
            rusqlite::types::FromSqlError::Other(
                format!("`{}` is not a tenant id", crate::error::clip(text)).into(),
            )
        })
    }
}

/// The tenant single-tenant mode runs on; created by the first migration, never deleted.
pub const DEFAULT_TENANT_ID: TenantId = TenantId(Uuid::nil());

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Basic,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Basic => "basic",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Result<Plan, String> {
        match s {
            "basic" => Ok(Plan::Basic),
            "pro" => Ok(Plan::Pro),
            "enterprise" => Ok(Plan::Enterprise),
            _ => Err(format!(
                "plan must be basic, pro or enterprise, not `{}`",
                crate::error::clip(s)
            )),
        }
    }

    /// The product features a plan includes; each plan includes the ones below it.
    pub fn features(self) -> Vec<&'static str> {
        let mut f = vec!["basic-chat"];
        if matches!(self, Plan::Pro | Plan::Enterprise) {
            f.extend(["advanced-analytics", "priority-support"]);
        }
        if self == Plan::Enterprise {
            f.extend(["custom-models", "dedicated-resources"]);
        }
        f
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Inactive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Result<Status, String> {
        match s {
            "active" => Ok(Status::Active),
            "inactive" => Ok(Status::Inactive),
            _ => Err("status must be active or inactive".into()),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub slug: Slug,
    pub plan: Plan,
    pub status: Status,
    pub created_at: Micros,
    pub updated_at: Micros,
    pub deactivated_at: Option<Micros>,
}

impl Tenant {
    pub fn is_active(&self) -> bool {
        self.status == Status::Active
    }
}

/// A display name: 1 to 200 characters after trimming, no control characters.
pub fn parse_name(s: &str, what: &str) -> Result<String, String> {
    let t = s.trim();
    if t.is_empty() || t.chars().count() > 200 {
        return Err(format!("{what} must be 1 to 200 characters"));
    }
    if t.chars().any(char::is_control) {
        return Err(format!("{what} may not contain control characters"));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_features_nest() {
        assert_eq!(Plan::Basic.features(), vec!["basic-chat"]);
        assert_eq!(Plan::Pro.features().len(), 3);
        let e = Plan::Enterprise.features();
        assert!(e.contains(&"custom-models") && e.contains(&"dedicated-resources"));
        assert_eq!(e.len(), 5);
    }

    #[test]
    fn names_are_trimmed_and_checked() {
        assert_eq!(parse_name("  Acme ", "name").unwrap(), "Acme");
        assert!(parse_name("   ", "name").is_err());
        assert!(parse_name("a\u{7}b", "name").is_err());
        assert!(parse_name(&"x".repeat(201), "name").is_err());
    }
}
