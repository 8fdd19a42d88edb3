//! The delivery worker: a thread of its own that reads due deliveries ahead into a queue per
//! endpoint (`queue`), sends them (at most `MAX_IN_FLIGHT` at once, `PER_ENDPOINT` per
//! endpoint; `send`) and hands each outcome to the recorder (`record`). It never touches
//! ingest: events only write rows, and the worker reads them. A delivery is claimed in memory
//! only, so after a crash or `kill -9` every unfinished one is due again: at least once, and
//! receivers dedupe on `webhook-id`. It stops once the server has (`liveness`).
//!
//! Per delivery there is no query: the refill read brings the endpoint's URL and sealed
//! secrets with each row, a finished request starts the endpoint's next one at once from its
//! queue, and outcomes are written many to a transaction.
use super::outbox::Outbox;
use super::queue::{Queues, PER_ENDPOINT};
use super::record::{self, Done};
use super::send::Sender;
use super::store::{self, Due};
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::db::Db;
use crate::time::to_micros;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

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
    queues: Mutex<Queues>,
}

impl Worker {
    pub fn start(self, liveness: Weak<std::fs::File>) -> Result<(), String> {
        let client = super::send::client(self.timeout, self.allow_private)?;
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
                        queues: Mutex::default(),
                    });
                    let released = me.clone();
                    tokio::spawn(record::recorder(
                        me.w.db.clone(),
                        me.w.outbox.clone(),
                        finished,
                        move |written| released.queues().release(written),
                    ));
                    me.run(liveness).await
                })
            })
            .map_err(|e| format!("webhook worker: {e}"))?;
        Ok(())
    }
}

impl Running {
    /// The queues, after dropping what an endpoint change made stale and lifting the holds
    /// their owners lifted.
    fn queues(&self) -> MutexGuard<'_, Queues> {
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        q.resume(self.w.outbox.take_resumed());
        for endpoint in q.set_generation(self.w.outbox.generation()) {
            self.w.outbox.ring(&endpoint);
        }
        q
    }

    async fn run(self: Arc<Self>, liveness: Weak<std::fs::File>) {
        let mut last_sweep = Instant::now() - POLL;
        while liveness.upgrade().is_some() {
            let generation = self.w.outbox.generation();
            let now = to_micros(self.w.clock.now());
            let sweep = last_sweep.elapsed() >= POLL;
            let rung = self.w.outbox.take_rung();
            let wanted = {
                let mut q = self.queues();
                q.begin_read();
                if sweep {
                    Vec::new()
                } else {
                    q.refills(&rung)
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
                let all = self.queues().endpoints();
                self.dispatch(all);
            } else {
                self.dispatch(rung);
            }
            let wait = POLL.saturating_sub(last_sweep.elapsed());
            let _ = tokio::time::timeout(wait, self.w.outbox.wake.notified()).await;
        }
    }

    /// Queues what a read found; rows read before an endpoint changed (their URL or secrets
    /// may be stale) are dropped and their endpoints read again.
    fn claim(&self, rows: Vec<Due>, generation: u64) {
        let mut q = self.queues();
        if self.w.outbox.generation() != generation {
            for d in &rows {
                self.w.outbox.ring(&d.endpoint_id);
            }
            return;
        }
        q.claim(rows);
    }

    /// Starts what may start of `endpoints`' queues, and rings those running low for the loop
    /// to read more.
    fn dispatch(self: &Arc<Self>, endpoints: impl IntoIterator<Item = String>) {
        let now = to_micros(self.w.clock.now());
        let (start, low) = self.queues().start(endpoints, now);
        for endpoint in &low {
            self.w.outbox.ring(endpoint);
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
                let until = record::hold_back(&outcome).map(|h| at + h);
                let everyone = me.queues().answered(&d.endpoint_id, until);
                if everyone {
                    let all = me.queues().endpoints();
                    me.dispatch(all);
                } else {
                    me.dispatch([d.endpoint_id.clone()]);
                }
                // The recorder outlives every sender; a failed send means the worker stopped.
                let _ = me.done.send(Done { d, outcome, at });
            });
        }
    }
}
