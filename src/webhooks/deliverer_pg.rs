//! The deliverer on PostgreSQL (issue 19, docs/SCALE_OUT.md §5.2): every replica runs one. It
//! leases due deliveries (`store_pg::lease`: `FOR UPDATE SKIP LOCKED`, the lease being the
//! row's `next_attempt_at` moved `lease` ahead), sends each (`send`), and records the outcome
//! with the retry schedule of `record`, if its lease is still its own. So one deliverer sends a
//! delivery at a time across replicas, and a replica that dies only delays the deliveries it
//! leased until their leases run out; then any replica sends them (at least once: receivers
//! dedupe on `webhook-id`).
//!
//! Unlike the SQLite worker nothing is read ahead: a delivery is leased when a place frees,
//! so it is signed with the secrets of that moment. It looks for due deliveries every `POLL`
//! (other replicas' new ones, retries coming due), at once when this process wrote one
//! (`ring`), and when one of its own attempts finished.
use super::queue::{MAX_IN_FLIGHT, PER_ENDPOINT};
use super::record::{self, Effect};
use super::send::{Outcome, Sender};
use super::store::Due;
use super::store_pg;
use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::db::pg::{describe, Pg};
use crate::time::{to_micros, Micros};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;
use uuid::Uuid;

/// How often every replica looks for due deliveries it was not rung for.
pub const POLL: Duration = Duration::from_millis(250);
/// After a ring, how long to wait before looking: the write that rang commits after ringing.
const SETTLE: Duration = Duration::from_millis(10);

static BELL: LazyLock<tokio::sync::watch::Sender<u64>> =
    LazyLock::new(|| tokio::sync::watch::channel(0).0);

/// Tells this process's deliverers that a delivery was written (or made due) now.
pub fn ring() {
    BELL.send_modify(|n| *n = n.wrapping_add(1));
}

/// How long a lease lasts for a webhook timeout of `timeout`: an attempt that is still running
/// has timed out long before (twice the timeout, and a second for recording it), so a live
/// deliverer never loses a lease it is using.
pub fn lease_length(timeout: Duration) -> Micros {
    let timeout = Micros::try_from(timeout.as_micros()).unwrap_or(Micros::MAX / 4);
    timeout * 2 + 1_000_000
}

pub struct Deliverer {
    /// A pool of its own: its connections live on the deliverer's runtime.
    pub pool: Pg,
    pub clock: Arc<dyn Clock>,
    pub key: Arc<MasterKey>,
    pub timeout: Duration,
    pub allow_private: bool,
}

struct Running {
    d: Deliverer,
    client: reqwest::Client,
    lease: Micros,
    /// Attempts being made now, per endpoint.
    busy: Mutex<HashMap<Uuid, i64>>,
    /// Rung when one of this deliverer's attempts was recorded: a place freed.
    freed: tokio::sync::Notify,
}

impl Deliverer {
    /// Runs the deliverer on a thread of its own until the server stops (`liveness`).
    pub fn start(self, liveness: Weak<std::fs::File>) -> Result<(), String> {
        let client = super::send::client(self.timeout, self.allow_private)?;
        let me = Arc::new(Running {
            lease: lease_length(self.timeout),
            d: self,
            client,
            busy: Mutex::default(),
            freed: tokio::sync::Notify::new(),
        });
        crate::db::pg::spawn_task("webhooks-pg", async move { me.run(liveness).await })
    }
}

impl Running {
    fn now(&self) -> Micros {
        to_micros(self.d.clock.now())
    }

    fn busy(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, i64>> {
        self.busy.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run(self: Arc<Self>, liveness: Weak<std::fs::File>) {
        let mut bell = BELL.subscribe();
        while liveness.upgrade().is_some() {
            if let Err(e) = self.lease_and_send().await {
                tracing::warn!(error = %e, "leasing webhook deliveries");
            }
            tokio::select! {
                _ = bell.changed() => tokio::time::sleep(SETTLE).await,
                _ = self.freed.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Leases as many due deliveries as there are free places, and starts sending each.
    async fn lease_and_send(self: &Arc<Self>) -> Result<(), String> {
        let (busy, sending): (Vec<(Uuid, i64)>, i64) = {
            let b = self.busy();
            (b.iter().map(|(k, v)| (*k, *v)).collect(), b.values().sum())
        };
        let free = MAX_IN_FLIGHT as i64 - sending;
        if free <= 0 {
            return Ok(());
        }
        let now = self.now();
        let until = now + self.lease;
        let mut c = self.d.pool.client().await?;
        let e = |e: tokio_postgres::Error| describe(&e);
        let tx = c.transaction().await.map_err(e)?;
        tx.batch_execute(store_pg::LEASE_PLAN).await.map_err(e)?;
        let due = store_pg::lease(&*tx, now, until, &busy, PER_ENDPOINT as i64, free)
            .await
            .map_err(e)?;
        tx.commit().await.map_err(e)?;
        drop(c);
        for d in due {
            let Ok(endpoint) = Uuid::parse_str(&d.endpoint_id) else {
                continue;
            };
            *self.busy().entry(endpoint).or_default() += 1;
            let me = self.clone();
            tokio::spawn(async move {
                me.send(d, until).await;
                let mut b = me.busy();
                if let Some(n) = b.get_mut(&endpoint) {
                    *n -= 1;
                    if *n <= 0 {
                        b.remove(&endpoint);
                    }
                }
                drop(b);
                me.freed.notify_one();
            });
        }
        Ok(())
    }

    async fn send(&self, d: Due, until: Micros) {
        let sender = Sender {
            client: &self.client,
            clock: self.d.clock.as_ref(),
            key: &self.d.key,
            allow_private: self.d.allow_private,
        };
        let outcome = sender.attempt(&d).await;
        let at = self.now();
        if let Err(e) = record(&self.d.pool, &d, &outcome, at, until).await {
            // Unrecorded, the delivery is due again when its lease runs out: sent again.
            tracing::error!(error = %e, "recording a webhook delivery");
        }
    }
}

/// Writes an attempt's outcome in one transaction, as `record::record` does on SQLite: the
/// delivery's status and next attempt, the endpoint's failure mark, and disabling with its
/// `webhook.disabled` event. Nothing is written if the lease was lost meanwhile.
async fn record(pg: &Pg, d: &Due, o: &Outcome, at: Micros, until: Micros) -> Result<(), String> {
    let (Ok(id), Ok(endpoint)) = (Uuid::parse_str(&d.id), Uuid::parse_str(&d.endpoint_id)) else {
        return Ok(());
    };
    let v = record::verdict(d, o, at);
    let mut c = pg.client().await?;
    let tx = c.transaction().await.map_err(|e| describe(&e))?;
    let e = |e: tokio_postgres::Error| describe(&e);
    let error = o.error.as_deref();
    if !store_pg::record_attempt(&*tx, id, until, v.status, o.status, error, v.next)
        .await
        .map_err(e)?
    {
        return Ok(());
    }
    let disable = match v.effect {
        Effect::Succeeded => {
            store_pg::mark_success(&*tx, endpoint).await.map_err(e)?;
            None
        }
        Effect::Gone => Some("gone"),
        Effect::Failed => {
            let since = store_pg::mark_failure(&*tx, endpoint, at)
                .await
                .map_err(e)?;
            record::failing_too_long(since, at).then_some("failing")
        }
    };
    if let Some(reason) = disable {
        if store_pg::disable(&*tx, endpoint, reason, at)
            .await
            .map_err(e)?
        {
            let event = record::disabled_event(d, reason);
            crate::events::pg::record_many(&*tx, &[(at, event)])
                .await
                .map_err(e)?;
        }
    }
    tx.commit().await.map_err(e)
}
