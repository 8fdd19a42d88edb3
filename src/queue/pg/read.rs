//! Reads (a job, a page of jobs, counts by status), the caller's news of a tenant, and the
//! rebuild of the tenants' rows from the jobs.
use super::{job, job_id, not_found, pg, TenantInfo, COLUMNS, USAGE, USAGE_JOIN};
use crate::db::pg::Client;
use crate::error::ApiError;
use crate::queue::job::{Job, Status};
use crate::queue::Counts;
use crate::tenancy::TenantId;
use tokio_postgres::Row;

/// A tenant's job, with its usage; 404 when the tenant has no such job.
pub async fn get(c: &Client, tenant: TenantId, id: &str) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    let st = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {USAGE} FROM jobs j {USAGE_JOIN}
             WHERE j.id = $1 AND j.tenant_id = $2"
        ))
        .await
        .map_err(pg)?;
    match c.query_opt(&st, &[&id, &tenant.as_uuid()]).await {
        Ok(Some(r)) => job(&r),
        Ok(None) => Err(not_found()),
        Err(e) => Err(pg(e)),
    }
}

/// A tenant's jobs, newest first, by status, queue and kind, after the keyset `after` (a
/// `seq`); at most `limit` rows (the caller asks one more than a page, as `Page::from_rows`
/// expects). With a status the search runs on `jobs_by_tenant` (tenant, status, seq), without
/// one on `jobs_by_tenant_seq`, as on SQLite.
#[allow(clippy::too_many_arguments)]
pub async fn list(
    c: &Client,
    tenant: TenantId,
    status: Option<Status>,
    queue: Option<&str>,
    kind: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<Job>, ApiError> {
    let status_is = match status {
        Some(_) => "j.status = $2",
        None => "$2::text IS NULL",
    };
    let st = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {USAGE} FROM jobs j {USAGE_JOIN}
             WHERE j.tenant_id = $1 AND {status_is} AND ($3::text IS NULL OR j.queue = $3)
               AND ($4::text IS NULL OR j.kind = $4) AND j.seq < $5
             ORDER BY j.seq DESC LIMIT $6"
        ))
        .await
        .map_err(pg)?;
    let rows = c
        .query(
            &st,
            &[
                &tenant.as_uuid(),
                &status.map(Status::as_str),
                &queue,
                &kind,
                &after.unwrap_or(i64::MAX),
                &limit,
            ],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(job).collect()
}

fn counts_of(r: &Row) -> Counts {
    Counts {
        queued: r.get(0),
        running: r.get(1),
        retrying: r.get(2),
        succeeded: r.get(3),
        dead: r.get(4),
        cancelled: r.get(5),
    }
}

const COUNTS: &str = "queued, running, retrying, succeeded, dead, cancelled";

/// A tenant's counts by status: one primary-key read of its `queue_tenants` row, never of
/// `jobs`. A tenant that never had a job has zeros.
pub async fn counts(c: &Client, tenant: TenantId) -> Result<Counts, ApiError> {
    let st = c
        .prepare_cached(&format!(
            "SELECT {COUNTS} FROM queue_tenants WHERE tenant_id = $1"
        ))
        .await
        .map_err(pg)?;
    let row = c.query_opt(&st, &[&tenant.as_uuid()]).await.map_err(pg)?;
    Ok(row.as_ref().map(counts_of).unwrap_or(Counts {
        queued: 0,
        running: 0,
        retrying: 0,
        succeeded: 0,
        dead: 0,
        cancelled: 0,
    }))
}

/// Every tenant's counts that are not all zero, by tenant id, for the operator.
pub async fn overview(c: &Client) -> Result<Vec<(TenantId, Counts)>, ApiError> {
    let rows = c
        .query(
            &format!(
                "SELECT {COUNTS}, tenant_id FROM queue_tenants
                 WHERE queued + running + retrying + succeeded + dead + cancelled > 0
                 ORDER BY tenant_id::text"
            ),
            &[],
        )
        .await
        .map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| (TenantId::from_uuid(r.get(6)), counts_of(r)))
        .collect())
}

/// Tells the store what the service now knows of a tenant (its cache saw a change of plan,
/// status or `max_running_jobs`): a tenant deactivated stops being leased, one reactivated
/// with waiting jobs is leased again. A tenant without jobs has no row and needs none.
pub async fn set_tenant(c: &Client, tenant: TenantId, info: &TenantInfo) -> Result<(), ApiError> {
    let st = c
        .prepare_cached(
            "UPDATE queue_tenants SET weight = $2, max_running = $3, active = $4
             WHERE tenant_id = $1
               AND (weight, max_running, active) IS DISTINCT FROM ($2, $3, $4)",
        )
        .await
        .map_err(pg)?;
    c.execute(
        &st,
        &[
            &tenant.as_uuid(),
            &info.weight(),
            &info.max_running,
            &info.active,
        ],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// The tenants whose rows a lease skips although they have waiting jobs (inactive, or at their
/// `max_running`), with the view of them each row keeps (weight, `max_running`, active): the
/// service compares it with its caches and calls `set_tenant` where they differ, since no lease
/// would correct such a row. One read of `queue_tenants`, never of `jobs`.
pub async fn held_back(c: &Client) -> Result<Vec<(TenantId, (i64, i64, bool))>, ApiError> {
    let st = c
        .prepare_cached(
            "SELECT tenant_id, weight, max_running, active FROM queue_tenants
             WHERE queued + retrying > 0 AND (NOT active OR running >= max_running)",
        )
        .await
        .map_err(pg)?;
    let rows = c.query(&st, &[]).await.map_err(pg)?;
    Ok(rows
        .iter()
        .map(|r| {
            (
                TenantId::from_uuid(r.get(0)),
                (r.get(1), r.get(2), r.get(3)),
            )
        })
        .collect())
}

/// Rebuilds every tenant's `queue_tenants` row from `jobs` (counts by status, earliest waiting
/// job), for `tenantry copy` once it has copied jobs from SQLite (which keeps these in memory),
/// or to repair. It reads every job once, so it is not for the hot path, and it holds off every
/// write to `jobs` until it commits (`SHARE` lock), so replicas may keep running meanwhile. A
/// tenant's place in the rotation is kept; a new row joins the back. `tenants` is the caller's
/// view; a tenant it does not know is stored inactive. Returns how many rows it wrote.
pub async fn rebuild(
    c: &mut Client,
    tenants: &(dyn Fn(TenantId) -> Option<TenantInfo> + Sync),
) -> Result<usize, ApiError> {
    let tx = c.transaction().await.map_err(pg)?;
    tx.batch_execute("LOCK TABLE jobs IN SHARE MODE")
        .await
        .map_err(pg)?;
    let rows = tx
        .query(
            "SELECT tenant_id,
                    count(*) FILTER (WHERE status = 'queued'),
                    count(*) FILTER (WHERE status = 'running'),
                    count(*) FILTER (WHERE status = 'retrying'),
                    count(*) FILTER (WHERE status = 'succeeded'),
                    count(*) FILTER (WHERE status = 'dead'),
                    count(*) FILTER (WHERE status = 'cancelled'),
                    coalesce(min(run_at) FILTER (WHERE status IN ('queued', 'retrying')), 0)
             FROM jobs GROUP BY tenant_id ORDER BY tenant_id",
            &[],
        )
        .await
        .map_err(pg)?;
    let upsert = tx
        .prepare(
            "INSERT INTO queue_tenants AS q (tenant_id, weight, max_running, active, turn,
                 next_run_at, queued, running, retrying, succeeded, dead, cancelled)
             VALUES ($1, $2, $3, $4, nextval('queue_turns'), $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (tenant_id) DO UPDATE SET
                 weight = EXCLUDED.weight, max_running = EXCLUDED.max_running,
                 active = EXCLUDED.active, next_run_at = EXCLUDED.next_run_at,
                 queued = EXCLUDED.queued, running = EXCLUDED.running,
                 retrying = EXCLUDED.retrying, succeeded = EXCLUDED.succeeded,
                 dead = EXCLUDED.dead, cancelled = EXCLUDED.cancelled",
        )
        .await
        .map_err(pg)?;
    for r in &rows {
        let t: uuid::Uuid = r.get(0);
        let info = tenants(TenantId::from_uuid(t));
        let (weight, max_running, active) =
            info.map_or((1, 0, false), |i| (i.weight(), i.max_running, i.active));
        let n = |i: usize| r.get::<_, i64>(i);
        tx.execute(
            &upsert,
            &[
                &t,
                &weight,
                &max_running,
                &active,
                &n(7),
                &n(1),
                &n(2),
                &n(3),
                &n(4),
                &n(5),
                &n(6),
            ],
        )
        .await
        .map_err(pg)?;
    }
    // Tenants whose jobs are all gone keep no counts.
    tx.execute(
        "UPDATE queue_tenants q SET queued = 0, running = 0, retrying = 0, succeeded = 0,
             dead = 0, cancelled = 0
         WHERE NOT EXISTS (SELECT 1 FROM jobs j WHERE j.tenant_id = q.tenant_id)",
        &[],
    )
    .await
    .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(rows.len())
}
