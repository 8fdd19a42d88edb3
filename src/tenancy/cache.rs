//! Every tenant, in memory, so resolving a tenant on a request touches no database. The cache
//! is loaded whole at start and changed only by `tenancy::tenants` right after the write commits
//! (under the state's write lock), so a deactivation is refused on the very next request.
#[cfg(test)]
use super::{Plan, Slug, Status};
use super::{Tenant, TenantId};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Default)]
struct Inner {
    by_id: HashMap<TenantId, Arc<Tenant>>,
    by_slug: HashMap<String, TenantId>,
}

#[derive(Default)]
pub struct TenantCache(RwLock<Inner>);

impl TenantCache {
    pub fn load(c: &Connection) -> rusqlite::Result<TenantCache> {
        let cache = TenantCache::default();
        for t in super::store::all_tenants(c)? {
            cache.put(t);
        }
        Ok(cache)
    }

    /// As `load`, from PostgreSQL.
    pub async fn load_pg(c: &impl tokio_postgres::GenericClient) -> Result<TenantCache, String> {
        let cache = TenantCache::default();
        for t in super::store_pg::all_tenants(c).await? {
            cache.put(t);
        }
        Ok(cache)
    }

    pub fn get(&self, id: TenantId) -> Option<Arc<Tenant>> {
        self.read().by_id.get(&id).cloned()
    }

    pub fn get_by_slug(&self, slug: &str) -> Option<Arc<Tenant>> {
        let inner = self.read();
        inner
            .by_slug
            .get(slug)
            .and_then(|id| inner.by_id.get(id))
            .cloned()
    }

    pub(crate) fn put(&self, t: Tenant) {
        let mut inner = self.0.write().expect("tenant cache lock is never poisoned");
        if let Some(old) = inner.by_id.get(&t.id) {
            let old_slug = old.slug.as_str().to_string();
            inner.by_slug.remove(&old_slug);
        }
        inner.by_slug.insert(t.slug.as_str().to_string(), t.id);
        inner.by_id.insert(t.id, Arc::new(t));
    }

    pub(crate) fn remove(&self, id: TenantId) {
        let mut inner = self.0.write().expect("tenant cache lock is never poisoned");
        if let Some(old) = inner.by_id.remove(&id) {
            inner.by_slug.remove(old.slug.as_str());
        }
    }

    /// Takes `fresh`'s tenants in place of these (a reload on PostgreSQL, `crate::replicas`).
    pub(crate) fn replace(&self, fresh: TenantCache) {
        let fresh = fresh
            .0
            .into_inner()
            .expect("tenant cache lock is never poisoned");
        *self.0.write().expect("tenant cache lock is never poisoned") = fresh;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.0.read().expect("tenant cache lock is never poisoned")
    }
}

/// For tests of resolution without a database.
#[cfg(test)]
pub(crate) fn tenant_for_test(id: TenantId, slug: &str, status: Status) -> Tenant {
    Tenant {
        id,
        name: slug.into(),
        slug: Slug::parse(slug).unwrap(),
        plan: Plan::Basic,
        status,
        created_at: 0,
        updated_at: 0,
        deactivated_at: None,
    }
}

#[cfg(test)]
impl TenantCache {
    pub(crate) fn insert_for_test(&self, t: Tenant) {
        self.put(t)
    }
}
