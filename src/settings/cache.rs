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

    pub(crate) fn remove(&self, tenant: TenantId) {
        self.0
            .write()
            .expect("settings cache lock is never poisoned")
            .remove(&tenant);
    }
}
