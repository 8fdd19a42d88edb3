//! The SQL of delivery rows: the outbox's inserts, the delivery log, the worker's reads of due
//! deliveries (with their endpoint's URL and sealed secrets) and its outcomes.
use super::Secrets;
use crate::tenancy::TenantId;
use crate::time::Micros;
use crate::webhooks::Delivery;
use rusqlite::{params, Connection, Row};

pub struct NewDelivery<'a> {
    pub endpoint_id: &'a str,
    pub owner: TenantId,
    pub event_tenant: TenantId,
    pub event_id: &'a str,
    pub event_type: &'a str,
    pub payload: &'a str,
    pub at: Micros,
}

pub fn insert_delivery(c: &Connection, d: &NewDelivery<'_>) -> rusqlite::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    c.prepare_cached(
        "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_tenant_id, event_id,
             event_type, payload, status, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?8)",
    )?
    .execute(params![
        id,
        d.endpoint_id,
        d.owner,
        d.event_tenant,
        d.event_id,
        d.event_type,
        d.payload,
        d.at
    ])?;
    Ok(id)
}

pub(crate) const DELIVERY_COLS: &str = "id, endpoint_id, event_id, event_type, status, attempts,
                             last_status, last_error, next_attempt_at, created_at, seq";

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        status: r.get(4)?,
        attempts: r.get(5)?,
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        next_attempt_at: r.get(8)?,
        created_at: r.get(9)?,
        seq: r.get(10)?,
    })
}

/// An endpoint's deliveries, newest first.
pub fn list_deliveries(
    c: &Connection,
    endpoint: &str,
    status: Option<&str>,
    before: Option<i64>,
    fetch: i64,
) -> rusqlite::Result<Vec<Delivery>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries
         WHERE endpoint_id = ?1 AND seq < ?2 AND (?3 IS NULL OR status = ?3)
         ORDER BY seq DESC LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![endpoint, before.unwrap_or(i64::MAX), status, fetch],
        delivery,
    )?;
    rows.collect()
}

/// Makes a delivery due now; false when the endpoint has no such delivery.
pub fn retry_delivery(
    c: &Connection,
    endpoint: &str,
    id: &str,
    now: Micros,
) -> rusqlite::Result<bool> {
    Ok(c.execute(
        "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?3
         WHERE endpoint_id = ?1 AND id = ?2",
        params![endpoint, id, now],
    )? == 1)
}

/// A due delivery with what sending it needs.
pub struct Due {
    pub id: String,
    pub endpoint_id: String,
    pub owner: TenantId,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub attempts: i64,
    pub url: String,
    pub format: String,
    pub created_at: Micros,
    /// The endpoint's sealed secrets, read with the delivery (no query per attempt).
    pub secrets: Secrets,
}

/// The columns of a due delivery, as `due_row` reads them.
pub(crate) const DUE_COLUMNS: &str =
    "d.id, d.endpoint_id, e.tenant_id, d.event_id, d.event_type, d.payload,
    d.attempts, e.url, e.format, d.created_at, e.secret, e.previous_secret, e.previous_until";

fn due_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Due> {
    Ok(Due {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        owner: r.get(2)?,
        event_id: r.get(3)?,
        event_type: r.get(4)?,
        payload: r.get(5)?,
        attempts: r.get(6)?,
        url: r.get(7)?,
        format: r.get(8)?,
        created_at: r.get(9)?,
        secrets: (r.get(10)?, r.get(11)?, r.get(12)?),
    })
}

/// Deliveries due at `now` of enabled endpoints, oldest due first, at most `per_endpoint` of
/// each endpoint (so one endpoint's backlog does not fill a batch). It reads every due row, so
/// the worker runs it only now and then, for retries that came due; `due_for` serves the rest.
pub fn due(
    c: &Connection,
    now: Micros,
    per_endpoint: i64,
    limit: i64,
) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS}
         FROM (SELECT *, row_number() OVER (PARTITION BY endpoint_id
                                             ORDER BY next_attempt_at, seq) AS rank
               FROM webhook_deliveries
               WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= ?1) d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.rank <= ?2 AND e.enabled = 1
         ORDER BY d.next_attempt_at LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![now, per_endpoint, limit], due_row)?;
    rows.collect()
}

/// One enabled endpoint's next `limit` due deliveries, oldest due first, read from the index
/// `webhook_deliveries_due_by_endpoint` without touching other endpoints' rows.
pub fn due_for(
    c: &Connection,
    endpoint: &str,
    now: Micros,
    limit: i64,
) -> rusqlite::Result<Vec<Due>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {DUE_COLUMNS}
         FROM webhook_deliveries d
         JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.endpoint_id = ?1 AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at <= ?2
           AND e.enabled = 1
         ORDER BY d.next_attempt_at, d.seq LIMIT ?3"
    ))?;
    let rows = stmt.query_map(params![endpoint, now, limit], due_row)?;
    rows.collect()
}

/// Records an attempt's outcome: `next` is when to try again (None: no more attempts).
pub fn record_attempt(
    c: &Connection,
    id: &str,
    status: &str,
    http_status: Option<u16>,
    error: Option<&str>,
    next: Option<Micros>,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, last_status = ?3,
             last_error = ?4, next_attempt_at = ?5 WHERE id = ?1",
    )?
    .execute(params![id, status, http_status, error, next])?;
    Ok(())
}
