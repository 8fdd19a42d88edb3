//! The events table: written inside the caller's transaction, listed newest first.
use super::{Event, EventFilter, NewEvent, Severity};
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::time::Micros;
use rusqlite::{params, Connection};
use serde_json::Value;
use uuid::Uuid;

/// Writes an event inside the caller's transaction. Returns false when `once_key` had already
/// been used for this tenant.
pub fn record(c: &Connection, at: Micros, e: NewEvent) -> Result<bool, ApiError> {
    let id = Uuid::new_v4().to_string();
    let n = c.execute(
        "INSERT INTO events (id, tenant_id, category, event_type, severity, message, data,
                             created_at, once_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (tenant_id, once_key) WHERE once_key IS NOT NULL DO NOTHING",
        params![
            id,
            e.tenant_id.to_string(),
            e.kind.category(),
            e.kind.event_type(),
            e.kind.severity().as_str(),
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
                category: e.kind.category(),
                event_type: e.kind.event_type(),
                severity: e.kind.severity().as_str(),
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
        |r| {
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
        },
    )?;
    rows.collect()
}
