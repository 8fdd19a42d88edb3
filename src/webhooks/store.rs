//! The SQL of webhooks: endpoint rows here (their secrets, and the failure marks and disabling
//! the worker writes), delivery rows in `deliveries`.
mod deliveries;

pub(crate) use deliveries::{DELIVERY_COLS, DUE_COLUMNS};

pub use deliveries::{
    due, due_for, insert_delivery, list_deliveries, record_attempt, retry_delivery, Due,
    NewDelivery,
};

use super::{Endpoint, Format, Scope, Sub};
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::{params, Connection, OptionalExtension, Row};

pub(crate) const ENDPOINT_COLS: &str =
    "id, tenant_id, scope, url, event_types, description, format, enabled,
                             disabled_reason, created_at";

fn endpoint(r: &Row<'_>) -> rusqlite::Result<Endpoint> {
    Ok(Endpoint {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        scope: scope_of(&r.get::<_, String>(2)?),
        url: r.get(3)?,
        event_types: types_of(r.get(4)?),
        description: r.get(5)?,
        format: format_of(&r.get::<_, String>(6)?),
        enabled: r.get(7)?,
        disabled_reason: r.get(8)?,
        created_at: r.get(9)?,
    })
}

/// The stored `scope`, `format` and `event_types` columns, read the same on both stores (the
/// CHECK constraints keep the first two to their names).
pub(crate) fn scope_of(s: &str) -> Scope {
    if s == "instance" {
        Scope::Instance
    } else {
        Scope::Tenant
    }
}

pub(crate) fn format_of(s: &str) -> Format {
    if s == "slack" {
        Format::Slack
    } else {
        Format::Standard
    }
}

pub(crate) fn types_of(t: Option<String>) -> Option<Vec<String>> {
    t.and_then(|t| serde_json::from_str(&t).ok())
}

pub(crate) fn types_json(t: &Option<Vec<String>>) -> Option<String> {
    t.as_ref()
        .map(|t| serde_json::Value::from(t.clone()).to_string())
}

pub fn insert_endpoint(c: &Connection, e: &Endpoint, secret: &[u8]) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO webhook_endpoints (id, tenant_id, scope, url, event_types, description,
             format, enabled, disabled_reason, secret, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
        params![
            e.id,
            e.tenant_id,
            e.scope.as_str(),
            e.url,
            types_json(&e.event_types),
            e.description,
            e.format.as_str(),
            e.enabled,
            e.disabled_reason,
            secret,
            e.created_at
        ],
    )?;
    Ok(())
}

pub fn get_endpoint(c: &Connection, id: &str) -> rusqlite::Result<Option<Endpoint>> {
    c.query_row(
        &format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = ?1"),
        [id],
        endpoint,
    )
    .optional()
}

/// A tenant's endpoints (and, for the admin, the instance's), oldest first, after `after`.
pub fn list_endpoints(
    c: &Connection,
    tenant: TenantId,
    with_instance: bool,
    after: Option<&(Micros, String)>,
    fetch: i64,
) -> rusqlite::Result<Vec<Endpoint>> {
    let (t, id) = after.cloned().unwrap_or((i64::MIN, String::new()));
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints
         WHERE ((tenant_id = ?1 AND scope = 'tenant') OR (?2 AND scope = 'instance'))
           AND (created_at, id) > (?3, ?4)
         ORDER BY created_at, id LIMIT ?5"
    ))?;
    let rows = stmt.query_map(params![tenant, with_instance, t, id, fetch], endpoint)?;
    rows.collect()
}

pub fn update_endpoint(c: &Connection, e: &Endpoint, now: Micros) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE webhook_endpoints SET url = ?2, event_types = ?3, description = ?4,
             enabled = ?5, disabled_reason = ?6, updated_at = ?7,
             failing_since = CASE WHEN ?5 THEN NULL ELSE failing_since END
         WHERE id = ?1",
        params![
            e.id,
            e.url,
            types_json(&e.event_types),
            e.description,
            e.enabled,
            e.disabled_reason,
            now
        ],
    )?;
    Ok(())
}

pub fn delete_endpoint(c: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(c.execute("DELETE FROM webhook_endpoints WHERE id = ?1", [id])? == 1)
}

/// The current sealed secret, and the previous one with the time it stops signing.
pub type Secrets = (Vec<u8>, Option<Vec<u8>>, Option<Micros>);

pub fn secrets(c: &Connection, id: &str) -> rusqlite::Result<Option<Secrets>> {
    c.query_row(
        "SELECT secret, previous_secret, previous_until FROM webhook_endpoints WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
}

pub fn rotate_secret(
    c: &Connection,
    id: &str,
    new: &[u8],
    until: Micros,
    now: Micros,
) -> rusqlite::Result<()> {
    c.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = ?3, secret = ?2,
             updated_at = ?4 WHERE id = ?1",
        params![id, new, until, now],
    )?;
    Ok(())
}

/// A sealed secret: (endpoint, tenant, column, envelope).
pub type Sealed = (String, String, &'static str, Vec<u8>);

/// Every sealed secret, for `verify` and key rotation.
pub fn all_sealed(c: &Connection) -> rusqlite::Result<Vec<Sealed>> {
    let mut stmt = c.prepare(
        "SELECT id, tenant_id, secret, previous_secret FROM webhook_endpoints ORDER BY id",
    )?;
    let mut out = Vec::new();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
            r.get::<_, Option<Vec<u8>>>(3)?,
        ))
    })?;
    for row in rows {
        let (id, tenant, secret, previous) = row?;
        out.push((id.clone(), tenant.clone(), "secret", secret));
        if let Some(p) = previous {
            out.push((id, tenant, "previous_secret", p));
        }
    }
    Ok(out)
}

/// Replaces one sealed column (key rotation, import); `column` is one `all_sealed` named.
pub fn set_sealed(c: &Connection, id: &str, column: &str, sealed: &[u8]) -> rusqlite::Result<()> {
    let sql = match column {
        "previous_secret" => "UPDATE webhook_endpoints SET previous_secret = ?2 WHERE id = ?1",
        _ => "UPDATE webhook_endpoints SET secret = ?2 WHERE id = ?1",
    };
    c.execute(sql, params![id, sealed])?;
    Ok(())
}

/// The enabled endpoints, for the outbox's cache.
pub fn subscriptions(c: &Connection) -> rusqlite::Result<Vec<(Scope, Sub)>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE enabled = 1"
    ))?;
    let rows = stmt.query_map([], endpoint)?;
    rows.map(|e| {
        e.map(|e| {
            (
                e.scope,
                Sub {
                    id: e.id,
                    owner: e.tenant_id,
                    event_types: e.event_types,
                },
            )
        })
    })
    .collect()
}

pub fn mark_success(c: &Connection, endpoint: &str) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE webhook_endpoints SET failing_since = NULL
         WHERE id = ?1 AND failing_since IS NOT NULL",
    )?
    .execute([endpoint])?;
    Ok(())
}

/// Notes a failure; returns since when the endpoint has been failing.
pub fn mark_failure(
    c: &Connection,
    endpoint: &str,
    now: Micros,
) -> rusqlite::Result<Option<Micros>> {
    c.prepare_cached(
        "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, ?2) WHERE id = ?1",
    )?
    .execute(params![endpoint, now])?;
    c.query_row(
        "SELECT failing_since FROM webhook_endpoints WHERE id = ?1",
        [endpoint],
        |r| r.get(0),
    )
    .optional()
    .map(Option::flatten)
}

/// Disables an endpoint; false when it already was.
pub fn disable(
    c: &Connection,
    endpoint: &str,
    reason: &str,
    now: Micros,
) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ?2, updated_at = ?3
         WHERE id = ?1 AND enabled = 1",
        params![endpoint, reason, now],
    )? == 1)
}
