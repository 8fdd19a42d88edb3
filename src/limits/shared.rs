//! Per-tenant rate limits shared by several replicas on one PostgreSQL database
//! (docs/SCALE_OUT.md §4.3). Each tenant has one GCRA row in `rate_buckets`; a replica takes a
//! grant of up to g tokens from it in one statement and spends them from memory. No replica
//! admits a token the row did not grant, so the plan's bound (rate + burst in any minute) holds
//! whatever the number of replicas; what a replica does not spend within a second expires,
//! which only errs strict. A denial is remembered until its retry time, so a tenant hammering a
//! replica costs one round trip per refill, not one per request.
//!
//! When the database cannot be reached the replica falls back to the in-memory bucket of
//! `limits::rate` sized limit / N (N replicas), logs it, and tries the database again a second
//! later. Runs on the app's clock, so tests can move time.
use super::rate::{Decision, RateLimits};
use crate::clock::Clock;
use crate::db::pg::{describe, Pg};
use crate::tenancy::TenantId;
use crate::time::Micros;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One grant of up to $5 tokens from the row of tenant $1 at time $2, with T = $3 (micros a
/// token) and burst B = $4. Returns the bucket's `tat` before and after; a missing row returns
/// nothing (the caller inserts it full and asks again).
/// A row last used at another rate (`per_minute`) starts full at the new one, as the
/// in-memory bucket does: a changed `rate_limit_per_minute` applies at once, both ways.
const GRANT: &str = "UPDATE rate_buckets b
    SET tat = greatest(o.tat, $2::bigint) + $3::bigint * least($5::bigint,
              greatest(0, ($2::bigint + $4::bigint * $3::bigint - greatest(o.tat, $2::bigint))
                          / $3::bigint)),
        per_minute = $6::bigint
    FROM (SELECT CASE WHEN per_minute = $6::bigint THEN tat ELSE 0 END AS tat
            FROM rate_buckets WHERE tenant_id = $1 FOR UPDATE) o
    WHERE b.tenant_id = $1
    RETURNING o.tat, b.tat";

const INSERT_FULL: &str =
    "INSERT INTO rate_buckets (tenant_id, tat) VALUES ($1, 0) ON CONFLICT DO NOTHING";

/// Granted tokens not spent within this are dropped.
const TOKENS_LAST: Micros = 1_000_000;
/// After a database error, the fallback answers alone for this long.
const RETRY_DATABASE_AFTER: Duration = Duration::from_secs(1);
/// A grant slower than this counts as the database being unreachable.
const GRANT_TIMEOUT: Duration = Duration::from_secs(1);
/// Local state idle this long is dropped: its tokens expired and any denial ran out
/// (a bucket is full again after burst / rate = 2 minutes).
const IDLE: Micros = 3 * 60 * 1_000_000;

/// Tokens a grant asks for: a tenth of a second's worth, at least one.
pub fn grant_size(per_minute: u32) -> i64 {
    i64::from(per_minute.div_ceil(600)).max(1)
}

/// Micros a token, and the burst, for a rate a minute (burst twice the rate, as in memory).
fn gcra(per_minute: u32) -> (i64, i64) {
    let t = (60_000_000 / i64::from(per_minute)).max(1);
    (t, 2 * i64::from(per_minute))
}

#[derive(Default)]
struct Local {
    per_minute: u32,
    /// Granted, unspent tokens, good until `expires`.
    tokens: u32,
    expires: Micros,
    /// What the row had left after the last grant.
    row_remaining: u32,
    /// The row has no token before this (from the last grant's `tat`): asking earlier is
    /// pointless, so a request that finds no local token is denied from memory.
    denied_until: Micros,
    last_used: Micros,
    /// Held while this replica asks the row for the tenant: requests that arrive meanwhile wait
    /// for its answer instead of each sending their own.
    asking: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Default)]
struct Locals {
    by_tenant: HashMap<TenantId, Local>,
    last_sweep: Micros,
}

/// One replica's view of the shared buckets.
pub struct SharedLimiter {
    pg: Pg,
    clock: Arc<dyn Clock>,
    replicas: AtomicU32,
    locals: Mutex<Locals>,
    fallback: RateLimits,
    /// While set and in the future, the database is not asked.
    database_down_until: Mutex<Option<Instant>>,
    degraded: AtomicBool,
    round_trips: AtomicU64,
    fallbacks: AtomicU64,
}

impl SharedLimiter {
    /// `replicas` is N for the fallback's limit / N (at least 1).
    pub fn new(pg: Pg, clock: Arc<dyn Clock>, replicas: u32) -> SharedLimiter {
        SharedLimiter {
            pg,
            fallback: RateLimits::new(clock.clone()),
            clock,
            replicas: AtomicU32::new(replicas.max(1)),
            locals: Mutex::default(),
            database_down_until: Mutex::new(None),
            degraded: AtomicBool::new(false),
            round_trips: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// The number of live replicas changed (the fallback's N).
    pub fn set_replicas(&self, n: u32) {
        self.replicas.store(n.max(1), Ordering::Relaxed);
    }

    /// Statements sent to the database so far: one a grant, two more for a missing row.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Decisions made by the local fallback so far.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Takes one request from the tenant's shared bucket of `per_minute` (burst twice that).
    /// From memory while a grant or a denial lasts; otherwise one round trip.
    pub async fn check(&self, tenant: TenantId, per_minute: u32) -> Decision {
        if per_minute == 0 {
            return Decision::Denied {
                limit: 0,
                retry_after_secs: 60,
            };
        }
        let now = self.clock.now().timestamp_micros();
        let asking = match self.answer_from_memory(tenant, per_minute, now) {
            Ok(d) => return d,
            Err(asking) => asking,
        };
        let _asking = asking.lock().await;
        let now = self.clock.now().timestamp_micros();
        if let Ok(d) = self.answer_from_memory(tenant, per_minute, now) {
            return d;
        }
        let down = *self
            .database_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if down.is_some_and(|until| Instant::now() < until) {
            return self.fall_back(tenant, per_minute);
        }
        match tokio::time::timeout(GRANT_TIMEOUT, self.grant(tenant, per_minute, now)).await {
            Ok(Ok((before, after))) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!("rate limits: the database answers again; buckets are shared");
                }
                self.granted(tenant, per_minute, now, before, after)
            }
            Ok(Err(why)) => self.database_failed(tenant, per_minute, &why),
            Err(_) => self.database_failed(tenant, per_minute, "a grant timed out"),
        }
    }

    /// A local token or a remembered denial; otherwise the tenant's lock for asking the row.
    fn answer_from_memory(
        &self,
        tenant: TenantId,
        per_minute: u32,
        now: Micros,
    ) -> Result<Decision, Arc<tokio::sync::Mutex<()>>> {
        let mut guard = self.locals.lock().unwrap_or_else(|p| p.into_inner());
        let locals = &mut *guard;
        if now - locals.last_sweep > 60_000_000 {
            locals.by_tenant.retain(|_, l| now - l.last_used < IDLE);
            locals.last_sweep = now;
        }
        let l = locals.by_tenant.entry(tenant).or_default();
        if l.per_minute != per_minute {
            // A new rate: what was granted or refused under the old one no longer applies.
            *l = Local {
                per_minute,
                ..Local::default()
            };
        }
        l.last_used = now;
        if l.tokens > 0 && now < l.expires {
            l.tokens -= 1;
            return Ok(Decision::Allowed {
                limit: per_minute,
                remaining: l.row_remaining.saturating_add(l.tokens),
            });
        }
        l.tokens = 0;
        if now < l.denied_until {
            return Ok(Decision::Denied {
                limit: per_minute,
                retry_after_secs: retry_secs(l.denied_until - now),
            });
        }
        Err(l.asking.clone())
    }

    /// One grant statement; inserts the missing row (full) and asks again.
    async fn grant(
        &self,
        tenant: TenantId,
        per_minute: u32,
        now: Micros,
    ) -> Result<(i64, i64), String> {
        let fail = |e: tokio_postgres::Error| describe(&e);
        let c = self.pg.client().await?;
        let grant = c.prepare_cached(GRANT).await.map_err(fail)?;
        let (t, burst) = gcra(per_minute);
        let rate = i64::from(per_minute);
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &tenant.as_uuid(),
            &now,
            &t,
            &burst,
            &grant_size(per_minute),
            &rate,
        ];
        for _ in 0..2 {
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            if let Some(row) = c.query_opt(&grant, &params).await.map_err(fail)? {
                return Ok((row.get(0), row.get(1)));
            }
            self.round_trips.fetch_add(1, Ordering::Relaxed);
            c.execute(INSERT_FULL, &[&tenant.as_uuid()])
                .await
                .map_err(fail)?;
        }
        Err("the bucket row vanished twice".into())
    }

    /// Spends one of the tokens the row granted (tat `before` → `after`) and keeps the rest.
    fn granted(
        &self,
        tenant: TenantId,
        per_minute: u32,
        now: Micros,
        before: i64,
        after: i64,
    ) -> Decision {
        let (t, burst) = gcra(per_minute);
        let granted = (after - before.max(now)) / t;
        let mut guard = self.locals.lock().unwrap_or_else(|p| p.into_inner());
        let l = guard.by_tenant.entry(tenant).or_default();
        if l.per_minute != per_minute {
            *l = Local {
                per_minute,
                ..Local::default()
            };
        }
        l.last_used = now;
        // GCRA: the row's next token is due when tat - now falls to (burst - 1) tokens' time.
        // Granted or not, no replica gets one before; `tat` only grows (a crash resets the
        // unlogged row to full, which makes this err strict until then).
        l.denied_until = after - (burst - 1) * t;
        if granted <= 0 {
            return Decision::Denied {
                limit: per_minute,
                retry_after_secs: retry_secs(l.denied_until - now),
            };
        }
        // Only one request a tenant asks at a time, and only when no token was left: the
        // grant is all there is, one spent now, the rest good for a second.
        l.tokens = u32::try_from(granted - 1).unwrap_or(u32::MAX);
        l.expires = now + TOKENS_LAST;
        l.row_remaining = u32::try_from(((now + burst * t - after) / t).max(0)).unwrap_or(0);
        Decision::Allowed {
            limit: per_minute,
            remaining: l.row_remaining.saturating_add(l.tokens),
        }
    }

    fn database_failed(&self, tenant: TenantId, per_minute: u32, why: &str) -> Decision {
        *self
            .database_down_until
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + RETRY_DATABASE_AFTER);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                replicas = self.replicas.load(Ordering::Relaxed),
                "rate limits: cannot reach the database ({why}); each replica limits to its \
                 share (limit / replicas) until it answers"
            );
        }
        self.fall_back(tenant, per_minute)
    }

    /// The in-memory bucket sized limit / N, reported with the plan's limit.
    fn fall_back(&self, tenant: TenantId, per_minute: u32) -> Decision {
        self.fallbacks.fetch_add(1, Ordering::Relaxed);
        let share = (per_minute / self.replicas.load(Ordering::Relaxed)).max(1);
        match self.fallback.check(tenant, share) {
            Decision::Allowed { remaining, .. } => Decision::Allowed {
                limit: per_minute,
                remaining,
            },
            Decision::Denied {
                retry_after_secs, ..
            } => Decision::Denied {
                limit: per_minute,
                retry_after_secs,
            },
            Decision::Unlimited => Decision::Unlimited,
        }
    }
}

/// Whole seconds to wait, rounded up, at least one (as `Retry-After` is sent).
fn retry_secs(us: Micros) -> u64 {
    (us.max(0) as u64).div_ceil(1_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_is_a_tenth_of_a_seconds_tokens_and_at_least_one() {
        assert_eq!(grant_size(10), 1);
        assert_eq!(grant_size(100), 1);
        assert_eq!(grant_size(600), 1);
        assert_eq!(grant_size(1000), 2);
        assert_eq!(grant_size(1_000_000), 1667);
    }

    #[test]
    fn a_bucket_holds_two_minutes_whatever_the_rate() {
        for rate in [1, 10, 100, 1000, 7] {
            let (t, burst) = gcra(rate);
            assert!((burst * t - 120_000_000).abs() <= burst, "{rate}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_secs(6_000_000), 6);
        assert_eq!(retry_secs(5_000_001), 6);
        assert_eq!(retry_secs(0), 1);
        assert_eq!(retry_secs(-5), 1);
    }
}
