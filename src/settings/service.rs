//! The settings area: each tenant's versioned settings (patch, rollback, history) with their
//! cache, and its provider keys (sealed with the instance's master key) and credentials.
use super::cache::{Current, SettingsCache};
use super::store::{self, HistoryEntry};
use super::store_pg;
use super::Settings;
use crate::auth::Action;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::pg::notify::{notify, Invalidation};
use crate::db::pg::Pg;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;
use crate::tenancy::TenantId;
use crate::time::{to_micros, Micros};
use serde_json::{json, Value};
use std::sync::Arc;

#[derive(Clone)]
pub struct TenantSettings {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    cache: Arc<SettingsCache>,
    /// Seals and opens provider keys; derived once at start.
    pub(super) master_key: Arc<MasterKey>,
    /// For the instance's own provider keys (`TENANTRY_PROVIDER_KEY_*`).
    pub(super) config: Arc<Config>,
}

impl TenantSettings {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        cache: SettingsCache,
        master_key: MasterKey,
        config: Arc<Config>,
    ) -> TenantSettings {
        TenantSettings {
            db,
            clock,
            cache: Arc::new(cache),
            master_key: Arc::new(master_key),
            config,
        }
    }

    pub(super) fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// The tenant's current settings, from memory.
    pub fn current(&self, tenant: TenantId) -> Arc<Current> {
        self.cache.get(tenant)
    }

    /// The tenant's current settings for a read of them (`GET /api/settings`): from memory,
    /// or on PostgreSQL from the store, so a version another replica acknowledged a moment ago
    /// is already the one shown (docs/SCALE_OUT.md §4.1, "reads of managed resources").
    pub async fn read_current(&self, ctx: &TenantCtx) -> Result<Arc<Current>, ApiError> {
        let Some(pg) = self.db.pg() else {
            return Ok(self.current(ctx.id()));
        };
        let c = pg.conn().await?;
        let latest = store_pg::latest(&**c, ctx.id()).await?;
        self.cache.put_newer(ctx.id(), latest.clone());
        Ok(Arc::new(latest))
    }

    /// The instance's master key, for the other secrets it seals (webhook secrets).
    pub fn master_key(&self) -> Arc<MasterKey> {
        self.master_key.clone()
    }

    /// The cache, for the areas that read settings on every request (usage).
    pub fn cache(&self) -> Arc<SettingsCache> {
        self.cache.clone()
    }

    /// A new tenant's first version, written in the tenant's own transaction, now committed.
    pub fn created(&self, tenant: TenantId, first: Current) {
        self.cache.put(tenant, first);
    }

    /// A deleted tenant's settings leave the cache.
    pub fn forget(&self, tenant: TenantId) {
        self.cache.remove(tenant);
    }
}

/// What a new version is made from.
enum Change {
    Patch(Value),
    Rollback(i64),
}

impl Change {
    /// The version whose body the change needs read (in the write's transaction).
    fn reads(&self) -> Option<i64> {
        match self {
            Change::Patch(_) => None,
            Change::Rollback(version) => Some(*version),
        }
    }

    /// The new settings, the event's kind and data, from the latest version and, for a
    /// rollback, the body of the version it goes back to (`None`: no such version).
    fn apply(
        self,
        current: &Current,
        body: Option<String>,
    ) -> Result<(Settings, Kind, Value), ApiError> {
        match self {
            Change::Patch(patch) => Ok((
                current.settings.patched(&patch)?,
                Kind::SettingsChanged,
                json!({}),
            )),
            Change::Rollback(version) => {
                let body = body
                    .ok_or_else(|| ApiError::NotFound(format!("no settings version {version}")))?;
                Ok((
                    store::parse_body(&body)?,
                    Kind::SettingsRolledBack,
                    json!({"rolled_back_to": version}),
                ))
            }
        }
    }
}

/// The event a new version records, on either store.
fn version_event(
    tenant: TenantId,
    (kind, mut data): (Kind, Value),
    current: &Current,
    next: &Current,
    by: &str,
) -> NewEvent {
    data["version"] = json!(next.version);
    data["changed_fields"] = json!(store::changed_fields(&current.settings, &next.settings));
    data["actor"] = json!(by);
    let message = format!("settings version {} by {by}", next.version);
    NewEvent::of(kind, tenant, message, data)
}

impl TenantSettings {
    /// Writes a new version from the current one, records its event, and updates the cache.
    async fn new_version(&self, ctx: &TenantCtx, change: Change) -> Result<Current, ApiError> {
        ctx.require(Action::Manage)?;
        // Who made the change, for history and events: `admin`, or the key (and its user).
        let (tenant, by) = (ctx.id(), ctx.caller().describe());
        let (cache, now) = (self.cache.clone(), self.now());
        if let Some(pg) = self.db.pg() {
            return self.new_version_pg(pg, tenant, change, by).await;
        }
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let current = store::latest(&tx, tenant)?;
                let body = match change.reads() {
                    Some(v) => store::version_body(&tx, tenant, v)?,
                    None => None,
                };
                let (settings, kind, data) = change.apply(&current, body)?;
                let next =
                    store::write_version(&tx, tenant, current.version + 1, &settings, &by, now)?;
                let event = version_event(tenant, (kind, data), &current, &next, &by);
                events::record(&tx, now, event)?;
                tx.commit()?;
                cache.put(tenant, next.clone());
                Ok(next)
            })
            .await
    }

    /// `new_version` on PostgreSQL: the tenant's row lock orders the writes of every replica;
    /// the notification makes the others reload the tenant's settings.
    async fn new_version_pg(
        &self,
        pg: &Pg,
        tenant: TenantId,
        change: Change,
        by: String,
    ) -> Result<Current, ApiError> {
        let now = self.now();
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        store_pg::lock_tenant(&*tx, tenant).await?;
        let current = store_pg::latest(&*tx, tenant).await?;
        let body = match change.reads() {
            Some(v) => store_pg::version_body(&*tx, tenant, v).await?,
            None => None,
        };
        let (settings, kind, data) = change.apply(&current, body)?;
        let next =
            store_pg::write_version(&*tx, tenant, current.version + 1, &settings, &by, now).await?;
        let event = version_event(tenant, (kind, data), &current, &next, &by);
        events::pg::record_many(&*tx, &[(now, event)]).await?;
        notify(&*tx, &Invalidation::Settings(tenant.as_uuid()))
            .await
            .map_err(ApiError::internal)?;
        tx.commit().await?;
        // A notification of a later version may have been handled meanwhile: keep the newest.
        self.cache.put_newer(tenant, next.clone());
        Ok(next)
    }

    pub async fn patch(&self, ctx: &TenantCtx, patch: Value) -> Result<Current, ApiError> {
        // Validate before taking the write lock, against the cached version; the write re-applies
        // the patch to the version it reads, so a concurrent change is not lost.
        self.current(ctx.id()).settings.patched(&patch)?;
        self.new_version(ctx, Change::Patch(patch)).await
    }

    pub async fn rollback(&self, ctx: &TenantCtx, version: i64) -> Result<Current, ApiError> {
        self.new_version(ctx, Change::Rollback(version)).await
    }

    pub async fn history(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<i64>,
    ) -> Result<Page<HistoryEntry>, ApiError> {
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            let rows = store_pg::history(&**c, ctx.id(), &page).await?;
            return Ok(Page::from_rows(rows, page.limit, |h| h.version));
        }
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let rows = store::history(c, &tenant, &page)?;
                Ok(Page::from_rows(rows, page.limit, |h| h.version))
            })
            .await
    }
}
