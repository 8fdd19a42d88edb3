//! The current settings of every tenant, in memory: ingest and limit checks read them on every
//! request. Loaded whole at start; changed only by `settings::store` and tenant creation and
//! deletion, right after their writes commit.
use super::Settings;
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Clone, Debug)]
pub struct Current {
    pub version: i64,
    pub settings: Settings,
    pub changed_at: Micros,
}

#[derive(Default)]
pub struct SettingsCache(RwLock<HashMap<TenantId, Arc<Current>>>);

impl SettingsCache {
    pub fn load(c: &Connection) -> rusqlite::Result<SettingsCache> {
        let map = super::store::current_versions(c)?
            .into_iter()
            .map(|(id, current)| (id, Arc::new(current)))
            .collect();
        Ok(SettingsCache(RwLock::new(map)))
    }

    /// As `load`, from PostgreSQL: each tenant's newest version.
    pub async fn load_pg(c: &impl tokio_postgres::GenericClient) -> Result<SettingsCache, String> {
        let rows = c
            .query(
                "SELECT DISTINCT ON (tenant_id) tenant_id, version, body, changed_at
                 FROM settings_versions ORDER BY tenant_id, version DESC",
                &[],
            )
            .await
            .map_err(|e| crate::db::pg::describe(&e))?;
        let mut map = HashMap::new();
        for r in rows {
            let tenant = TenantId::from_uuid(r.get(0));
            let settings = super::store::parse_body(r.get(2))
                .map_err(|_| format!("the settings of tenant {tenant} are damaged"))?;
            let current = Current {
                version: r.get(1),
                settings,
                changed_at: r.get(3),
            };
            map.insert(tenant, Arc::new(current));
        }
        Ok(SettingsCache(RwLock::new(map)))
    }

    /// The tenant's current settings; defaults for a tenant without any (never the case once
    /// migrations ran, but a missing row must not break a request).
    pub fn get(&self, tenant: TenantId) -> Arc<Current> {
        self.0
            .read()
            .expect("settings cache lock is never poisoned")
            .get(&tenant)
            .cloned()
            .unwrap_or_else(|| {
                Arc::new(Current {
                    version: 0,
                    settings: Settings::default(),
                    changed_at: 0,
                })
            })
    }

    pub(crate) fn put(&self, tenant: TenantId, current: Current) {
        self.0
            .write()
            .expect("settings cache lock is never poisoned")
            .insert(tenant, Arc::new(current));
    }

    /// As `put`, unless the cache already holds a later version: on PostgreSQL a replica's own
    /// write and the reload another replica's notification causes may land in either order.
    pub(crate) fn put_newer(&self, tenant: TenantId, current: Current) {
        let mut map = self
            .0
            .write()
            .expect("settings cache lock is never poisoned");
        if map
            .get(&tenant)
            .is_some_and(|c| c.version > current.version)
        {
            return;
        }
        map.insert(tenant, Arc::new(current));
    }

    /// Reloads the tenant's newest version from PostgreSQL (a notification); a tenant without
    /// one (deleted) leaves the cache.
    pub async fn reload_pg(
        &self,
        c: &impl tokio_postgres::GenericClient,
        tenant: TenantId,
    ) -> Result<(), crate::error::ApiError> {
        match super::store_pg::latest_opt(c, tenant).await? {
            Some(current) => self.put_newer(tenant, current),
            None => self.remove(tenant),
        }
        Ok(())
    }

    /// Takes `fresh`'s settings in place of these (a reload on PostgreSQL).
    pub(crate) fn replace(&self, fresh: SettingsCache) {
        let map = fresh
            .0
            .into_inner()
            .expect("settings cache lock is never poisoned");
        *self
            .0
            .write()
            .expect("settings cache lock is never poisoned") = map;
    }

    pub(crate) fn remove(&self, tenant: TenantId) {
        self.0
            .write()
            .expect("settings cache lock is never poisoned")
            .remove(&tenant);
    }
}
