//! The queue's service on PostgreSQL (issue 19, docs/SCALE_OUT.md §5.1): every `Queue` method
//! branches here when `db.pg()` is Some. The store (`queue::pg`) keeps in its `queue_tenants`
//! rows what SQLite's process keeps in memory (`Schedule`), so that every replica leases from one
//! rotation; the schedule is not used here. What this replica remembers is only what it last
//! told the store of each tenant (plan, status, `max_running_jobs`), to tell it again only when
//! the caches change. Long polls wake in process on this replica's enqueues and reports and look
//! again every 100 ms for the other replicas'.
use super::job::{Job, NewJob, Status};
use super::lease::LeaseRequest;
use super::pg::{self as store, TenantInfo};
use super::report::Report;
use super::{Counts, Queue};
use crate::db::pg::{Client, Pg};
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::{Plan, TenantId};
use crate::time::Micros;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a long poll looks for jobs other replicas enqueued or freed.
const POLL: Duration = Duration::from_millis(100);
/// The rescue of expired leases in the lease path runs at most this often per replica, by the
/// app's clock or the wall clock (whichever moved first); the per-replica loop runs every second.
const HOUSEKEEPING: Micros = 100_000;
/// How often the per-replica loop takes back expired leases.
const RESCUE_EVERY: Duration = Duration::from_secs(1);

/// This replica's memory of the store, beside the connection pool.
#[derive(Default)]
pub(super) struct PgState {
    /// What this replica last told the store of each tenant (`set_tenant`, an enqueue).
    told: Mutex<HashMap<TenantId, TenantInfo>>,
    /// When the lease path last took back expired leases: the app's clock and the wall clock.
    housekept: Mutex<Option<(Micros, Instant)>>,
}

async fn client(pg: &Pg) -> Result<Client, ApiError> {
    pg.conn().await
}

impl PgState {
    pub(super) fn told(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, TenantInfo>> {
        self.told.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Queue {
    /// What the caches say of a tenant, as the store keeps it; `None`: unknown or deleted.
    pub(super) fn info(&self, t: TenantId) -> Option<TenantInfo> {
        let tenant = self.tenants.get(t)?;
        let max = self.settings.get(t).settings.running_jobs(tenant.plan);
        Some(TenantInfo {
            plan: tenant.plan,
            active: tenant.is_active(),
            max_running: i64::from(max),
        })
    }

    fn remember(&self, t: TenantId, info: TenantInfo) {
        self.pg_state.told().insert(t, info);
    }

    pub(super) async fn enqueue_pg(
        &self,
        pg: &Pg,
        tenant: TenantId,
        jobs: Vec<NewJob>,
        now: Micros,
    ) -> Result<Vec<(Job, bool)>, ApiError> {
        // The caller's tenant was just resolved from the cache; a deletion racing this request
        // stores its jobs on an inactive row, which no lease picks.
        let info = self.info(tenant).unwrap_or(TenantInfo {
            plan: Plan::Basic,
            active: false,
            max_running: 0,
        });
        let mut c = client(pg).await?;
        let out = store::enqueue(&mut c, tenant, &info, jobs, now).await?;
        self.remember(tenant, info);
        if out.iter().any(|(_, created)| *created) {
            self.ready.notify_waiters();
        }
        Ok(out)
    }

    pub(super) async fn get_pg(
        &self,
        pg: &Pg,
        tenant: TenantId,
        id: &str,
    ) -> Result<Job, ApiError> {
        store::get(&client(pg).await?, tenant, id).await
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn list_pg(
        &self,
        pg: &Pg,
        tenant: TenantId,
        status: Option<Status>,
        queue: Option<String>,
        kind: Option<String>,
        page: PageRequest<i64>,
    ) -> Result<Page<Job>, ApiError> {
        let c = client(pg).await?;
        let (q, k) = (queue.as_deref(), kind.as_deref());
        let rows = store::list(&c, tenant, status, q, k, page.after, page.fetch()).await?;
        Ok(Page::from_rows(rows, page.limit, |j| j.seq))
    }

    pub(super) async fn counts_pg(&self, pg: &Pg, tenant: TenantId) -> Result<Counts, ApiError> {
        store::counts(&client(pg).await?, tenant).await
    }

    pub(super) async fn overview_pg(&self, pg: &Pg) -> Result<Vec<(TenantId, Counts)>, ApiError> {
        let mut rows = store::overview(&client(pg).await?).await?;
        rows.retain(|(t, _)| self.tenants.get(*t).is_some());
        Ok(rows)
    }

    /// Cancel (`to` cancelled) or retry (`to` queued); a job queued again wakes long polls.
    pub(super) async fn transition_pg(
        &self,
        pg: &Pg,
        tenant: TenantId,
        id: &str,
        to: Status,
        now: Micros,
    ) -> Result<Job, ApiError> {
        let mut c = client(pg).await?;
        if to == Status::Cancelled {
            return store::cancel(&mut c, tenant, id, now).await;
        }
        let job = store::retry(&mut c, tenant, id, now).await?;
        self.ready.notify_waiters();
        Ok(job)
    }

    /// Leases as `Queue::lease` does, from the rotation every replica shares: each pass first
    /// takes back expired leases (at most every 100 ms per replica), then leases in one
    /// transaction; an empty pass waits for a wake-up in process or 100 ms, until the deadline.
    pub(super) async fn lease_pg(
        &self,
        pg: &Pg,
        only: Option<TenantId>,
        req: &LeaseRequest,
    ) -> Result<Vec<(Job, String)>, ApiError> {
        let deadline = tokio::time::Instant::now() + req.wait;
        if let Some(t) = only {
            self.tell(pg, t).await?;
        }
        loop {
            // Registered before looking, so an enqueue or a freed slot meanwhile still wakes it.
            let woken = self.ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            self.housekeeping(pg).await;
            let got = {
                let mut c = client(pg).await?;
                let tenants = |t: TenantId| self.info(t);
                let queues = req.queues.as_deref();
                store::lease(&mut c, only, queues, req.max_jobs, self.now(), &tenants).await?
            };
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            let _ = tokio::time::timeout_at(deadline.min(now + POLL), woken).await;
        }
    }

    /// Tells the store what the caches say of `t` when it differs from what this replica last
    /// told it: a lease skips a row the store holds inactive or at its limit, so a tenant
    /// reactivated or given a higher `max_running_jobs` would otherwise never be leased again.
    async fn tell(&self, pg: &Pg, t: TenantId) -> Result<(), ApiError> {
        let Some(info) = self.info(t) else {
            return Ok(());
        };
        let known = self.pg_state.told().get(&t) == Some(&info);
        if !known {
            store::set_tenant(&client(pg).await?, t, &info).await?;
            self.remember(t, info);
        }
        Ok(())
    }

    /// The lease path's share of the rescue: at most once per `HOUSEKEEPING` per replica. A
    /// failure is logged; the lease goes on (the per-replica loop runs it again).
    async fn housekeeping(&self, pg: &Pg) {
        let now = self.now();
        {
            let mut last = self
                .pg_state
                .housekept
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some((at, when)) = *last {
                if now - at < HOUSEKEEPING && when.elapsed() < POLL {
                    return;
                }
            }
            *last = Some((now, Instant::now()));
        }
        if let Err(e) = self.rescue_pg(pg, now).await {
            tracing::warn!(error = ?e, "taking back expired job leases failed");
        }
    }

    /// Takes back every expired lease (batches of `RESCUE_BATCH`; `SKIP LOCKED`, so replicas may
    /// run it together), then tells the store of tenants its rows hold back that the caches no
    /// longer would. Returns how many leases it took back.
    pub(super) async fn rescue_pg(&self, pg: &Pg, now: Micros) -> Result<usize, ApiError> {
        let mut c = client(pg).await?;
        let mut n = 0;
        loop {
            let k = store::rescue(&mut c, now, store::RESCUE_BATCH).await?;
            n += k;
            if (k as i64) < store::RESCUE_BATCH {
                break;
            }
        }
        for (t, stored) in store::held_back(&c).await? {
            match self.info(t) {
                Some(info) if (info.weight(), info.max_running, info.active) != stored => {
                    store::set_tenant(&c, t, &info).await?;
                    self.remember(t, info);
                }
                _ => {}
            }
        }
        if n > 0 {
            self.ready.notify_waiters();
        }
        Ok(n)
    }

    pub(super) async fn report_pg(
        &self,
        pg: &Pg,
        only: Option<TenantId>,
        id: &str,
        token: &str,
        report: Report,
        result: Option<String>,
    ) -> Result<Job, ApiError> {
        let now = self.now();
        let mut c = client(pg).await?;
        let job = match report {
            Report::Heartbeat { lease_seconds } => {
                store::heartbeat(&mut c, only, id, token, lease_seconds, now).await?
            }
            Report::Complete { .. } => {
                store::complete(&mut c, only, id, token, result.as_deref(), now).await?
            }
            Report::Fail { error, retry } => {
                store::fail(&mut c, only, id, token, &error, retry, now).await?
            }
        };
        if job.status != Status::Running {
            // A running slot is free, or the job waits again: this replica's long polls look.
            self.ready.notify_waiters();
        }
        Ok(job)
    }

    /// Starts this replica's rescue loop (queue on only): every second, on a thread and runtime
    /// of its own with its own pool `pool` (one connection), until the server stops (`alive`
    /// gone). Every replica runs one: the rescue skips what another replica is taking back.
    pub fn start_rescuer(&self, pool: Pg, alive: std::sync::Weak<std::fs::File>) {
        if self.require().is_err() {
            return;
        }
        let this = self.clone();
        let spawned = crate::db::pg::spawn_task("queue-rescuer", async move {
            while alive.strong_count() > 0 {
                if let Err(e) = this.rescue_pg(&pool, this.now()).await {
                    tracing::warn!(error = ?e, "taking back expired job leases failed");
                }
                tokio::time::sleep(RESCUE_EVERY).await;
            }
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the queue's rescuer did not start");
        }
    }
}
