//! The queue's SQL. Ready jobs are found through `jobs_ready` (tenant, queue, priority, run_at,
//! seq), one seek per priority level, so a lease reads the jobs it takes and a few index
//! entries, never the backlog.
use super::job::{Job, NewJob, Status};
use crate::time::Micros;
use crate::usage::money::Nanousd;
use crate::usage::rollup::{Totals, JOB_DIM};
use rusqlite::{params, Connection, OptionalExtension, Row};

const COLUMNS: &str = "seq, id, tenant_id, queue, kind, payload, priority, status, attempts, \
                       max_attempts, lease_seconds, run_at, lease_expires_at, idempotency_key, \
                       last_error, result, created_at, updated_at";

/// How long an idempotency key names its job.
pub const IDEMPOTENCY_WINDOW: Micros = 24 * 3600 * 1_000_000;

fn job(r: &Row) -> rusqlite::Result<Job> {
    let raw = |i: usize| -> rusqlite::Result<Box<serde_json::value::RawValue>> {
        let text: String = r.get(i)?;
        serde_json::value::RawValue::from_string(text).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    let status: String = r.get(7)?;
    Ok(Job {
        seq: r.get(0)?,
        id: r.get(1)?,
        tenant_id: r.get(2)?,
        queue: r.get(3)?,
        kind: r.get(4)?,
        payload: raw(5)?,
        priority: r.get(6)?,
        status: Status::parse(&status).unwrap_or(Status::Dead),
        attempts: r.get(8)?,
        max_attempts: r.get(9)?,
        lease_seconds: r.get(10)?,
        run_at: r.get(11)?,
        lease_expires_at: r.get(12)?,
        idempotency_key: r.get(13)?,
        last_error: r.get(14)?,
        result: match r.get::<_, Option<String>>(15)? {
            Some(_) => Some(raw(15)?),
            None => None,
        },
        created_at: r.get(16)?,
        updated_at: r.get(17)?,
        usage: Default::default(),
    })
}

pub fn get(c: &Connection, tenant: &str, id: &str) -> rusqlite::Result<Option<Job>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND tenant_id = ?2"
    ))?
    .query_row(params![id, tenant], job)
    .optional()
}

/// A job by id whatever its tenant: for the admin token's worker calls.
pub fn get_any(c: &Connection, id: &str) -> rusqlite::Result<Option<Job>> {
    c.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
        .query_row([id], job)
        .optional()
}

/// The live job holding an idempotency key, if any; a key older than the window is released
/// (cleared from its job) so the next enqueue with it makes a new job.
pub fn by_idempotency_key(
    c: &Connection,
    tenant: &str,
    key: &str,
    now: Micros,
) -> rusqlite::Result<Option<Job>> {
    let found = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM jobs WHERE tenant_id = ?1 AND idempotency_key = ?2"
        ))?
        .query_row(params![tenant, key], job)
        .optional()?;
    match found {
        Some(j) if j.created_at + IDEMPOTENCY_WINDOW > now => Ok(Some(j)),
        Some(j) => {
            c.execute(
                "UPDATE jobs SET idempotency_key = NULL WHERE seq = ?1",
                [j.seq],
            )?;
            Ok(None)
        }
        None => Ok(None),
    }
}

pub fn insert(
    c: &Connection,
    id: &str,
    tenant: &str,
    j: &NewJob,
    run_at: Micros,
    now: Micros,
) -> rusqlite::Result<i64> {
    c.prepare_cached(
        "INSERT INTO jobs (id, tenant_id, queue, kind, payload, priority, status, attempts,
                           max_attempts, lease_seconds, run_at, idempotency_key, created_at,
                           updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', 0, ?7, ?8, ?9, ?10, ?11, ?11)",
    )?
    .execute(params![
        id,
        tenant,
        j.queue,
        j.kind,
        j.payload.get(),
        j.priority,
        j.max_attempts,
        j.lease_seconds,
        run_at,
        j.idempotency_key,
        now
    ])?;
    Ok(c.last_insert_rowid())
}

/// Up to `limit` ready jobs of one tenant's queue, best first: priority descending, then
/// `run_at`, then enqueue order. One index seek per priority level.
///
/// No `LIMIT ?`: SQLite plans with a bound LIMIT's value, so it prepares such a statement again
/// on every run (a quarter of a lease's CPU); the index gives the order, so stopping after
/// `limit` rows reads no more than the LIMIT would.
pub fn ready(
    c: &Connection,
    tenant: &str,
    queue: &str,
    now: Micros,
    limit: usize,
) -> rusqlite::Result<Vec<Job>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs INDEXED BY jobs_ready
         WHERE tenant_id = ?1 AND queue = ?2 AND priority = ?3 AND run_at <= ?4
           AND (status = 'queued' OR status = 'retrying')
         ORDER BY run_at, seq"
    ))?;
    let mut out = Vec::new();
    for p in (0..=9).rev() {
        if out.len() >= limit {
            break;
        }
        let rows = stmt.query_map(params![tenant, queue, p, now], job)?;
        for r in rows.take(limit - out.len()) {
            out.push(r?);
        }
    }
    Ok(out)
}

/// The earliest `run_at` among a queue's waiting jobs (one seek per priority level), or
/// `None` when it has none.
pub fn next_run_at(c: &Connection, tenant: &str, queue: &str) -> rusqlite::Result<Option<Micros>> {
    let mut stmt = c.prepare_cached(
        "SELECT run_at FROM jobs INDEXED BY jobs_ready
         WHERE tenant_id = ?1 AND queue = ?2 AND priority = ?3
           AND (status = 'queued' OR status = 'retrying')
         ORDER BY run_at LIMIT 1",
    )?;
    let mut best: Option<Micros> = None;
    for p in 0..=9 {
        if let Some(t) = stmt
            .query_row(params![tenant, queue, p], |r| r.get::<_, Micros>(0))
            .optional()?
        {
            best = Some(best.map_or(t, |b: Micros| b.min(t)));
        }
    }
    Ok(best)
}

pub fn mark_running(
    c: &Connection,
    seq: i64,
    token: &str,
    expires: Micros,
    now: Micros,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, lease_token = ?2,
                         lease_expires_at = ?3, updated_at = ?4
         WHERE seq = ?1",
    )?
    .execute(params![seq, token, expires, now])?;
    Ok(())
}

/// The job a lease token holds, if the lease is live: running, same token, not expired.
pub fn leased(c: &Connection, id: &str, token: &str, now: Micros) -> rusqlite::Result<Option<Job>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND status = 'running' AND lease_token = ?2
           AND lease_expires_at > ?3"
    ))?
    .query_row(params![id, token, now], job)
    .optional()
}

pub fn extend(c: &Connection, seq: i64, expires: Micros, now: Micros) -> rusqlite::Result<()> {
    c.prepare_cached("UPDATE jobs SET lease_expires_at = ?2, updated_at = ?3 WHERE seq = ?1")?
        .execute(params![seq, expires, now])?;
    Ok(())
}

/// Ends a lease: `succeeded` with its result, `retrying` at `run_at`, or `dead`.
pub fn finish(
    c: &Connection,
    seq: i64,
    status: Status,
    run_at: Option<Micros>,
    error: Option<&str>,
    result: Option<&str>,
    now: Micros,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE jobs SET status = ?2, run_at = coalesce(?3, run_at), lease_token = NULL,
                         lease_expires_at = NULL, last_error = coalesce(?4, last_error),
                         result = coalesce(?5, result), updated_at = ?6
         WHERE seq = ?1",
    )?
    .execute(params![seq, status.as_str(), run_at, error, result, now])?;
    Ok(())
}

/// Running jobs whose lease has expired, oldest expiry first (no bound LIMIT: see `ready`).
pub fn expired(c: &Connection, now: Micros, limit: usize) -> rusqlite::Result<Vec<Job>> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs INDEXED BY jobs_leased
         WHERE status = 'running' AND lease_expires_at <= ?1
         ORDER BY lease_expires_at"
    ))?
    .query_map(params![now], job)?
    .take(limit)
    .collect()
}

/// The earliest end of a running job's lease, or `None` when no job is running.
pub fn next_expiry(c: &Connection) -> rusqlite::Result<Option<Micros>> {
    c.prepare_cached(
        "SELECT lease_expires_at FROM jobs INDEXED BY jobs_leased
         WHERE status = 'running' ORDER BY lease_expires_at LIMIT 1",
    )?
    .query_row([], |r| r.get(0))
    .optional()
}

/// Moves a job to `status` (cancel, retry) when it is in one of `from`; false otherwise.
pub fn set_status(
    c: &Connection,
    seq: i64,
    status: Status,
    run_at: Option<Micros>,
    reset_attempts: bool,
    now: Micros,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "UPDATE jobs SET status = ?2, run_at = coalesce(?3, run_at),
                         attempts = CASE WHEN ?4 THEN 0 ELSE attempts END, updated_at = ?5
         WHERE seq = ?1",
    )?
    .execute(params![seq, status.as_str(), run_at, reset_attempts, now])?;
    Ok(())
}

/// A tenant's jobs, newest first, by status, queue and kind, after the keyset `after`.
pub fn list(
    c: &Connection,
    tenant: &str,
    status: Option<Status>,
    queue: Option<&str>,
    kind: Option<&str>,
    after: Option<i64>,
    limit: i64,
) -> rusqlite::Result<Vec<Job>> {
    c.prepare_cached(&list_sql(status.is_some()))?
        .query_map(
            params![
                tenant,
                status.map(Status::as_str),
                queue,
                kind,
                after.unwrap_or(i64::MAX),
                limit
            ],
            job,
        )?
        .collect()
}

/// The list's statement. With a status the condition must be a plain `status = ?2`, so the
/// search runs on `jobs_by_tenant` (tenant, status, seq): written as `?2 IS NULL OR status =
/// ?2`, SQLite plans one statement for both cases and walks every job of the tenant by `seq`
/// (a thousand dead jobs behind a million queued ones would be read through the million).
fn list_sql(with_status: bool) -> String {
    let status_is = if with_status {
        "status = ?2"
    } else {
        "?2 IS NULL"
    };
    format!(
        "SELECT {COLUMNS} FROM jobs
         WHERE tenant_id = ?1 AND {status_is} AND (?3 IS NULL OR queue = ?3)
           AND (?4 IS NULL OR kind = ?4) AND seq < ?5
         ORDER BY seq DESC LIMIT ?6"
    )
}

/// What the scheduler needs at start: each (tenant, queue) with waiting jobs and its earliest
/// `run_at`, and each tenant's running count.
pub fn waiting(c: &Connection) -> rusqlite::Result<Vec<(String, String, Micros)>> {
    c.prepare(
        "SELECT tenant_id, queue, min(run_at) FROM jobs INDEXED BY jobs_ready
         WHERE status = 'queued' OR status = 'retrying' GROUP BY tenant_id, queue",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
    .collect()
}

pub fn running(c: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    c.prepare(
        "SELECT tenant_id, count(*) FROM jobs INDEXED BY jobs_leased
         WHERE status = 'running' GROUP BY tenant_id",
    )?
    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
    .collect()
}

/// Every tenant's job counts by status, for the schedule at start.
pub fn counts(c: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    c.prepare("SELECT tenant_id, status, count(*) FROM jobs GROUP BY tenant_id, status")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// A job's usage: its all-time rollup row (dim `job_id`), written with the events.
pub fn usage(c: &Connection, tenant: &str, job: &str) -> rusqlite::Result<Totals> {
    c.prepare_cached(
        "SELECT events, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                reasoning_tokens, estimated_nanos, billed_nanos
         FROM usage_rollups WHERE tenant_id = ?1 AND dim = ?2 AND day = 0 AND key = ?3",
    )?
    .query_row(params![tenant, JOB_DIM, job], |r| {
        Ok(Totals {
            events: r.get(0)?,
            input_tokens: r.get(1)?,
            output_tokens: r.get(2)?,
            cache_read_tokens: r.get(3)?,
            cache_write_tokens: r.get(4)?,
            reasoning_tokens: r.get(5)?,
            estimated: Nanousd::from_nanos(r.get(6)?),
            billed: Nanousd::from_nanos(r.get(7)?),
        })
    })
    .optional()
    .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(c: &Connection, sql: &str) -> String {
        c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map(
                params!["t", "dead", None::<String>, None::<String>, 99, 50],
                |r| r.get::<_, String>(3),
            )
            .unwrap()
            .map(Result::unwrap)
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn a_list_by_status_searches_the_status_index() {
        let mut c = Connection::open_in_memory().unwrap();
        crate::db::migrate::apply(&mut c).unwrap();
        let by_status = plan(&c, &list_sql(true));
        assert!(
            by_status.contains("jobs_by_tenant (tenant_id=? AND status=? AND seq<?)"),
            "{by_status}"
        );
        let all = plan(&c, &list_sql(false));
        assert!(
            all.contains("jobs_by_tenant_seq (tenant_id=? AND seq<?)"),
            "{all}"
        );
    }
}
