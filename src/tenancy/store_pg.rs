//! Tenancy's SQL on PostgreSQL (issue 19): the same operations as `store.rs`, async over any
//! client or transaction, returning the same typed rows. Ids are UUID columns; texts are
//! `COLLATE "C"`, so keyset order is the byte order SQLite uses.
use super::members::Member;
use super::{Plan, Slug, Status, Tenant, TenantId};
use crate::auth::Role;
use crate::error::ApiError;
use crate::settings::cache::Current;
use crate::settings::Settings;
use crate::time::Micros;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

type PgResult<T> = Result<T, tokio_postgres::Error>;

pub const COLUMNS: &str = "id, name, slug, plan, status, created_at, updated_at, deactivated_at";

/// A tenant row; a damaged one is an error naming the tenant, never a guess.
pub fn from_row(r: &Row) -> Result<Tenant, String> {
    let bad = |what: &str| format!("tenant {}: a damaged {what}", r.get::<_, Uuid>(0));
    Ok(Tenant {
        id: TenantId::from_uuid(r.get(0)),
        name: r.get(1),
        slug: Slug::parse(r.get(2)).map_err(|_| bad("slug"))?,
        plan: Plan::parse(r.get(3)).map_err(|_| bad("plan"))?,
        status: Status::parse(r.get(4)).map_err(|_| bad("status"))?,
        created_at: r.get(5),
        updated_at: r.get(6),
        deactivated_at: r.get(7),
    })
}

fn one(row: Option<Row>) -> Result<Option<Tenant>, ApiError> {
    row.map(|r| from_row(&r).map_err(ApiError::internal))
        .transpose()
}

// ---- tenants ----

pub async fn tenant(c: &impl GenericClient, id: TenantId) -> Result<Option<Tenant>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE id = $1");
    one(c.query_opt(&sql, &[&id.as_uuid()]).await?)
}

pub async fn tenant_by_slug(
    c: &impl GenericClient,
    slug: &str,
) -> Result<Option<Tenant>, ApiError> {
    let sql = format!("SELECT {COLUMNS} FROM tenants WHERE slug = $1");
    one(c.query_opt(&sql, &[&slug]).await?)
}

/// Every tenant, for loading the tenant cache at start.
pub async fn all_tenants(c: &impl GenericClient) -> Result<Vec<Tenant>, String> {
    let sql = format!("SELECT {COLUMNS} FROM tenants");
    let rows = c
        .query(&sql, &[])
        .await
        .map_err(|e| crate::db::pg::describe(&e))?;
    rows.iter().map(from_row).collect()
}

/// A new active tenant; a taken slug fails with PostgreSQL's unique violation.
pub async fn insert_tenant(
    c: &impl GenericClient,
    id: TenantId,
    name: &str,
    slug: &Slug,
    plan: Plan,
    now: Micros,
) -> PgResult<()> {
    c.execute(
        "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'active', $5, $5)",
        &[&id.as_uuid(), &name, &slug.as_str(), &plan.as_str(), &now],
    )
    .await?;
    Ok(())
}

/// Of `candidates`, the slugs some tenant already has (one round trip for all of them).
pub async fn taken_slugs(c: &impl GenericClient, candidates: &[&str]) -> PgResult<Vec<String>> {
    let rows = c
        .query(
            "SELECT slug FROM tenants WHERE slug = ANY($1::text[])",
            &[&candidates],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Version 1 of a new tenant's settings (`settings::store::write_version` on PostgreSQL).
pub async fn first_settings(
    c: &impl GenericClient,
    tenant: TenantId,
    settings: &Settings,
    changed_by: &str,
    at: Micros,
) -> Result<Current, ApiError> {
    let body = serde_json::to_string(settings).map_err(ApiError::internal)?;
    c.execute(
        "INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
         VALUES ($1, 1, $2, $3, $4)",
        &[&tenant.as_uuid(), &body, &changed_by, &at],
    )
    .await?;
    Ok(Current {
        version: 1,
        settings: settings.clone(),
        changed_at: at,
    })
}

/// One page of tenants in `(created_at, id)` order after `after`, optionally of one status.
pub async fn list_tenants(
    c: &impl GenericClient,
    status: Option<Status>,
    after: &(Micros, Uuid),
    fetch: i64,
) -> Result<Vec<Tenant>, ApiError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tenants
         WHERE ($1::text IS NULL OR status = $1) AND (created_at, id) > ($2, $3)
         ORDER BY created_at, id LIMIT $4"
    );
    let status = status.map(Status::as_str);
    let rows = c
        .query(&sql, &[&status, &after.0, &after.1, &fetch])
        .await?;
    rows.iter()
        .map(|r| from_row(r).map_err(ApiError::internal))
        .collect()
}

/// Writes `t`'s name, slug and plan; a taken slug fails with PostgreSQL's unique violation.
pub async fn update_tenant(c: &impl GenericClient, t: &Tenant, now: Micros) -> PgResult<()> {
    c.execute(
        "UPDATE tenants SET name = $2, slug = $3, plan = $4, updated_at = $5 WHERE id = $1",
        &[
            &t.id.as_uuid(),
            &t.name,
            &t.slug.as_str(),
            &t.plan.as_str(),
            &now,
        ],
    )
    .await?;
    Ok(())
}

/// Sets the status unless the tenant already has it; returns the rows changed (0 or 1).
pub async fn set_status(
    c: &impl GenericClient,
    id: TenantId,
    status: Status,
    deactivated_at: Option<Micros>,
    now: Micros,
) -> PgResult<u64> {
    c.execute(
        "UPDATE tenants SET status = $2, deactivated_at = $3, updated_at = $4
         WHERE id = $1 AND status <> $2",
        &[&id.as_uuid(), &status.as_str(), &deactivated_at, &now],
    )
    .await
}

/// Deletes the tenant (and by cascade what it owns) only when inactive; returns rows deleted.
/// Locks in the usage writer's order (docs/SCALE_OUT.md §3.3): the totals row first, then the
/// tenant row, so a writer holding the totals row is never waited on by this delete's cascade
/// while it waits on the tenant row.
pub async fn delete_inactive(c: &impl GenericClient, id: TenantId) -> PgResult<u64> {
    c.execute(
        "SELECT 1 FROM usage_totals WHERE tenant_id = $1 FOR UPDATE",
        &[&id.as_uuid()],
    )
    .await?;
    c.execute(
        "DELETE FROM tenants WHERE id = $1 AND status = 'inactive'",
        &[&id.as_uuid()],
    )
    .await
}

/// Takes the tenant row lock every admin write of a tenant's members and keys takes first
/// (§4.2): two replicas' writes of one tenant run one after the other. `false` when the tenant
/// is gone. `FOR NO KEY UPDATE` does not conflict with ingest's foreign-key checks.
pub async fn lock_tenant(c: &impl GenericClient, id: TenantId) -> PgResult<bool> {
    let n = c
        .execute(
            "SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE",
            &[&id.as_uuid()],
        )
        .await?;
    Ok(n == 1)
}

// ---- members ----

/// The member's role; `None` when not a member, or when the stored role does not parse.
pub async fn member_role(
    c: &impl GenericClient,
    tenant: TenantId,
    user_id: &str,
) -> PgResult<Option<Role>> {
    let row = c
        .query_opt(
            "SELECT role FROM tenant_users WHERE tenant_id = $1 AND user_id = $2",
            &[&tenant.as_uuid(), &user_id],
        )
        .await?;
    Ok(row.and_then(|r| Role::parse_member_role(r.get(0)).ok()))
}

pub async fn owner_count(c: &impl GenericClient, tenant: TenantId) -> PgResult<i64> {
    let r = c
        .query_one(
            "SELECT count(*) FROM tenant_users WHERE tenant_id = $1 AND role = 'owner'",
            &[&tenant.as_uuid()],
        )
        .await?;
    Ok(r.get(0))
}

/// One page of members in `user_id` order after `after`.
pub async fn list_members(
    c: &impl GenericClient,
    tenant: TenantId,
    after: Option<&str>,
    fetch: i64,
) -> PgResult<Vec<Member>> {
    let rows = c
        .query(
            "SELECT user_id, role, created_at FROM tenant_users
             WHERE tenant_id = $1 AND ($2::text IS NULL OR user_id > $2)
             ORDER BY user_id LIMIT $3",
            &[&tenant.as_uuid(), &after, &fetch],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Member {
            user_id: r.get(0),
            role: Role::parse_member_role(r.get(1)).unwrap_or(Role::Viewer),
            created_at: r.get(2),
        })
        .collect())
}

/// Adds the member or changes its role; returns when it first joined.
pub async fn upsert_member(
    c: &impl GenericClient,
    tenant: TenantId,
    user_id: &str,
    role: Role,
    now: Micros,
) -> PgResult<Micros> {
    let r = c
        .query_one(
            "INSERT INTO tenant_users (tenant_id, user_id, role, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $4)
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role,
                 updated_at = excluded.updated_at
             RETURNING created_at",
            &[&tenant.as_uuid(), &user_id, &role.as_str(), &now],
        )
        .await?;
    Ok(r.get(0))
}

pub async fn delete_member(
    c: &impl GenericClient,
    tenant: TenantId,
    user_id: &str,
) -> PgResult<()> {
    c.execute(
        "DELETE FROM tenant_users WHERE tenant_id = $1 AND user_id = $2",
        &[&tenant.as_uuid(), &user_id],
    )
    .await?;
    Ok(())
}
