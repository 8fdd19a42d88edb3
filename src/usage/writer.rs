//! The one writer of usage events. Requests hand it priced events and wait; it takes every
//! request waiting at that moment into one transaction (group commit), inserting events
//! idempotently, adding them to the rollups, recording unknown-model and limit-crossing events,
//! and answers each request only after the commit: a 201 means the events are durable.
use super::counters::{Counters, Windows};
use super::event::UsageEvent;
use super::money::Nanousd;
use super::pricing::Price;
use super::rollup::{self, day_of, Totals, DIMS};
use crate::error::ApiError;
use crate::events::{self, NewEvent, Severity};
use crate::limits::{self, Level};
use crate::settings::{ExecutionMode, Settings};
use crate::time::Micros;
use rusqlite::{params, Connection};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{mpsc, Arc};
use uuid::Uuid;

/// A commit takes at most this many events; more wait for the next one.
const MAX_EVENTS_PER_COMMIT: usize = 20_000;

/// An event with its cost worked out from the settings and prices at ingest.
#[derive(Clone, Debug)]
pub struct Priced {
    pub event: UsageEvent,
    pub estimated: Nanousd,
    pub billed: Nanousd,
    /// The prices charged, when the cost came from the table.
    pub price: Option<Price>,
    pub source: &'static str,
}

impl Priced {
    pub fn new(event: UsageEvent, settings: &Settings, price: Option<Price>) -> Priced {
        let (estimated, price, source) = match (event.cost, price) {
            (Some(c), _) => (c, None, "client"),
            (None, Some(p)) => (
                super::pricing::cost(event.input_tokens, event.output_tokens, p),
                Some(p),
                "pricing",
            ),
            (None, None) => (Nanousd::ZERO, None, "unknown_model"),
        };
        let billed = match settings.execution_mode {
            ExecutionMode::Hosted => settings.markup_percent.apply(estimated),
            ExecutionMode::ByoKey => Nanousd::ZERO,
        };
        Priced {
            event,
            estimated,
            billed,
            price,
            source,
        }
    }

    fn totals(&self) -> Totals {
        Totals {
            events: 1,
            input_tokens: self.event.input_tokens as i64,
            output_tokens: self.event.output_tokens as i64,
            estimated: self.estimated,
            billed: self.billed,
        }
    }
}

pub struct Job {
    pub tenant: Uuid,
    pub settings: Arc<Settings>,
    pub events: Vec<Priced>,
    /// "Now" for limit windows and `created_at`.
    pub now: Micros,
    pub reply: tokio::sync::oneshot::Sender<Result<Outcome, ApiError>>,
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

#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on its own connection.
    pub fn start(mut conn: Connection, counters: Arc<Counters>) -> Writer {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("usage-writer".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut jobs = vec![first];
                    let mut n = jobs[0].events.len();
                    while n < MAX_EVENTS_PER_COMMIT {
                        match rx.try_recv() {
                            Ok(j) => {
                                n += j.events.len();
                                jobs.push(j);
                            }
                            Err(_) => break,
                        }
                    }
                    commit_group(&mut conn, jobs, &counters);
                }
            })
            .expect("the writer thread starts");
        Writer { tx }
    }

    pub async fn submit(
        &self,
        job_events: (Uuid, Arc<Settings>, Vec<Priced>, Micros),
    ) -> Result<Outcome, ApiError> {
        let (tenant, settings, events, now) = job_events;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.tx
            .send(Job {
                tenant,
                settings,
                events,
                now,
                reply,
            })
            .map_err(|_| ApiError::internal("the usage writer has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::internal("the usage writer dropped a request"))?
    }
}

type RollupKey = (Uuid, i64, &'static str, String);

fn commit_group(conn: &mut Connection, jobs: Vec<Job>, counters: &Counters) {
    let mut results: Vec<Option<Result<Outcome, ApiError>>> = Vec::with_capacity(jobs.len());
    let mut windows: HashMap<Uuid, Windows> = HashMap::new();
    let mut rollups: HashMap<RollupKey, Totals> = HashMap::new();
    let outcome = (|| -> Result<(), ApiError> {
        let tx = conn.transaction()?;
        for job in &jobs {
            let day = day_of(job.now);
            let w = match windows.get(&job.tenant) {
                Some(w) if w.day == day => *w,
                _ => match counters.get(job.tenant, day) {
                    Some(w) => w,
                    None => Windows::load(&tx, &job.tenant.to_string(), day)?,
                },
            };
            tx.execute_batch("SAVEPOINT job")?;
            let mut job_w = w;
            let mut job_rollups: HashMap<RollupKey, Totals> = HashMap::new();
            match apply_job(&tx, job, &mut job_w, &mut job_rollups) {
                Ok(o) => {
                    tx.execute_batch("RELEASE job")?;
                    windows.insert(job.tenant, job_w);
                    for (k, t) in job_rollups {
                        rollups.entry(k).or_default().add(&t);
                    }
                    results.push(Some(Ok(o)));
                }
                Err(e) => {
                    tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                    results.push(Some(Err(e)));
                }
            }
        }
        for ((tenant, day, dim, key), t) in &rollups {
            rollup::upsert(&tx, &tenant.to_string(), *day, dim, key, t)?;
        }
        tx.commit()?;
        Ok(())
    })();
    match outcome {
        Ok(()) => {
            for (tenant, w) in windows {
                counters.put(tenant, w);
            }
            for (job, r) in jobs.into_iter().zip(results) {
                let _ = job
                    .reply
                    .send(r.unwrap_or_else(|| Err(ApiError::internal("no result"))));
            }
        }
        Err(e) => {
            // Nothing was committed; the windows may have been read mid-transaction, so forget
            // them and let the next request read the rollups again.
            for job in jobs {
                counters.remove(job.tenant);
                let _ = job
                    .reply
                    .send(Err(ApiError::internal(format!("usage commit failed: {e}"))));
            }
        }
    }
}

fn apply_job(
    c: &Connection,
    job: &Job,
    w: &mut Windows,
    rollups: &mut HashMap<RollupKey, Totals>,
) -> Result<Outcome, ApiError> {
    let tenant = job.tenant.to_string();
    let mode = job.settings.execution_mode.as_str();
    let markup = job.settings.markup_percent.units();
    let mut insert = c.prepare_cached(
        "INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
             estimated_nanos, billed_nanos, input_price, output_price, cost_source, execution_mode,
             markup, pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
                 ?19, ?20, ?21)
         ON CONFLICT (tenant_id, event_id) WHERE event_id IS NOT NULL DO NOTHING",
    )?;
    let mut existing = c.prepare_cached(
        "SELECT id, estimated_nanos, billed_nanos FROM usage_events
         WHERE tenant_id = ?1 AND event_id = ?2",
    )?;
    let mut out = Outcome {
        accepted: 0,
        duplicates: 0,
        events: Vec::with_capacity(job.events.len()),
        limits: limits::evaluate(&job.settings, &Totals::default(), &Totals::default()),
        added: Totals::default(),
    };
    for p in &job.events {
        let e = &p.event;
        let id = Uuid::new_v4().to_string();
        let n = insert.execute(params![
            id,
            tenant,
            e.event_id,
            e.ts,
            e.model,
            e.input_tokens as i64,
            e.output_tokens as i64,
            p.estimated.0,
            p.billed.0,
            p.price.map(|x| x.input_per_million.0),
            p.price.map(|x| x.output_per_million.0),
            p.source,
            mode,
            markup,
            e.pipeline_stage,
            e.agent_name,
            e.job_id,
            e.user_id,
            e.duration_ms.map(|d| d as i64),
            e.metadata,
            job.now
        ])?;
        if n == 0 {
            let (id, est, billed): (String, i64, i64) = existing
                .query_row(params![tenant, e.event_id], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?;
            out.duplicates += 1;
            out.events.push(Recorded {
                id,
                event_id: e.event_id.clone(),
                estimated: Nanousd(est),
                billed: Nanousd(billed),
                duplicate: true,
            });
            continue;
        }
        out.accepted += 1;
        let t = p.totals();
        out.added.add(&t);
        let day = day_of(e.ts);
        w.add(day, &t);
        rollups
            .entry((job.tenant, day, "", String::new()))
            .or_default()
            .add(&t);
        let keys = [
            Some(&e.model),
            e.pipeline_stage.as_ref(),
            e.agent_name.as_ref(),
            e.user_id.as_ref(),
        ];
        for (dim, key) in DIMS.iter().zip(keys) {
            let key = key.cloned().unwrap_or_default();
            rollups
                .entry((job.tenant, day, dim, key))
                .or_default()
                .add(&t);
        }
        if p.source == "unknown_model" {
            unknown_model_event(c, job, &e.model)?;
        }
        out.events.push(Recorded {
            id,
            event_id: e.event_id.clone(),
            estimated: p.estimated,
            billed: p.billed,
            duplicate: false,
        });
    }
    out.limits = limits::evaluate(&job.settings, &w.today, &w.this_month);
    crossing_events(c, job, w, &out.limits)?;
    Ok(out)
}

fn unknown_model_event(c: &Connection, job: &Job, model: &str) -> Result<(), ApiError> {
    events::record(
        c,
        job.now,
        NewEvent {
            tenant_id: job.tenant,
            category: "billing",
            event_type: "pricing.unknown_model",
            severity: Severity::Warning,
            message: format!(
                "no price for model `{}`: its events cost 0 until a price is set with PUT /api/pricing",
                crate::error::clip(model)
            ),
            data: json!({"model": model}),
            once_key: Some(format!("pricing.unknown_model:{model}")),
        },
    )?;
    Ok(())
}

/// One event per limit, window and mark: the `once_key` makes a second one a no-op, whatever
/// the timing of concurrent requests.
fn crossing_events(
    c: &Connection,
    job: &Job,
    w: &Windows,
    status: &limits::Status,
) -> Result<(), ApiError> {
    for check in &status.checks {
        let window = match check.window {
            limits::Window::Day => rollup::day_label(w.day),
            limits::Window::Month => rollup::month_label(w.month),
        };
        let marks: &[(&str, Severity)] = match check.level {
            Level::Ok => &[],
            Level::Warning => &[("limit.warning", Severity::Warning)],
            Level::Exceeded => &[
                ("limit.warning", Severity::Warning),
                ("limit.exceeded", Severity::Error),
            ],
        };
        for (event_type, severity) in marks {
            let mut data = check.json();
            data["window"] = json!(window);
            events::record(
                c,
                job.now,
                NewEvent {
                    tenant_id: job.tenant,
                    category: "billing",
                    event_type,
                    severity: *severity,
                    message: format!("{} ({window})", check.describe()),
                    data,
                    once_key: Some(format!("{event_type}:{}:{window}", check.limit)),
                },
            )?;
        }
    }
    Ok(())
}

/// For reads: a tenant's windows, from memory when current, else from the rollups.
pub fn windows(
    c: &Connection,
    counters: &Counters,
    tenant: Uuid,
    day: i64,
) -> rusqlite::Result<Windows> {
    match counters.get(tenant, day) {
        Some(w) => Ok(w),
        None => Windows::load(c, &tenant.to_string(), day),
    }
}
