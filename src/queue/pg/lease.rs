//! Leasing across replicas: River's `JobGetAvailable` under a rotation among tenants.
use super::{job, retrying, Fail, TenantInfo, COLUMNS, USAGE_JOIN};
use crate::db::pg::Client;
use crate::error::ApiError;
use crate::queue::job::{Job, Status};
use crate::tenancy::TenantId;
use crate::time::Micros;
use tokio_postgres::types::ToSql;

/// The eligible tenants in turn order: ready jobs may be due, room under `max_running`.
const ELIGIBLE: &str = "SELECT tenant_id, weight, max_running, active, running, taken
    FROM queue_tenants
    WHERE active AND queued + retrying > 0 AND running < max_running AND next_run_at <= $1";

/// A tenant's queues with waiting jobs, by a skip scan of `jobs_ready` (one seek per queue),
/// or the queues a worker asked for.
const ALL_QUEUES: &str = "WITH RECURSIVE qs(queue) AS (
        (SELECT queue FROM jobs WHERE tenant_id = $1 AND status IN ('queued', 'retrying')
         ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT j.queue FROM jobs j
                WHERE j.tenant_id = $1 AND j.status IN ('queued', 'retrying')
                  AND j.queue > qs.queue ORDER BY j.queue LIMIT 1)
        FROM qs WHERE qs.queue IS NOT NULL)";
const SOME_QUEUES: &str = "WITH qs(queue) AS (SELECT DISTINCT unnest($8::text[]))";

/// Up to $3 of tenant $1's jobs due by $2, best first (priority descending, then `run_at`, then
/// enqueue order), marked running with the tokens $4, and the tenant's row updated, in one
/// statement: its counts, its weight $6 and `max_running` $7 as the caller knows them, and its
/// turn (when $5, a lease among all tenants): the turn passes once the tenant has taken its
/// weight in it, or fewer jobs than asked. One seek of `jobs_ready` per queue and priority
/// level: the tenant's backlog is never read. Rows another transaction holds are skipped,
/// never waited for.
fn take_sql(queues: &str) -> String {
    format!(
        "{queues},
         candidates AS (
             SELECT c.seq FROM qs CROSS JOIN generate_series(9, 0, -1) AS p(priority),
             LATERAL (SELECT j.seq, j.priority, j.run_at FROM jobs j
                      WHERE j.tenant_id = $1 AND j.queue = qs.queue AND j.priority = p.priority
                        AND j.status IN ('queued', 'retrying') AND j.run_at <= $2
                      ORDER BY j.run_at, j.seq LIMIT $3) c
             WHERE qs.queue IS NOT NULL
             ORDER BY c.priority DESC, c.run_at, c.seq LIMIT $3),
         locked AS (
             SELECT j.seq, j.priority, j.run_at, j.status AS was,
                    coalesce(u.events, 0) AS u0, coalesce(u.input_tokens, 0) AS u1,
                    coalesce(u.output_tokens, 0) AS u2, coalesce(u.cache_read_tokens, 0) AS u3,
                    coalesce(u.cache_write_tokens, 0) AS u4,
                    coalesce(u.reasoning_tokens, 0) AS u5,
                    coalesce(u.estimated_nanos, 0) AS u6, coalesce(u.billed_nanos, 0) AS u7
             FROM jobs j {USAGE_JOIN}
             WHERE j.seq IN (SELECT seq FROM candidates) AND j.status IN ('queued', 'retrying')
             FOR UPDATE OF j SKIP LOCKED),
         numbered AS (
             SELECT l.*, row_number() OVER (ORDER BY l.priority DESC, l.run_at, l.seq) AS n
             FROM locked l),
         taken AS (
             UPDATE jobs j SET status = 'running', attempts = j.attempts + 1,
                               lease_token = ($4::text[])[n.n],
                               lease_expires_at = $2 + j.lease_seconds * 1000000, updated_at = $2
             FROM numbered n WHERE j.seq = n.seq
             RETURNING {COLUMNS}, n.u0, n.u1, n.u2, n.u3, n.u4, n.u5, n.u6, n.u7, j.lease_token,
                       n.was),
         tally AS (
             SELECT count(*) AS n, count(*) FILTER (WHERE was = 'queued') AS queued FROM taken),
         counted AS (
             UPDATE queue_tenants q
             SET queued = q.queued - t.queued, retrying = q.retrying - (t.n - t.queued),
                 running = q.running + t.n,
                 taken = CASE WHEN NOT $5 THEN q.taken
                              WHEN q.taken + t.n >= $6 OR t.n < $3 THEN 0
                              ELSE q.taken + t.n END,
                 turn = CASE WHEN $5 AND (q.taken + t.n >= $6 OR t.n < $3)
                             THEN nextval('queue_turns') ELSE q.turn END,
                 weight = $6, max_running = $7, active = true
             FROM tally t WHERE q.tenant_id = $1 AND t.n > 0)
         SELECT * FROM taken"
    )
}

/// The earliest `run_at` of tenant $1's waiting jobs: one seek per queue and priority level.
fn next_run_at_sql() -> String {
    format!(
        "{ALL_QUEUES}
         SELECT min(f.run_at) FROM qs CROSS JOIN generate_series(0, 9) AS p(priority),
         LATERAL (SELECT j.run_at FROM jobs j
                  WHERE j.tenant_id = $1 AND j.queue = qs.queue AND j.priority = p.priority
                    AND j.status IN ('queued', 'retrying')
                  ORDER BY j.run_at LIMIT 1) f
         WHERE qs.queue IS NOT NULL"
    )
}

fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Leases up to `max_jobs` due jobs in one transaction and answers each with its lease token:
/// of `only`'s jobs (a service key), or fairly among every tenant (the admin token), in the
/// rotation all replicas share: the tenant with the turn takes up to its plan's weight, then
/// moves to the back, as `Schedule` does on SQLite. Never more than a tenant's `max_running`
/// at once across replicas: `running` is read and changed under the tenant row's lock.
/// `queues` limits the jobs to those queues. `tenants` is the caller's view of a tenant
/// (`None`: unknown or deleted); a row that disagrees with it is corrected. Returns at once,
/// possibly with no job: waiting for one (long polls) is the caller's.
pub async fn lease(
    c: &mut Client,
    only: Option<TenantId>,
    queues: Option<&[String]>,
    max_jobs: usize,
    now: Micros,
    tenants: &(dyn Fn(TenantId) -> Option<TenantInfo> + Sync),
) -> Result<Vec<(Job, String)>, ApiError> {
    let first = retrying!(lease_once(c, only, queues, max_jobs, now, tenants, None))?;
    match first {
        Ok(out) => Ok(out),
        // Every eligible tenant's row was locked: wait for the first in turn, in a new
        // transaction that holds nothing else.
        Err(busy) => Ok(retrying!(lease_once(
            c,
            only,
            queues,
            max_jobs,
            now,
            tenants,
            Some(busy)
        ))?
        .unwrap_or_default()),
    }
}

async fn lease_once(
    c: &mut Client,
    only: Option<TenantId>,
    queues: Option<&[String]>,
    max_jobs: usize,
    now: Micros,
    tenants: &(dyn Fn(TenantId) -> Option<TenantInfo> + Sync),
    wait_for: Option<uuid::Uuid>,
) -> Result<Result<Vec<(Job, String)>, uuid::Uuid>, Fail> {
    let tx = c.transaction().await?;
    // Skipping locked tenant rows keeps leasers from queueing behind each other. When every
    // eligible row is locked, the lease starts again waiting for the first in turn (`wait_for`)
    // instead of answering "nothing" while jobs are due. A transaction waits only for its first
    // row, so two leases never wait on each other: not even here, after a `SKIP LOCKED` pick
    // that found nothing, since such a pick may still hold rows that it locked and then found
    // no longer eligible (PostgreSQL keeps those locks); hence the new transaction.
    let skip = tx
        .prepare_cached(&format!(
            "{ELIGIBLE} AND tenant_id <> ALL($2) ORDER BY turn, tenant_id
             LIMIT 1 FOR UPDATE SKIP LOCKED"
        ))
        .await?;
    // The wait is for one row named beforehand, never `ORDER BY .. LIMIT 1 FOR UPDATE`, which
    // keeps the lock on a row that failed its recheck after the wait and goes on to wait for
    // the next: two leases doing so in different orders deadlock.
    let peek = tx
        .prepare_cached(&format!("{ELIGIBLE} ORDER BY turn, tenant_id LIMIT 1"))
        .await?;
    let one = tx
        .prepare_cached(&format!("{ELIGIBLE} AND tenant_id = $2 FOR UPDATE"))
        .await?;
    let take = tx
        .prepare_cached(&take_sql(match queues {
            Some(_) => SOME_QUEUES,
            None => ALL_QUEUES,
        }))
        .await?;
    let mut out: Vec<(Job, String)> = Vec::new();
    // Tenants that gave nothing in this transaction (none due, inactive, at their limit).
    let mut passed: Vec<uuid::Uuid> = Vec::new();
    let mut first = true;
    while out.len() < max_jobs {
        let row = match (only.map(TenantId::as_uuid).or(wait_for), first) {
            (Some(t), true) => match tx.query_opt(&one, &[&now, &t]).await? {
                // No longer eligible once its lock was ours: the others, without waiting.
                None if only.is_none() => tx.query_opt(&skip, &[&now, &passed]).await?,
                r => r,
            },
            _ if only.is_some() => None,
            _ => match tx.query_opt(&skip, &[&now, &passed]).await? {
                None if first && wait_for.is_none() => {
                    return Ok(match tx.query_opt(&peek, &[&now]).await? {
                        Some(r) => Err(r.get(0)),
                        None => Ok(Vec::new()),
                    });
                }
                r => r,
            },
        };
        first = false;
        let Some(row) = row else { break };
        let t: uuid::Uuid = row.get(0);
        let (weight, max_running, running, taken): (i64, i64, i64, i64) =
            (row.get(1), row.get(2), row.get(4), row.get(5));
        let stored = (weight, max_running, true);
        let known = tenants(TenantId::from_uuid(t));
        let now_known = known.map_or((weight, max_running, false), |i| {
            (i.weight(), i.max_running, i.active)
        });
        let (weight, max_running, active) = now_known;
        let room = if active {
            (max_running - running).max(0)
        } else {
            0
        };
        let mut want = (max_jobs - out.len()).min(room as usize);
        if only.is_none() {
            want = want.min((weight - taken).max(1) as usize);
        }
        let mut jobs = Vec::new();
        if want > 0 {
            let tokens: Vec<String> = (0..want).map(|_| token()).collect();
            let limit = want as i64;
            let all = only.is_none();
            let rows = match queues {
                Some(q) => {
                    let q = q.to_vec();
                    let p: [&(dyn ToSql + Sync); 8] =
                        [&t, &now, &limit, &tokens, &all, &weight, &max_running, &q];
                    tx.query(&take, &p).await?
                }
                None => {
                    let p: [&(dyn ToSql + Sync); 7] =
                        [&t, &now, &limit, &tokens, &all, &weight, &max_running];
                    tx.query(&take, &p).await?
                }
            };
            for r in &rows {
                let mut j = job(r)?;
                let was: String = r.get(27);
                j.status = Status::Running;
                jobs.push((j, r.get::<_, String>(26), was));
            }
        }
        let n = jobs.len();
        let short = n < want;
        // A queue that had fewer due jobs than asked: the tenant's earliest waiting job, so it
        // is not picked again before then. Not with a queue filter: other queues may be due.
        let next_run_at: Option<Micros> = if short && queues.is_none() {
            let st = tx.prepare_cached(&next_run_at_sql()).await?;
            tx.query_one(&st, &[&t]).await?.get(0)
        } else {
            None
        };
        // The rest of the row (the take's statement updated it when it took jobs): the caller's
        // view of the tenant when it took none, the earliest waiting job when it ran short.
        if next_run_at.is_some() || (n == 0 && now_known != stored) {
            let st = tx
                .prepare_cached(
                    "UPDATE queue_tenants SET weight = $2, max_running = $3, active = $4,
                         next_run_at = coalesce($5, next_run_at)
                     WHERE tenant_id = $1",
                )
                .await?;
            tx.execute(&st, &[&t, &weight, &max_running, &active, &next_run_at])
                .await?;
        }
        if n == 0 {
            passed.push(t);
        }
        let mut jobs: Vec<(Job, String)> = jobs.into_iter().map(|(j, k, _)| (j, k)).collect();
        jobs.sort_by(|a, b| {
            (b.0.priority.cmp(&a.0.priority))
                .then(a.0.run_at.cmp(&b.0.run_at))
                .then(a.0.seq.cmp(&b.0.seq))
        });
        out.extend(jobs);
    }
    tx.commit().await?;
    Ok(Ok(out))
}
