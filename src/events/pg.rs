//! The events table on PostgreSQL (issue 19, being built). Today: the multi-row insert the
//! usage writer records its unknown-model and limit-crossing events with.
//!
//! Not yet here: the webhook outbox. On SQLite `store::record` writes each event's deliveries
//! in the same transaction; on PostgreSQL that waits for the webhooks area's store, so events
//! recorded here have no deliveries yet.
use super::NewEvent;
use crate::time::Micros;
use tokio_postgres::GenericClient;

/// Writes `events` (each with its time) in one statement inside the caller's transaction; an
/// event whose `once_key` the tenant already used (by any replica, or earlier in `events`) is
/// not written. Returns how many were written.
pub async fn record_many(
    c: &impl GenericClient,
    events: &[(Micros, NewEvent)],
) -> Result<u64, tokio_postgres::Error> {
    record_many_with(c, RECORD_MANY, events).await
}

/// The statement `record_many` runs.
pub const RECORD_MANY: &str =
    "INSERT INTO events (id, tenant_id, category, event_type, severity, message, data,
                             created_at, once_key)
         SELECT id, tenant_id, category, event_type, severity, message, data, created_at,
                once_key
         FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                     $7::text[], $8::text[], $9::int8[])
              WITH ORDINALITY AS u(id, tenant_id, category, event_type, severity, message,
                                   data, once_key, created_at, n)
         ORDER BY n
         ON CONFLICT (tenant_id, once_key) WHERE once_key IS NOT NULL DO NOTHING";

/// As `record_many`, with the statement prepared by the caller (or as text).
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
    }
    c.execute(
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
        ],
    )
    .await
}
