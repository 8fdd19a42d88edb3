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
