//! Per-tenant request rate limits: a token bucket per tenant (GCRA, from `governor`) sized by
//! plan (basic 10, pro 100, enterprise 1000 requests a minute, burst twice that) or by the
//! tenant's `rate_limit_per_minute` setting. Runs on the app's clock so tests can move time.
//! Memory stays bounded: a bucket idle long enough to have refilled is dropped, which changes
//! no decision, since a new bucket starts full too.
use crate::clock::Clock;
use crate::tenancy::Plan;
use crate::tenancy::TenantId;
use crate::time::Micros;
use governor::clock::{Clock as GovClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::ops::Add;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Nanoseconds since the Unix epoch on the app's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Add<Nanos> for Instant {
    type Output = Instant;
    fn add(self, d: Nanos) -> Instant {
        Instant(self.0.saturating_add(d.as_u64()))
    }
}

impl Reference for Instant {
    fn duration_since(&self, earlier: Self) -> Nanos {
        self.0.saturating_sub(earlier.0).into()
    }
    fn saturating_sub(&self, d: Nanos) -> Self {
        Instant(self.0.saturating_sub(d.as_u64()))
    }
}

#[derive(Clone)]
pub struct AppClock(pub Arc<dyn Clock>);

impl GovClock for AppClock {
    type Instant = Instant;
    fn now(&self) -> Instant {
        let us = self.0.now().timestamp_micros().max(0) as u64;
        Instant(us.saturating_mul(1000))
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, AppClock, StateInformationMiddleware>;

struct Entry {
    per_minute: u32,
    bucket: Bucket,
    last_used: Micros,
}

/// The answer for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not limited (admin, or single-tenant mode without an override).
    Unlimited,
    Allowed {
        limit: u32,
        remaining: u32,
    },
    Denied {
        limit: u32,
        retry_after_secs: u64,
    },
}

#[derive(Default)]
struct Buckets {
    by_tenant: HashMap<TenantId, Entry>,
    last_sweep: Micros,
}

pub struct RateLimits {
    clock: AppClock,
    buckets: Mutex<Buckets>,
}

/// Requests a minute for a plan.
pub fn plan_rate(plan: Plan) -> u32 {
    match plan {
        Plan::Basic => 10,
        Plan::Pro => 100,
        Plan::Enterprise => 1000,
    }
}

/// A bucket refills completely in `burst / rate` = 2 minutes; idle longer than this, it is full.
const IDLE: Micros = 3 * 60 * 1_000_000;

impl RateLimits {
    pub fn new(clock: Arc<dyn Clock>) -> RateLimits {
        RateLimits {
            clock: AppClock(clock),
            buckets: Mutex::new(Buckets::default()),
        }
    }

    /// Takes one request from the tenant's bucket of `per_minute` (burst twice that).
    pub fn check(&self, tenant: TenantId, per_minute: u32) -> Decision {
        let Some(rate) = NonZeroU32::new(per_minute) else {
            return Decision::Denied {
                limit: 0,
                retry_after_secs: 60,
            };
        };
        let now_us = self.clock.0.now().timestamp_micros();
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let buckets = &mut *guard;
        // Once a minute, drop the buckets that have refilled: idle tenants cost no memory.
        if now_us - buckets.last_sweep > 60_000_000 {
            buckets.by_tenant.retain(|_, e| now_us - e.last_used < IDLE);
            buckets.last_sweep = now_us;
        }
        let entry = buckets
            .by_tenant
            .entry(tenant)
            .and_modify(|e| {
                if e.per_minute != per_minute {
                    *e = new_entry(&self.clock, rate);
                }
            })
            .or_insert_with(|| new_entry(&self.clock, rate));
        entry.last_used = now_us;
        match entry.bucket.check() {
            Ok(snapshot) => Decision::Allowed {
                limit: per_minute,
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.clock.now());
                Decision::Denied {
                    limit: per_minute,
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }
        }
    }

    /// How many tenants hold a bucket now.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_tenant
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn new_entry(clock: &AppClock, rate: NonZeroU32) -> Entry {
    let burst = rate.saturating_mul(NonZeroU32::new(2).expect("two is not zero"));
    let quota = Quota::per_minute(rate).allow_burst(burst);
    Entry {
        per_minute: rate.get(),
        bucket: RateLimiter::direct_with_clock(quota, clock.clone())
            .with_middleware::<StateInformationMiddleware>(),
        last_used: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::Utc;
    use uuid::Uuid;

    fn limits() -> (Arc<ManualClock>, RateLimits) {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        (clock.clone(), RateLimits::new(clock))
    }

    #[test]
    fn burst_of_twice_the_rate_then_denied_then_refilled() {
        let (clock, rl) = limits();
        let t = TenantId::from_uuid(Uuid::from_u128(1));
        for i in 0..20 {
            assert!(
                matches!(rl.check(t, 10), Decision::Allowed { remaining, .. } if remaining == 19 - i),
                "{i}"
            );
        }
        let Decision::Denied {
            retry_after_secs, ..
        } = rl.check(t, 10)
        else {
            panic!("21st request allowed")
        };
        assert_eq!(retry_after_secs, 6, "one request every 6 s at 10 a minute");
        clock.advance(chrono::Duration::seconds(6));
        assert!(matches!(rl.check(t, 10), Decision::Allowed { .. }));
        assert!(matches!(rl.check(t, 10), Decision::Denied { .. }));
    }

    #[test]
    fn tenants_have_their_own_buckets_and_a_new_rate_applies_at_once() {
        let (_, rl) = limits();
        let (a, b) = (
            TenantId::from_uuid(Uuid::from_u128(1)),
            TenantId::from_uuid(Uuid::from_u128(2)),
        );
        for _ in 0..20 {
            rl.check(a, 10);
        }
        assert!(matches!(rl.check(a, 10), Decision::Denied { .. }));
        assert!(matches!(rl.check(b, 10), Decision::Allowed { .. }));
        assert!(matches!(
            rl.check(a, 100),
            Decision::Allowed { limit: 100, .. }
        ));
    }

    #[test]
    fn idle_buckets_are_dropped() {
        let (clock, rl) = limits();
        for i in 0..100 {
            rl.check(TenantId::from_uuid(Uuid::from_u128(i)), 10);
        }
        assert_eq!(rl.len(), 100);
        clock.advance(chrono::Duration::minutes(4));
        rl.check(TenantId::from_uuid(Uuid::from_u128(1000)), 10);
        assert_eq!(rl.len(), 1);
    }
}
