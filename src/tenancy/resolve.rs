//! Tenant resolution: from the caller and the request's naming of a tenant to a `TenantCtx`.
//! `TenantCtx` has private fields and no public constructor: `resolve` is the only way to get
//! one, and every tenant-scoped data function takes it, so a handler cannot reach tenant data
//! without having gone through resolution.
use super::{Tenant, TenantCache, TenantId, DEFAULT_TENANT_ID};
use crate::auth::{Action, Caller};
use crate::config::{Feature, Flags};
use crate::error::ApiError;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct TenantCtx {
    tenant: Arc<Tenant>,
    caller: Caller,
}

impl TenantCtx {
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }

    /// The id as stored in the database.
    pub fn db_id(&self) -> String {
        self.tenant.id.to_string()
    }

    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// 403 `forbidden` unless the caller's role allows `action` on this tenant.
    pub fn require(&self, action: Action) -> Result<(), ApiError> {
        if self.caller.may(action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token's role may not {}",
                match action {
                    Action::Read => "read this tenant's data",
                    Action::Ingest => "record usage or events",
                    Action::SetPreferences => "change agent preferences",
                    Action::Manage => "manage this tenant",
                    Action::ReadCredentials => "read credentials",
                    Action::Work => "lease queue jobs (a service key's job)",
                }
            )))
        }
    }
}

/// How the request names a tenant, in the contract's order of precedence.
pub struct Naming<'a> {
    /// The `X-Tenant-ID` header, raw.
    pub header: Option<&'a str>,
    /// The `{slug}` of an `/api/tenant/{slug}/...` path.
    pub slug: Option<&'a str>,
}

/// Where resolution looks tenants up: the cache, then the tenants this request read from the
/// store because the cache did not hold them (on PostgreSQL, a tenant another replica created
/// a moment ago: docs/SCALE_OUT.md §4.1, "misses read through").
pub struct Tenants<'a> {
    pub cache: &'a TenantCache,
    pub read: &'a [Arc<Tenant>],
}

impl<'a> Tenants<'a> {
    pub fn cached(cache: &'a TenantCache) -> Tenants<'a> {
        Tenants { cache, read: &[] }
    }

    fn get(&self, id: TenantId) -> Option<Arc<Tenant>> {
        self.cache
            .get(id)
            .or_else(|| self.read.iter().find(|t| t.id == id).cloned())
    }

    fn get_by_slug(&self, slug: &str) -> Option<Arc<Tenant>> {
        self.cache
            .get_by_slug(slug)
            .or_else(|| self.read.iter().find(|t| t.slug.as_str() == slug).cloned())
    }
}

pub fn resolve(
    caller: Caller,
    naming: Naming<'_>,
    tenants: Tenants<'_>,
    flags: &Flags,
) -> Result<TenantCtx, ApiError> {
    let key_tenant = match &caller {
        Caller::Key(k) => Some(k.tenant_id),
        Caller::Admin(_) => None,
    };
    // Naming any tenant but the default one needs multi-tenancy.
    let other_tenant = || flags.require(Feature::MultiTenant);
    let foreign = || ApiError::Forbidden("this key belongs to another tenant".into());

    let tenant = if let Some(raw) = naming.header {
        let id = TenantId::parse(raw.trim()).ok_or(ApiError::InvalidTenantId)?;
        if id != DEFAULT_TENANT_ID {
            other_tenant()?;
        }
        if key_tenant.is_some_and(|k| k != id) {
            return Err(foreign());
        }
        tenants.get(id)
    } else if let Some(slug) = naming.slug {
        let default_slug = tenants.get(DEFAULT_TENANT_ID).map(|t| t.slug.clone());
        if default_slug.as_ref().map(|s| s.as_str()) != Some(slug) {
            other_tenant()?;
        }
        if let Some(k) = key_tenant {
            // Compare with the key's own tenant, so a key learns nothing about other slugs.
            if tenants.get(k).map(|t| t.slug.as_str() == slug) != Some(true) {
                return Err(foreign());
            }
        }
        tenants.get_by_slug(slug)
    } else {
        let id = key_tenant.unwrap_or(DEFAULT_TENANT_ID);
        if id != DEFAULT_TENANT_ID {
            other_tenant()?;
        }
        tenants.get(id)
    };
    match tenant {
        Some(t) if t.is_active() => Ok(TenantCtx { tenant: t, caller }),
        _ => Err(ApiError::TenantUnavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AdminProof, KeyCaller, Role};
    use crate::tenancy::cache::tenant_for_test;
    use crate::tenancy::Status;
    use uuid::Uuid;

    const A: TenantId = TenantId::from_uuid(Uuid::from_u128(0xa));
    const B: TenantId = TenantId::from_uuid(Uuid::from_u128(0xb));
    const GONE: TenantId = TenantId::from_uuid(Uuid::from_u128(0xc));

    fn cache() -> TenantCache {
        let c = TenantCache::default();
        c.insert_for_test(tenant_for_test(
            DEFAULT_TENANT_ID,
            "default",
            Status::Active,
        ));
        c.insert_for_test(tenant_for_test(A, "tenant-a", Status::Active));
        c.insert_for_test(tenant_for_test(B, "tenant-b", Status::Active));
        c.insert_for_test(tenant_for_test(GONE, "gone", Status::Inactive));
        c
    }

    fn key_of(t: TenantId) -> Caller {
        Caller::Key(KeyCaller {
            key_id: Uuid::new_v4(),
            tenant_id: t,
            role: Role::Owner,
            user_id: None,
        })
    }

    fn run(
        caller: Caller,
        header: Option<&str>,
        slug: Option<&str>,
    ) -> Result<TenantId, &'static str> {
        let flags = Flags {
            multi_tenant: true,
            ..Flags::default()
        };
        resolve(
            caller,
            Naming { header, slug },
            Tenants::cached(&cache()),
            &flags,
        )
        .map(|c| c.id())
        .map_err(|e| e.code())
    }

    #[test]
    fn order_is_header_then_slug_then_key_then_default() {
        let a = A.to_string();
        assert_eq!(
            run(
                Caller::Admin(AdminProof::for_tests()),
                Some(&a),
                Some("tenant-b")
            ),
            Ok(A)
        );
        assert_eq!(
            run(
                Caller::Admin(AdminProof::for_tests()),
                None,
                Some("tenant-b")
            ),
            Ok(B)
        );
        assert_eq!(run(key_of(B), None, None), Ok(B));
        assert_eq!(
            run(Caller::Admin(AdminProof::for_tests()), None, None),
            Ok(DEFAULT_TENANT_ID)
        );
    }

    #[test]
    fn contract_table_rows() {
        assert_eq!(
            run(Caller::Admin(AdminProof::for_tests()), Some("nope"), None),
            Err("invalid_tenant_id")
        );
        let unknown = Uuid::from_u128(0xdead).to_string();
        assert_eq!(
            run(Caller::Admin(AdminProof::for_tests()), Some(&unknown), None),
            Err("tenant_unavailable")
        );
        assert_eq!(
            run(
                Caller::Admin(AdminProof::for_tests()),
                Some(&GONE.to_string()),
                None
            ),
            Err("tenant_unavailable")
        );
        assert_eq!(
            run(
                Caller::Admin(AdminProof::for_tests()),
                None,
                Some("no-such")
            ),
            Err("tenant_unavailable")
        );
        assert_eq!(run(key_of(A), Some(&B.to_string()), None), Err("forbidden"));
        assert_eq!(run(key_of(A), None, Some("tenant-b")), Err("forbidden"));
        assert_eq!(run(key_of(A), None, Some("no-such")), Err("forbidden"));
        assert_eq!(run(key_of(GONE), None, None), Err("tenant_unavailable"));
    }

    #[test]
    fn single_tenant_mode_serves_only_the_default() {
        let c = cache();
        let one = |caller, header, slug| {
            resolve(
                caller,
                Naming { header, slug },
                Tenants::cached(&c),
                &Flags::default(),
            )
            .map(|c| c.id())
            .map_err(|e| e.code())
        };
        assert_eq!(
            one(Caller::Admin(AdminProof::for_tests()), None, None),
            Ok(DEFAULT_TENANT_ID)
        );
        assert_eq!(
            one(
                Caller::Admin(AdminProof::for_tests()),
                None,
                Some("default")
            ),
            Ok(DEFAULT_TENANT_ID)
        );
        let a = A.to_string();
        assert_eq!(
            one(Caller::Admin(AdminProof::for_tests()), Some(&a), None),
            Err("feature_disabled")
        );
        assert_eq!(
            one(
                Caller::Admin(AdminProof::for_tests()),
                None,
                Some("tenant-a")
            ),
            Err("feature_disabled")
        );
        assert_eq!(one(key_of(A), None, None), Err("feature_disabled"));
    }
}
