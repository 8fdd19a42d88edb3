//! Operational events expire after `TENANTRY_EVENTS_RETENTION_DAYS`: a thread of its own deletes
//! the older ones at start and every hour, a small batch per transaction, so a large backlog
//! (the first sweep after an upgrade, a lowered setting) never holds the write lock for long.
use super::store;
use crate::clock::Clock;
use crate::db::pg::Pg;
use crate::db::sweep::{self, Batches};
use crate::db::Db;
use crate::error::ApiError;
use crate::time::Micros;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Rows per transaction. Each row leaves four indexes, the random-UUID one included, so a batch
/// costs more than its size suggests: on the 2-core benchmark machine (loaded, 200,000 events)
/// a batch of 1000 held the write lock 24-35 ms at the median and up to 76 ms, one of 100
/// 0.7-0.9 ms at the median and 9-18 ms at p90. Requests that write wait at most one batch.
pub const BATCH: usize = 100;
/// Between batches, so other writers get the lock in turn; about 9,000 rows a second at most.
const PAUSE: Duration = Duration::from_millis(10);
const DAY: Micros = 86_400_000_000;

/// Deletes every event created more than `keep_days` days before `now` (none when `keep_days`
/// is 0), `batch` rows per transaction with `pause` between, while `go_on()` holds. Returns how
/// many it deleted.
pub fn sweep_once(
    db: &Db,
    now: Micros,
    keep_days: u32,
    batch: usize,
    pause: Duration,
    go_on: &dyn Fn() -> bool,
) -> Result<usize, ApiError> {
    if keep_days == 0 {
        return Ok(0);
    }
    let cutoff = now.saturating_sub(i64::from(keep_days) * DAY);
    let batches = Batches { size: batch, pause };
    batches.run(db, go_on, |c, n| {
        Ok(store::delete_older_than(c, cutoff, n)?)
    })
}

/// As `sweep_once`, on PostgreSQL: the same cutoff and batches, a statement per batch.
pub async fn sweep_once_pg(
    pg: &Pg,
    now: Micros,
    keep_days: u32,
    batch: usize,
    pause: Duration,
    go_on: &dyn Fn() -> bool,
) -> Result<usize, ApiError> {
    if keep_days == 0 {
        return Ok(0);
    }
    let cutoff = now.saturating_sub(i64::from(keep_days) * DAY);
    let c = pg.conn().await?;
    let delete = c.prepare(DELETE_OLDER_THAN_PG).await?;
    let batches = Batches { size: batch, pause };
    batches
        .run_pg(go_on, |n| {
            let (c, delete) = (&c, &delete);
            async move { Ok(c.execute(delete, &[&cutoff, &n]).await?) }
        })
        .await
}

/// `store::DELETE_OLDER_THAN` on PostgreSQL (`events_by_created_at` serves both).
const DELETE_OLDER_THAN_PG: &str = "DELETE FROM events WHERE seq IN
    (SELECT seq FROM events WHERE created_at < $1 ORDER BY created_at LIMIT $2)";

/// Starts the sweeper on PostgreSQL (unless `keep_days` is 0), run only while this replica
/// leads (`sweep::every_pg`).
pub fn start_pg(
    lead: Pg,
    url: &str,
    clock: Arc<dyn Clock>,
    keep_days: u32,
    every: Duration,
    alive: Weak<std::fs::File>,
) -> Result<(), String> {
    if keep_days == 0 {
        return Ok(());
    }
    sweep::every_pg(
        "events-retention",
        clock,
        every,
        alive,
        lead,
        url,
        move |pg, now, go_on| {
            Box::pin(async move {
                match sweep_once_pg(pg, now, keep_days, BATCH, PAUSE, go_on).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, keep_days, "expired events deleted"),
                    Err(e) => tracing::warn!(error = %e, "events retention sweep"),
                }
            })
        },
    )
}

/// Starts the sweeper (unless `keep_days` is 0): a sweep at once, then one every `every`, by
/// the app's clock; it ends once the server has stopped (`alive` gone).
pub fn start(
    db: Db,
    clock: Arc<dyn Clock>,
    keep_days: u32,
    every: Duration,
    alive: Weak<std::fs::File>,
) {
    if keep_days == 0 {
        return;
    }
    sweep::every(
        "events-retention",
        clock,
        every,
        alive,
        move |now, go_on| match sweep_once(&db, now, keep_days, BATCH, PAUSE, go_on) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, keep_days, "expired events deleted"),
            Err(e) => tracing::warn!(error = %e, "events retention sweep"),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Kind, NewEvent};
    use crate::tenancy::DEFAULT_TENANT_ID;
    use serde_json::json;

    fn count(db: &Db) -> i64 {
        let c = db.conn().unwrap();
        c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap()
    }

    fn record_at(db: &Db, at: Micros, n: usize) {
        db.write_blocking(|c| {
            let tx = c.transaction()?;
            for _ in 0..n {
                let e = NewEvent::of(
                    Kind::TenantUpdated,
                    DEFAULT_TENANT_ID,
                    "m".into(),
                    json!({}),
                );
                store::record(&tx, at, e)?;
            }
            tx.commit()?;
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn a_sweep_deletes_old_events_in_batches_and_keeps_recent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), false).unwrap();
        let now: Micros = 1_800_000_000_000_000;
        record_at(&db, now - 31 * DAY, 25);
        record_at(&db, now - 30 * DAY + 1, 3);
        record_at(&db, now, 2);
        let deleted = sweep_once(&db, now, 30, 10, Duration::ZERO, &|| true).unwrap();
        assert_eq!(deleted, 25);
        assert_eq!(count(&db), 5);
        // Nothing older is left: a second sweep deletes nothing.
        assert_eq!(
            sweep_once(&db, now, 30, 10, Duration::ZERO, &|| true).unwrap(),
            0
        );
    }

    #[test]
    fn zero_days_keeps_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), false).unwrap();
        let now: Micros = 1_800_000_000_000_000;
        record_at(&db, now - 36_500 * DAY, 4);
        assert_eq!(
            sweep_once(&db, now, 0, 10, Duration::ZERO, &|| true).unwrap(),
            0
        );
        assert_eq!(count(&db), 4);
    }

    #[test]
    fn a_sweep_stops_between_batches_once_the_server_stops() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), false).unwrap();
        let now: Micros = 1_800_000_000_000_000;
        record_at(&db, now - 100 * DAY, 25);
        assert_eq!(
            sweep_once(&db, now, 30, 10, Duration::ZERO, &|| false).unwrap(),
            10
        );
    }

    #[test]
    fn the_batch_deletion_reads_the_created_at_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), false).unwrap();
        let c = db.conn().unwrap();
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", store::DELETE_OLDER_THAN))
            .unwrap()
            .query_map(rusqlite::params![1, 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("events_by_created_at")),
            "{plan:?}"
        );
    }
}
