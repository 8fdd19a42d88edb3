//! What every retention job shares: deleting in small transactions with a pause between, so a
//! large backlog never holds the write lock for long (ingest and other writers take it in
//! turn), and a thread of its own that runs a job at start and then at an interval.
use super::Db;
use crate::clock::Clock;
use crate::error::ApiError;
use crate::time::{to_micros, Micros};
use rusqlite::Connection;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// The longest a sweeper thread sleeps at once, so it ends soon after the server stops.
const TICK: Duration = Duration::from_secs(1);

/// How a job deletes: at most `size` rows per transaction, `pause` between transactions.
#[derive(Clone, Copy, Debug)]
pub struct Batches {
    pub size: usize,
    pub pause: Duration,
}

impl Batches {
    /// Runs `step` (which deletes up to the batch size it is given and returns how many it
    /// deleted, in a transaction of its own) until a step deletes fewer than a full batch or
    /// `go_on()` turns false. Returns how many rows it deleted.
    pub fn run(
        self,
        db: &Db,
        go_on: &dyn Fn() -> bool,
        mut step: impl FnMut(&mut Connection, usize) -> Result<usize, ApiError>,
    ) -> Result<usize, ApiError> {
        let mut total = 0;
        loop {
            let n = db.write_blocking(|c| step(c, self.size))?;
            total += n;
            if n < self.size || !go_on() {
                return Ok(total);
            }
            std::thread::sleep(self.pause);
        }
    }
}

/// Starts a thread named `name` that runs `job(now, go_on)` at once and then every `every`,
/// `now` by the app's clock; it ends once the server has stopped (`alive` gone). `go_on` turns
/// false then too, so a long job stops between batches.
pub fn every(
    name: &str,
    clock: Arc<dyn Clock>,
    every: Duration,
    alive: Weak<std::fs::File>,
    mut job: impl FnMut(Micros, &dyn Fn() -> bool) + Send + 'static,
) {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let mut due = Instant::now();
            while alive.strong_count() > 0 {
                if Instant::now() >= due {
                    let go_on = || alive.strong_count() > 0;
                    job(to_micros(clock.now()), &go_on);
                    due = Instant::now() + every;
                }
                std::thread::sleep(every.min(TICK));
            }
        })
        .expect("a sweeper thread starts");
}

/// A future a duty on PostgreSQL runs, borrowing its pool and `go_on` for one sweep.
pub type PgSweep<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

impl Batches {
    /// As `run`, on PostgreSQL: `step` deletes up to the batch size in one statement of its own
    /// (a transaction per batch, so no sweep holds row locks longer than one batch).
    pub async fn run_pg<F, Fut>(
        self,
        go_on: &dyn Fn() -> bool,
        mut step: F,
    ) -> Result<usize, ApiError>
    where
        F: FnMut(i64) -> Fut,
        Fut: std::future::Future<Output = Result<u64, ApiError>>,
    {
        let size = i64::try_from(self.size).unwrap_or(i64::MAX);
        let mut total = 0;
        loop {
            let n = step(size).await?;
            total += n as usize;
            if n < self.size as u64 || !go_on() {
                return Ok(total);
            }
            tokio::time::sleep(self.pause).await;
        }
    }
}

/// As `every`, for one of the leader's duties on PostgreSQL (docs/SCALE_OUT.md §5.3): the
/// thread gets a runtime and a one-connection pool of its own at `url` (a pool's connections
/// are driven by the runtime that opened them, so the server's pool is not used from here),
/// and skips each sweep while `lead.leads()` is false (another replica leads).
pub fn every_pg(
    name: &str,
    clock: Arc<dyn Clock>,
    every_: Duration,
    alive: Weak<std::fs::File>,
    lead: super::pg::Pg,
    url: &str,
    mut job: impl for<'a> FnMut(&'a super::pg::Pg, Micros, &'a dyn Fn() -> bool) -> PgSweep<'a>
        + Send
        + 'static,
) -> Result<(), String> {
    let pool = super::pg::Pg::new(url, 1)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime for {name}: {e}"))?;
    every(name, clock, every_, alive, move |now, go_on| {
        if lead.leads() {
            runtime.block_on(job(&pool, now, go_on));
        }
    });
    Ok(())
}
