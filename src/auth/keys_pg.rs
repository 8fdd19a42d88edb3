//! API keys on PostgreSQL (issue 19): the SQL and the `Keys` operations, with the same checks,
//! events and cache updates as `keys.rs`. Writes take the tenant row lock first (SCALE_OUT
//! §4.2), so a key is never bound to a member another replica is removing, and tell the other
//! replicas' caches (`key:<id>`).
use super::key_cache::CachedKey;
use super::keys::{
    cached, created_event, key_member_role, new_key, revoked_event, ApiKey, CreatedKey, Keys,
    NewKey,
};
use super::Role;
use crate::db::pg::notify::Invalidation;
use crate::db::pg::Pg;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::members_pg::lock;
use crate::tenancy::store_pg::member_role;
use crate::tenancy::tenants_pg::{tell, uuid_after};
use crate::tenancy::{TenantCtx, TenantId};
use crate::time::Micros;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

type PgResult<T> = Result<T, tokio_postgres::Error>;

const COLUMNS: &str = "id, name, role, user_id, prefix, created_at, expires_at, revoked_at";

fn from_row(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get(0),
        name: r.get(1),
        role: Role::parse_key_role(r.get(2)).unwrap_or(Role::Viewer),
        user_id: r.get(3),
        prefix: r.get(4),
        created_at: r.get(5),
        expires_at: r.get(6),
        revoked_at: r.get(7),
    }
}

async fn insert_key(
    c: &impl GenericClient,
    tenant: TenantId,
    key: &ApiKey,
    hash: &[u8; 32],
) -> PgResult<()> {
    c.execute(
        "INSERT INTO api_keys (id, tenant_id, name, role, user_id, key_hash, prefix,
                               created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &key.id,
            &tenant.as_uuid(),
            &key.name,
            &key.role.as_str(),
            &key.user_id,
            &&hash[..],
            &key.prefix,
            &key.created_at,
            &key.expires_at,
        ],
    )
    .await?;
    Ok(())
}

/// One page of a tenant's keys (revoked ones too) in `(created_at, id)` order after `after`.
async fn list_keys(
    c: &impl GenericClient,
    tenant: TenantId,
    after: &(Micros, Uuid),
    fetch: i64,
) -> PgResult<Vec<ApiKey>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_keys
         WHERE tenant_id = $1 AND (created_at, id) > ($2, $3)
         ORDER BY created_at, id LIMIT $4"
    );
    let rows = c
        .query(&sql, &[&tenant.as_uuid(), &after.0, &after.1, &fetch])
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes the key unless it already is; the stored hash and prefix of a key of the tenant,
/// and whether this call revoked it. `None` when the tenant has no such key.
async fn revoke_key(
    c: &impl GenericClient,
    tenant: TenantId,
    id: Uuid,
    now: Micros,
) -> PgResult<Option<(Vec<u8>, String, bool)>> {
    let Some(r) = c
        .query_opt(
            "SELECT key_hash, prefix, revoked_at IS NULL FROM api_keys
             WHERE id = $1 AND tenant_id = $2 FOR UPDATE",
            &[&id, &tenant.as_uuid()],
        )
        .await?
    else {
        return Ok(None);
    };
    let live: bool = r.get(2);
    if live {
        c.execute(
            "UPDATE api_keys SET revoked_at = $2 WHERE id = $1",
            &[&id, &now],
        )
        .await?;
    }
    Ok(Some((r.get(0), r.get(1), live)))
}

/// The live key with this hash, with its member's current role, as the key cache holds it.
async fn live_key(c: &impl GenericClient, hash: &[u8; 32]) -> PgResult<Option<CachedKey>> {
    let row = c
        .query_opt(
            "SELECT k.id, k.tenant_id, k.role, k.user_id, k.expires_at, m.role
             FROM api_keys k
             LEFT JOIN tenant_users m ON m.tenant_id = k.tenant_id AND m.user_id = k.user_id
             WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
            &[&&hash[..]],
        )
        .await?;
    Ok(row.and_then(|r| {
        let member: Option<String> = r.get(5);
        Some(CachedKey {
            id: r.get(0),
            tenant_id: TenantId::from_uuid(r.get(1)),
            // A damaged role is refused, as when the cache loads.
            role: Role::parse_key_role(r.get(2)).ok()?,
            user_id: r.get(3),
            expires_at: r.get(4),
            member_role: member.and_then(|m| Role::parse_member_role(&m).ok()),
        })
    }))
}

impl Keys {
    pub(super) async fn create_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        new: NewKey,
    ) -> Result<CreatedKey, ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        lock(&*tx, ctx).await?;
        let member = match &new.user_id {
            None => None,
            Some(u) => member_role(&*tx, ctx.id(), u.as_str()).await?,
        };
        let member_role = key_member_role(&new, member)?;
        let (key, secret, hash) = new_key(new, self.now());
        insert_key(&*tx, ctx.id(), &key, &hash).await?;
        crate::events::pg::record_many(&*tx, &[(key.created_at, created_event(ctx, &key))]).await?;
        tell(&*tx, Invalidation::Key(key.id)).await?;
        tx.commit().await?;
        self.cache.insert(hash, cached(ctx, &key, member_role));
        Ok(CreatedKey { key, secret })
    }

    pub(super) async fn list_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        page: PageRequest<(Micros, String)>,
    ) -> Result<Page<ApiKey>, ApiError> {
        let after = uuid_after(page.after.clone())?;
        let c = pg.conn().await?;
        let rows = list_keys(&**c, ctx.id(), &after, page.fetch()).await?;
        Ok(Page::from_rows(rows, page.limit, |k| {
            (k.created_at, k.id.to_string())
        }))
    }

    pub(super) async fn revoke_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        id: Uuid,
    ) -> Result<(), ApiError> {
        let _w = self.db.pg_write_lock().await;
        let mut c = pg.conn().await?;
        let tx = c.transaction().await?;
        lock(&*tx, ctx).await?;
        let now = self.now();
        let (hash, prefix, revoked) = revoke_key(&*tx, ctx.id(), id, now)
            .await?
            .ok_or_else(|| ApiError::NotFound("no such key".into()))?;
        if revoked {
            let event = revoked_event(ctx, id, &prefix);
            crate::events::pg::record_many(&*tx, &[(now, event)]).await?;
            tell(&*tx, Invalidation::Key(id)).await?;
        }
        tx.commit().await?;
        self.cache.remove(&hash);
        Ok(())
    }

    /// A key the cache does not hold, read from the store: one another replica created a
    /// moment ago (SCALE_OUT §4.1, "misses read through"). Not put in the cache, for the same
    /// reason as `Tenancy::read_through`; `None` on SQLite, where the cache holds every key.
    pub async fn read_through(&self, token: &str) -> Option<CachedKey> {
        let pg = self.db.pg()?;
        let hash = super::admin::sha256(token);
        if self.cache.holds(&hash) {
            return None;
        }
        let read = async {
            let c = pg.conn().await?;
            Ok::<_, ApiError>(live_key(&**c, &hash).await?)
        };
        match read.await {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!(error = %e, "reading a key through the cache");
                None
            }
        }
    }
}
