//! Workers' reports on their leases: heartbeat, complete and fail, each checked against the
//! lease token under the job row's lock, so a report and another replica's rescue of the same
//! expired lease cannot both win.
use super::{apply_move, job, job_id, not_found, retrying, Fail, Move, COLUMNS, USAGE, USAGE_JOIN};
use crate::db::pg::Client;
use crate::error::ApiError;
use crate::events::{Kind, NewEvent};
use crate::queue::job::{backoff, Job, Status};
use crate::tenancy::TenantId;
use crate::time::Micros;
use serde_json::json;

/// The error an expired lease leaves on its job, as on SQLite.
pub(super) const LEASE_EXPIRED: &str = "the lease expired";

/// A finished lease's `SET` clause, with the SQL expressions for its new status, `run_at`
/// (NULL: unchanged), error, result and now.
pub(super) fn finish_status(
    status: &str,
    run_at: &str,
    error: &str,
    result: &str,
    now: &str,
) -> String {
    format!(
        "status = {status}, run_at = coalesce({run_at}, j.run_at), lease_token = NULL,
         lease_expires_at = NULL, last_error = coalesce({error}, j.last_error),
         result = coalesce({result}, j.result), updated_at = {now}"
    )
}

/// A failed or expired attempt's end: `retrying` at the backoff (`attempts^4` s plus up to
/// 10%, at most a day) while attempts remain and `retry` holds, else `dead` (no `run_at`).
pub(super) fn outcome(j: &Job, retry: bool, now: Micros) -> (Status, Option<Micros>) {
    if retry && j.attempts < j.max_attempts {
        (Status::Retrying, Some(now + backoff(j.attempts)))
    } else {
        (Status::Dead, None)
    }
}

/// The `job.dead` event, in the transaction that makes the job dead, so the two (and the
/// event's webhook deliveries, as on SQLite) commit together.
pub(super) async fn record_dead(
    tx: &deadpool_postgres::Transaction<'_>,
    j: &Job,
    error: &str,
    now: Micros,
) -> Result<(), Fail> {
    let Some(tenant) = TenantId::parse(&j.tenant_id) else {
        return Ok(());
    };
    let e = NewEvent::of(
        Kind::JobDead,
        tenant,
        format!(
            "job {} is dead after {} attempts: {error}",
            j.id, j.attempts
        ),
        json!({"job_id": j.id, "queue": j.queue, "kind": j.kind, "attempts": j.attempts,
               "last_error": error}),
    );
    crate::events::pg::record_many(&**tx, &[(now, e)]).await?;
    Ok(())
}

/// The job `token` holds a live lease on, locked: 404 when there is no such job (of `only`,
/// when set), 409 `lease_lost` when the token does not hold its live lease (expired, finished,
/// or another worker's).
async fn held(
    tx: &deadpool_postgres::Transaction<'_>,
    only: Option<TenantId>,
    id: uuid::Uuid,
    token: &str,
    now: Micros,
) -> Result<Job, Fail> {
    let st = tx
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {USAGE},
                    j.status = 'running' AND j.lease_token = $3 AND j.lease_expires_at > $4
             FROM jobs j {USAGE_JOIN}
             WHERE j.id = $1 AND ($2::uuid IS NULL OR j.tenant_id = $2) FOR UPDATE OF j"
        ))
        .await?;
    let only = only.map(TenantId::as_uuid);
    let row = tx
        .query_opt(&st, &[&id, &only, &token, &now])
        .await?
        .ok_or_else(not_found)?;
    if !row.get::<_, bool>(26) {
        return Err(Fail::Api(lease_lost()));
    }
    Ok(job(&row)?)
}

/// Why a report found no live lease: 404 when there is no such job (of `only`, when set),
/// else 409 `lease_lost`.
async fn refused(c: &Client, only: Option<TenantId>, id: uuid::Uuid) -> ApiError {
    let found = c
        .query_opt(
            "SELECT 1 FROM jobs WHERE id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)",
            &[&id, &only.map(TenantId::as_uuid)],
        )
        .await;
    match found {
        Ok(Some(_)) => lease_lost(),
        Ok(None) => not_found(),
        Err(e) => Fail::Pg(e).api(),
    }
}

fn lease_lost() -> ApiError {
    ApiError::LeaseLost(
        "this lease_token does not hold the job's lease (expired, finished, or another worker's)"
            .into(),
    )
}

/// The condition of a live lease held by token $3 at $4, of job $1 (of tenant $2, when set).
const LIVE: &str = "j.id = $1 AND ($2::uuid IS NULL OR j.tenant_id = $2) AND j.status = 'running'
    AND j.lease_token = $3 AND j.lease_expires_at > $4";

/// Runs a one-statement report (parameters: id, only, token, now, then its own) and answers
/// the job as it now stands, or why it was refused.
async fn one_statement(
    c: &mut Client,
    sql: &str,
    only: Option<TenantId>,
    id: uuid::Uuid,
    token: &str,
    now: Micros,
    more: &(dyn tokio_postgres::types::ToSql + Sync),
) -> Result<Job, ApiError> {
    let only_id = only.map(TenantId::as_uuid);
    let row = retrying!(async {
        let st = c.prepare_cached(sql).await?;
        Ok::<_, Fail>(
            c.query_opt(&st, &[&id, &only_id, &token, &now, more])
                .await?,
        )
    })?;
    match row {
        Some(r) => job(&r),
        None => Err(refused(c, only, id).await),
    }
}

/// Extends a live lease to `lease_seconds` (checked 5..=3600 by the caller; `None`: the job's
/// own) from now. One statement: the token is checked by the UPDATE's condition on the row's
/// latest version. Answers the job as it now stands.
pub async fn heartbeat(
    c: &mut Client,
    only: Option<TenantId>,
    id: &str,
    token: &str,
    lease_seconds: Option<i64>,
    now: Micros,
) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    let sql = format!(
        "WITH done AS (
             UPDATE jobs j SET lease_expires_at = $4 + coalesce($5, j.lease_seconds) * 1000000,
                               updated_at = $4
             WHERE {LIVE} RETURNING j.*)
         SELECT {COLUMNS}, {USAGE} FROM done j {USAGE_JOIN}"
    );
    one_statement(c, &sql, only, id, token, now, &lease_seconds).await
}

/// Ends a live lease as `succeeded`, with `result` (a JSON object's text, checked by the
/// caller) when given. One statement, so one round trip: the job row, then its tenant's row
/// (the order every report keeps).
pub async fn complete(
    c: &mut Client,
    only: Option<TenantId>,
    id: &str,
    token: &str,
    result: Option<&str>,
    now: Micros,
) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    let sql = format!(
        "WITH done AS (
             UPDATE jobs j SET {}
             WHERE {LIVE} RETURNING j.*),
         counted AS (
             UPDATE queue_tenants q SET running = q.running - 1, succeeded = q.succeeded + 1
             FROM done WHERE q.tenant_id = done.tenant_id)
         SELECT {COLUMNS}, {USAGE} FROM done j {USAGE_JOIN}",
        finish_status("'succeeded'", "NULL::bigint", "NULL", "$5", "$4")
    );
    one_statement(c, &sql, only, id, token, now, &result).await
}

/// Ends a live lease as failed: `retrying` after the backoff while attempts remain and `retry`
/// holds, else `dead` with a `job.dead` event. `error` is checked (1..=4000 chars) by the caller.
#[allow(clippy::too_many_arguments)]
pub async fn fail(
    c: &mut Client,
    only: Option<TenantId>,
    id: &str,
    token: &str,
    error: &str,
    retry: bool,
    now: Micros,
) -> Result<Job, ApiError> {
    let id = job_id(id)?;
    retrying!(end(c, only, id, token, error, retry, now))
}

async fn end(
    c: &mut Client,
    only: Option<TenantId>,
    id: uuid::Uuid,
    token: &str,
    error: &str,
    retry: bool,
    now: Micros,
) -> Result<Job, Fail> {
    let tx = c.transaction().await?;
    let mut j = held(&tx, only, id, token, now).await?;
    let (to, run_at) = outcome(&j, retry, now);
    let st = tx
        .prepare_cached(&format!(
            "UPDATE jobs j SET {} WHERE j.seq = $1",
            finish_status("$2", "$3", "$4", "NULL", "$5")
        ))
        .await?;
    tx.execute(&st, &[&j.seq, &to.as_str(), &run_at, &error, &now])
        .await?;
    if to == Status::Dead {
        record_dead(&tx, &j, error, now).await?;
    }
    let mut m = Move::default();
    m.step(Some(Status::Running), Some(to));
    if let Some(at) = run_at {
        m.waiting(at);
        j.run_at = at;
    }
    let tenant = uuid::Uuid::parse_str(&j.tenant_id).map_err(ApiError::internal)?;
    apply_move(&tx, tenant, &m).await?;
    tx.commit().await?;
    j.status = to;
    j.lease_expires_at = None;
    j.updated_at = now;
    j.last_error = Some(error.to_string());
    Ok(j)
}
