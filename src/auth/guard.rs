//! Admin-token guessing: after 10 failed admin-token attempts within a minute from one address,
//! every admin-token attempt from it gets 429 until the window passes. The check comes before
//! the token is compared, so a throttled address learns nothing; a success does not reset it.
use crate::time::Micros;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;

pub const MAX_FAILURES: usize = 10;
const WINDOW: Micros = 60_000_000;

#[derive(Default)]
pub struct AdminGuard(Mutex<HashMap<IpAddr, VecDeque<Micros>>>);

impl AdminGuard {
    /// `Err(seconds)` while `addr` is throttled.
    pub fn check(&self, addr: IpAddr, now: Micros) -> Result<(), u64> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(fails) = map.get_mut(&addr) else {
            return Ok(());
        };
        while fails.front().is_some_and(|&t| now - t >= WINDOW) {
            fails.pop_front();
        }
        if fails.is_empty() {
            map.remove(&addr);
            return Ok(());
        }
        if fails.len() >= MAX_FAILURES {
            let oldest = fails[fails.len() - MAX_FAILURES];
            let secs = ((oldest + WINDOW - now) as f64 / 1e6).ceil().max(1.0) as u64;
            return Err(secs);
        }
        Ok(())
    }

    pub fn failed(&self, addr: IpAddr, now: Micros) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        // Addresses that stopped failing are forgotten on their next check; an unbounded
        // number of distinct addresses is capped by dropping the quietest entries.
        if map.len() > 100_000 {
            map.retain(|_, f| f.back().is_some_and(|&t| now - t < WINDOW));
        }
        map.entry(addr).or_default().push_back(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_failures_a_minute_throttle_one_address_only() {
        let g = AdminGuard::default();
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
        for i in 0..10 {
            assert!(g.check(a, i).is_ok());
            g.failed(a, i);
        }
        assert_eq!(g.check(a, 10), Err(60));
        assert!(g.check(b, 10).is_ok());
        assert!(g.check(a, WINDOW).is_ok(), "the window passed");
    }
}
