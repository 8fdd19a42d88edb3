//! On PostgreSQL, this replica's caches follow every replica's writes (docs/SCALE_OUT.md §4.1).
//! One `Listener` per server hears the notifications the writes queue in their transactions;
//! its handlers reload the named tenant, key, member or settings from the store, and every cache
//! after each (re)connect. While the listener is not fresh, access is not decided on the caches
//! alone: `refresh` re-reads the request's key and tenants from the store first.
//!
//! Prices: a price set on one replica (`Invalidation::Prices`) reloads this replica's table.
use crate::auth::admin::sha256;
use crate::auth::key_cache::KEY_PREFIX;
use crate::auth::KeyCache;
use crate::db::pg::listen::{Handlers, Invalidation, Listener};
use crate::db::pg::{describe, Pg};
use crate::error::ApiError;
use crate::settings::SettingsCache;
use crate::tenancy::store_pg::{from_row as tenant_from_row, COLUMNS};
use crate::tenancy::{TenantCache, TenantId, DEFAULT_TENANT_ID};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// The caches a notification can make stale, shared with the areas that own them.
pub struct Caches {
    pub tenants: Arc<TenantCache>,
    pub keys: KeyCache,
    pub settings: Arc<SettingsCache>,
    pub pricing: Arc<crate::usage::pricing::PricingTable>,
    /// This server's write lock (`Db::pg_writes`): a handler reads and applies under it, so a
    /// reload that read the store before this replica's own write cannot land after that
    /// write's cache update and undo it (the contract: refused "at once" by the replica that
    /// made the change).
    pub writes: Arc<tokio::sync::Mutex<()>>,
}

/// This replica's listener and the caches it keeps.
pub struct Replicas {
    listener: Listener,
    caches: Arc<Caches>,
}

/// How long start-up waits for the listener's first reload and ping before serving anyway
/// (requests then read access from the store until it is fresh).
const FIRST_FRESH: Duration = Duration::from_secs(5);

impl Replicas {
    pub fn start(url: &str, caches: Caches) -> Result<Replicas, String> {
        let caches = Arc::new(caches);
        let reader = Arc::new(Reader::new(url, caches.clone())?);
        let r = reader.clone();
        let handlers = Handlers {
            on_change: Arc::new(move |what| r.run(r.change(what))),
            reload_all: Arc::new(move || reader.run(reader.reload_all())),
        };
        let listener = Listener::start(url, handlers)?;
        if !listener.wait_fresh(FIRST_FRESH) {
            tracing::warn!("the cache listener is not fresh yet; access is read from the store");
        }
        Ok(Replicas { listener, caches })
    }

    /// Whether the caches may decide access now (every change committed up to 750 ms ago is in
    /// them).
    pub fn trusted(&self) -> bool {
        self.listener.is_fresh(Instant::now())
    }

    /// Re-reads from the store what a request's access rests on: the keys among `tokens`, and
    /// the tenants it names (by id or slug), the keys' tenants and the default tenant. For a
    /// request while the caches are not trusted.
    pub async fn refresh(
        &self,
        pg: &Pg,
        tokens: &[&str],
        ids: &[TenantId],
        slugs: &[&str],
    ) -> Result<(), ApiError> {
        let unready = |e: tokio_postgres::Error| {
            tracing::warn!(error = %describe(&e), "reading access from the store");
            ApiError::NotReady
        };
        let c = pg.client().await.map_err(|e| {
            tracing::warn!(error = %e, "reading access from the store");
            ApiError::NotReady
        })?;
        let mut ids: Vec<Uuid> = ids.iter().map(|t| t.as_uuid()).collect();
        ids.push(DEFAULT_TENANT_ID.as_uuid());
        for token in tokens.iter().filter(|t| t.starts_with(KEY_PREFIX)) {
            let key = self.caches.keys.refresh_hash_pg(&**c, sha256(token)).await;
            ids.extend(key.map_err(unready)?.map(TenantId::as_uuid));
        }
        for slug in slugs {
            ids.extend(
                self.caches
                    .tenants
                    .get_by_slug(slug)
                    .map(|t| t.id.as_uuid()),
            );
        }
        let rows = c
            .query(
                &format!("SELECT {COLUMNS} FROM tenants WHERE id = ANY($1) OR slug = ANY($2)"),
                &[&ids, &slugs],
            )
            .await
            .map_err(unready)?;
        let found = self.take_tenants(&rows).map_err(ApiError::internal)?;
        for id in ids.into_iter().filter(|id| !found.contains(id)) {
            self.caches.tenants.remove(TenantId::from_uuid(id));
        }
        Ok(())
    }

    fn take_tenants(&self, rows: &[tokio_postgres::Row]) -> Result<Vec<Uuid>, String> {
        let mut found = Vec::new();
        for r in rows {
            let t = tenant_from_row(r)?;
            found.push(t.id.as_uuid());
            self.caches.tenants.put(t);
        }
        Ok(found)
    }
}

/// What the listener's handlers read the store with: a small pool on a runtime of their own,
/// which each handler (one at a time) drives while it runs; the pool's connections stay on it,
/// idle, between notifications.
struct Reader {
    rt: Option<tokio::runtime::Runtime>,
    pg: Pg,
    caches: Arc<Caches>,
}

impl Reader {
    fn new(url: &str, caches: Arc<Caches>) -> Result<Reader, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the cache reader: {e}"))?;
        Ok(Reader {
            rt: Some(rt),
            pg: Pg::new(url, 2)?,
            caches,
        })
    }

    fn run(&self, f: impl Future<Output = Result<(), String>>) -> Result<(), String> {
        match &self.rt {
            Some(rt) => rt.block_on(f),
            None => Err("the cache reader has stopped".into()),
        }
    }

    async fn change(&self, what: Invalidation) -> Result<(), String> {
        let _w = self.caches.writes.lock().await;
        let c = self.pg.client().await?;
        let (caches, c) = (&self.caches, &**c);
        let failed = |e: tokio_postgres::Error| describe(&e);
        match what {
            Invalidation::Tenant(id) => {
                let tenant = TenantId::from_uuid(id);
                let rows = c
                    .query(
                        &format!("SELECT {COLUMNS} FROM tenants WHERE id = $1"),
                        &[&id],
                    )
                    .await
                    .map_err(failed)?;
                let Some(row) = rows.first() else {
                    // Deleted: what it owned goes with it.
                    caches.tenants.remove(tenant);
                    caches.keys.remove_tenant(tenant);
                    caches.settings.remove(tenant);
                    return Ok(());
                };
                caches.tenants.put(tenant_from_row(row)?);
                // A tenant just created has its first settings version too. A tenant replaced
                // by `tenant import --replace` may come back with a lower settings version than
                // this replica holds: read under the write lock, the store's latest is the truth.
                match crate::settings::store_pg::latest_opt(c, tenant)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    Some(current) => caches.settings.put(tenant, current),
                    None => caches.settings.remove(tenant),
                }
                Ok(())
            }
            Invalidation::Key(id) => caches.keys.reload_pg(c, id).await.map_err(failed),
            Invalidation::Member(tenant, user) => {
                let role = c
                    .query_opt(
                        "SELECT role FROM tenant_users WHERE tenant_id = $1 AND user_id = $2",
                        &[&tenant, &user],
                    )
                    .await
                    .map_err(failed)?
                    .and_then(|r| crate::auth::Role::parse_member_role(r.get(0)).ok());
                caches
                    .keys
                    .member_changed(TenantId::from_uuid(tenant), &user, role);
                Ok(())
            }
            Invalidation::Settings(tenant) => {
                reload_settings(caches, c, TenantId::from_uuid(tenant)).await
            }
            Invalidation::Prices => caches.pricing.reload_pg(c).await,
            Invalidation::AuthFail(_) => Ok(()),
        }
    }

    /// Every cache, as at start: all read before any is replaced, settings first.
    async fn reload_all(&self) -> Result<(), String> {
        let _w = self.caches.writes.lock().await;
        let c = self.pg.client().await?;
        let settings = SettingsCache::load_pg(&**c).await?;
        let tenants = TenantCache::load_pg(&**c).await?;
        let keys = KeyCache::load_pg(&**c).await?;
        self.caches.settings.replace(settings);
        self.caches.tenants.replace(tenants);
        self.caches.keys.replace(keys);
        self.caches.pricing.reload_pg(&**c).await
    }
}

async fn reload_settings(
    caches: &Caches,
    c: &impl GenericClient,
    tenant: TenantId,
) -> Result<(), String> {
    caches
        .settings
        .reload_pg(c, tenant)
        .await
        .map_err(|e| e.to_string())
}

impl Drop for Reader {
    fn drop(&mut self) {
        // Dropped wherever the server's state goes, perhaps on an async worker, where a
        // runtime may not block to shut down.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
