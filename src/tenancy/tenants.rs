//! The admin operations on tenants: create, list, read, rename, deactivate, reactivate and hard
//! delete. Each write updates the tenant cache (and, on delete, the key cache) after it commits.
pub use super::input::{NewTenant, TenantPatch};
use super::store;
use super::{Slug, Status, Tenant, DEFAULT_TENANT_ID};
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
use crate::settings::TenantSettings;
use crate::time::to_micros;
use crate::time::Micros;
use crate::usage::service::Usage;
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

pub(super) const DUPLICATE_SLUG: &str = "a tenant with this slug already exists";

/// The tenancy area: tenants (with the cache every request resolves through) and their
/// members. Deleting a tenant tells the other areas to forget it.
#[derive(Clone)]
pub struct Tenancy {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    pub(super) flags: Flags,
    pub(super) cache: Arc<TenantCache>,
    /// Told when a tenant's members change or the tenant is deleted.
    pub(super) keys: Keys,
    pub(super) settings: TenantSettings,
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

    /// A tenant by id or slug: from memory, or on PostgreSQL from the store (another replica
    /// may have created or changed it a moment ago); 404 when there is none.
    pub async fn find(&self, _: &AdminProof, id_or_slug: &str) -> Result<Arc<Tenant>, ApiError> {
        if let Some(pg) = self.db.pg() {
            return self.find_pg(pg, id_or_slug).await;
        }
        let found = match TenantId::parse(id_or_slug) {
            Some(id) => self.cache.get(id),
            None => self.cache.get_by_slug(id_or_slug),
        };
        found.ok_or_else(|| ApiError::NotFound("no tenant with this id or slug".into()))
    }

    pub async fn create(&self, _: &AdminProof, new: NewTenant) -> Result<Tenant, ApiError> {
        self.flags.require(Feature::MultiTenant)?;
        if let Some(pg) = self.db.pg() {
            return self.create_pg(pg, new).await;
        }
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
        if let Some(pg) = self.db.pg() {
            return self.list_pg(pg, status, page).await;
        }
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
        let id = self.find(admin, id_or_slug).await?.id;
        if let Some(pg) = self.db.pg() {
            return self.update_pg(pg, id, patch).await;
        }
        let st = self.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let mut t = store::tenant(&tx, id)?
                    .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
                patch.apply(&mut t);
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
        let id = self.find(admin, id_or_slug).await?.id;
        if id == DEFAULT_TENANT_ID && status == Status::Inactive {
            return Err(ApiError::Conflict(
                "the default tenant cannot be deactivated".into(),
            ));
        }
        if let Some(pg) = self.db.pg() {
            return self.set_status_pg(pg, id, status).await;
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
                    lifecycle_event(&tx, now, status_kind(status), &t)?;
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
        let t = self.find(admin, id_or_slug).await?;
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
        if let Some(pg) = self.db.pg() {
            return self.delete_pg(pg, id).await;
        }
        let st = self.clone();
        self.db
            .write(move |c| {
                let n = store::delete_inactive(c, id)?;
                if n == 0 {
                    return Err(not_deleted(store::tenant(c, id)?.is_some()));
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

/// The event a status change records.
pub(super) fn status_kind(status: Status) -> Kind {
    match status {
        Status::Inactive => Kind::TenantDeactivated,
        Status::Active => Kind::TenantReactivated,
    }
}

/// Why a hard delete deleted nothing: the tenant is still active, or gone.
pub(super) fn not_deleted(exists: bool) -> ApiError {
    match exists {
        true => {
            ApiError::Conflict("only an inactive tenant can be deleted; deactivate it first".into())
        }
        false => ApiError::NotFound("no such tenant".into()),
    }
}

/// Tenant lifecycle changes are made by the admin; the event carries the tenant as it now is.
pub(super) fn lifecycle(kind: Kind, t: &Tenant) -> NewEvent {
    let data = json!({"slug": t.slug.as_str(), "name": t.name, "plan": t.plan.as_str(),
                      "status": t.status.as_str(), "actor": "admin"});
    let msg = format!(
        "tenant {} {}",
        t.slug,
        kind.event_type().trim_start_matches("tenant.")
    );
    NewEvent::of(kind, t.id, msg, data)
}

fn lifecycle_event(c: &Connection, at: Micros, kind: Kind, t: &Tenant) -> Result<(), ApiError> {
    events::record(c, at, lifecycle(kind, t))?;
    Ok(())
}

/// The slugs a name may get, in order: the derived one, then the same with `-2`, `-3`, ...
pub(super) fn slug_candidates(base: Slug) -> Vec<Slug> {
    let suffixed = (2..1000).map(|n| base.with_suffix(n)).collect::<Vec<_>>();
    std::iter::once(base).chain(suffixed).collect()
}

pub(super) fn no_free_slug() -> ApiError {
    ApiError::Conflict("no free slug could be derived from this name; give one".into())
}

/// The derived slug, or the same with `-2`, `-3`, ... when taken.
fn free_slug(c: &Connection, base: Slug) -> Result<Slug, ApiError> {
    for s in slug_candidates(base) {
        if !store::slug_taken(c, &s)? {
            return Ok(s);
        }
    }
    Err(no_free_slug())
}
