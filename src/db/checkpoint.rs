//! The WAL checkpointer, a thread of its own beside the usage writer.
//!
//! Under steady ingest the WAL only starts again from its beginning when a write finds every
//! frame already copied back into the database. A PASSIVE checkpoint never gets there on its
//! own (the writer appends while it copies), and a checkpoint run by the writer itself stalls
//! every request waiting on that commit for as long as copying and two fsyncs take: that was the
//! 30-50 ms p99 tail of single-event ingest. So this thread copies in PASSIVE rounds, which block
//! nobody, until a round finds only a small remainder, and then runs one RESTART checkpoint that
//! holds the writer back just long enough to copy that remainder, once the WAL is long enough
//! to be worth that stall. The writer's own
//! `wal_autocheckpoint` stays as a backstop for when this thread cannot keep up.
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pause between checkpoint cycles.
const INTERVAL: Duration = Duration::from_millis(100);
/// A PASSIVE round that leaves fewer new frames than this (about 1 MiB) is close enough.
const SMALL_REMAINDER: i64 = 256;
/// PASSIVE rounds per cycle at most, should the writer outpace the copying.
const MAX_ROUNDS: usize = 6;
/// The WAL is started again once it holds this many frames (about 64 MiB). Each RESTART holds
/// the writer back for two fsyncs, 6-20 ms on the benchmark machine's disk; doing it every cycle
/// stalled ingest about 6% of the time, while waiting for a longer WAL made each stall longer.
/// Measured with single events: every cycle p99 23-24 ms; at 16,384 frames 15.5-20.6 ms (max
/// 60 ms); at 32,768 frames 15-19 ms but max 128-159 ms. See docs/BENCHMARKS.md.
pub const RESTART_AT: i64 = 16_384;

/// `PRAGMA wal_checkpoint`'s answer: (busy, frames in the WAL, frames copied back).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub busy: bool,
    pub log: i64,
    pub copied: i64,
}

fn checkpoint(c: &Connection, mode: &str) -> rusqlite::Result<Progress> {
    c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok(Progress {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

/// Whether another PASSIVE round is worth it, given the last two rounds.
pub fn another_round(prev: Progress, last: Progress) -> bool {
    // The WAL was started again in between: it is short now.
    if last.log < prev.log {
        return false;
    }
    last.log - prev.log >= SMALL_REMAINDER
}

/// Whether to finish the cycle with a RESTART checkpoint after `last`.
pub fn should_restart(last: Progress, restart_at: i64) -> bool {
    // Too short to be worth a stall, or a reader holds an older snapshot (a backup, an export): holding the
    // writer back would gain nothing, since the WAL cannot start again before that reader ends.
    last.log >= restart_at && !last.busy && last.copied == last.log
}

/// While waiting for the write lock or for readers, retry every 100 us for about 20 ms, then
/// give up for this cycle: a RESTART that cannot finish quickly must not hold up ingest.
fn brief(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempt < 200
}

/// Starts the checkpointer on its own connection; it stops once `running` is false, after a
/// last TRUNCATE checkpoint so a clean stop leaves an empty WAL.
pub fn start(conn: Connection, running: Arc<AtomicBool>) {
    if let Err(e) = conn.busy_handler(Some(brief)) {
        tracing::warn!(error = %e, "checkpointer busy handler");
    }
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || {
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(INTERVAL);
                if let Err(e) = cycle(&conn, RESTART_AT) {
                    tracing::warn!(error = %e, "wal checkpoint");
                }
            }
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        })
        .expect("the checkpoint thread starts");
}

fn cycle(c: &Connection, restart_at: i64) -> rusqlite::Result<()> {
    let mut last = checkpoint(c, "PASSIVE")?;
    for _ in 1..MAX_ROUNDS {
        let prev = last;
        last = checkpoint(c, "PASSIVE")?;
        if !another_round(prev, last) {
            break;
        }
    }
    if should_restart(last, restart_at) {
        checkpoint(c, "RESTART")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(log: i64, copied: i64) -> Progress {
        Progress {
            busy: false,
            log,
            copied,
        }
    }

    #[test]
    fn rounds_continue_while_the_writer_keeps_pace() {
        assert!(another_round(p(1000, 1000), p(3000, 3000)));
        assert!(!another_round(p(3000, 3000), p(3100, 3100)));
        assert!(!another_round(p(3000, 3000), p(40, 40)));
    }

    #[test]
    fn restart_only_when_everything_seen_was_copied() {
        let n = RESTART_AT;
        assert!(should_restart(p(n, n), n));
        assert!(!should_restart(p(n - 1, n - 1), n));
        assert!(!should_restart(p(n, 200), n));
        let busy = Progress {
            busy: true,
            log: n,
            copied: n,
        };
        assert!(!should_restart(busy, n));
    }

    #[test]
    fn a_cycle_copies_everything_so_the_next_write_starts_the_wal_again() {
        let dir = std::env::temp_dir().join(format!("tenantry-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let w = Connection::open(&path).unwrap();
        w.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t (x BLOB);",
        )
        .unwrap();
        let insert = |n: usize| {
            w.execute_batch("BEGIN").unwrap();
            for _ in 0..n {
                w.execute("INSERT INTO t VALUES (randomblob(3000))", [])
                    .unwrap();
            }
            w.execute_batch("COMMIT").unwrap();
        };
        insert(500);
        let c = Connection::open(&path).unwrap();
        cycle(&c, 400).unwrap();
        // Everything was copied back, so the next write starts the WAL from frame 1.
        insert(1);
        let after = checkpoint(&c, "PASSIVE").unwrap();
        assert!(after.log < 10, "{after:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
