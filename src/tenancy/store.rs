//! All of tenancy's SQL: tenant rows and member rows. Functions take a connection and typed
//! values and return typed rows; validation, events and cache updates stay in the services
//! (`tenants.rs`, `members.rs`). This is the seam where a second database would plug in
//! (docs/SCALE_OUT.md).
use super::members::Member;
use super::{Plan, Slug, Status, Tenant, TenantId};
use crate::auth::Role;
use crate::time::Micros;
use rusqlite::{params, Connection, OptionalExtension, Row};

pub const COLUMNS: &str = "id, name, slug, plan, status, created_at, updated_at, deactivated_at";

pub fn from_row(r: &Row) -> rusqlite::Result<Tenant> {
    let bad = |i, e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    };
    Ok(Tenant {
        id: r.get(0)?,
        name: r.get(1)?,
        slug: Slug::parse(&r.get::<_, String>(2)?).map_err(|e| bad(2, e))?,
        plan: Plan::parse(&r.get::<_, String>(3)?).map_err(|e| bad(3, e))?,
        status: Status::parse(&r.get::<_, String>(4)?).map_err(|e| bad(4, e))?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        deactivated_at: r.get(7)?,
    })
}

// ---- tenants ----

pub fn tenant(c: &Connection, id: TenantId) -> rusqlite::Result<Option<Tenant>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM tenants WHERE id = ?1"),
        [id.to_string()],
        from_row,
    )
    .optional()
}

/// Every tenant, for loading the tenant cache at start.
pub fn all_tenants(c: &Connection) -> rusqlite::Result<Vec<Tenant>> {
    let mut stmt = c.prepare(&format!("SELECT {COLUMNS} FROM tenants"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// A new active tenant; a taken slug fails with SQLite's unique violation.
pub fn insert_tenant(
    c: &Connection,
    id: TenantId,
    name: &str,
    slug: &Slug,
    plan: Plan,
    now: Micros,
) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5)",
        params![id.to_string(), name, slug.as_str(), plan.as_str(), now],
    )?;
    Ok(())
}

/// One page of tenants in `(created_at, id)` order after `after`, optionally of one status.
pub fn list_tenants(
    c: &Connection,
    status: Option<Status>,
    after: &(Micros, String),
    fetch: i64,
) -> rusqlite::Result<Vec<Tenant>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM tenants
         WHERE (?1 IS NULL OR status = ?1) AND (created_at, id) > (?2, ?3)
         ORDER BY created_at, id LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![status.map(Status::as_str), after.0, after.1, fetch],
        from_row,
    )?;
    rows.collect()
}

/// Writes `t`'s name, slug and plan; a taken slug fails with SQLite's unique violation.
pub fn update_tenant(c: &Connection, t: &Tenant, now: Micros) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE tenants SET name = ?2, slug = ?3, plan = ?4, updated_at = ?5 WHERE id = ?1",
        params![
            t.id.to_string(),
            t.name,
            t.slug.as_str(),
            t.plan.as_str(),
            now
        ],
    )?;
    Ok(())
}

/// Sets the status unless the tenant already has it; returns the rows changed (0 or 1).
pub fn set_status(
    c: &Connection,
    id: TenantId,
    status: Status,
    deactivated_at: Option<Micros>,
    now: Micros,
) -> rusqlite::Result<usize> {
    c.execute(
        "UPDATE tenants SET status = ?2, deactivated_at = ?3, updated_at = ?4
         WHERE id = ?1 AND status <> ?2",
        params![id.to_string(), status.as_str(), deactivated_at, now],
    )
}

/// Deletes the tenant (and by cascade what it owns) only when inactive; returns rows deleted.
pub fn delete_inactive(c: &Connection, id: TenantId) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM tenants WHERE id = ?1 AND status = 'inactive'",
        [id.to_string()],
    )
}

/// Tenants deactivated before `cutoff` (never the default tenant, which cannot be inactive),
/// oldest deactivation first.
pub fn inactive_since_before(c: &Connection, cutoff: Micros) -> rusqlite::Result<Vec<Tenant>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM tenants
         WHERE status = 'inactive' AND deactivated_at < ?1 AND id <> ?2
         ORDER BY deactivated_at, id"
    ))?;
    let rows = stmt.query_map(
        params![cutoff, super::DEFAULT_TENANT_ID.to_string()],
        from_row,
    )?;
    rows.collect()
}

/// The tables of a tenant that can be large, emptied in batches before its row goes (its
/// other rows go with the row, by cascade, in one transaction).
pub const BULKY: [&str; 2] = ["usage_events", "events"];

/// Deletes up to `batch` rows of `table` (one of `BULKY`) of the tenant, as long as it is
/// still inactive since before `cutoff` (a reactivation stops the purge between batches).
pub fn delete_rows_of_purgeable(
    c: &Connection,
    table: &str,
    tenant: TenantId,
    cutoff: Micros,
    batch: usize,
) -> rusqlite::Result<usize> {
    assert!(BULKY.contains(&table), "only a bulky table of a tenant");
    c.prepare_cached(&format!(
        "DELETE FROM {table} WHERE seq IN
           (SELECT seq FROM {table} WHERE tenant_id = ?1
              AND EXISTS (SELECT 1 FROM tenants WHERE id = ?1 AND status = 'inactive'
                                                  AND deactivated_at < ?2)
            LIMIT ?3)"
    ))?
    .execute(params![tenant.to_string(), cutoff, batch as i64])
}

/// Deletes the tenant (and by cascade what it still owns) if still inactive since before
/// `cutoff`; returns rows deleted.
pub fn delete_purgeable(c: &Connection, id: TenantId, cutoff: Micros) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM tenants WHERE id = ?1 AND status = 'inactive' AND deactivated_at < ?2",
        params![id.to_string(), cutoff],
    )
}

pub fn slug_taken(c: &Connection, slug: &Slug) -> rusqlite::Result<bool> {
    Ok(c.query_row(
        "SELECT 1 FROM tenants WHERE slug = ?1",
        [slug.as_str()],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

// ---- members ----

/// The member's role; `None` when not a member, or when the stored role does not parse.
pub fn member_role(
    c: &Connection,
    tenant: TenantId,
    user_id: &str,
) -> rusqlite::Result<Option<Role>> {
    let role: Option<String> = c
        .query_row(
            "SELECT role FROM tenant_users WHERE tenant_id = ?1 AND user_id = ?2",
            params![tenant.to_string(), user_id],
            |r| r.get(0),
        )
        .optional()?;
    Ok(role.and_then(|r| Role::parse_member_role(&r).ok()))
}

pub fn owner_count(c: &Connection, tenant: TenantId) -> rusqlite::Result<i64> {
    c.query_row(
        "SELECT count(*) FROM tenant_users WHERE tenant_id = ?1 AND role = 'owner'",
        [tenant.to_string()],
        |r| r.get(0),
    )
}

/// One page of members in `user_id` order after `after`.
pub fn list_members(
    c: &Connection,
    tenant: TenantId,
    after: Option<&str>,
    fetch: i64,
) -> rusqlite::Result<Vec<Member>> {
    let mut stmt = c.prepare_cached(
        "SELECT user_id, role, created_at FROM tenant_users
         WHERE tenant_id = ?1 AND (?2 IS NULL OR user_id > ?2)
         ORDER BY user_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![tenant.to_string(), after, fetch], |r| {
        Ok(Member {
            user_id: r.get(0)?,
            role: Role::parse_member_role(&r.get::<_, String>(1)?).unwrap_or(Role::Viewer),
            created_at: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// Adds the member or changes its role; returns when it first joined.
pub fn upsert_member(
    c: &Connection,
    tenant: TenantId,
    user_id: &str,
    role: Role,
    now: Micros,
) -> rusqlite::Result<Micros> {
    c.execute(
        "INSERT INTO tenant_users (tenant_id, user_id, role, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?4)
         ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role,
             updated_at = excluded.updated_at",
        params![tenant.to_string(), user_id, role.as_str(), now],
    )?;
    c.query_row(
        "SELECT created_at FROM tenant_users WHERE tenant_id = ?1 AND user_id = ?2",
        params![tenant.to_string(), user_id],
        |r| r.get(0),
    )
}

pub fn delete_member(c: &Connection, tenant: TenantId, user_id: &str) -> rusqlite::Result<()> {
    c.execute(
        "DELETE FROM tenant_users WHERE tenant_id = ?1 AND user_id = ?2",
        params![tenant.to_string(), user_id],
    )?;
    Ok(())
}
