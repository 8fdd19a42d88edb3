//! The state every request shares, composed of one struct per area (tenancy, keys, settings,
//! usage, events), each owning its cache and its operations, plus what the HTTP edge needs:
//! configuration, the admin token and its throttle, rate limits and request metrics. Handlers
//! name the area they call: `st.usage.ingest(...)`, `st.tenancy.create(...)`.
use crate::auth::guard::AdminGuard;
use crate::auth::keys::Keys;
use crate::auth::{Caller, KeyCache};
use crate::billing::Billing;
use crate::clock::Clock;
use crate::config::Config;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::error::ApiError;
use crate::events::Events;
use crate::gateway::Gateway;
use crate::limits::rate::RateLimits;
use crate::observe::Observe;
use crate::settings::{SettingsCache, TenantSettings};
use crate::tenancy::tenants::{Dependents, Tenancy};
use crate::tenancy::TenantCache;
use crate::time::{to_micros, Micros};
use crate::usage::pricing::PricingTable;
use crate::usage::service::Usage;
use std::net::IpAddr;
use std::sync::Arc;

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
    /// Tenants (and the cache every request resolves through) and their members.
    pub tenancy: Tenancy,
    /// API keys and the cache that authenticates them.
    pub keys: Keys,
    pub admin: Arc<crate::auth::AdminToken>,
    /// Settings, their versions and cache, provider keys and credentials.
    pub settings: TenantSettings,
    /// Metered usage: ingest, windows, prices and the reads on the rollups.
    pub usage: Usage,
    pub events: Events,
    /// The hosted job queue (`ENABLE_HOSTED_QUEUE`).
    pub queue: crate::queue::Queue,
    /// Monthly statements and the operator's report (`ENABLE_BILLING`).
    pub billing: Billing,
    /// Webhook endpoints and their deliveries.
    pub webhooks: crate::webhooks::Webhooks,
    /// OpenAI- and Anthropic-compatible calls, metered.
    pub gateway: Gateway,
    pub rate: Arc<RateLimits>,
    /// On PostgreSQL: the request rate limits every replica shares (in place of `rate`).
    pub shared_rate: Option<Arc<crate::limits::shared::SharedLimiter>>,
    /// On PostgreSQL: the listener that keeps the caches in step with the other replicas.
    pub replicas: Option<Arc<crate::replicas::Replicas>>,
    /// On PostgreSQL: the leader election and the count of live replicas (db::pg::leader).
    pub membership: Option<Arc<crate::db::pg::leader::Membership>>,
    /// Metrics and per-tenant request figures.
    pub observe: Observe,
    admin_guard: Arc<AdminGuard>,
    pub clock: Arc<dyn Clock>,
    _lock: Arc<std::fs::File>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        parts: Loaded,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let settings = TenantSettings::new(
            db.clone(),
            clock.clone(),
            parts.settings,
            parts.master_key,
            config.clone(),
        );
        let observe = Observe::default();
        let billing = Billing::new(
            db.clone(),
            clock.clone(),
            config.flags.clone(),
            config.billing_grace.as_micros().min(i64::MAX as u128) as Micros,
        );
        let usage = Usage::start(
            db.clone(),
            clock.clone(),
            config.flags.clone(),
            settings.cache(),
            parts.pricing,
            observe.metrics_handle(),
            billing.ingest_gate(),
        )?;
        let events = Events::new(db.clone());
        let webhooks = crate::webhooks::Webhooks::new(
            db.clone(),
            clock.clone(),
            settings.master_key(),
            config.webhook_allow_private,
        )?;
        // A clone shares the map: the listener changes the cache the key area reads.
        let key_cache = parts.keys.clone();
        let keys = Keys::new(db.clone(), clock.clone(), parts.keys);
        let tenancy = Tenancy::new(
            db.clone(),
            clock.clone(),
            config.flags.clone(),
            parts.tenants,
            Dependents {
                keys: keys.clone(),
                settings: settings.clone(),
                usage: usage.clone(),
                observe: observe.clone(),
            },
        );
        let queue = crate::queue::Queue::load(
            db.clone(),
            clock.clone(),
            config.flags.clone(),
            tenancy.shared_cache(),
            settings.cache(),
        )?;
        let gateway = Gateway::new(
            config.upstreams.clone(),
            settings.clone(),
            usage.clone(),
            events.clone(),
            clock.clone(),
        );
        let replicas = match (db.pg(), &config.database_url) {
            (Some(_), Some(url)) => Some(Arc::new(crate::replicas::Replicas::start(
                url.expose(),
                crate::replicas::Caches {
                    tenants: tenancy.shared_cache(),
                    keys: key_cache,
                    settings: settings.cache(),
                    pricing: usage.pricing(),
                    writes: db.pg_writes(),
                },
            )?)),
            _ => None,
        };
        // N for the limiter's fallback (limit / N while the database is unreachable) is 1
        // until the first heartbeat counts the live replicas (docs/SCALE_OUT.md §4.3).
        let shared_rate = db.pg().map(|pg| {
            Arc::new(crate::limits::shared::SharedLimiter::new(
                pg.clone(),
                clock.clone(),
                1,
            ))
        });
        let lock = Arc::new(parts.lock);
        let membership = match (db.pg(), &config.database_url, &shared_rate) {
            (Some(pg), Some(url), Some(limiter)) => {
                let limiter = limiter.clone();
                Some(crate::db::pg::leader::start(
                    pg,
                    crate::db::pg::Pg::new(url.expose(), 1)?,
                    Arc::new(move |n| limiter.set_replicas(n)),
                    Arc::downgrade(&lock),
                )?)
            }
            _ => None,
        };
        Ok(AppState {
            shared_rate,
            replicas,
            membership,
            gateway,
            queue,
            billing,
            config,
            db,
            tenancy,
            keys,
            admin: Arc::new(parts.admin),
            settings,
            usage,
            events,
            webhooks,
            rate: Arc::new(RateLimits::new(clock.clone())),
            observe,
            admin_guard: Arc::default(),
            clock,
            _lock: lock,
        })
    }

    /// Gone once every part of the server has stopped: background threads end with it.
    /// On PostgreSQL, this replica's part in the group, for `/metrics`.
    pub fn replica_status(&self) -> Option<crate::observe::metrics::Replica> {
        let (pg, membership) = (self.db.pg()?, self.membership.as_ref()?);
        Some(crate::observe::metrics::Replica {
            id: membership.id().to_string(),
            leader: pg.leads(),
            alive: membership.alive(),
            caches_fresh: self.replicas.as_ref().is_some_and(|r| r.trusted()),
            rate_fallbacks: self.shared_rate.as_ref().map_or(0, |l| l.fallbacks()),
        })
    }

    pub fn liveness(&self) -> std::sync::Weak<std::fs::File> {
        Arc::downgrade(&self._lock)
    }

    pub fn now(&self) -> Micros {
        to_micros(self.clock.now())
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
        if token.starts_with(crate::auth::key_cache::KEY_PREFIX) {
            return self.keys.authenticate(token, now);
        }
        let addr = peer.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        self.admin_guard
            .check(addr, now)
            .map_err(ApiError::RateLimited)?;
        if let Some(proof) = self.admin.verify(token) {
            return Ok(Caller::Admin(proof));
        }
        self.admin_guard.failed(addr, now);
        Err(ApiError::Unauthorized)
    }
}
