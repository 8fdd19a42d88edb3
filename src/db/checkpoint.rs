//! The WAL checkpointer, a thread of its own beside the usage writer.
//!
//! Under steady ingest the WAL only starts again from its beginning when a write finds every
//! frame already copied back into the database. A PASSIVE checkpoint never gets there on its
//! own (the writer appends while it copies), and a checkpoint run by the writer itself stalls
//! every request waiting on that commit for as long as copying and two fsyncs take: that was the
//! 30-50 ms p99 tail of single-event ingest. So this thread copies in PASSIVE rounds, which block
//! nobody, until a round finds only a small remainder, and then runs one RESTART checkpoint that
//! holds the writer back just long enough to copy that remainder, once the WAL is long enough
//! to be worth that stall. Once ingest stops, it truncates the WAL file to give the disk space
//! back. The writer's own `wal_autocheckpoint` stays as a backstop for when this thread cannot
//! keep up.
use rusqlite::Connection;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Pause between checkpoint cycles. Each PASSIVE round fsyncs the WAL, and the writer's next
/// append to the page being flushed waits for that write to finish, so smaller, more frequent
/// rounds mean shorter waits. Single events, 64 clients, alternating 8 s runs, p99: every 400 ms
/// 20.4-26.1 ms, 100 ms 13.9-17.6 ms, 30 ms 9.9-12.4 ms, 10 ms 11.9-14.2 ms.
const INTERVAL: Duration = Duration::from_millis(30);
/// A PASSIVE round that leaves fewer new frames than this (about 1 MiB) is close enough.
const SMALL_REMAINDER: i64 = 256;
/// PASSIVE rounds per cycle at most, should the writer outpace the copying.
const MAX_ROUNDS: usize = 6;
/// The WAL is started again once it holds this many frames (about 256 MiB). Each start costs
/// the writer three fsyncs, 5-25 ms each on the benchmark machine's disk (two under this RESTART,
/// one for the new WAL header in the writer's next commit), so fewer, later restarts mean fewer
/// stalled commits. Single events, 64 clients, alternating 8 s runs: at 16,384 frames p99
/// 18-21 ms and 13.7-15.2k events/s; at 65,536 frames p99 13-14.5 ms and 15.9-17.2k events/s.
/// (At 16,384 frames with the old 64 MiB `journal_size_limit`, a longer WAL had looked worse:
/// that came from the file being truncated inside a commit, now avoided; see `WRITER_PRAGMAS`.)
pub const RESTART_AT: i64 = 65_536;
/// Cycles without a new frame (about one second) before an idle WAL file is truncated, so the
/// disk space a burst of ingest took is given back without stalling ingest that is still going.
const IDLE_CYCLES: u32 = (1000 / INTERVAL.as_millis()) as u32;

/// The usage writer connection's settings. A 64 MiB page cache keeps the hot index pages of
/// large tenants in memory. The checkpointer starts the WAL again once it holds `RESTART_AT`
/// frames (256 MiB and a little more by the time it does); the writer's own checkpoint at
/// 131,072 pages (512 MiB) is the backstop for when it cannot (a long reader such as a backup).
/// The first commit after a restart truncates a WAL file larger than `journal_size_limit`; at
/// 64 MiB that cut 5-21 ms (measured with strace) off the file on nearly every cycle, inside a
/// commit, so the limit sits above the usual cycle, and the checkpointer truncates the WAL once
/// ingest goes idle instead.
pub const WRITER_PRAGMAS: &str = "PRAGMA wal_autocheckpoint = 131072; PRAGMA cache_size = -65536;
     PRAGMA journal_size_limit = 536870912;";

/// Applies `WRITER_PRAGMAS` and the writer's busy handler to its connection.
pub fn tune_writer(conn: &Connection) {
    if let Err(e) = conn.execute_batch(WRITER_PRAGMAS) {
        tracing::warn!(error = %e, "writer pragmas");
    }
    if let Err(e) = conn.busy_handler(Some(wait_for_lock)) {
        tracing::warn!(error = %e, "writer busy handler");
    }
}

/// The writer waits for the write lock only while the checkpointer's RESTART or an occasional
/// write from a request holds it, usually for a few milliseconds. SQLite's own handler sleeps
/// 1, 2, 5, 10, 15... ms between tries, so a 4 ms hold cost the writer 8 ms and a 12 ms one 18;
/// trying every 100 us for the first 20 ms ends the wait within 0.1 ms of the lock's release.
/// After that, every millisecond, up to the 5 s every other connection waits.
fn wait_for_lock(attempt: i32) -> bool {
    if attempt < BRIEF_TRIES {
        return brief(attempt);
    }
    std::thread::sleep(Duration::from_millis(1));
    attempt < BRIEF_TRIES + 4_980
}

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

/// Tries `brief` makes before it gives up (about 20 ms).
pub const BRIEF_TRIES: i32 = 200;

/// While waiting for the write lock or for readers, retry every 100 us for about 20 ms, then
/// give up for this cycle: a RESTART that cannot finish quickly must not hold up ingest. The
/// usage writer waits the same way for its first 20 ms.
pub fn brief(attempt: i32) -> bool {
    std::thread::sleep(Duration::from_micros(100));
    attempt < BRIEF_TRIES
}

/// Watches the WAL between cycles to tell when ingest has stopped.
#[derive(Default)]
pub struct Idle {
    log: i64,
    cycles: u32,
}

impl Idle {
    /// Whether to truncate the WAL after this cycle: true once per idle stretch, when nothing
    /// was written for `IDLE_CYCLES` cycles and everything in the WAL was copied back.
    pub fn observe(&mut self, last: Progress) -> bool {
        if last.log == self.log {
            self.cycles = self.cycles.saturating_add(1);
        } else {
            (self.log, self.cycles) = (last.log, 0);
        }
        self.cycles == IDLE_CYCLES && last.log > 0 && last.copied == last.log && !last.busy
    }
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
            let mut idle = Idle::default();
            while running.load(Ordering::Relaxed) {
                std::thread::sleep(INTERVAL);
                let done = cycle(&conn, RESTART_AT).and_then(|last| {
                    if idle.observe(last) {
                        checkpoint(&conn, "TRUNCATE")?;
                    }
                    Ok(())
                });
                if let Err(e) = done {
                    tracing::warn!(error = %e, "wal checkpoint");
                }
            }
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)");
        })
        .expect("the checkpoint thread starts");
}

/// PASSIVE rounds, then a RESTART if due; returns what the last checkpoint saw.
fn cycle(c: &Connection, restart_at: i64) -> rusqlite::Result<Progress> {
    let mut last = checkpoint(c, "PASSIVE")?;
    for _ in 1..MAX_ROUNDS {
        let prev = last;
        last = checkpoint(c, "PASSIVE")?;
        if !another_round(prev, last) {
            break;
        }
    }
    if should_restart(last, restart_at) {
        return checkpoint(c, "RESTART");
    }
    Ok(last)
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
    fn an_idle_wal_is_truncated_once_per_idle_stretch() {
        let mut idle = Idle::default();
        let cycles = |idle: &mut Idle, last: Progress, n: u32| -> Vec<bool> {
            (0..n).map(|_| idle.observe(last)).collect()
        };
        // Busy: the log moves every cycle.
        for log in [100, 300, 900] {
            assert!(!idle.observe(p(log, log)));
        }
        let stretch = cycles(&mut idle, p(900, 900), IDLE_CYCLES + 5);
        assert_eq!(stretch.iter().filter(|t| **t).count(), 1);
        assert!(stretch[IDLE_CYCLES as usize - 1]);
        // Truncated: an empty WAL is left alone however long it stays idle.
        assert!(!cycles(&mut idle, p(0, 0), 30).contains(&true));
        // Idle, but a reader kept frames from being copied back: nothing to gain yet.
        let mut idle = Idle::default();
        assert!(!cycles(&mut idle, p(500, 400), 30).contains(&true));
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
