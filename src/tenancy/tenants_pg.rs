//! The admin operations on tenants on PostgreSQL (issue 19): the same validation, events and
//! cache updates as `tenants.rs`, each write in one transaction that also tells the other
//! replicas' caches what changed (`db::pg::notify`).
use super::store_pg as store;
use super::tenants::{
    lifecycle, no_free_slug, not_deleted, slug_candidates, status_kind, NewTenant, Tenancy,
    TenantPatch, DUPLICATE_SLUG,
};
use super::{Slug, Status, Tenant, TenantId};
use crate::db::pg::notify::{notify, Invalidation};
use crate::db::pg::{conflict_on_unique, is_unique_violation, Pg};
use crate::error::ApiError;
use crate::events::{self, Kind};
use crate::pagination::{Page, PageRequest};
use crate::time::Micros;
use std::sync::Arc;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Queues `what` for the other replicas in the caller's transaction.
pub(crate) async fn tell(c: &impl GenericClient, what: Invalidation) -> Result<(), ApiError> {
    notify(c, &what).await.map_err(ApiError::internal)
}

async fn record(
    c: &impl GenericClient,
    at: Micros,
    kind: Kind,
    t: &Tenant,
) -> Result<(), ApiError> {
    events::pg::record_many(c, &[(at, lifecycle(kind, t))]).await?;
    Ok(())
}

impl Tenancy {
    /// A tenant by id or slug from the store (a read of a managed resource, SCALE_OUT §4.1).
    pub(super) async fn find_pg(&self, pg: &Pg, id_or_slug: &str) -> Result<Arc<Tenant>, ApiError> {
        let c = pg.conn().await?;
        let found = match TenantId::parse(id_or_slug) {
            Some(id) => store::tenant(&**c, id).await?,
            None => store::tenant_by_slug(&**c, id_or_slug).await?,
        };
        found
            .map(Arc::new)
            .ok_or_else(|| ApiError::NotFound("no tenant with this id or slug".into()))
    }

    /// A tenant the cache does not hold, read from the store: one another replica created a
    /// moment ago (SCALE_OUT §4.1, "misses read through"). Not put in the cache: the listener
    /// does that, and a row read here could be older than an invalidation applied meanwhile.
    pub async fn read_through(&self, id: Option<TenantId>, slug: Option<&str>) -> Option<Tenant> {
        let pg = self.db.pg()?;
        let read = async {
            let c = pg.conn().await?;
            match (id, slug) {
                (Some(id), _) => store::tenant(&**c, id).await,
                (None, Some(slug)) => store::tenant_by_slug(&**c, slug).await,
                (None, None) => Ok(None),
            }
        };
        match read.await {
            Ok(t) => t,
            Err(e) => {
                // Refused as unknown: the store is the truth and it did not answer.
                tracing::warn!(error = %e, "reading a tenant through the cache");
                None
            }
        }
    }

    pub(super) async fn create_pg(&self, pg: &Pg, new: NewTenant) -> Result<Tenant, ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let mut tx = c.transaction().await?;
        let now = self.now();
        let id = TenantId::new_random();
        match &new.slug {
            Some(s) => store::insert_tenant(&*tx, id, &new.name, s, new.plan, now)
                .await
                .map_err(|e| conflict_on_unique(e, DUPLICATE_SLUG))?,
            None => insert_with_free_slug(&mut tx, id, &new, now).await?,
        }
        let settings = store::first_settings(&*tx, id, &new.settings, "admin", now).await?;
        let t = store::tenant(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::internal("tenant vanished"))?;
        record(&*tx, now, Kind::TenantCreated, &t).await?;
        tell(&*tx, Invalidation::Tenant(id.as_uuid())).await?;
        tell(&*tx, Invalidation::Settings(id.as_uuid())).await?;
        tx.commit().await?;
        self.cache.put(t.clone());
        self.settings.created(id, settings);
        Ok(t)
    }

    pub(super) async fn list_pg(
        &self,
        pg: &Pg,
        status: Option<Status>,
        page: PageRequest<(Micros, String)>,
    ) -> Result<Page<Tenant>, ApiError> {
        let after = uuid_after(page.after.clone())?;
        let c = pg.conn().await?;
        let rows = store::list_tenants(&**c, status, &after, page.fetch()).await?;
        Ok(Page::from_rows(rows, page.limit, |t| {
            (t.created_at, t.id.to_string())
        }))
    }

    pub(super) async fn update_pg(
        &self,
        pg: &Pg,
        id: TenantId,
        patch: TenantPatch,
    ) -> Result<Tenant, ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        let now = self.now();
        let mut t = store::tenant(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
        patch.apply(&mut t);
        store::update_tenant(&*tx, &t, now)
            .await
            .map_err(|e| conflict_on_unique(e, DUPLICATE_SLUG))?;
        let t = store::tenant(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::internal("tenant vanished"))?;
        record(&*tx, now, Kind::TenantUpdated, &t).await?;
        tell(&*tx, Invalidation::Tenant(id.as_uuid())).await?;
        tx.commit().await?;
        self.cache.put(t.clone());
        Ok(t)
    }

    pub(super) async fn set_status_pg(
        &self,
        pg: &Pg,
        id: TenantId,
        status: Status,
    ) -> Result<Tenant, ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        let now = self.now();
        let deactivated_at = (status == Status::Inactive).then_some(now);
        let changed = store::set_status(&*tx, id, status, deactivated_at, now).await?;
        let t = store::tenant(&*tx, id)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
        if changed == 1 {
            record(&*tx, now, status_kind(status), &t).await?;
            tell(&*tx, Invalidation::Tenant(id.as_uuid())).await?;
        }
        tx.commit().await?;
        self.cache.put(t.clone());
        Ok(t)
    }

    pub(super) async fn delete_pg(&self, pg: &Pg, id: TenantId) -> Result<(), ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        if store::delete_inactive(&*tx, id).await? == 0 {
            return Err(not_deleted(store::tenant(&*tx, id).await?.is_some()));
        }
        tell(&*tx, Invalidation::Tenant(id.as_uuid())).await?;
        tx.commit().await?;
        self.forget(id);
        Ok(())
    }
}

/// Inserts the tenant under the first free slug derived from its name. Another replica may take
/// the same slug between the look-up and the insert (SCALE_OUT §4.2): its unique violation,
/// inside a savepoint, moves on to the next candidate instead of failing the create.
async fn insert_with_free_slug(
    tx: &mut deadpool_postgres::Transaction<'_>,
    id: TenantId,
    new: &NewTenant,
    now: Micros,
) -> Result<(), ApiError> {
    let candidates = slug_candidates(Slug::derive(&new.name));
    let texts: Vec<&str> = candidates.iter().map(Slug::as_str).collect();
    let taken = store::taken_slugs(&**tx, &texts).await?;
    for slug in candidates
        .iter()
        .filter(|s| !taken.iter().any(|t| t == s.as_str()))
    {
        let sp = tx.savepoint("free_slug").await?;
        match store::insert_tenant(&*sp, id, &new.name, slug, new.plan, now).await {
            Ok(()) => {
                sp.commit().await?;
                return Ok(());
            }
            Err(e) if is_unique_violation(&e) => sp.rollback().await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(no_free_slug())
}

/// A `(created_at, id)` cursor with the id as the UUID column holds it; before the first row
/// when there is none. A cursor whose id is no UUID was not issued by this server.
pub(crate) fn uuid_after(after: Option<(Micros, String)>) -> Result<(Micros, Uuid), ApiError> {
    match after {
        None => Ok((i64::MIN, Uuid::nil())),
        Some((t, id)) => Uuid::parse_str(&id)
            .map(|id| (t, id))
            .map_err(|_| ApiError::InvalidRequest("cursor is not one this server issued".into())),
    }
}
