//! The hosted job queue's PostgreSQL store, correct with several replicas on one database
//! (issue 19, docs/SCALE_OUT.md §5.1). It mirrors `queue::store` plus what SQLite's process keeps
//! in memory (`queue::schedule`): the rotation among tenants and the counts by status live in a
//! `queue_tenants` row per tenant (migrations/postgres/0011), changed in the same transaction as
//! the jobs, so every replica leases from the same rotation and counts the same jobs.
//!
//! Lock order (§3.3), so no two transactions wait on each other in a cycle:
//! - a lease takes tenant rows and jobs with `SKIP LOCKED`; when every eligible tenant row is
//!   locked it waits for one, as the first statement of a new transaction, and never again;
//! - enqueue, cancel, retry and reports lock their job rows first and their one tenant row last;
//! - the rescue of expired leases skips locked jobs, then locks tenant rows in `tenant_id` order.
//!
//! What the service knows from its caches (a tenant's plan, status and `max_running_jobs`) is
//! passed in as a `TenantInfo`; the store keeps the last view it was told in the tenant's row
//! and a lease corrects the row when the caller's view differs; a change that would make a
//! tenant leasable again (reactivated, limit raised) reaches the row through `set_tenant`.
//! Input is checked by the caller (`NewJob::parse_body`, `Queue::report`'s bounds) before it
//! reaches these functions; `now` is the caller's clock, as on SQLite.
mod enqueue;
mod lease;
mod read;
mod report;
mod rescue;

pub use enqueue::{cancel, enqueue, retry};
pub use lease::lease;
pub use read::{counts, get, held_back, list, overview, rebuild, set_tenant};
pub use report::{complete, fail, heartbeat};
pub use rescue::{rescue, RESCUE_BATCH};

use super::job::{Job, Status};
use crate::db::pg::describe;
use crate::error::ApiError;
use crate::tenancy::Plan;
use crate::time::Micros;
use crate::usage::money::Nanousd;
use crate::usage::rollup::Totals;
use tokio_postgres::error::SqlState;
use tokio_postgres::Row;

/// What the caller knows of a tenant, from its caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TenantInfo {
    pub plan: Plan,
    pub active: bool,
    /// The tenant's `max_running_jobs` (`Settings::running_jobs(plan)`).
    pub max_running: i64,
}

impl TenantInfo {
    pub fn weight(&self) -> i64 {
        i64::from(super::lease::weight(self.plan))
    }
}

/// A job's columns, then its usage (see `usage_from`), as every read here returns them.
const COLUMNS: &str = "j.seq, j.id::text, j.tenant_id::text, j.queue, j.kind, j.payload, \
    j.priority, j.status, j.attempts, j.max_attempts, j.lease_seconds, j.run_at, \
    j.lease_expires_at, j.idempotency_key, j.last_error, j.result, j.created_at, j.updated_at";
const USAGE: &str = "coalesce(u.events, 0), coalesce(u.input_tokens, 0), \
    coalesce(u.output_tokens, 0), coalesce(u.cache_read_tokens, 0), \
    coalesce(u.cache_write_tokens, 0), coalesce(u.reasoning_tokens, 0), \
    coalesce(u.estimated_nanos, 0), coalesce(u.billed_nanos, 0)";
/// The job's all-time usage row (dim `job_id`), as `store::usage` reads it on SQLite.
const USAGE_JOIN: &str = "LEFT JOIN usage_rollups u ON u.tenant_id = j.tenant_id \
    AND u.dim = 'job_id' AND u.day = 0 AND u.key = j.id::text";

/// Failures inside a transaction: the database's (some worth a retry) or the contract's.
pub(crate) enum Fail {
    Pg(tokio_postgres::Error),
    Api(ApiError),
    /// A race another replica won between two statements: the transaction runs again.
    Again(&'static str),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Fail {
        Fail::Pg(e)
    }
}

impl From<ApiError> for Fail {
    fn from(e: ApiError) -> Fail {
        Fail::Api(e)
    }
}

impl Fail {
    /// A deadlock or serialization failure: PostgreSQL rolled the transaction back and running
    /// it again is correct. Deadlocks are possible only between batches that insert the same
    /// idempotency keys in different orders.
    fn retryable(&self) -> bool {
        match self {
            Fail::Pg(e) => [
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::T_R_SERIALIZATION_FAILURE,
            ]
            .iter()
            .any(|s| e.code() == Some(s)),
            Fail::Again(_) => true,
            Fail::Api(_) => false,
        }
    }

    fn api(self) -> ApiError {
        match self {
            Fail::Pg(e) => ApiError::internal(format!("postgres: {}", describe(&e))),
            Fail::Api(e) => e,
            Fail::Again(what) => ApiError::internal(what),
        }
    }
}

/// Runs a transaction body again after a deadlock or serialization failure, a few times.
macro_rules! retrying {
    ($body:expr) => {{
        let mut tries = 0;
        loop {
            match $body.await {
                Err(e) if tries < 5 && e.retryable() => tries += 1,
                r => break r.map_err(Fail::api),
            }
        }
    }};
}
pub(crate) use retrying;

fn pg(e: tokio_postgres::Error) -> ApiError {
    Fail::Pg(e).api()
}

pub(crate) fn not_found() -> ApiError {
    ApiError::NotFound("no such job".into())
}

/// A job id as the database stores it; a string that is no UUID names no job.
fn job_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(id).map_err(|_| not_found())
}

fn raw(text: String) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    serde_json::value::RawValue::from_string(text).map_err(ApiError::internal)
}

/// A job from `COLUMNS` then `USAGE`, starting at column 0.
fn job(r: &Row) -> Result<Job, ApiError> {
    let status: String = r.try_get(7).map_err(pg)?;
    let get = |i| r.try_get::<_, i64>(i).map_err(pg);
    Ok(Job {
        seq: get(0)?,
        id: r.try_get(1).map_err(pg)?,
        tenant_id: r.try_get(2).map_err(pg)?,
        queue: r.try_get(3).map_err(pg)?,
        kind: r.try_get(4).map_err(pg)?,
        payload: raw(r.try_get(5).map_err(pg)?)?,
        priority: get(6)?,
        status: Status::parse(&status).unwrap_or(Status::Dead),
        attempts: get(8)?,
        max_attempts: get(9)?,
        lease_seconds: get(10)?,
        run_at: get(11)?,
        lease_expires_at: r.try_get(12).map_err(pg)?,
        idempotency_key: r.try_get(13).map_err(pg)?,
        last_error: r.try_get(14).map_err(pg)?,
        result: r
            .try_get::<_, Option<String>>(15)
            .map_err(pg)?
            .map(raw)
            .transpose()?,
        created_at: get(16)?,
        updated_at: get(17)?,
        usage: Totals {
            events: get(18)?,
            input_tokens: get(19)?,
            output_tokens: get(20)?,
            cache_read_tokens: get(21)?,
            cache_write_tokens: get(22)?,
            reasoning_tokens: get(23)?,
            estimated: Nanousd::from_nanos(get(24)?),
            billed: Nanousd::from_nanos(get(25)?),
        },
    })
}

/// How one transaction changes a tenant's counts, and the `run_at` of jobs it made waiting.
#[derive(Default)]
struct Move {
    /// By `Status::ALL`'s order: queued, running, retrying, succeeded, dead, cancelled.
    delta: [i64; 6],
    /// The earliest `run_at` among jobs that became waiting (queued or retrying).
    waiting_at: Option<Micros>,
}

impl Move {
    fn step(&mut self, from: Option<Status>, to: Option<Status>) {
        let at = |s| Status::ALL.iter().position(|x| *x == s).unwrap_or(0);
        if let Some(s) = from {
            self.delta[at(s)] -= 1;
        }
        if let Some(s) = to {
            self.delta[at(s)] += 1;
        }
    }

    fn waiting(&mut self, at: Micros) {
        self.waiting_at = Some(self.waiting_at.map_or(at, |w| w.min(at)));
    }
}

/// Applies a `Move` to the tenant's row, under its lock: the last statement of a transaction
/// that changed the tenant's jobs. A tenant whose waiting jobs went from none to some joins the
/// back of the rotation.
async fn apply_move(
    tx: &deadpool_postgres::Transaction<'_>,
    tenant: uuid::Uuid,
    m: &Move,
) -> Result<(), Fail> {
    let st = tx
        .prepare_cached(
            "UPDATE queue_tenants q SET
                 queued = q.queued + $2, running = q.running + $3, retrying = q.retrying + $4,
                 succeeded = q.succeeded + $5, dead = q.dead + $6, cancelled = q.cancelled + $7,
                 next_run_at = CASE WHEN $8::bigint IS NULL THEN q.next_run_at
                                    WHEN q.queued + q.retrying = 0 THEN $8
                                    ELSE least(q.next_run_at, $8) END,
                 turn = CASE WHEN $8::bigint IS NOT NULL AND q.queued + q.retrying = 0
                             THEN nextval('queue_turns') ELSE q.turn END,
                 taken = CASE WHEN $8::bigint IS NOT NULL AND q.queued + q.retrying = 0
                              THEN 0 ELSE q.taken END
             WHERE q.tenant_id = $1",
        )
        .await?;
    let d = &m.delta;
    tx.execute(
        &st,
        &[
            &tenant,
            &d[0],
            &d[1],
            &d[2],
            &d[3],
            &d[4],
            &d[5],
            &m.waiting_at,
        ],
    )
    .await?;
    Ok(())
}
