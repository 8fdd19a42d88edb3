//! The events table on PostgreSQL (issue 19): the multi-row insert every area records its
//! events with (the usage writer many at a time), which also writes the webhook outbox, and
//! the list and get reads.
use super::{Event, EventFilter, NewEvent, Severity};
use crate::pagination::PageRequest;
use crate::tenancy::TenantId;
use crate::time::Micros;
use crate::webhooks::outbox::EventRow;
use serde_json::Value;
use tokio_postgres::{GenericClient, Row};
use uuid::Uuid;

/// Writes `events` (each with its time) in one statement inside the caller's transaction; an
/// event whose `once_key` the tenant already used (by any replica, or earlier in `events`) is
/// not written. Each event written gets its webhook deliveries in the same statement, so they
/// commit or roll back together (as `webhooks::outbox::enqueue` on SQLite). Returns how many
/// events were written.
pub async fn record_many(
    c: &impl GenericClient,
    events: &[(Micros, NewEvent)],
) -> Result<u64, tokio_postgres::Error> {
    record_many_with(c, RECORD_MANY, events).await
}

/// The statement `record_many` runs. `input` is the events with their rendered payloads;
/// `written` the ones a `once_key` did not stop; `delivered` one delivery per written event
/// and enabled endpoint that wants it: the tenant's own endpoints and the instance's, whose
/// `event_types` filter (a JSON array of names and `prefix.*` patterns, or NULL for all)
/// passes its type, as `webhooks::matches` decides. A tenant without endpoints costs one
/// index probe per written event; a group that writes no event, nothing.
pub const RECORD_MANY: &str = "WITH input AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::text[], $9::int8[], $10::text[])
              WITH ORDINALITY AS u(id, tenant_id, category, event_type, severity, message,
                                   data, once_key, created_at, payload, n)),
     written AS (
         INSERT INTO events (id, tenant_id, category, event_type, severity, message, data,
                             created_at, once_key)
         SELECT id, tenant_id, category, event_type, severity, message, data, created_at,
                once_key
         FROM input ORDER BY n
         ON CONFLICT (tenant_id, once_key) WHERE once_key IS NOT NULL DO NOTHING
         RETURNING id),
     delivered AS (
         INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_tenant_id, event_id,
                                         event_type, payload, status, next_attempt_at,
                                         created_at)
         SELECT gen_random_uuid(), e.id, e.tenant_id, i.tenant_id, i.id::text, i.event_type,
                i.payload, 'pending', i.created_at, i.created_at
         FROM written w
         JOIN input i ON i.id = w.id
         JOIN webhook_endpoints e
           ON e.enabled = 1
          AND ((e.scope = 'tenant' AND e.tenant_id = i.tenant_id) OR e.scope = 'instance')
          AND (e.event_types IS NULL OR EXISTS (
                SELECT 1 FROM json_array_elements_text(e.event_types::json) AS f(p)
                WHERE f.p = i.event_type
                   OR (right(f.p, 1) = '*' AND starts_with(i.event_type, left(f.p, -1)))))
         ORDER BY i.n, e.scope DESC, e.created_at, e.id
         RETURNING 1)
     SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM delivered)";

/// As `record_many`, with the statement prepared by the caller (or as text). Rings the
/// deliverers of this process when deliveries were written (before the caller commits: a
/// deliverer that looks too early finds them on its next poll).
pub async fn record_many_with<T>(
    c: &impl GenericClient,
    statement: &T,
    events: &[(Micros, NewEvent)],
) -> Result<u64, tokio_postgres::Error>
where
    T: ?Sized + tokio_postgres::ToStatement + Sync + Send,
{
    if events.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut tenants = Vec::with_capacity(events.len());
    let mut categories = Vec::with_capacity(events.len());
    let mut types = Vec::with_capacity(events.len());
    let mut severities = Vec::with_capacity(events.len());
    let mut messages = Vec::with_capacity(events.len());
    let mut data = Vec::with_capacity(events.len());
    let mut once = Vec::with_capacity(events.len());
    let mut times = Vec::with_capacity(events.len());
    let mut payloads = Vec::with_capacity(events.len());
    for (at, e) in events {
        times.push(*at);
        ids.push(e.id);
        tenants.push(e.tenant_id.as_uuid());
        categories.push(e.category());
        types.push(e.event_type());
        severities.push(e.severity().as_str());
        messages.push(e.message.as_str());
        data.push(e.data.to_string());
        once.push(e.once_key.as_deref());
        let id = e.id.to_string();
        let row = EventRow {
            id: &id,
            tenant_id: e.tenant_id,
            category: e.category(),
            event_type: e.event_type(),
            severity: e.severity().as_str(),
            message: &e.message,
            data: &e.data,
            created_at: *at,
        };
        payloads.push(row.render().to_string());
    }
    let row = c
        .query_one(
            statement,
            &[
                &ids,
                &tenants,
                &categories,
                &types,
                &severities,
                &messages,
                &data,
                &once,
                &times,
                &payloads,
            ],
        )
        .await?;
    let (written, delivered): (i64, i64) = (row.get(0), row.get(1));
    if delivered > 0 {
        crate::webhooks::deliverer_pg::ring();
    }
    Ok(written.max(0) as u64)
}

/// As `store::list`: one page of a tenant's events, newest first, by `(created_at, seq)`.
pub async fn list(
    c: &impl GenericClient,
    tenant: TenantId,
    filter: &EventFilter,
    page: &PageRequest<(Micros, i64)>,
) -> Result<Vec<Event>, tokio_postgres::Error> {
    let (before_t, before_seq) = page.after.unwrap_or((i64::MAX, i64::MAX));
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM events
                 WHERE tenant_id = $1 AND (created_at, seq) < ($2, $3)
                   AND ($4::text IS NULL OR category = $4)
                   AND ($5::text IS NULL OR severity = $5)
                   AND ($6::int8 IS NULL OR created_at >= $6)
                   AND ($7::int8 IS NULL OR created_at < $7)
                 ORDER BY created_at DESC, seq DESC LIMIT $8"
            ),
            &[
                &tenant.as_uuid(),
                &before_t,
                &before_seq,
                &filter.category,
                &filter.severity.map(Severity::as_str),
                &filter.from,
                &filter.to,
                &page.fetch(),
            ],
        )
        .await?;
    Ok(rows.iter().map(event_row).collect())
}

/// One of a tenant's events, as the list renders it.
pub async fn get(
    c: &impl GenericClient,
    tenant: TenantId,
    id: Uuid,
) -> Result<Option<Event>, tokio_postgres::Error> {
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM events WHERE tenant_id = $1 AND id = $2"),
            &[&tenant.as_uuid(), &id],
        )
        .await?;
    Ok(row.as_ref().map(event_row))
}

const COLUMNS: &str =
    "id, tenant_id, category, event_type, severity, message, data, created_at, seq";

fn event_row(r: &Row) -> Event {
    let created: Micros = r.get(7);
    Event {
        id: r.get::<_, Uuid>(0).to_string(),
        tenant_id: r.get::<_, Uuid>(1).to_string(),
        category: r.get(2),
        event_type: r.get(3),
        severity: r.get(4),
        message: r.get(5),
        data: serde_json::from_str(r.get(6)).unwrap_or(Value::Null),
        created_at: crate::time::rfc3339(created),
        key: (created, r.get(8)),
    }
}
