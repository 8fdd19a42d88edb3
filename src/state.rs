//! The state every request shares: configuration, the pool, the in-memory caches of tenants and
//! keys, the admin verifier and the clock. Domain modules add their operations to it in `impl`
//! blocks of their own, so each cache is changed only next to the write that makes it stale.
use crate::auth::guard::AdminGuard;
use crate::auth::{Caller, KeyCache};
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::Events;
use crate::limits::metrics::Metrics;
use crate::limits::rate::RateLimits;
use crate::limits::stats::RequestStats;
use crate::settings::SettingsCache;
use crate::tenancy::TenantCache;
use crate::time::{to_micros, Micros};
use crate::usage::pricing::PricingTable;
use crate::usage::service::Usage;
use rusqlite::Connection;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// What start-up loads from the database before serving.
pub struct Loaded {
    pub tenants: TenantCache,
    pub keys: KeyCache,
    pub admin: crate::auth::AdminToken,
    pub settings: SettingsCache,
    pub master_key: MasterKey,
    pub pricing: PricingTable,
    /// The data directory's lock (see `db::lock`).
    pub lock: std::fs::File,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: Db,
    pub tenants: Arc<TenantCache>,
    pub keys: Arc<KeyCache>,
    pub admin: Arc<crate::auth::AdminToken>,
    pub settings: Arc<SettingsCache>,
    /// Seals and opens provider keys; derived once at start.
    pub master_key: Arc<MasterKey>,
    /// Metered usage: ingest, windows, prices and the reads on the rollups.
    pub usage: Usage,
    pub events: Events,
    pub rate: Arc<RateLimits>,
    pub request_stats: Arc<RequestStats>,
    pub metrics: Arc<Metrics>,
    admin_guard: Arc<AdminGuard>,
    pub clock: Arc<dyn Clock>,
    _lock: Arc<std::fs::File>,
    /// Serialises writes to tenants, members and keys, so each write and the cache update that
    /// follows it happen as one step: two concurrent writers cannot leave the cache stale.
    write_lock: Arc<Mutex<()>>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        parts: Loaded,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let settings = Arc::new(parts.settings);
        let metrics: Arc<Metrics> = Arc::default();
        let usage = Usage::start(
            db.clone(),
            clock.clone(),
            config.flags.clone(),
            settings.clone(),
            parts.pricing,
            metrics.clone(),
        )?;
        let events = Events::new(db.clone());
        Ok(AppState {
            config,
            db,
            tenants: Arc::new(parts.tenants),
            keys: Arc::new(parts.keys),
            admin: Arc::new(parts.admin),
            settings,
            master_key: Arc::new(parts.master_key),
            usage,
            events,
            rate: Arc::new(RateLimits::new(clock.clone())),
            request_stats: Arc::default(),
            metrics,
            admin_guard: Arc::default(),
            clock,
            _lock: Arc::new(parts.lock),
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    /// Gone once every part of the server has stopped: background threads end with it.
    pub fn liveness(&self) -> std::sync::Weak<std::fs::File> {
        Arc::downgrade(&self._lock)
    }

    pub fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// Runs a write in one transaction under the write lock; `f` updates caches after its commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&AppState, &mut Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let st = self.clone();
        self.db
            .run(move |c| {
                let _serial = st.write_lock.lock().unwrap_or_else(|p| p.into_inner());
                f(&st, c)
            })
            .await
    }

    /// The caller behind an `Authorization` header value, from memory only. A token that is
    /// not a tenant key is an admin-token attempt, throttled per client address.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Caller, ApiError> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let now = self.now();
        if token.starts_with(crate::auth::keys::KEY_PREFIX) {
            return self.keys.authenticate(token, now);
        }
        let addr = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.admin_guard
            .check(addr, now)
            .map_err(ApiError::RateLimited)?;
        if self.admin.verify(token) {
            return Ok(Caller::Admin);
        }
        self.admin_guard.failed(addr, now);
        Err(ApiError::Unauthorized)
    }
}
