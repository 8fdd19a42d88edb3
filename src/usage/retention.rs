//! Raw usage events expire after `TENANTRY_USAGE_RETENTION_DAYS`, whole UTC days at a time;
//! the daily rollups stay, so stats, limits and statements of those days never change. A thread
//! of its own deletes in small batches (`db::sweep`), so ingest never waits long for the lock.
use super::rollup::{day_of, DAY_MICROS};
use super::store;
use crate::clock::Clock;
use crate::db::pg::Pg;
use crate::db::sweep::{self, Batches};
use crate::db::{meta, Db};
use crate::error::ApiError;
use crate::time::Micros;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// In `meta`: the first UTC day (days since the epoch) whose raw events are all still kept.
/// Raised before each sweep deletes anything, so `tenantry verify` compares rollups with raw
/// events only from that day on and never reports a day that is partly deleted.
pub const RETAINED_FROM_DAY: &str = "usage_retained_from_day";

/// Rows per transaction and the pause between. Each row leaves the table and three indexes.
/// With 500 rows and 10 ms, single-event ingest at 4 clients went from p99 1.51 to 3.78 ms
/// (the writer waits out a batch in SQLite's busy handler, which sleeps 1 ms, then 2 ms, ...);
/// with 100 and 5 ms it stayed within 2x (docs/BENCHMARKS.md), deleting about 17,000 rows/s
/// on an idle 2-core machine and 6,000-7,000 beside heavy ingest.
pub const BATCHES: Batches = Batches {
    size: 100,
    pause: Duration::from_millis(5),
};

/// The first day kept when keeping `keep_days` days before `now`'s day.
pub fn first_kept_day(now: Micros, keep_days: u32) -> i64 {
    day_of(now) - i64::from(keep_days)
}

/// The day recorded in `meta` from which raw events are complete, if retention ever ran.
pub fn retained_from_day(c: &rusqlite::Connection) -> rusqlite::Result<Option<i64>> {
    Ok(meta::get(c, RETAINED_FROM_DAY)?.and_then(|v| v.parse().ok()))
}

/// Deletes the raw events of every day before `first_kept_day(now, keep_days)` (none when
/// `keep_days` is 0), tenant by tenant, in `batches`, while `go_on()` holds. Returns how many.
pub fn sweep_once(
    db: &Db,
    now: Micros,
    keep_days: u32,
    batches: Batches,
    go_on: &dyn Fn() -> bool,
) -> Result<usize, ApiError> {
    if keep_days == 0 {
        return Ok(0);
    }
    let first = first_kept_day(now, keep_days);
    db.write_blocking(|c| {
        // Only ever raised: a larger setting later does not bring deleted days back.
        if retained_from_day(c)?.is_none_or(|d| d < first) {
            meta::set(c, RETAINED_FROM_DAY, &first.to_string())?;
        }
        Ok(())
    })?;
    let tenants = store::tenant_ids(&*db.conn()?)?;
    let cutoff = first.saturating_mul(DAY_MICROS);
    let mut total = 0;
    for tenant in tenants {
        if !go_on() {
            break;
        }
        total += batches.run(db, go_on, |c, n| {
            Ok(store::delete_events_before(c, &tenant, cutoff, n)?)
        })?;
    }
    Ok(total)
}

/// As `sweep_once`, on PostgreSQL: the same day recorded first, the same batches per tenant.
/// The rollups and `usage_totals` stay (they are what stats and limits read).
pub async fn sweep_once_pg(
    pg: &Pg,
    now: Micros,
    keep_days: u32,
    batches: Batches,
    go_on: &dyn Fn() -> bool,
) -> Result<usize, ApiError> {
    if keep_days == 0 {
        return Ok(0);
    }
    let first = first_kept_day(now, keep_days);
    let mut c = pg.conn().await?;
    {
        let tx = c.transaction().await?;
        // Only ever raised; the row lock keeps two sweeps from lowering it.
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE
             SET value = excluded.value WHERE meta.value::bigint < excluded.value::bigint",
            &[&RETAINED_FROM_DAY, &first.to_string()],
        )
        .await?;
        tx.commit().await?;
    }
    let tenants: Vec<uuid::Uuid> = c
        .query("SELECT id FROM tenants ORDER BY id", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let cutoff = first.saturating_mul(DAY_MICROS);
    let delete = c.prepare(DELETE_EVENTS_BEFORE_PG).await?;
    let mut total = 0;
    for tenant in tenants {
        if !go_on() {
            break;
        }
        let (c, delete) = (&c, &delete);
        total += batches
            .run_pg(go_on, |n| async move {
                Ok(c.execute(delete, &[&tenant, &cutoff, &n]).await?)
            })
            .await?;
    }
    Ok(total)
}

/// `store::DELETE_EVENTS_BEFORE` on PostgreSQL (through `usage_events_by_time`).
const DELETE_EVENTS_BEFORE_PG: &str = "DELETE FROM usage_events WHERE seq IN
    (SELECT seq FROM usage_events WHERE tenant_id = $1 AND ts < $2 ORDER BY ts LIMIT $3)";

/// How long the usage writer's commit receipts (`writer_commits`) are kept: a writer asks for
/// its receipt seconds after a lost answer, so a day is far more than enough.
pub const RECEIPTS_KEPT: Micros = DAY_MICROS;

/// Deletes the usage writer's receipts older than `RECEIPTS_KEPT` in `batches`; how many.
/// The table has no index on `committed_at`, so each batch scans it: kept to a day of
/// receipts, it stays small.
pub async fn prune_receipts_pg(
    pg: &Pg,
    now: Micros,
    batches: Batches,
    go_on: &dyn Fn() -> bool,
) -> Result<usize, ApiError> {
    let c = pg.conn().await?;
    let delete = c
        .prepare(
            "DELETE FROM writer_commits WHERE batch_id IN
               (SELECT batch_id FROM writer_commits WHERE committed_at < $1 LIMIT $2)",
        )
        .await?;
    let cutoff = now.saturating_sub(RECEIPTS_KEPT);
    let (c, delete) = (&c, &delete);
    batches
        .run_pg(go_on, |n| async move {
            Ok(c.execute(delete, &[&cutoff, &n]).await?)
        })
        .await
}

/// Starts usage retention on PostgreSQL, run only while this replica leads
/// (`sweep::every_pg`): the raw events past `keep_days` (none when 0), and always the usage
/// writer's receipts past a day.
pub fn start_pg(
    lead: Pg,
    url: &str,
    clock: Arc<dyn Clock>,
    keep_days: u32,
    every: Duration,
    alive: Weak<std::fs::File>,
) -> Result<(), String> {
    sweep::every_pg(
        "usage-retention",
        clock,
        every,
        alive,
        lead,
        url,
        move |pg, now, go_on| {
            Box::pin(async move {
                match sweep_once_pg(pg, now, keep_days, BATCHES, go_on).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, keep_days, "expired usage events deleted"),
                    Err(e) => tracing::warn!(error = %e, "usage retention sweep"),
                }
                match prune_receipts_pg(pg, now, RECEIPT_BATCHES, go_on).await {
                    Ok(0) => {}
                    Ok(n) => tracing::debug!(deleted = n, "old usage writer receipts deleted"),
                    Err(e) => tracing::warn!(error = %e, "pruning usage writer receipts"),
                }
            })
        },
    )
}

/// Receipts are one small row each, with one index: larger batches than events'.
const RECEIPT_BATCHES: Batches = Batches {
    size: 1_000,
    pause: Duration::from_millis(5),
};

/// Starts the sweeper (unless `keep_days` is 0): a sweep at once, then one every `every`.
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
        "usage-retention",
        clock,
        every,
        alive,
        move |now, go_on| match sweep_once(&db, now, keep_days, BATCHES, go_on) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, keep_days, "expired usage events deleted"),
            Err(e) => tracing::warn!(error = %e, "usage retention sweep"),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_deletion_reads_the_time_index() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("t.db"), false).unwrap();
        let c = db.conn().unwrap();
        let plan: Vec<String> = c
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                store::DELETE_EVENTS_BEFORE
            ))
            .unwrap()
            .query_map(rusqlite::params!["t", 1, 10], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("usage_events_by_time")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.starts_with("SCAN")), "{plan:?}");
    }

    #[test]
    fn the_first_kept_day_counts_whole_days_back_from_today() {
        let now = 20_000 * DAY_MICROS + 5;
        assert_eq!(first_kept_day(now, 30), 19_970);
        assert_eq!(first_kept_day(now - 10, 1), 19_998);
    }
}
