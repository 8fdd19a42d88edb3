//! The delivery worker: a thread of its own that reads due deliveries ahead into a queue per
//! endpoint, sends them (at most `MAX_IN_FLIGHT` at once, `PER_ENDPOINT` per endpoint) and
//! hands each outcome to the recorder (`record`). It never touches ingest: events only write
//! rows, and the worker reads them. A delivery is claimed in memory only, so after a crash or
//! `kill -9` every unfinished one is due again: at least once, and receivers dedupe on
//! `webhook-id`. It stops once the server has (`liveness`).
//!
//! Per delivery there is no query: the refill read brings the endpoint's URL and sealed
//! secrets with each row, a finished request starts the endpoint's next one at once from its
//! queue, and outcomes are written many to a transaction.
use super::outbox::Outbox;
use super::record::{self, Done};
use super::send::Sender;
use super::ssrf;
use super::store::{self, Due};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::time::{to_micros, Micros};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

pub const MAX_IN_FLIGHT: usize = 64;
pub const PER_ENDPOINT: usize = 4;
/// Deliveries read ahead per endpoint: one refill read serves this many sends. The queue is
/// read again when it is half empty.
const READ_AHEAD: usize = 64;
/// At most this many read ahead across all endpoints, so many endpoints with backlogs (or
/// receivers that are down) hold a bounded number of rows in memory.
const MAX_QUEUED: usize = 4096;
/// How often every endpoint's due deliveries are looked for (retries coming due, at least
/// 4.5 s after their failure); between those looks the worker refills only the endpoints rung
/// (`Outbox::ring`). The look reads every due row, so with a large backlog held back (a
/// receiver that is down) it costs a few milliseconds: once a second keeps that from ingest.
const POLL: Duration = Duration::from_secs(1);

pub struct Worker {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub key: Arc<MasterKey>,
    pub outbox: Arc<Outbox>,
    pub timeout: Duration,
    pub allow_private: bool,
}

/// The running worker, shared by its loop, its sends and the recorder.
struct Running {
    w: Worker,
    client: reqwest::Client,
    done: tokio::sync::mpsc::UnboundedSender<Done>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Deliveries read ahead or being sent, until their outcome is recorded: never taken twice.
    claimed: HashSet<String>,
    /// How many of `claimed` each endpoint has.
    held: HashMap<String, usize>,
    /// Read ahead, per endpoint, oldest due first.
    queued: HashMap<String, VecDeque<Due>>,
    queued_total: usize,
    /// Requests being sent now, per endpoint and in all.
    sending: HashMap<String, usize>,
    sending_total: usize,
    /// An endpoint found a queued delivery but no free place overall: look at every queue
    /// when a place frees, not only the finished request's endpoint.
    starved: bool,
    /// Endpoints whose last attempt failed, until when (app clock): their other due
    /// deliveries wait instead of failing one after another against a receiver that is down.
    paused: HashMap<String, Micros>,
    /// Deliveries recorded (and released) since the current read began: the read may have
    /// seen them before their outcome committed, so they are not taken from it (they would go
    /// out twice). Emptied when a read begins; a row released before that was committed
    /// before the read.
    recorded: HashSet<String>,
    /// The outbox generation the queued rows (their URL and secrets) were read in.
    generation: u64,
}

impl Worker {
    pub fn start(self, liveness: Weak<std::fs::File>) -> Result<(), String> {
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(ssrf::Resolver {
                allow_private: self.allow_private,
            }))
            .user_agent(concat!("tenantry-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("webhook client: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("webhook worker: {e}"))?;
        std::thread::Builder::new()
            .name("webhooks".into())
            .spawn(move || {
                rt.block_on(async move {
                    let (done, finished) = tokio::sync::mpsc::unbounded_channel();
                    let me = Arc::new(Running {
                        w: self,
                        client,
                        done,
                        state: Mutex::default(),
                    });
                    let released = me.clone();
                    tokio::spawn(record::recorder(
                        me.w.db.clone(),
                        me.w.outbox.clone(),
                        finished,
                        move |ids| released.release(ids),
                    ));
                    me.run(liveness).await
                })
            })
            .map_err(|e| format!("webhook worker: {e}"))?;
        Ok(())
    }
}

impl Running {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>, liveness: Weak<std::fs::File>) {
        let mut last_sweep = Instant::now() - POLL;
        while liveness.upgrade().is_some() {
            let generation = self.w.outbox.generation();
            let now = to_micros(self.w.clock.now());
            let sweep = last_sweep.elapsed() >= POLL;
            let rung = self.w.outbox.take_rung();
            let wanted = {
                let mut s = self.state();
                self.sync(&mut s);
                s.recorded.clear();
                if sweep {
                    Vec::new()
                } else {
                    refills(&s, &rung)
                }
            };
            // Every endpoint now and then; in between, only rung ones running low.
            let read = if sweep {
                last_sweep = Instant::now();
                self.w
                    .db
                    .run(move |c| Ok(store::due(c, now, PER_ENDPOINT as i64 * 2, 256)?))
                    .await
            } else if wanted.is_empty() {
                Ok(Vec::new())
            } else {
                self.w
                    .db
                    .run(move |c| {
                        let mut out = Vec::new();
                        for (endpoint, limit) in &wanted {
                            out.extend(store::due_for(c, endpoint, now, *limit)?);
                        }
                        Ok(out)
                    })
                    .await
            };
            match read {
                Ok(rows) => self.claim(rows, generation),
                Err(e) => tracing::error!(error = %e, "webhook worker"),
            }
            if sweep {
                self.dispatch_all();
            } else {
                self.dispatch(rung);
            }
            let wait = POLL.saturating_sub(last_sweep.elapsed());
            let _ = tokio::time::timeout(wait, self.w.outbox.wake.notified()).await;
        }
    }

    /// Drops what was read ahead when an endpoint changed since (its URL, filter or secrets),
    /// and lifts the pause of endpoints resumed by their owner.
    fn sync(&self, s: &mut State) {
        for e in self.w.outbox.take_resumed() {
            s.paused.remove(&e);
        }
        let generation = self.w.outbox.generation();
        if s.generation == generation {
            return;
        }
        s.generation = generation;
        let queued = std::mem::take(&mut s.queued);
        s.queued_total = 0;
        for (endpoint, rows) in queued {
            for d in rows {
                s.claimed.remove(&d.id);
                unhold(&mut s.held, &endpoint);
            }
            self.w.outbox.ring(&endpoint);
        }
    }

    /// Queues what a read found that no one holds; rows read before an endpoint changed are
    /// dropped and their endpoints read again.
    fn claim(&self, rows: Vec<Due>, generation: u64) {
        let mut guard = self.state();
        let s = &mut *guard;
        if self.w.outbox.generation() != generation {
            for d in &rows {
                self.w.outbox.ring(&d.endpoint_id);
            }
            return;
        }
        self.sync(s);
        for d in rows {
            if s.queued_total >= MAX_QUEUED
                || s.claimed.contains(&d.id)
                || s.recorded.contains(&d.id)
            {
                continue;
            }
            s.claimed.insert(d.id.clone());
            *s.held.entry(d.endpoint_id.clone()).or_default() += 1;
            s.queued_total += 1;
            s.queued
                .entry(d.endpoint_id.clone())
                .or_default()
                .push_back(d);
        }
    }

    fn dispatch_all(self: &Arc<Self>) {
        let endpoints: Vec<String> = self.state().queued.keys().cloned().collect();
        self.dispatch(endpoints);
    }

    /// Starts the queued deliveries of `endpoints` that fit: `MAX_IN_FLIGHT` in all,
    /// `PER_ENDPOINT` each, none of an endpoint held back after a failure. Rings the endpoints
    /// whose queue runs low, for the loop to read more.
    fn dispatch(self: &Arc<Self>, endpoints: impl IntoIterator<Item = String>) {
        let now = to_micros(self.w.clock.now());
        let mut start = Vec::new();
        {
            let mut guard = self.state();
            let s = &mut *guard;
            self.sync(s);
            for endpoint in endpoints {
                if s.paused.get(&endpoint).is_some_and(|until| *until > now) {
                    continue;
                }
                s.paused.remove(&endpoint);
                loop {
                    let busy = s.sending.get(&endpoint).copied().unwrap_or(0);
                    let Some(queue) = s.queued.get_mut(&endpoint) else {
                        break;
                    };
                    if queue.is_empty() || busy >= PER_ENDPOINT {
                        break;
                    }
                    if s.sending_total >= MAX_IN_FLIGHT {
                        s.starved = true;
                        break;
                    }
                    let Some(d) = queue.pop_front() else { break };
                    let low = queue.len() < READ_AHEAD / 2;
                    if queue.is_empty() {
                        s.queued.remove(&endpoint);
                    }
                    s.queued_total -= 1;
                    s.sending_total += 1;
                    *s.sending.entry(endpoint.clone()).or_default() += 1;
                    if low {
                        self.w.outbox.ring(&endpoint);
                    }
                    start.push(d);
                }
            }
        }
        for d in start {
            let me = self.clone();
            tokio::spawn(async move {
                let sender = Sender {
                    client: &me.client,
                    clock: me.w.clock.as_ref(),
                    key: &me.w.key,
                    allow_private: me.w.allow_private,
                };
                let outcome = sender.attempt(&d).await;
                let at = to_micros(me.w.clock.now());
                me.finished(&d.endpoint_id, record::hold_back(&outcome).map(|h| at + h));
                // The recorder outlives every sender; a failed send means the worker stopped.
                let _ = me.done.send(Done { d, outcome, at });
            });
        }
    }

    /// A request is answered: its place frees at once (the delivery stays claimed until its
    /// outcome is recorded), a failure holds its endpoint back `until`, a success lets it go,
    /// and the endpoint's next queued delivery starts.
    fn finished(self: &Arc<Self>, endpoint: &str, until: Option<Micros>) {
        let everyone = {
            let mut s = self.state();
            s.sending_total -= 1;
            unhold(&mut s.sending, endpoint);
            match until {
                Some(t) => s.paused.insert(endpoint.to_string(), t),
                None => s.paused.remove(endpoint),
            };
            std::mem::take(&mut s.starved)
        };
        if everyone {
            self.dispatch_all();
        } else {
            self.dispatch([endpoint.to_string()]);
        }
    }

    /// The recorder wrote these deliveries' outcomes (delivery, endpoint): they may be read
    /// and taken again (a retry coming due, a manual retry).
    fn release(&self, written: Vec<(String, String)>) {
        let mut s = self.state();
        for (id, endpoint) in written {
            s.claimed.remove(&id);
            unhold(&mut s.held, &endpoint);
            s.recorded.insert(id);
        }
    }
}

/// The rung endpoints whose queue runs low, each with how many rows to read: its claimed ones
/// (still due until recorded, and skipped) and room for `READ_AHEAD` more.
fn refills(s: &State, rung: &HashSet<String>) -> Vec<(String, i64)> {
    if s.queued_total >= MAX_QUEUED {
        return Vec::new();
    }
    rung.iter()
        .filter_map(|e| {
            let queued = s.queued.get(e).map_or(0, VecDeque::len);
            if queued >= READ_AHEAD / 2 {
                return None;
            }
            let held = s.held.get(e).copied().unwrap_or(0);
            Some((e.clone(), (held + READ_AHEAD - queued) as i64))
        })
        .collect()
}

fn unhold(counts: &mut HashMap<String, usize>, endpoint: &str) {
    if let Some(n) = counts.get_mut(endpoint) {
        *n -= 1;
        if *n == 0 {
            counts.remove(endpoint);
        }
    }
}
