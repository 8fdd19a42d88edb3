//! The hosted job queue (`ENABLE_HOSTED_QUEUE`): durable jobs per tenant, leased by workers
//! fairly across tenants (see `schedule`), with heartbeats, retries with backoff and a `dead`
//! end. Every change of a job is one transaction; the in-memory schedule follows each commit.
pub mod job;
pub mod lease;
mod on_pg;
pub mod pg;
pub mod report;
pub mod schedule;
pub mod store;

use crate::auth::{Action, AdminProof};
use crate::clock::Clock;
use crate::config::{Feature, Flags};
use crate::db::Db;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::settings::SettingsCache;
use crate::tenancy::{TenantCache, TenantCtx, TenantId};
use crate::time::{to_micros, Micros};
use job::{Job, NewJob, Status};
use schedule::Schedule;
use serde_json::Value;
use std::sync::{Arc, Mutex, MutexGuard};

/// Who calls a worker operation: a service key (its tenant's jobs) or the admin token (every
/// tenant's).
pub enum Worker<'a> {
    Admin(&'a AdminProof),
    Tenant(&'a TenantCtx),
}

impl Worker<'_> {
    fn tenant(&self) -> Option<TenantId> {
        match self {
            Worker::Admin(_) => None,
            Worker::Tenant(ctx) => Some(ctx.id()),
        }
    }
}

#[derive(Clone)]
pub struct Queue {
    db: Db,
    clock: Arc<dyn Clock>,
    flags: Flags,
    schedule: Arc<Mutex<Schedule>>,
    /// Woken when a job becomes ready, for long-polling leases.
    ready: Arc<tokio::sync::Notify>,
    tenants: Arc<TenantCache>,
    settings: Arc<SettingsCache>,
    /// The thread that commits workers' reports together (SQLite).
    reports: report::Reporter,
    /// What the PostgreSQL path remembers (see `on_pg`).
    pg_state: Arc<on_pg::PgState>,
}

/// Counts of a tenant's jobs by status, from memory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Counts {
    pub queued: i64,
    pub running: i64,
    pub retrying: i64,
    pub succeeded: i64,
    pub dead: i64,
    pub cancelled: i64,
}

impl Counts {
    fn of(c: &[i64; 6]) -> Counts {
        Counts {
            queued: c[0],
            running: c[1],
            retrying: c[2],
            succeeded: c[3],
            dead: c[4],
            cancelled: c[5],
        }
    }
}

impl Queue {
    /// Loads the schedule (waiting queues, counts) from the database.
    pub fn load(
        db: Db,
        clock: Arc<dyn Clock>,
        flags: Flags,
        tenants: Arc<TenantCache>,
        settings: Arc<SettingsCache>,
    ) -> Result<Queue, String> {
        let mut s = Schedule::default();
        // On PostgreSQL the store's `queue_tenants` rows are the schedule (see `on_pg`).
        if db.pg().is_none() {
            let c = db.conn().map_err(|e| format!("{e:?}"))?;
            let err = |e: rusqlite::Error| format!("loading the job queue: {e}");
            for (tenant, queue, at) in store::waiting(&c).map_err(err)? {
                if let Some(t) = TenantId::parse(&tenant) {
                    s.waiting(t, &queue, at);
                }
            }
            for (tenant, status, n) in store::counts(&c).map_err(err)? {
                if let (Some(t), Ok(st)) = (TenantId::parse(&tenant), Status::parse(&status)) {
                    s.tenants.entry(t).or_default().counts[schedule::index(st)] = n;
                }
            }
            s.next_expiry = store::next_expiry(&c).map_err(err)?;
        }
        let (schedule, ready) = (
            Arc::new(Mutex::new(s)),
            Arc::new(tokio::sync::Notify::new()),
        );
        let reports =
            report::Reporter::start(db.clone(), schedule.clone(), clock.clone(), ready.clone());
        Ok(Queue {
            db,
            clock,
            flags,
            schedule,
            ready,
            tenants,
            settings,
            reports,
            pg_state: Arc::default(),
        })
    }

    fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    fn require(&self) -> Result<(), ApiError> {
        self.flags.require(Feature::HostedQueue)
    }

    fn schedule(&self) -> MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Enqueues one job or a batch in one transaction; a job whose idempotency key names a
    /// job of the last 24 hours is that job (`false`: not created).
    pub async fn enqueue(
        &self,
        ctx: &TenantCtx,
        body: Value,
    ) -> Result<(Vec<(Job, bool)>, bool), ApiError> {
        self.require()?;
        ctx.require(Action::Ingest)?;
        let now = self.now();
        let (jobs, batch) = NewJob::parse_body(body, now)?;
        if let Some(pg) = self.db.pg() {
            return Ok((self.enqueue_pg(pg, ctx.id(), jobs, now).await?, batch));
        }
        let (tenant, id) = (ctx.db_id(), ctx.id());
        let this = self.clone();
        // The schedule's lock before the database's writer, as leases take them: the other
        // order deadlocks against a concurrent lease.
        let out = tokio::task::spawn_blocking(move || {
            let mut s = this.schedule();
            this.db.write_blocking(|c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut out = Vec::with_capacity(jobs.len());
                for j in jobs {
                    if let Some(key) = &j.idempotency_key {
                        if let Some(existing) = store::by_idempotency_key(&tx, &tenant, key, now)? {
                            out.push((existing, false));
                            continue;
                        }
                    }
                    // Time-ordered (UUIDv7): a new id lands at the end of the `id` index instead
                    // of on a random page of it, as a v4 id would.
                    let job_id = uuid::Uuid::now_v7().to_string();
                    let run_at = j.run_at.unwrap_or(now);
                    let seq = store::insert(&tx, &job_id, &tenant, &j, run_at, now)?;
                    out.push((
                        job::created(seq, job_id, tenant.clone(), j, run_at, now),
                        true,
                    ));
                }
                tx.commit()?;
                for (j, created) in &out {
                    if *created {
                        s.waiting(id, &j.queue, j.run_at);
                        s.count(id, None, Some(Status::Queued));
                    }
                }
                Ok(out)
            })
        })
        .await
        .map_err(ApiError::internal)??;
        self.ready.notify_waiters();
        Ok((out, batch))
    }

    pub async fn get(&self, ctx: &TenantCtx, id: String) -> Result<Job, ApiError> {
        self.require()?;
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.get_pg(pg, ctx.id(), &id).await;
        }
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let mut j = store::get(c, &tenant, &id)?.ok_or_else(not_found)?;
                j.usage = store::usage(c, &tenant, &j.id)?;
                Ok(j)
            })
            .await
    }

    pub async fn list(
        &self,
        ctx: &TenantCtx,
        status: Option<Status>,
        queue: Option<String>,
        kind: Option<String>,
        page: PageRequest<i64>,
    ) -> Result<Page<Job>, ApiError> {
        self.require()?;
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.list_pg(pg, ctx.id(), status, queue, kind, page).await;
        }
        let (tenant, limit) = (ctx.db_id(), page.limit);
        let rows = self
            .db
            .run(move |c| {
                let mut rows = store::list(
                    c,
                    &tenant,
                    status,
                    queue.as_deref(),
                    kind.as_deref(),
                    page.after,
                    page.fetch(),
                )?;
                for j in &mut rows {
                    j.usage = store::usage(c, &tenant, &j.id)?;
                }
                Ok(rows)
            })
            .await?;
        Ok(Page::from_rows(rows, limit, |j| j.seq))
    }

    /// A tenant's counts by status, from memory (on PostgreSQL, its `queue_tenants` row).
    pub async fn counts(&self, ctx: &TenantCtx) -> Result<Counts, ApiError> {
        self.require()?;
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.counts_pg(pg, ctx.id()).await;
        }
        let s = self.schedule();
        Ok(Counts::of(
            &s.tenants
                .get(&ctx.id())
                .map(|t| t.counts)
                .unwrap_or_default(),
        ))
    }

    /// Every tenant's counts, for the operator.
    pub async fn overview(&self, _: &AdminProof) -> Result<Vec<(TenantId, Counts)>, ApiError> {
        self.require()?;
        if let Some(pg) = self.db.pg() {
            return self.overview_pg(pg).await;
        }
        let s = self.schedule();
        let mut out: Vec<(TenantId, Counts)> = s
            .tenants
            .iter()
            .filter(|(id, t)| self.tenants.get(**id).is_some() && t.counts.iter().any(|n| *n != 0))
            .map(|(id, t)| (*id, Counts::of(&t.counts)))
            .collect();
        out.sort_by_key(|(id, _)| id.to_string());
        Ok(out)
    }

    /// `queued` or `retrying` to `cancelled`; 409 from any other status.
    pub async fn cancel(&self, ctx: &TenantCtx, id: String) -> Result<Job, ApiError> {
        self.transition(
            ctx,
            id,
            &[Status::Queued, Status::Retrying],
            Status::Cancelled,
        )
        .await
    }

    /// `dead` or `cancelled` back to `queued`, to run now with its attempts reset.
    pub async fn retry(&self, ctx: &TenantCtx, id: String) -> Result<Job, ApiError> {
        self.transition(ctx, id, &[Status::Dead, Status::Cancelled], Status::Queued)
            .await
    }

    async fn transition(
        &self,
        ctx: &TenantCtx,
        id: String,
        from: &'static [Status],
        to: Status,
    ) -> Result<Job, ApiError> {
        self.require()?;
        ctx.require(Action::Ingest)?;
        if let Some(pg) = self.db.pg() {
            return self.transition_pg(pg, ctx.id(), &id, to, self.now()).await;
        }
        let (tenant, tid, now, this) = (ctx.db_id(), ctx.id(), self.now(), self.clone());
        // The schedule's lock first, as in `enqueue`.
        let job = tokio::task::spawn_blocking(move || {
            let mut s = this.schedule();
            this.db.write_blocking(|c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let mut j = store::get(&tx, &tenant, &id)?.ok_or_else(not_found)?;
                if !from.contains(&j.status) {
                    return Err(ApiError::Conflict(format!(
                        "the job is {}; only a job that is {} can be {}",
                        j.status.as_str(),
                        from.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" or "),
                        if to == Status::Cancelled {
                            "cancelled"
                        } else {
                            "retried"
                        }
                    )));
                }
                let run_at = (to == Status::Queued).then_some(now);
                store::set_status(&tx, j.seq, to, run_at, to == Status::Queued, now)?;
                tx.commit()?;
                s.count(tid, Some(j.status), Some(to));
                if to == Status::Queued {
                    s.waiting(tid, &j.queue, now);
                    j.run_at = now;
                    j.attempts = 0;
                }
                j.status = to;
                j.updated_at = now;
                j.usage = store::usage(&*c, &tenant, &j.id)?;
                Ok(j)
            })
        })
        .await
        .map_err(ApiError::internal)??;
        if to == Status::Queued {
            self.ready.notify_waiters();
        }
        Ok(job)
    }

    /// A deleted tenant's jobs are gone with it.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.schedule().forget(tenant);
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("no such job".into())
}
