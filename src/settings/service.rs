//! The settings area: each tenant's versioned settings (patch, rollback, history) with their
//! cache, and its provider keys (sealed with the instance's master key) and credentials.
use super::cache::{Current, SettingsCache};
use super::store::{self, HistoryEntry};
use super::Settings;
use crate::auth::Action;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::{self, Kind, NewEvent};
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;
use crate::tenancy::TenantId;
use crate::time::{to_micros, Micros};
use rusqlite::Connection;
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

impl TenantSettings {
    /// Writes a new version from the current one, records its event, and updates the cache.
    async fn new_version(
        &self,
        ctx: &TenantCtx,
        make: impl FnOnce(&Connection, &Current) -> Result<(Settings, Kind, Value), ApiError>
            + Send
            + 'static,
    ) -> Result<Current, ApiError> {
        ctx.require(Action::Manage)?;
        // Who made the change, for history and events: `admin`, or the key (and its user).
        let (tenant, by) = (ctx.id(), ctx.caller().describe());
        let (cache, now) = (self.cache.clone(), self.now());
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let current = store::latest(&tx, tenant)?;
                let (settings, kind, mut data) = make(&tx, &current)?;
                let next =
                    store::write_version(&tx, tenant, current.version + 1, &settings, &by, now)?;
                data["version"] = json!(next.version);
                data["changed_fields"] = json!(store::changed_fields(&current.settings, &settings));
                data["actor"] = json!(by);
                let message = format!("settings version {} by {by}", next.version);
                events::record(&tx, now, NewEvent::of(kind, tenant, message, data))?;
                tx.commit()?;
                cache.put(tenant, next.clone());
                Ok(next)
            })
            .await
    }

    pub async fn patch(&self, ctx: &TenantCtx, patch: Value) -> Result<Current, ApiError> {
        // Validate before taking the write lock, against the cached version; the write re-applies
        // the patch to the version it reads, so a concurrent change is not lost.
        self.current(ctx.id()).settings.patched(&patch)?;
        self.new_version(ctx, move |_, current| {
            Ok((
                current.settings.patched(&patch)?,
                Kind::SettingsChanged,
                json!({}),
            ))
        })
        .await
    }

    pub async fn rollback(&self, ctx: &TenantCtx, version: i64) -> Result<Current, ApiError> {
        let tenant = ctx.id();
        self.new_version(ctx, move |c, _| {
            let body = store::version_body(c, tenant, version)?
                .ok_or_else(|| ApiError::NotFound(format!("no settings version {version}")))?;
            Ok((
                store::parse_body(&body)?,
                Kind::SettingsRolledBack,
                json!({"rolled_back_to": version}),
            ))
        })
        .await
    }

    pub async fn history(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<i64>,
    ) -> Result<Page<HistoryEntry>, ApiError> {
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let rows = store::history(c, &tenant, &page)?;
                Ok(Page::from_rows(rows, page.limit, |h| h.version))
            })
            .await
    }
}
