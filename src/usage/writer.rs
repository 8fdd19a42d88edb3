//! The one writer of usage events. Requests hand it priced events and wait; it takes every
//! request waiting at that moment into one transaction (group commit), inserting events
//! idempotently, adding them to the rollups, recording unknown-model and limit-crossing events,
//! and answers each request only after the commit: a 201 means the events are durable.
use super::counters::{Counters, Windows};
use super::crossings::{crossing_events, unknown_model_event};
use super::money::Nanousd;
use super::priced::{aggregate, CostSource, Priced, Rollups};
use super::rollup::{day_of, Totals};
use super::store;
use crate::error::ApiError;
use crate::limits;
use crate::settings::cache::Current;
use crate::tenancy::TenantId;
use crate::time::Micros;
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{mpsc, Arc};

/// The instant before which events fall in a billing period whose statement is final, or `None`
/// (billing off). Billing supplies it; the writer asks inside each commit's write transaction,
/// so an event is either committed before its period is finalized or refused after.
pub type ClosedBefore = Arc<dyn Fn() -> Option<Micros> + Send + Sync>;

/// A commit takes at most this many events; more wait for the next one.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

/// One request's events, priced, for one tenant under one settings version.
pub struct Batch {
    pub tenant: TenantId,
    pub settings: Arc<Current>,
    pub events: Vec<Priced>,
    /// "Now" for limit windows and `created_at`.
    pub now: Micros,
}

/// A batch as the writer thread receives it, with its deltas summed and its answer channel.
pub struct Job {
    pub tenant: TenantId,
    pub settings: Arc<Current>,
    pub events: Vec<Priced>,
    pub rollups: Rollups,
    /// The sum of every event's amounts, duplicates included; it fits in an i64 (`submit`
    /// refuses a request whose sum does not).
    pub bound: Totals,
    pub now: Micros,
    pub reply: tokio::sync::oneshot::Sender<Result<Outcome, ApiError>>,
}

pub(super) enum Message {
    Job(Job),
    /// Answered once every job sent before it is committed.
    Flush(tokio::sync::oneshot::Sender<()>),
}

#[derive(Debug)]
pub struct Recorded {
    pub id: String,
    pub event_id: Option<String>,
    pub estimated: Nanousd,
    pub billed: Nanousd,
    pub duplicate: bool,
}

#[derive(Debug)]
pub struct Outcome {
    pub accepted: usize,
    pub duplicates: usize,
    pub events: Vec<Recorded>,
    pub limits: limits::Status,
    /// What this request added, for metrics.
    pub added: Totals,
}

impl Outcome {
    /// A job's outcome before any of its events is decided.
    pub(super) fn start(job: &Job) -> Outcome {
        let none = Totals::default();
        Outcome {
            accepted: 0,
            duplicates: 0,
            events: Vec::with_capacity(job.events.len()),
            limits: limits::evaluate(&job.settings.settings, &none, &none),
            added: Totals::default(),
        }
    }

    /// Event `p` was already recorded as `first`.
    pub(super) fn duplicate(&mut self, p: &Priced, first: store::FirstRecorded) {
        self.duplicates += 1;
        self.events.push(Recorded {
            id: first.id,
            event_id: p.event.event_id.clone(),
            estimated: first.estimated,
            billed: first.billed,
            duplicate: true,
        });
    }

    /// Event `p` (the request's `i`th) is new: adds it to `w`, or refuses the whole request
    /// when the tenant's all-time totals could not hold it.
    pub(super) fn accept(&mut self, i: usize, p: &Priced, w: &mut Windows) -> Result<(), ApiError> {
        let t = p.totals();
        if !w.add(p.day, &t) {
            return Err(ApiError::InvalidRequest(format!(
                "events[{i}] would take the tenant's usage totals past what can be recorded \
                 (about 9.2 billion USD or 9.2 × 10^18 tokens); nothing of this request was stored"
            )));
        }
        self.accepted += 1;
        self.added.add(&t);
        self.events.push(Recorded {
            id: p.id.clone(),
            event_id: p.event.event_id.clone(),
            estimated: p.estimated,
            billed: p.billed,
            duplicate: false,
        });
        Ok(())
    }
}

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Message>,
}

/// Takes `first` and every message waiting after it, up to `MAX_EVENTS_PER_COMMIT` events:
/// one group commit's jobs, and the flushes to answer after it.
pub(super) fn gather(
    first: Message,
    rx: &mpsc::Receiver<Message>,
    flushes: &mut Vec<tokio::sync::oneshot::Sender<()>>,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut n = 0;
    let mut next = Some(first);
    while let Some(m) = next.take() {
        match m {
            Message::Job(j) => {
                n += j.events.len();
                jobs.push(j);
            }
            Message::Flush(done) => flushes.push(done),
        }
        if n < MAX_EVENTS_PER_COMMIT {
            next = rx.try_recv().ok();
        }
    }
    jobs
}

impl Writer {
    /// Starts the writer thread on its own connection, and the checkpointer on another: copying
    /// the WAL back into the database then happens beside the writer, not inside its commits.
    pub fn start(
        mut conn: Connection,
        checkpointer: Connection,
        counters: Arc<Counters>,
        closed: ClosedBefore,
    ) -> Writer {
        let (tx, rx) = mpsc::channel::<Message>();
        let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
        crate::db::checkpoint::tune_writer(&conn);
        crate::db::checkpoint::start(checkpointer, running.clone());
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || {
                let mut flushes = Vec::new();
                while let Ok(first) = rx.recv() {
                    // Every request waiting now goes into one commit.
                    let jobs = gather(first, &rx, &mut flushes);
                    if !jobs.is_empty() {
                        commit_group(&mut conn, jobs, &counters, &closed);
                    }
                    for done in flushes.drain(..) {
                        let _ = done.send(());
                    }
                }
                running.store(false, std::sync::atomic::Ordering::Relaxed);
            })
            .expect("the writer thread starts");
        Writer { tx }
    }

    /// A writer whose messages `rx` receives: the PostgreSQL writer's thread.
    pub(super) fn from_channel() -> (Writer, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel();
        (Writer { tx }, rx)
    }

    /// Waits until every event submitted before this call is committed.
    pub async fn flush(&self) -> Result<(), ApiError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Message::Flush(done))
            .map_err(|_| ApiError::internal("the usage writer has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the usage writer stopped before the flush"))
    }

    /// Hands a batch to the writer and waits for its commit: the answer means durable.
    pub async fn submit(&self, batch: Batch) -> Result<Outcome, ApiError> {
        let Batch {
            tenant,
            settings,
            events,
            now,
        } = batch;
        let bound = events
            .iter()
            .try_fold(Totals::default(), |acc, p| acc.checked_add(&p.totals()))
            .ok_or_else(|| {
                ApiError::InvalidRequest(
                    "the events of this request add up to more than can be recorded".into(),
                )
            })?;
        let rollups = aggregate(&events);
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Message::Job(Job {
                tenant,
                settings,
                events,
                rollups,
                bound,
                now,
                reply,
            }))
            .map_err(|_| ApiError::internal("the usage writer has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the usage writer dropped a request"))?
    }
}

/// Commits all jobs in one transaction. Should that fail (it takes a disk error, not bad input:
/// events were validated before), each job is retried alone so only its own request fails.
fn commit_group(conn: &mut Connection, jobs: Vec<Job>, counters: &Counters, closed: &ClosedBefore) {
    let results = match commit(conn, &jobs, counters, closed) {
        Ok(results) => results,
        Err(e) if jobs.len() > 1 => {
            tracing::warn!(cause = %detail(&e), jobs = jobs.len(), "group commit failed; retrying each request alone");
            for job in jobs {
                commit_group(conn, vec![job], counters, closed);
            }
            return;
        }
        Err(e) => {
            let cause = detail(&e);
            tracing::error!(%cause, tenant_id = %jobs[0].tenant, "usage commit failed");
            vec![Err(ApiError::internal(format!(
                "usage commit failed: {cause}"
            )))]
        }
    };
    for (job, r) in jobs.into_iter().zip(results) {
        let _ = job.reply.send(r);
    }
}

/// What went wrong, with the SQLite cause that `ApiError`'s display keeps out of responses.
fn detail(e: &ApiError) -> String {
    match e {
        ApiError::Internal(d) => d.clone(),
        other => other.to_string(),
    }
}

/// Commits the jobs in one transaction and answers each. A job is refused alone (400) when its
/// events would take one of its tenant's totals past an i64: all time bounds every other total,
/// so that is the one to check. Only a job that could cross it runs inside a savepoint, which
/// is then rolled back whole: nothing of a refused request is stored.
fn commit(
    conn: &mut Connection,
    jobs: &[Job],
    counters: &Counters,
    closed: &ClosedBefore,
) -> Result<Vec<Result<Outcome, ApiError>>, ApiError> {
    let mut windows: HashMap<TenantId, Windows> = HashMap::new();
    let mut rollups: HashMap<(TenantId, i64, &'static str, &str), Totals> = HashMap::new();
    let mut out = Vec::with_capacity(jobs.len());
    // IMMEDIATE: the write lock is taken (waiting in the busy handler if need be) before the
    // windows are read. A deferred transaction would read first and upgrade to a writer later,
    // and an upgrade after another connection has written fails at once (SQLITE_BUSY_SNAPSHOT,
    // which no busy handler retries), failing every request in the group.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Asked with the write lock held: a statement is finalized under the same lock.
    let closed_before = closed();
    for job in jobs {
        if let Some(e) = closed_before.and_then(|b| in_closed_period(job, b)) {
            out.push(Err(e));
            continue;
        }
        let day = day_of(job.now);
        let before = match windows.get(&job.tenant) {
            Some(w) if w.day == day => *w,
            _ => counters.windows(&tx, job.tenant, day)?,
        };
        let mut w = before;
        let risky = before.all_time.checked_add(&job.bound).is_none();
        if risky {
            store::savepoint(&tx)?;
        }
        let (o, duplicates) = match apply_job(&tx, job, &mut w) {
            Ok(applied) => applied,
            Err(e @ ApiError::InvalidRequest(_)) if risky => {
                store::roll_back_savepoint(&tx)?;
                windows.insert(job.tenant, before);
                out.push(Err(e));
                continue;
            }
            Err(e) => return Err(e),
        };
        if risky {
            store::release_savepoint(&tx)?;
        }
        windows.insert(job.tenant, w);
        for ((d, dim), keys) in &job.rollups {
            for (key, t) in keys {
                rollups
                    .entry((job.tenant, *d, dim, key.as_str()))
                    .or_default()
                    .add(t);
            }
        }
        // Duplicates were counted in the job's deltas; take them out again.
        for p in duplicates.iter().map(|&i| &job.events[i]) {
            for (day, dim, key) in p.rollup_rows() {
                if let Some(t) = rollups.get_mut(&(job.tenant, day, dim, key)) {
                    t.sub(&p.totals());
                }
            }
        }
        out.push(Ok(o));
    }
    for ((tenant, day, dim, key), t) in &rollups {
        if t.events != 0 {
            store::add_to_rollup(&tx, &tenant.to_string(), *day, dim, key, t)?;
        }
    }
    tx.commit()?;
    for (tenant, w) in windows {
        counters.put(tenant, w);
    }
    Ok(out)
}

/// The refusal of a job with an event before `boundary`, in a period whose statement is final.
pub(super) fn in_closed_period(job: &Job, boundary: Micros) -> Option<ApiError> {
    let (i, p) = job
        .events
        .iter()
        .enumerate()
        .find(|(_, p)| p.event.ts < boundary)?;
    let which = if job.events.len() > 1 {
        format!("events[{i}]")
    } else {
        "the event".to_string()
    };
    Some(ApiError::PeriodClosed(format!(
        "{which} is timestamped in {}, a billing period whose statement is final; nothing of \
         this request was stored",
        super::rollup::month_label(p.day)
    )))
}

/// Inserts a job's events; returns its outcome and the indexes of its duplicates.
fn apply_job(
    c: &Connection,
    job: &Job,
    w: &mut Windows,
) -> Result<(Outcome, Vec<usize>), ApiError> {
    let tenant = job.tenant.to_string();
    let mode = job.settings.settings.execution_mode.as_str();
    let markup = job.settings.settings.markup_percent.units();
    let mut events = store::EventWriter::new(c)?;
    let mut out = Outcome::start(job);
    let mut duplicates = Vec::new();
    for (i, p) in job.events.iter().enumerate() {
        if let store::Inserted::Duplicate(first) =
            events.insert(&tenant, p, mode, markup, job.now)?
        {
            out.duplicate(p, first);
            duplicates.push(i);
            continue;
        }
        out.accept(i, p, w)?;
        if p.source == CostSource::UnknownModel {
            unknown_model_event(c, job, p.event.model.as_str())?;
        }
    }
    out.limits = limits::evaluate(&job.settings.settings, &w.today, &w.this_month);
    crossing_events(c, job, w, &out.limits)?;
    Ok((out, duplicates))
}
