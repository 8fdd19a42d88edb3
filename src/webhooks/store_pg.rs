//! The SQL of webhooks on PostgreSQL (issue 19): the rows and writes of `store` (endpoints,
//! their secrets and failure marks, the delivery log) and the deliverer's lease of due
//! deliveries, which replicas share with `FOR UPDATE SKIP LOCKED`. The outbox's inserts are
//! part of `events::pg::RECORD_MANY`.
use super::store::{
    format_of, scope_of, types_json, types_of, Due, DELIVERY_COLS, DUE_COLUMNS, ENDPOINT_COLS,
};
use super::{Delivery, Endpoint};
use crate::tenancy::TenantId;
use crate::time::Micros;
use tokio_postgres::{Error, GenericClient, Row};
use uuid::Uuid;

fn endpoint(r: &Row) -> Endpoint {
    Endpoint {
        id: r.get::<_, Uuid>(0).to_string(),
        tenant_id: TenantId::from_uuid(r.get(1)),
        scope: scope_of(r.get(2)),
        url: r.get(3),
        event_types: types_of(r.get(4)),
        description: r.get(5),
        format: format_of(r.get(6)),
        enabled: r.get::<_, i64>(7) == 1,
        disabled_reason: r.get(8),
        created_at: r.get(9),
    }
}

/// An id from a path or a cursor; one that is no UUID names no row.
pub fn id(s: &str) -> Option<Uuid> {
    Uuid::parse_str(s).ok()
}

pub async fn insert_endpoint(
    c: &impl GenericClient,
    e: &Endpoint,
    id: Uuid,
    secret: &[u8],
) -> Result<(), Error> {
    c.execute(
        "INSERT INTO webhook_endpoints (id, tenant_id, scope, url, event_types, description,
             format, enabled, disabled_reason, secret, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
        &[
            &id,
            &e.tenant_id.as_uuid(),
            &e.scope.as_str(),
            &e.url,
            &types_json(&e.event_types),
            &e.description,
            &e.format.as_str(),
            &i64::from(e.enabled),
            &e.disabled_reason,
            &secret,
            &e.created_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn get_endpoint(c: &impl GenericClient, id: Uuid) -> Result<Option<Endpoint>, Error> {
    let row = c
        .query_opt(
            &format!("SELECT {ENDPOINT_COLS} FROM webhook_endpoints WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(endpoint))
}

/// As `store::list_endpoints`: oldest first, after `after`.
pub async fn list_endpoints(
    c: &impl GenericClient,
    tenant: TenantId,
    with_instance: bool,
    after: Option<&(Micros, String)>,
    fetch: i64,
) -> Result<Vec<Endpoint>, Error> {
    let (t, after_id) = match after {
        Some((t, s)) => (*t, id(s).unwrap_or_else(Uuid::nil)),
        None => (i64::MIN, Uuid::nil()),
    };
    let rows = c
        .query(
            &format!(
                "SELECT {ENDPOINT_COLS} FROM webhook_endpoints
                 WHERE ((tenant_id = $1 AND scope = 'tenant') OR ($2 AND scope = 'instance'))
                   AND (created_at, id) > ($3, $4)
                 ORDER BY created_at, id LIMIT $5"
            ),
            &[&tenant.as_uuid(), &with_instance, &t, &after_id, &fetch],
        )
        .await?;
    Ok(rows.iter().map(endpoint).collect())
}

pub async fn update_endpoint(
    c: &impl GenericClient,
    e: &Endpoint,
    id: Uuid,
    now: Micros,
) -> Result<(), Error> {
    c.execute(
        "UPDATE webhook_endpoints SET url = $2, event_types = $3, description = $4,
             enabled = $5::int8, disabled_reason = $6, updated_at = $7,
             failing_since = CASE WHEN $5::int8 = 1 THEN NULL ELSE failing_since END
         WHERE id = $1",
        &[
            &id,
            &e.url,
            &types_json(&e.event_types),
            &e.description,
            &i64::from(e.enabled),
            &e.disabled_reason,
            &now,
        ],
    )
    .await?;
    Ok(())
}

pub async fn delete_endpoint(c: &impl GenericClient, id: Uuid) -> Result<(), Error> {
    c.execute("DELETE FROM webhook_endpoints WHERE id = $1", &[&id])
        .await?;
    Ok(())
}

pub async fn rotate_secret(
    c: &impl GenericClient,
    id: Uuid,
    new: &[u8],
    until: Micros,
    now: Micros,
) -> Result<(), Error> {
    c.execute(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $3, secret = $2,
             updated_at = $4 WHERE id = $1",
        &[&id, &new, &until, &now],
    )
    .await?;
    Ok(())
}

/// One delivery of an event to one endpoint, due at once (the test send's way in; events
/// recorded on PostgreSQL get theirs in `events::pg::RECORD_MANY`).
pub async fn insert_delivery(
    c: &impl GenericClient,
    d: &super::store::NewDelivery<'_>,
    endpoint: Uuid,
) -> Result<(), Error> {
    c.execute(
        "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, event_tenant_id, event_id,
             event_type, payload, status, next_attempt_at, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8)",
        &[
            &Uuid::new_v4(),
            &endpoint,
            &d.owner.as_uuid(),
            &d.event_tenant.as_uuid(),
            &d.event_id,
            &d.event_type,
            &d.payload,
            &d.at,
        ],
    )
    .await?;
    Ok(())
}

fn delivery(r: &Row) -> Delivery {
    Delivery {
        id: r.get::<_, Uuid>(0).to_string(),
        endpoint_id: r.get::<_, Uuid>(1).to_string(),
        event_id: r.get(2),
        event_type: r.get(3),
        status: r.get(4),
        attempts: r.get(5),
        last_status: r.get(6),
        last_error: r.get(7),
        next_attempt_at: r.get(8),
        created_at: r.get(9),
        seq: r.get(10),
    }
}

/// As `store::list_deliveries`: an endpoint's deliveries, newest first.
pub async fn list_deliveries(
    c: &impl GenericClient,
    endpoint: Uuid,
    status: Option<&str>,
    before: Option<i64>,
    fetch: i64,
) -> Result<Vec<Delivery>, Error> {
    let rows = c
        .query(
            &format!(
                "SELECT {DELIVERY_COLS} FROM webhook_deliveries
                 WHERE endpoint_id = $1 AND seq < $2 AND ($3::text IS NULL OR status = $3)
                 ORDER BY seq DESC LIMIT $4"
            ),
            &[&endpoint, &before.unwrap_or(i64::MAX), &status, &fetch],
        )
        .await?;
    Ok(rows.iter().map(delivery).collect())
}

/// Makes a delivery due now; false when the endpoint has no such delivery.
pub async fn retry_delivery(
    c: &impl GenericClient,
    endpoint: Uuid,
    id: Uuid,
    now: Micros,
) -> Result<bool, Error> {
    let n = c
        .execute(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = $3
             WHERE endpoint_id = $1 AND id = $2",
            &[&endpoint, &id, &now],
        )
        .await?;
    Ok(n == 1)
}

fn due_row(r: &Row) -> Due {
    Due {
        id: r.get::<_, Uuid>(0).to_string(),
        endpoint_id: r.get::<_, Uuid>(1).to_string(),
        owner: TenantId::from_uuid(r.get(2)),
        event_id: r.get(3),
        event_type: r.get(4),
        payload: r.get(5),
        attempts: r.get(6),
        url: r.get(7),
        format: r.get(8),
        created_at: r.get(9),
        secrets: (r.get(10), r.get(11), r.get(12)),
    }
}

/// Run in `lease`'s transaction first (see there).
pub const LEASE_PLAN: &str = "SET LOCAL enable_incremental_sort = off";

/// Leases deliveries due at `now` of enabled endpoints until `until`, oldest due first: at most
/// `limit`, and of each endpoint at most `per_endpoint` less what `busy` says this deliverer
/// is sending to it now. A lease is the delivery's `next_attempt_at` moved to `until`: no
/// deliverer finds it due until then, so a deliverer that dies only delays it (its attempt is
/// recorded with `record_attempt`, which checks the lease is still this one's). Rows another
/// deliverer is leasing right now are skipped, and each locked row's due time is checked again
/// (READ COMMITTED re-reads a row changed since the statement began).
///
/// Each enabled endpoint's first due rows come from `webhook_deliveries_due_by_endpoint`, so a
/// backlog costs its endpoint four index entries, not a read of every due row. Run it in a
/// transaction after `LEASE_PLAN`: with incremental sort the planner, misled by an endpoint
/// with many rows scheduled later, walks `webhook_deliveries_due` past every other endpoint's
/// due rows instead (EXPLAIN ANALYZE with 20,000 rows due to one endpoint, 10 to another and
/// 100,000 scheduled later: 28 ms for a window over every due row, 8.6 ms for this with
/// incremental sort, 1.3 ms without).
pub async fn lease(
    c: &impl GenericClient,
    now: Micros,
    until: Micros,
    busy: &[(Uuid, i64)],
    per_endpoint: i64,
    limit: i64,
) -> Result<Vec<Due>, Error> {
    let (busy_ids, busy_n): (Vec<Uuid>, Vec<i64>) = busy.iter().copied().unzip();
    let rows = c
        .query(
            &format!(
                "WITH picked AS (
                     SELECT x.seq FROM webhook_endpoints e
                     LEFT JOIN unnest($3::uuid[], $4::int8[]) AS b(endpoint_id, n)
                            ON b.endpoint_id = e.id
                     CROSS JOIN LATERAL (
                         SELECT w.seq, w.next_attempt_at FROM webhook_deliveries w
                         WHERE w.endpoint_id = e.id AND w.next_attempt_at <= $1
                         ORDER BY w.next_attempt_at, w.seq
                         LIMIT greatest($5 - coalesce(b.n, 0), 0)) x
                     WHERE e.enabled = 1
                     ORDER BY x.next_attempt_at, x.seq LIMIT $6),
                 locked AS (
                     SELECT w.seq FROM webhook_deliveries w JOIN picked p ON p.seq = w.seq
                     WHERE w.next_attempt_at <= $1
                     FOR UPDATE OF w SKIP LOCKED)
                 UPDATE webhook_deliveries d SET next_attempt_at = $2
                 FROM locked l, webhook_endpoints e
                 WHERE d.seq = l.seq AND e.id = d.endpoint_id
                 RETURNING {DUE_COLUMNS}"
            ),
            &[&now, &until, &busy_ids, &busy_n, &per_endpoint, &limit],
        )
        .await?;
    let mut due: Vec<Due> = rows.iter().map(due_row).collect();
    due.sort_by_key(|d| d.created_at);
    Ok(due)
}

/// Records an attempt's outcome if the delivery is still leased `until` (by this deliverer:
/// not taken by another after the lease ran out, nor retried by its owner meanwhile); false
/// when it was not.
#[allow(clippy::too_many_arguments)]
pub async fn record_attempt(
    c: &impl GenericClient,
    id: Uuid,
    until: Micros,
    status: &str,
    http_status: Option<u16>,
    error: Option<&str>,
    next: Option<Micros>,
) -> Result<bool, Error> {
    let n = c
        .execute(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1,
                 last_status = $4, last_error = $5, next_attempt_at = $6
             WHERE id = $1 AND next_attempt_at = $2",
            &[
                &id,
                &until,
                &status,
                &http_status.map(i64::from),
                &error,
                &next,
            ],
        )
        .await?;
    Ok(n == 1)
}

pub async fn mark_success(c: &impl GenericClient, endpoint: Uuid) -> Result<(), Error> {
    c.execute(
        "UPDATE webhook_endpoints SET failing_since = NULL
         WHERE id = $1 AND failing_since IS NOT NULL",
        &[&endpoint],
    )
    .await?;
    Ok(())
}

/// Notes a failure; returns since when the endpoint has been failing.
pub async fn mark_failure(
    c: &impl GenericClient,
    endpoint: Uuid,
    now: Micros,
) -> Result<Option<Micros>, Error> {
    let row = c
        .query_opt(
            "UPDATE webhook_endpoints SET failing_since = coalesce(failing_since, $2)
             WHERE id = $1 RETURNING failing_since",
            &[&endpoint, &now],
        )
        .await?;
    Ok(row.and_then(|r| r.get(0)))
}

/// Disables an endpoint; false when it already was.
pub async fn disable(
    c: &impl GenericClient,
    endpoint: Uuid,
    reason: &str,
    now: Micros,
) -> Result<bool, Error> {
    let n = c
        .execute(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = $2, updated_at = $3
             WHERE id = $1 AND enabled = 1",
            &[&endpoint, &reason, &now],
        )
        .await?;
    Ok(n == 1)
}

/// Every sealed secret (endpoint, tenant, column, envelope), for key rotation.
pub async fn all_sealed(
    c: &impl GenericClient,
) -> Result<Vec<(Uuid, Uuid, &'static str, Vec<u8>)>, Error> {
    let rows = c
        .query(
            "SELECT id, tenant_id, secret, previous_secret FROM webhook_endpoints ORDER BY id",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let (id, tenant): (Uuid, Uuid) = (r.get(0), r.get(1));
        out.push((id, tenant, "secret", r.get(2)));
        if let Some(p) = r.get::<_, Option<Vec<u8>>>(3) {
            out.push((id, tenant, "previous_secret", p));
        }
    }
    Ok(out)
}

/// Replaces one sealed column `all_sealed` named.
pub async fn set_sealed(
    c: &impl GenericClient,
    id: Uuid,
    column: &str,
    sealed: &[u8],
) -> Result<(), Error> {
    let sql = match column {
        "previous_secret" => "UPDATE webhook_endpoints SET previous_secret = $2 WHERE id = $1",
        _ => "UPDATE webhook_endpoints SET secret = $2 WHERE id = $1",
    };
    c.execute(sql, &[&id, &sealed]).await?;
    Ok(())
}
