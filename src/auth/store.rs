//! All of auth's SQL: API key rows (stored by hash), the rows the key cache loads, and the admin
//! token's hash in `meta`. Functions take a connection and typed values and return typed rows;
//! this is the seam where a second database would plug in (docs/SCALE_OUT.md).
use super::key_cache::CachedKey;
use super::keys::ApiKey;
use super::Role;
use crate::db::sql::parse_uuid_column;
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

const COLUMNS: &str = "id, name, role, user_id, prefix, created_at, expires_at, revoked_at";

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: parse_uuid_column(r.get(0)?)?,
        name: r.get(1)?,
        role: Role::parse_key_role(&r.get::<_, String>(2)?).unwrap_or(Role::Viewer),
        user_id: r.get(3)?,
        prefix: r.get(4)?,
        created_at: r.get(5)?,
        expires_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

pub fn insert_key(
    c: &Connection,
    tenant: TenantId,
    key: &ApiKey,
    hash: &[u8; 32],
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO api_keys (id, tenant_id, name, role, user_id, key_hash, prefix,
                               created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            key.id.to_string(),
            tenant.to_string(),
            key.name,
            key.role.as_str(),
            key.user_id,
            &hash[..],
            key.prefix,
            key.created_at,
            key.expires_at
        ],
    )?;
    Ok(())
}

/// One page of a tenant's keys (revoked ones too) in `(created_at, id)` order after `after`.
pub fn list_keys(
    c: &Connection,
    tenant: TenantId,
    after: &(Micros, String),
    fetch: i64,
) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM api_keys
         WHERE tenant_id = ?1 AND (created_at, id) > (?2, ?3)
         ORDER BY created_at, id LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![tenant.to_string(), after.0, after.1, fetch],
        from_row,
    )?;
    rows.collect()
}

/// The stored hash and display prefix of one of the tenant's keys.
pub fn key_hash_and_prefix(
    c: &Connection,
    tenant: TenantId,
    id: Uuid,
) -> rusqlite::Result<Option<(Vec<u8>, String)>> {
    c.query_row(
        "SELECT key_hash, prefix FROM api_keys WHERE id = ?1 AND tenant_id = ?2",
        params![id.to_string(), tenant.to_string()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
}

/// Revokes the key unless it already is; returns the rows changed (0 or 1).
pub fn revoke_key(
    c: &Connection,
    tenant: TenantId,
    id: Uuid,
    now: Micros,
) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE api_keys SET revoked_at = ?3
         WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NULL",
        params![id.to_string(), tenant.to_string(), now],
    )
}

/// Every unrevoked key by hash, with its member's current role, for loading the key cache.
pub fn live_keys(c: &Connection) -> rusqlite::Result<Vec<([u8; 32], CachedKey)>> {
    let mut stmt = c.prepare(
        "SELECT k.key_hash, k.id, k.tenant_id, k.role, k.user_id, k.expires_at, m.role
         FROM api_keys k
         LEFT JOIN tenant_users m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id
         WHERE k.revoked_at IS NULL",
    )?;
    let rows = stmt.query_map([], |r| {
        let hash: Vec<u8> = r.get(0)?;
        let id: String = r.get(1)?;
        let tenant: String = r.get(2)?;
        let role: String = r.get(3)?;
        let member_role: Option<String> = r.get(6)?;
        // A row that does not read back as a key is left out, so its key is refused: a
        // damaged tenant id must not become the nil id, which is the default tenant.
        let key = match (
            Uuid::parse_str(&id),
            TenantId::parse(&tenant).ok_or(()),
            Role::parse_key_role(&role),
        ) {
            (Ok(id), Ok(tenant_id), Ok(role)) => Some(CachedKey {
                id,
                tenant_id,
                role,
                user_id: r.get(4)?,
                expires_at: r.get(5)?,
                member_role: member_role.and_then(|m| Role::parse_member_role(&m).ok()),
            }),
            _ => {
                tracing::warn!(key_id = %crate::error::clip(&id), "an API key row is damaged; the key is refused");
                None
            }
        };
        Ok((hash, key))
    })?;
    let mut live = Vec::new();
    for row in rows {
        let (hash, key) = row?;
        if let (Ok(h), Some(key)) = (<[u8; 32]>::try_from(hash.as_slice()), key) {
            live.push((h, key));
        }
    }
    Ok(live)
}

pub const ADMIN_TOKEN_KEY: &str = "admin_token_sha256";

/// The admin token's SHA-256 as stored (hex), when one was stored.
pub fn admin_token_hash(c: &Connection) -> rusqlite::Result<Option<String>> {
    crate::db::meta::get(c, ADMIN_TOKEN_KEY)
}

pub fn set_admin_token_hash(c: &Connection, hex: &str) -> rusqlite::Result<()> {
    crate::db::meta::set(c, ADMIN_TOKEN_KEY, hex)
}
