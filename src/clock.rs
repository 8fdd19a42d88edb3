//! The one source of "now", so tests can move time (key expiry, day and month rollovers).
use chrono::{DateTime, Utc};
use std::sync::Mutex;

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to; for tests.
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        ManualClock(Mutex::new(start))
    }
    pub fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock is never poisoned") = to;
    }
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().expect("clock lock is never poisoned");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock is never poisoned")
    }
}
