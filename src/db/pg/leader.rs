//! Which replica runs the background duties that must not run everywhere at once (retention,
//! purge, statement finalization, `writer_commits` pruning; docs/SCALE_OUT.md §5.3), and how
//! many replicas are alive.
//!
//! Every replica runs `start`: every `RENEW_EVERY` it writes its heartbeat row in `replicas` and
//! tries to take or keep the `leader` row (River's `LeaderAttemptElect`/`Reelect`: an upsert that
//! only succeeds when the row is free, expired, or already ours). A lease row, not a session
//! advisory lock, because pooled connections come and go. Each duty asks `Pg::leads` before a
//! sweep and skips it when false. Every duty is also safe to run twice, so a replica that still
//! believes it leads for a moment after its lease expired costs a repeated sweep, never a wrong
//! answer; to keep even that rare, a replica stops leading as soon as a renewal fails or is
//! late, well before its lease expires.
use super::{describe, Pg};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a replica renews its lease and heartbeat.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long a lease lasts unrenewed: after a leader dies, another replica takes over within
/// this plus `RENEW_EVERY`.
pub const LEASE: Duration = Duration::from_secs(10);
/// A replica whose heartbeat is older than this is not counted as alive.
const ALIVE_WITHIN: Duration = Duration::from_secs(10);
/// The name of the one lease the duties share.
const DUTIES: &str = "duties";

/// This replica's view of whether it leads, shared by every clone of one `Pg`.
#[derive(Clone, Debug)]
pub struct Flag(Arc<AtomicBool>);

impl Default for Flag {
    /// A pool nobody elects (the commands, tests of one store function) leads: it is alone.
    fn default() -> Self {
        Flag(Arc::new(AtomicBool::new(true)))
    }
}

impl Flag {
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    pub fn set(&self, leads: bool) {
        self.0.store(leads, Ordering::Release)
    }
}

impl Pg {
    /// Whether this replica should run the leader's duties now.
    pub fn leads(&self) -> bool {
        self.leader.get()
    }
}

/// What the election loop reports, for `/metrics` and the limiter's fallback.
pub struct Membership {
    /// This replica's id in `replicas` and `leader`.
    id: Uuid,
    pool: Pg,
    flag: Flag,
    resigned: AtomicBool,
    /// Replicas whose heartbeat is recent, this one included (0 before the first heartbeat).
    alive: AtomicU32,
}

impl Membership {
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// At a clean shutdown: stops leading and gives the lease and the heartbeat up, so another
    /// replica leads at its next renewal (2 s) rather than when the lease expires (10 s).
    pub async fn resign(&self) {
        self.resigned.store(true, Ordering::Release);
        self.flag.set(false);
        match tokio::time::timeout(RENEW_EVERY, resign(&self.pool, self.id)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election: resigning failed"),
            Err(_) => tracing::warn!("leader election: resigning timed out"),
        }
    }

    fn resigned(&self) -> bool {
        self.resigned.load(Ordering::Acquire)
    }

    pub fn alive(&self) -> u32 {
        self.alive.load(Ordering::Relaxed)
    }
}

/// Starts the election and heartbeat for the server whose store is `db` (whose `leads` it
/// sets), on a connection pool of its own (`own`), on a thread of its own, until `alive` is gone.
/// `on_alive` hears the number of live replicas after each heartbeat. On the way out the
/// replica resigns, so another takes over at its next renewal rather than after `LEASE`.
pub fn start(
    db: &Pg,
    own: Pg,
    on_alive: Arc<dyn Fn(u32) + Send + Sync>,
    alive: std::sync::Weak<std::fs::File>,
) -> Result<Arc<Membership>, String> {
    let flag = db.leader.clone();
    // Nobody leads before an election says so.
    flag.set(false);
    let id = Uuid::new_v4();
    let membership = Arc::new(Membership {
        id,
        pool: own.clone(),
        flag: flag.clone(),
        resigned: AtomicBool::new(false),
        alive: AtomicU32::new(0),
    });
    let m = membership.clone();
    super::spawn_task("leader", async move {
        let mut led = false;
        while alive.strong_count() > 0 && !m.resigned() {
            let started = Instant::now();
            // A renewal slower than RENEW_EVERY counts as lost, long before the lease (LEASE)
            // it renewed could expire.
            let outcome = tokio::time::timeout(RENEW_EVERY, round(&own, id)).await;
            let leads = match outcome {
                Ok(Ok((leads, n))) => {
                    m.alive.store(n, Ordering::Relaxed);
                    on_alive(n);
                    leads
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "leader election: the database did not answer");
                    false
                }
                Err(_) => {
                    tracing::warn!("leader election: the database did not answer in time");
                    false
                }
            };
            if leads != led {
                tracing::info!(replica = %id, leads, "leader for the background duties");
                led = leads;
            }
            // A resignation during the round wins over its answer.
            flag.set(leads && !m.resigned());
            tokio::time::sleep(RENEW_EVERY.saturating_sub(started.elapsed())).await;
        }
        flag.set(false);
        // A round that was under way when `resign` ran may have taken the lease again.
        if m.resigned() {
            let _ = resign(&own, id).await;
        }
    })?;
    Ok(membership)
}

/// One renewal: the heartbeat, the lease, and the count of live replicas, in one round trip
/// each on one connection. Returns (leads, live replicas).
async fn round(pg: &Pg, id: Uuid) -> Result<(bool, u32), String> {
    let c = pg.client().await?;
    let fail = |e: tokio_postgres::Error| describe(&e);
    let alive_within = ALIVE_WITHIN.as_secs_f64();
    let lease = LEASE.as_secs_f64();
    c.execute(
        "INSERT INTO replicas (id, started_at, seen_at) VALUES ($1, now(), now())
         ON CONFLICT (id) DO UPDATE SET seen_at = now()",
        &[&id],
    )
    .await
    .map_err(fail)?;
    let won = c
        .query_opt(
            "INSERT INTO leader (name, holder, elected_at, expires_at)
             VALUES ($1, $2, now(), now() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE
                SET holder = EXCLUDED.holder,
                    elected_at = CASE WHEN leader.holder = EXCLUDED.holder
                                      THEN leader.elected_at ELSE now() END,
                    expires_at = EXCLUDED.expires_at
              WHERE leader.holder = EXCLUDED.holder OR leader.expires_at < now()
             RETURNING holder",
            &[&DUTIES, &id, &lease],
        )
        .await
        .map_err(fail)?
        .is_some();
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM replicas
              WHERE seen_at > now() - make_interval(secs => $1)",
            &[&alive_within],
        )
        .await
        .map_err(fail)?
        .get(0);
    if won {
        // The leader forgets replicas gone for an hour, so the table stays small.
        c.execute(
            "DELETE FROM replicas WHERE seen_at < now() - interval '1 hour'",
            &[],
        )
        .await
        .map_err(fail)?;
    }
    Ok((won, u32::try_from(n).unwrap_or(u32::MAX)))
}

/// Gives the lease up and removes the heartbeat, at a clean shutdown.
async fn resign(pg: &Pg, id: Uuid) -> Result<(), String> {
    let c = pg.client().await?;
    let fail = |e: tokio_postgres::Error| describe(&e);
    c.execute("DELETE FROM leader WHERE holder = $1", &[&id])
        .await
        .map_err(fail)?;
    c.execute("DELETE FROM replicas WHERE id = $1", &[&id])
        .await
        .map_err(fail)?;
    Ok(())
}
