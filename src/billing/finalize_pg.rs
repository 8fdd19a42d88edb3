//! Making statements final on PostgreSQL (issue 19; docs/SCALE_OUT.md §5.3). What SQLite's one
//! write lock gives `finalize`, the tenant's `usage_totals` row lock gives here: every usage
//! writer on every replica takes it before storing events, and a statement is stored under it
//! with "now" read after it is held. So for one tenant and period either the events commit
//! first (and are in the statement) or the statement does (and the writer, which reads the
//! stored statements after the same lock, refuses them with `period_closed`). Several replicas
//! finalizing at once queue on that lock; the second finds the statement stored, and the
//! primary key with `ON CONFLICT DO NOTHING` would store it once anyway.
use super::finalize::finalized_event;
use super::period::{Period, Status};
use super::statement::Line;
use super::store_pg;
use crate::clock::Clock;
use crate::db::pg::Pg;
use crate::db::Db;
use crate::error::ApiError;
use crate::time::{to_micros, Micros};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio_postgres::GenericClient;
use uuid::Uuid;

/// Locks the tenant's totals row in `tx` and reads "now" after the lock is held.
pub async fn lock(
    c: &impl GenericClient,
    clock: &dyn Clock,
    tenant: Uuid,
) -> Result<Micros, ApiError> {
    store_pg::lock_tenant(c, tenant).await?;
    Ok(to_micros(clock.now()))
}

/// `finalize::finalize` on PostgreSQL, in the caller's transaction, which holds the tenant's
/// lock (`lock`) with `now` read after it.
pub async fn finalize(
    c: &impl GenericClient,
    tenant: Uuid,
    period: Period,
    now: Micros,
) -> Result<Option<(Vec<Line>, Micros)>, ApiError> {
    if let Some(stored) = store_pg::stored(c, tenant, period).await? {
        return Ok(Some(stored));
    }
    let lines = store_pg::live_lines(c, tenant, period).await?;
    if lines.is_empty() {
        return Ok(None);
    }
    let (due, event) = finalized_event(&tenant.to_string(), period, &lines)?;
    if store_pg::insert_final(c, tenant, period, &lines, due, now).await? {
        crate::events::pg::record_many(c, &[(now, event)]).await?;
    }
    Ok(Some((lines, now)))
}

/// Stores every final statement not yet stored, period by period from the last one finished
/// (or the first month with usage), one tenant per transaction: `finalize::catch_up`.
pub async fn catch_up(pg: &Pg, clock: &dyn Clock, grace: Micros) -> Result<usize, ApiError> {
    let first_open = Period::of(to_micros(clock.now()).saturating_sub(grace));
    let c = pg.conn().await?;
    let start = match store_pg::finalized_through(&**c).await? {
        Some(p) => p,
        None => match store_pg::first_period(&**c).await? {
            Some(p) => p,
            None => return Ok(0),
        },
    };
    drop(c);
    let mut stored = 0;
    let mut p = start;
    while p < first_open {
        stored += finalize_period(pg, clock, grace, p).await?;
        p = p.next();
        let c = pg.conn().await?;
        store_pg::set_finalized_through(&**c, p).await?;
    }
    Ok(stored)
}

/// Stores the statement of every tenant with usage in `period` that has none stored, one tenant
/// per transaction, if the period is final: `finalize::finalize_period`.
pub async fn finalize_period(
    pg: &Pg,
    clock: &dyn Clock,
    grace: Micros,
    period: Period,
) -> Result<usize, ApiError> {
    let mut c = pg.conn().await?;
    let tenants = store_pg::unfinalized_tenants(&**c, period).await?;
    let mut stored = 0;
    for t in tenants {
        let tx = c.transaction().await?;
        let now = lock(&*tx, clock, t).await?;
        if period.status(now, grace) != Status::Final {
            return Ok(stored);
        }
        stored += usize::from(finalize(&*tx, t, period, now).await?.is_some());
        tx.commit().await?;
    }
    Ok(stored)
}

/// Starts the finalizer on PostgreSQL: a thread with a runtime of its own running `catch_up` at
/// once and then every `every` on `pool`, while this replica leads (`Pg::leads` of `db`, the
/// server's store, whose flag the election sets); it ends once the server has stopped.
pub fn start(
    db: Db,
    pool: Pg,
    clock: Arc<dyn Clock>,
    grace: Micros,
    every: Duration,
    alive: Weak<std::fs::File>,
) {
    let spawned = crate::db::pg::spawn_task("billing-finalizer", async move {
        while alive.strong_count() > 0 {
            if db.pg().is_some_and(|pg| pg.leads()) {
                match catch_up(&pool, clock.as_ref(), grace).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(statements = n, "billing statements finalized"),
                    Err(e) => {
                        tracing::warn!(error = ?e, "finalizing statements failed; retrying later")
                    }
                }
            }
            // Short sleeps, so the thread ends soon after the server stops.
            let due = tokio::time::Instant::now() + every;
            while alive.strong_count() > 0 && tokio::time::Instant::now() < due {
                tokio::time::sleep(every.min(Duration::from_secs(1))).await;
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "the billing finalizer did not start");
    }
}
