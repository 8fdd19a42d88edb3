//! Workers' side of the queue: leasing (fair across tenants, long-polling) and taking back
//! expired leases. Heartbeats, completes and fails are in `report`.
use super::job::{backoff, Job, Status};
use super::schedule::Schedule;
use super::{store, Queue, Worker};
use crate::error::ApiError;
use crate::events::{Kind, NewEvent};
use crate::tenancy::{Plan, TenantId};
use crate::time::Micros;
use rusqlite::Connection;
use serde_json::json;
use std::time::Duration;

pub const MAX_LEASE_JOBS: usize = 100;
pub const MAX_WAIT_SECONDS: u64 = 30;
/// Expired leases taken back per pass.
const RECLAIM_BATCH: usize = 500;

/// What a lease asks for, checked.
pub struct LeaseRequest {
    pub queues: Option<Vec<String>>,
    pub max_jobs: usize,
    pub wait: Duration,
}

/// A plan's share of each rotation.
pub fn weight(plan: Plan) -> u32 {
    match plan {
        Plan::Basic => 1,
        Plan::Pro => 2,
        Plan::Enterprise => 4,
    }
}

fn token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The job's end after a failed or expired attempt: `retrying` after the backoff, or `dead`
/// (with a `job.dead` event) once its attempts are spent or the worker said not to retry.
pub(super) fn fail_or_retry(
    c: &Connection,
    j: &Job,
    error: &str,
    retry: bool,
    now: Micros,
) -> Result<(Status, Micros), ApiError> {
    if retry && j.attempts < j.max_attempts {
        let at = now + backoff(j.attempts);
        store::finish(c, j.seq, Status::Retrying, Some(at), Some(error), None, now)?;
        return Ok((Status::Retrying, at));
    }
    store::finish(c, j.seq, Status::Dead, None, Some(error), None, now)?;
    if let Some(tenant) = TenantId::parse(&j.tenant_id) {
        crate::events::record(
            c,
            now,
            NewEvent::of(
                Kind::JobDead,
                tenant,
                format!(
                    "job {} is dead after {} attempts: {error}",
                    j.id, j.attempts
                ),
                json!({"job_id": j.id, "queue": j.queue, "kind": j.kind, "attempts": j.attempts,
                       "last_error": error}),
            ),
        )?;
    }
    Ok((Status::Dead, now))
}

impl Queue {
    /// Takes back every expired lease: each counts as a failed attempt. Returns how many.
    pub fn reclaim(&self) -> Result<usize, ApiError> {
        let now = self.now();
        let mut s = self.schedule();
        let n = self.db.write_blocking(|c| reclaim_in(c, &mut s, now))?;
        drop(s);
        if n > 0 {
            self.ready.notify_waiters();
        }
        Ok(n)
    }

    /// Leases up to `max_jobs` ready jobs, waiting up to `wait` for one when none is ready.
    pub async fn lease(
        &self,
        worker: &Worker<'_>,
        req: LeaseRequest,
    ) -> Result<Vec<(Job, String)>, ApiError> {
        self.require()?;
        let only = worker.tenant();
        if let Some(pg) = self.db.pg() {
            return self.lease_pg(pg, only, &req).await;
        }
        let deadline = tokio::time::Instant::now() + req.wait;
        let req = std::sync::Arc::new(req);
        loop {
            // Registered before looking (`enable`), so a job enqueued or a slot freed meanwhile
            // still wakes this lease.
            let woken = self.ready.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let this = self.clone();
            let r = req.clone();
            let got = tokio::task::spawn_blocking(move || this.lease_now(only, &r))
                .await
                .map_err(ApiError::internal)??;
            let now = tokio::time::Instant::now();
            if !got.is_empty() || now >= deadline {
                return Ok(got);
            }
            // Sleep until woken (an enqueue, a finished job freeing a running slot), the next
            // delayed job is due, or the deadline. Jobs already due that could not be leased
            // (their tenant at its running limit) wait for a wake-up, looked at again at most
            // every 250 ms rather than in a busy loop.
            let mut until = deadline;
            let next = self.schedule().next_due(req.queues.as_deref(), only);
            if let Some(at) = next {
                let ahead = at - self.now();
                let wait = match ahead > 0 {
                    true => Duration::from_micros(ahead as u64),
                    false => Duration::from_millis(250),
                };
                until = until.min(now + wait);
            }
            let _ = tokio::time::timeout_at(until.max(now + Duration::from_millis(1)), woken).await;
        }
    }

    /// One pass of leasing, under the schedule's lock and in one transaction.
    fn lease_now(
        &self,
        only: Option<TenantId>,
        req: &LeaseRequest,
    ) -> Result<Vec<(Job, String)>, ApiError> {
        let now = self.now();
        let mut s = self.schedule();
        let out = self.db.write_blocking(|c| {
            reclaim_in(c, &mut s, now)?;
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut out: Vec<(Job, String, Status)> = Vec::new();
            // Jobs taken in this pass, by tenant: not yet in the schedule's running counts.
            let mut pending: std::collections::HashMap<TenantId, usize> = Default::default();
            let mut idle = 0;
            while out.len() < req.max_jobs {
                let (tenant, taken) = match only {
                    Some(t) => (t, 0),
                    None => match s.front() {
                        Some(f) => f,
                        None => break,
                    },
                };
                let rounds = if only.is_some() { 1 } else { s.ring_len() };
                if idle >= rounds.max(1) {
                    break;
                }
                let (eligible, weight, room) = self.eligibility(&s, tenant, now, req);
                let room = room.saturating_sub(pending.get(&tenant).copied().unwrap_or(0));
                let eligible = eligible && room > 0;
                if !eligible {
                    idle += 1;
                    if only.is_none() {
                        s.skip();
                    }
                    continue;
                }
                let want = (req.max_jobs - out.len()).min(room).min(if only.is_some() {
                    usize::MAX
                } else {
                    (weight - taken) as usize
                });
                let jobs = take(&tx, &mut s, tenant, now, req, want)?;
                let n = jobs.len();
                *pending.entry(tenant).or_default() += n;
                out.extend(jobs);
                if only.is_some() {
                    break;
                }
                s.took(tenant, n as u32, weight, n < want);
                idle = if n == 0 { idle + 1 } else { 0 };
            }
            tx.commit()?;
            Ok(out)
        })?;
        Ok(out
            .into_iter()
            .map(|(j, token, was)| {
                if let Some(t) = TenantId::parse(&j.tenant_id) {
                    s.count(t, Some(was), Some(Status::Running));
                }
                (j, token)
            })
            .collect())
    }

    /// Whether `tenant` may take jobs now, its plan's weight, and how many more it may run.
    fn eligibility(
        &self,
        s: &Schedule,
        tenant: TenantId,
        now: Micros,
        req: &LeaseRequest,
    ) -> (bool, u32, usize) {
        let Some(t) = self.tenants.get(tenant).filter(|t| t.is_active()) else {
            return (false, 1, 0);
        };
        let max = i64::from(self.settings.get(tenant).settings.running_jobs(t.plan));
        let running = s.tenants.get(&tenant).map_or(0, |q| q.running());
        let room = (max - running).max(0) as usize;
        let due = !s.due(tenant, now, req.queues.as_deref()).is_empty();
        (due && room > 0, weight(t.plan), room)
    }
}

/// Takes up to `want` of a tenant's ready jobs, best first across its due queues, and marks
/// them running; corrects the schedule for queues that had fewer than asked.
fn take(
    c: &Connection,
    s: &mut Schedule,
    tenant: TenantId,
    now: Micros,
    req: &LeaseRequest,
    want: usize,
) -> Result<Vec<(Job, String, Status)>, ApiError> {
    if want == 0 {
        return Ok(Vec::new());
    }
    let id = tenant.to_string();
    let mut candidates = Vec::new();
    for q in s.due(tenant, now, req.queues.as_deref()) {
        let found = store::ready(c, &id, &q, now, want)?;
        if found.len() < want {
            s.correct(tenant, &q, store::next_run_at(c, &id, &q)?);
        }
        candidates.extend(found);
    }
    candidates.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then(a.run_at.cmp(&b.run_at))
            .then(a.seq.cmp(&b.seq))
    });
    candidates.truncate(want);
    let mut out = Vec::with_capacity(candidates.len());
    for mut j in candidates {
        let was = j.status;
        let t = token();
        let expires = now + j.lease_seconds * 1_000_000;
        store::mark_running(c, j.seq, &t, expires, now)?;
        s.lease_until(expires);
        j.attempts += 1;
        j.status = Status::Running;
        // Its usage so far (earlier attempts): one primary-key read on the same connection.
        j.usage = store::usage(c, &id, &j.id)?;
        j.lease_expires_at = Some(expires);
        j.updated_at = now;
        out.push((j, t, was));
    }
    // What was taken leaves the waiting set; a queue emptied by it is found on the next lease.
    Ok(out)
}

/// Takes back expired leases in `c` (its own transaction) and updates the schedule. Asks the
/// database only when the schedule says a lease may have expired.
fn reclaim_in(c: &mut Connection, s: &mut Schedule, now: Micros) -> Result<usize, ApiError> {
    if !s.may_have_expired(now) {
        return Ok(0);
    }
    let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let expired = store::expired(&tx, now, RECLAIM_BATCH)?;
    let mut moves = Vec::new();
    for j in &expired {
        let to = fail_or_retry(&tx, j, "the lease expired", true, now)?;
        moves.push((j, to));
    }
    tx.commit()?;
    // A full batch leaves more expired leases: the bound stays where it is (past) until then.
    if expired.len() < RECLAIM_BATCH {
        s.next_expiry = store::next_expiry(c)?;
    }
    for (j, (to, at)) in moves {
        if let Some(t) = TenantId::parse(&j.tenant_id) {
            s.count(t, Some(Status::Running), Some(to));
            if to == Status::Retrying {
                s.waiting(t, &j.queue, at);
            }
        }
    }
    Ok(expired.len())
}

impl Queue {
    /// Starts the thread that takes back expired leases every second (queue on only).
    pub fn start_reclaimer(&self, alive: std::sync::Weak<std::fs::File>) {
        if self.require().is_err() {
            return;
        }
        let (this, every) = (self.clone(), Duration::from_secs(1));
        crate::db::sweep::every(
            "queue-reclaimer",
            self.clock.clone(),
            every,
            alive,
            move |_, _| {
                if let Err(e) = this.reclaim() {
                    tracing::warn!(error = ?e, "taking back expired job leases failed");
                }
            },
        );
    }
}
