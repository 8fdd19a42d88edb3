//! Workers' reports on their leases: heartbeat, complete and fail, with the lease token. One
//! thread commits them: it takes every report waiting at that moment into one transaction
//! (group commit, as the usage writer does for events), so workers finishing together share a
//! commit and one pass through the schedule's and the writer's locks. A report is answered
//! only after its commit.
use super::job::{object_text, Job, Status, MAX_ERROR_CHARS, MAX_RESULT_BYTES};
use super::lease::fail_or_retry;
use super::schedule::Schedule;
use super::{not_found, store, Queue, Worker};
use crate::clock::Clock;
use crate::db::Db;
use crate::error::ApiError;
use crate::tenancy::TenantId;
use crate::time::{to_micros, Micros};
use rusqlite::Connection;
use std::sync::{mpsc, Arc, Mutex};

/// Reports per commit at most; more wait for the next one.
const MAX_PER_COMMIT: usize = 256;

/// What a worker does with its lease.
pub enum Report {
    Heartbeat { lease_seconds: Option<i64> },
    Complete { result: Option<serde_json::Value> },
    Fail { error: String, retry: bool },
}

/// A report on its way to the committing thread, checked.
struct Pending {
    only: Option<TenantId>,
    id: String,
    token: String,
    report: Report,
    /// A complete's result as stored text.
    result: Option<String>,
    reply: tokio::sync::oneshot::Sender<Result<Status, ApiError>>,
}

/// The sending side of the committing thread; the thread ends when every sender is gone.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Pending>,
}

/// What a committed report changes in the schedule.
struct Move {
    tenant: Option<TenantId>,
    queue: String,
    to: Status,
    at: Micros,
}

impl Reporter {
    pub fn start(
        db: Db,
        schedule: Arc<Mutex<Schedule>>,
        clock: Arc<dyn Clock>,
        ready: Arc<tokio::sync::Notify>,
    ) -> Reporter {
        let (tx, rx) = mpsc::channel::<Pending>();
        // On PostgreSQL each report is its own transaction (`on_pg`): no thread to start.
        if db.pg().is_some() {
            return Reporter { tx };
        }
        let spawned = std::thread::Builder::new()
            .name("queue-reports".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_PER_COMMIT {
                        match rx.try_recv() {
                            Ok(p) => batch.push(p),
                            Err(_) => break,
                        }
                    }
                    let results = match commit(&db, &schedule, clock.as_ref(), &batch) {
                        Ok(results) => results,
                        Err(e) => {
                            tracing::error!(error = ?e, reports = batch.len(), "committing job reports failed");
                            batch.iter().map(|_| Err(ApiError::internal("committing job reports failed"))).collect()
                        }
                    };
                    let freed = results.iter().any(|r| matches!(r, Ok(s) if *s != Status::Running));
                    for (p, r) in batch.into_iter().zip(results) {
                        let _ = p.reply.send(r);
                    }
                    if freed {
                        // A running slot is free, or a job is back in the queue: leases look.
                        ready.notify_waiters();
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the queue's report thread did not start");
        }
        Reporter { tx }
    }
}

/// Applies every report in one transaction; a report refused (404, 409 `lease_lost`) changes
/// nothing and does not stop the others. Only a database fault fails them all.
fn commit(
    db: &Db,
    schedule: &Mutex<Schedule>,
    clock: &dyn Clock,
    batch: &[Pending],
) -> Result<Vec<Result<Status, ApiError>>, ApiError> {
    let mut s = schedule.lock().unwrap_or_else(|p| p.into_inner());
    db.write_blocking(|c| {
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now = to_micros(clock.now());
        let mut results = Vec::with_capacity(batch.len());
        let mut moves = Vec::new();
        for p in batch {
            match apply(&tx, &mut s, p, now) {
                Ok(m) => {
                    results.push(Ok(m.to));
                    moves.push(m);
                }
                Err(e @ ApiError::Internal(_)) => return Err(e),
                Err(e) => results.push(Err(e)),
            }
        }
        tx.commit()?;
        for m in moves.into_iter().filter(|m| m.to != Status::Running) {
            if let Some(t) = m.tenant {
                s.count(t, Some(Status::Running), Some(m.to));
                if m.to == Status::Retrying {
                    s.waiting(t, &m.queue, m.at);
                }
            }
        }
        Ok(results)
    })
}

/// One report: the live lease first (the common case, one read); only without it does the
/// job's existence decide between 404 and 409.
fn apply(c: &Connection, s: &mut Schedule, p: &Pending, now: Micros) -> Result<Move, ApiError> {
    let held = store::leased(c, &p.id, &p.token, now)?
        .filter(|j| p.only.is_none_or(|t| j.tenant_id == t.to_string()));
    let Some(j) = held else {
        let found = match p.only {
            Some(t) => store::get(c, &t.to_string(), &p.id)?,
            None => store::get_any(c, &p.id)?,
        };
        return Err(match found {
            None => not_found(),
            Some(_) => ApiError::LeaseLost(
                "this lease_token does not hold the job's lease (expired, finished, or another worker's)".into(),
            ),
        });
    };
    let (to, at) = match &p.report {
        Report::Heartbeat { lease_seconds } => {
            let expires = now + lease_seconds.unwrap_or(j.lease_seconds) * 1_000_000;
            store::extend(c, j.seq, expires, now)?;
            // A shorter lease than the one it replaces may end first.
            s.lease_until(expires);
            (Status::Running, now)
        }
        Report::Complete { .. } => {
            let result = p.result.as_deref();
            store::finish(c, j.seq, Status::Succeeded, None, None, result, now)?;
            (Status::Succeeded, now)
        }
        Report::Fail { error, retry } => fail_or_retry(c, &j, error, *retry, now)?,
    };
    Ok(Move {
        tenant: TenantId::parse(&j.tenant_id),
        queue: j.queue,
        to,
        at,
    })
}

impl Queue {
    /// A heartbeat, complete or fail on a leased job; 409 `lease_lost` unless `token` holds
    /// its live lease. Answered after its commit, with the job as it then stands.
    pub async fn report(
        &self,
        worker: &Worker<'_>,
        id: String,
        token: String,
        report: Report,
    ) -> Result<Job, ApiError> {
        self.require()?;
        if let Report::Heartbeat {
            lease_seconds: Some(n),
        } = report
        {
            if !(5..=3600).contains(&n) {
                return Err(ApiError::InvalidRequest(
                    "lease_seconds must be from 5 to 3600".into(),
                ));
            }
        }
        let result = match &report {
            Report::Complete { result: Some(r) } => {
                Some(object_text(r.clone(), "result", MAX_RESULT_BYTES)?)
            }
            _ => None,
        };
        if let Report::Fail { error, .. } = &report {
            if error.is_empty() || error.chars().count() > MAX_ERROR_CHARS {
                return Err(ApiError::InvalidRequest(format!(
                    "error must be 1 to {MAX_ERROR_CHARS} characters"
                )));
            }
        }
        if let Some(pg) = self.db.pg() {
            let only = worker.tenant();
            return self.report_pg(pg, only, &id, &token, report, result).await;
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        let pending = Pending {
            only: worker.tenant(),
            id: id.clone(),
            token,
            report,
            result,
            reply,
        };
        self.reports
            .tx
            .send(pending)
            .map_err(|_| ApiError::internal("the queue's report thread has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the queue's report thread dropped a report"))??;
        // The job as it now stands, read on the pool, outside both locks.
        self.db
            .run(move |c| {
                let mut j = store::get_any(c, &id)?.ok_or_else(not_found)?;
                j.usage = store::usage(c, &j.tenant_id, &j.id)?;
                Ok(j)
            })
            .await
    }
}
