//! The events table: written inside the caller's transaction, listed newest first.
use super::{Event, EventFilter, NewEvent, Severity};
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::time::Micros;
use rusqlite::{params, Connection};
use serde_json::Value;

/// Writes an event inside the caller's transaction. Returns false when `once_key` had already
/// been used for this tenant.
pub fn record(c: &Connection, at: Micros, e: NewEvent) -> Result<bool, ApiError> {
    let id = e.id.to_string();
    let n = c.execute(
        "INSERT INTO events (id, tenant_id, category, event_type, severity, message, data,
                             created_at, once_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant_id, once_key) WHERE once_key IS NOT NULL DO NOTHING",
        params![
            &id,
            e.tenant_id.to_string(),
            e.category(),
            e.event_type(),
            e.severity().as_str(),
            e.message,
            e.data.to_string(),
            at,
            e.once_key
        ],
    )?;
    if n == 1 {
        // The webhook deliveries it causes commit (or roll back) with it.
        crate::webhooks::outbox::enqueue(
            c,
            &crate::webhooks::outbox::EventRow {
                id: &id,
                tenant_id: e.tenant_id,
                category: e.category(),
                event_type: e.event_type(),
                severity: e.severity().as_str(),
                message: &e.message,
                data: &e.data,
                created_at: at,
            },
        )?;
    }
    Ok(n == 1)
}

/// One page of a tenant's events, newest first.
pub fn list(
    c: &Connection,
    tenant: &str,
    filter: &EventFilter,
    page: &PageRequest<(Micros, i64)>,
) -> rusqlite::Result<Vec<Event>> {
    let (before_t, before_seq) = page.after.unwrap_or((i64::MAX, i64::MAX));
    let mut stmt = c.prepare_cached(
        "SELECT id, tenant_id, category, event_type, severity, message, data,
                created_at, seq
         FROM events
         WHERE tenant_id = ?1 AND (created_at, seq) < (?2, ?3)
           AND (?4 IS NULL OR category = ?4) AND (?5 IS NULL OR severity = ?5)
           AND (?6 IS NULL OR created_at >= ?6) AND (?7 IS NULL OR created_at < ?7)
         ORDER BY created_at DESC, seq DESC LIMIT ?8",
    )?;
    let rows = stmt.query_map(
        params![
            tenant,
            before_t,
            before_seq,
            &filter.category,
            filter.severity.map(Severity::as_str),
            filter.from,
            filter.to,
            page.fetch()
        ],
        event_row,
    )?;
    rows.collect()
}

/// One of a tenant's events, as the list renders it.
pub fn get(c: &Connection, tenant: &str, id: &str) -> rusqlite::Result<Event> {
    c.query_row(
        "SELECT id, tenant_id, category, event_type, severity, message, data, created_at, seq
         FROM events WHERE tenant_id = ?1 AND id = ?2",
        params![tenant, id],
        event_row,
    )
}

fn event_row(r: &rusqlite::Row) -> rusqlite::Result<Event> {
    let data: String = r.get(6)?;
    let created: Micros = r.get(7)?;
    Ok(Event {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        category: r.get(2)?,
        event_type: r.get(3)?,
        severity: r.get(4)?,
        message: r.get(5)?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
        created_at: crate::time::rfc3339(created),
        key: (created, r.get(8)?),
    })
}

/// Deletes up to `batch` events, of every tenant, created before `cutoff`; returns how many.
/// `events_by_created_at` finds them without reading the rest of the table.
pub fn delete_older_than(c: &Connection, cutoff: Micros, batch: usize) -> rusqlite::Result<usize> {
    c.execute(DELETE_OLDER_THAN, params![cutoff, batch as i64])
}

pub(super) const DELETE_OLDER_THAN: &str = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events WHERE created_at < ?1 ORDER BY created_at LIMIT ?2)";
