//! Tenant API keys: `tk_` + 192 random bits, stored only as a SHA-256 hash and looked up by it.
//! Every live key is held in `KeyCache`; revocation, tenant deletion and member changes update
//! it right after their write commits, so a revoked key is refused on the very next request.
use super::{Caller, KeyCaller, Role};
use crate::error::ApiError;
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use uuid::Uuid;

pub const KEY_PREFIX: &str = "tk_";

/// A fresh key, its hash, and the displayable prefix.
pub fn generate() -> (String, [u8; 32], String) {
    let key = super::admin::random_token(KEY_PREFIX, 24);
    let hash = super::admin::sha256(&key);
    let prefix = key.chars().take(KEY_PREFIX.len() + 8).collect();
    (key, hash, prefix)
}

#[derive(Clone, Debug)]
pub struct CachedKey {
    pub id: Uuid,
    pub tenant_id: TenantId,
    pub role: Role,
    pub user_id: Option<String>,
    pub expires_at: Option<Micros>,
    /// The current role of `user_id` in the tenant; `None` when the key has no user or the
    /// user is no longer a member.
    pub member_role: Option<Role>,
}

/// Clones share one map: the key area changes it after its writes, and on PostgreSQL the
/// replica's listener (`crate::replicas`) after the other replicas' writes.
#[derive(Clone, Default)]
pub struct KeyCache(Arc<RwLock<HashMap<[u8; 32], CachedKey>>>);

/// A key as PostgreSQL's caches read it, with its member's role; `revoked_at` last.
const KEY_ROWS: &str =
    "SELECT k.key_hash, k.id, k.tenant_id, k.role, k.user_id, k.expires_at, m.role, k.revoked_at
     FROM api_keys k
     LEFT JOIN tenant_users m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id";

/// A `KEY_ROWS` row as a cached key; `None` (and a warning) for a damaged one.
fn key_row(r: &tokio_postgres::Row) -> Option<([u8; 32], CachedKey)> {
    let hash: Vec<u8> = r.get(0);
    let role: String = r.get(3);
    let member: Option<String> = r.get(6);
    let (Ok(hash), Ok(role)) = (
        <[u8; 32]>::try_from(hash.as_slice()),
        Role::parse_key_role(&role),
    ) else {
        tracing::warn!(key_id = %r.get::<_, Uuid>(1), "an API key row is damaged; the key is refused");
        return None;
    };
    let key = CachedKey {
        id: r.get(1),
        tenant_id: TenantId::from_uuid(r.get(2)),
        role,
        user_id: r.get(4),
        expires_at: r.get(5),
        member_role: member.and_then(|m| Role::parse_member_role(&m).ok()),
    };
    Some((hash, key))
}

impl KeyCache {
    pub fn load(c: &Connection) -> rusqlite::Result<KeyCache> {
        let map: HashMap<_, _> = super::store::live_keys(c)?.into_iter().collect();
        Ok(KeyCache(Arc::new(RwLock::new(map))))
    }

    /// As `load`, from PostgreSQL; a row that does not read back as a key is left out (its key
    /// refused), as on SQLite.
    pub async fn load_pg(c: &impl tokio_postgres::GenericClient) -> Result<KeyCache, String> {
        let rows = c
            .query(&format!("{KEY_ROWS} WHERE k.revoked_at IS NULL"), &[])
            .await
            .map_err(|e| crate::db::pg::describe(&e))?;
        let map: HashMap<_, _> = rows.iter().filter_map(key_row).collect();
        Ok(KeyCache(Arc::new(RwLock::new(map))))
    }

    /// Reloads the key `id` from PostgreSQL (a notification): cached while live, gone once
    /// revoked or deleted.
    pub async fn reload_pg(
        &self,
        c: &impl tokio_postgres::GenericClient,
        id: Uuid,
    ) -> Result<(), tokio_postgres::Error> {
        let rows = c
            .query(&format!("{KEY_ROWS} WHERE k.id = $1"), &[&id])
            .await?;
        self.take_rows(&rows, |k| k.id == id);
        Ok(())
    }

    /// Reloads the key with this hash from PostgreSQL, for a request while this replica cannot
    /// trust its cache; the tenant of the key, when it is live.
    pub async fn refresh_hash_pg(
        &self,
        c: &impl tokio_postgres::GenericClient,
        hash: [u8; 32],
    ) -> Result<Option<TenantId>, tokio_postgres::Error> {
        let rows = c
            .query(&format!("{KEY_ROWS} WHERE k.key_hash = $1"), &[&&hash[..]])
            .await?;
        self.write().remove(&hash);
        Ok(self
            .take_rows(&rows, |_| false)
            .into_iter()
            .next()
            .map(|k| k.tenant_id))
    }

    /// Drops the cached keys `stale` picks and caches the live ones among `rows`.
    fn take_rows(
        &self,
        rows: &[tokio_postgres::Row],
        stale: impl Fn(&CachedKey) -> bool,
    ) -> Vec<CachedKey> {
        let live: Vec<_> = rows
            .iter()
            .filter(|r| r.get::<_, Option<Micros>>(7).is_none())
            .filter_map(key_row)
            .collect();
        let mut map = self.write();
        map.retain(|_, k| !stale(k));
        live.into_iter()
            .map(|(hash, k)| {
                map.insert(hash, k.clone());
                k
            })
            .collect()
    }

    /// Takes `fresh`'s keys in place of these (a reload on PostgreSQL).
    pub(crate) fn replace(&self, fresh: KeyCache) {
        let map = std::mem::take(&mut *fresh.write());
        *self.write() = map;
    }

    /// The caller behind a `tk_` key, or 401 when it is unknown, revoked, expired, or its
    /// member is gone.
    pub fn authenticate(&self, token: &str, now: Micros) -> Result<Caller, ApiError> {
        let hash = super::admin::sha256(token);
        let map = self.0.read().expect("key cache lock is never poisoned");
        let k = map.get(&hash).ok_or(ApiError::Unauthorized)?;
        Self::caller_of(k, now)
    }

    /// Whether the cache holds the key with this hash.
    pub(crate) fn holds(&self, hash: &[u8; 32]) -> bool {
        self.0
            .read()
            .expect("key cache lock is never poisoned")
            .contains_key(hash)
    }

    /// The caller a key stands for at `now`, or 401 when it expired or its member is gone.
    pub fn caller_of(k: &CachedKey, now: Micros) -> Result<Caller, ApiError> {
        if k.expires_at.is_some_and(|e| e <= now) {
            return Err(ApiError::Unauthorized);
        }
        let role = match (&k.user_id, k.member_role) {
            (None, _) => k.role,
            (Some(_), Some(m)) => k.role.min(m),
            (Some(_), None) => return Err(ApiError::Unauthorized),
        };
        Ok(Caller::Key(KeyCaller {
            key_id: k.id,
            tenant_id: k.tenant_id,
            role,
            user_id: k.user_id.clone(),
        }))
    }

    pub(crate) fn insert(&self, hash: [u8; 32], key: CachedKey) {
        self.write().insert(hash, key);
    }

    pub(crate) fn remove(&self, hash: &[u8]) {
        if let Ok(h) = <[u8; 32]>::try_from(hash) {
            self.write().remove(&h);
        }
    }

    pub(crate) fn remove_tenant(&self, tenant_id: TenantId) {
        self.write().retain(|_, k| k.tenant_id != tenant_id);
    }

    /// A member was added, re-roled (`Some`) or removed (`None`): keys bound to them follow.
    pub(crate) fn member_changed(&self, tenant_id: TenantId, user_id: &str, role: Option<Role>) {
        for k in self.write().values_mut() {
            if k.tenant_id == tenant_id && k.user_id.as_deref() == Some(user_id) {
                k.member_role = role;
            }
        }
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<[u8; 32], CachedKey>> {
        self.0.write().expect("key cache lock is never poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(role: Role, user: Option<&str>, member: Option<Role>) -> CachedKey {
        CachedKey {
            id: Uuid::new_v4(),
            tenant_id: crate::tenancy::DEFAULT_TENANT_ID,
            role,
            user_id: user.map(String::from),
            expires_at: None,
            member_role: member,
        }
    }

    fn role_of(c: Caller) -> Role {
        match c {
            Caller::Key(k) => k.role,
            Caller::Admin(_) => panic!("not a key"),
        }
    }

    #[test]
    fn a_key_row_with_a_damaged_tenant_id_is_refused_not_read_as_the_default_tenant() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        let (good, good_hash, _) = generate();
        let (bad, bad_hash, _) = generate();
        let default = "00000000-0000-0000-0000-000000000000";
        // Damage the way a bad restore or a hand edit would: past the foreign key.
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for (id, tenant, hash) in [
            ("6f9619ff-8b86-d011-b42d-00c04fc964ff", default, &good_hash),
            (
                "7f9619ff-8b86-d011-b42d-00c04fc964ff",
                "not-a-uuid",
                &bad_hash,
            ),
        ] {
            c.execute(
                "INSERT INTO api_keys (id, tenant_id, name, role, key_hash, prefix, created_at)
                 VALUES (?1, ?2, 'k', 'owner', ?3, 'tk_x', 0)",
                rusqlite::params![id, tenant, hash.to_vec()],
            )
            .unwrap();
        }
        let cache = KeyCache::load(&c).unwrap();
        assert!(cache.authenticate(&good, 0).is_ok());
        assert!(matches!(
            cache.authenticate(&bad, 0),
            Err(ApiError::Unauthorized)
        ));
    }

    #[test]
    fn keys_are_long_random_and_prefixed() {
        let (a, ha, p) = generate();
        let (b, _, _) = generate();
        assert!(a.starts_with("tk_") && a.len() >= 3 + 32);
        assert_ne!(a, b);
        assert!(a.starts_with(&p) && p.len() == 11);
        assert_eq!(ha, super::super::admin::sha256(&a));
    }

    #[test]
    fn unknown_expired_and_revoked_keys_are_unauthorized() {
        let cache = KeyCache::default();
        let (key, hash, _) = generate();
        assert!(cache.authenticate(&key, 0).is_err());
        let mut k = cached(Role::Member, None, None);
        k.expires_at = Some(100);
        cache.insert(hash, k);
        assert!(cache.authenticate(&key, 99).is_ok());
        assert!(cache.authenticate(&key, 100).is_err());
        cache.remove(&hash);
        assert!(cache.authenticate(&key, 0).is_err());
    }

    #[test]
    fn a_user_key_is_capped_by_its_member_role() {
        let cache = KeyCache::default();
        let (key, hash, _) = generate();
        cache.insert(hash, cached(Role::Owner, Some("u1"), Some(Role::Owner)));
        assert_eq!(role_of(cache.authenticate(&key, 0).unwrap()), Role::Owner);
        cache.member_changed(crate::tenancy::DEFAULT_TENANT_ID, "u1", Some(Role::Viewer));
        assert_eq!(role_of(cache.authenticate(&key, 0).unwrap()), Role::Viewer);
        cache.member_changed(crate::tenancy::DEFAULT_TENANT_ID, "u1", None);
        assert!(cache.authenticate(&key, 0).is_err());
    }
}
