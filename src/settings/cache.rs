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
        // SQLite takes the bare columns of an aggregate query from the row holding the max().
        let mut stmt = c.prepare(
            "SELECT tenant_id, max(version), body, changed_at FROM settings_versions
             GROUP BY tenant_id",
        )?;
        let mut map = HashMap::new();
        let rows = stmt.query_map([], |r| {
            let id: String = r.get(0)?;
            let body: String = r.get(2)?;
            Ok((id, r.get::<_, i64>(1)?, body, r.get::<_, Micros>(3)?))
        })?;
        for row in rows {
            let (id, version, body, changed_at) = row?;
            let id = crate::tenancy::TenantId::parse(&id).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("`{}` is not a tenant id", crate::error::clip(&id)).into(),
                )
            })?;
            let settings = super::store::parse_body(&body)?;
            map.insert(
                id,
                Arc::new(Current {
                    version,
                    settings,
                    changed_at,
                }),
            );
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

    pub(crate) fn remove(&self, tenant: TenantId) {
        self.0
            .write()
            .expect("settings cache lock is never poisoned")
            .remove(&tenant);
    }
}
