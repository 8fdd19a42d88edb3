//! Rate limits shared by several replicas on one PostgreSQL database (docs/SCALE_OUT.md §4.3):
//! separate pools and limiters on one database stand for replicas, a manual clock for time.
//! The contract: over any minute a tenant gets at most its plan's rate plus burst plus 10%.
use crate::helpers::pg_database;
use chrono::Utc;
use futures_util::future::join_all;
use std::sync::Arc;
use tenantry::clock::{Clock, ManualClock};
use tenantry::db::pg::Pg;
use tenantry::limits::rate::{plan_rate, Decision};
use tenantry::limits::shared::SharedLimiter;
use tenantry::tenancy::{Plan, TenantId};
use uuid::Uuid;

const MINUTE_MS: i64 = 60_000;

async fn replicas(url: &str, n: u32, clock: &Arc<ManualClock>) -> Vec<SharedLimiter> {
    Pg::open(url, 1).await.unwrap();
    (0..n)
        .map(|_| SharedLimiter::new(Pg::new(url, 4).unwrap(), clock.clone(), n))
        .collect()
}

/// Every replica gets `per_step` requests at once every `step_ms` of app time for `total_ms`;
/// returns when (ms from the start) each admitted request was admitted.
async fn hammer(
    clock: &ManualClock,
    limiters: &[SharedLimiter],
    tenant: TenantId,
    per_minute: u32,
    total_ms: i64,
    step_ms: i64,
    per_step: usize,
) -> Vec<i64> {
    let mut admitted = Vec::new();
    let mut at = 0;
    while at < total_ms {
        let checks = limiters
            .iter()
            .flat_map(|l| (0..per_step).map(move |_| l.check(tenant, per_minute)));
        for d in join_all(checks).await {
            match d {
                Decision::Allowed { .. } => admitted.push(at),
                Decision::Denied { .. } => {}
                Decision::Unlimited => panic!("a tenant is never unlimited here"),
            }
        }
        clock.advance(chrono::Duration::milliseconds(step_ms));
        at += step_ms;
    }
    admitted
}

/// The most admitted in any 60 s window (each window starts at an admission).
fn busiest_minute(admitted: &[i64]) -> usize {
    (0..admitted.len())
        .map(|i| admitted[i..].partition_point(|t| *t < admitted[i] + MINUTE_MS))
        .max()
        .unwrap_or(0)
}

fn per_minute_counts(admitted: &[i64], minutes: i64) -> Vec<usize> {
    (0..minutes)
        .map(|m| {
            admitted
                .iter()
                .filter(|t| (m * MINUTE_MS..(m + 1) * MINUTE_MS).contains(*t))
                .count()
        })
        .collect()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

#[tokio::test]
async fn a_basic_tenant_hammering_one_two_or_three_replicas_gets_at_most_rate_plus_burst_plus_ten_percent(
) {
    let Some(url) = pg_database().await else {
        return;
    };
    let rate = plan_rate(Plan::Basic);
    let bound = (rate + 2 * rate) as usize * 110 / 100;
    assert_eq!(bound, 33);
    for n in 1..=3 {
        let clock = clock();
        let limiters = replicas(&url, n, &clock).await;
        let tenant = TenantId::new_random();
        // Five requests a replica every 100 ms for 3 minutes: far above the plan.
        let admitted = hammer(&clock, &limiters, tenant, rate, 3 * MINUTE_MS, 100, 5).await;
        let busiest = busiest_minute(&admitted);
        let trips: u64 = limiters.iter().map(|l| l.round_trips()).sum();
        println!(
            "{n} replica(s), basic ({rate}/min, burst {}): admitted per minute {:?}, busiest 60 s \
             window {busiest}, {:.1} round trips per tenant-minute, {} checks",
            2 * rate,
            per_minute_counts(&admitted, 3),
            trips as f64 / 3.0,
            3 * 600 * 5 * n
        );
        assert!(
            busiest <= bound,
            "{n} replicas admitted {busiest} in a minute"
        );
        // Nor grossly under: the burst, then the rate every minute.
        assert!(busiest >= (3 * rate) as usize - 1, "{n}: busiest {busiest}");
        for (m, count) in per_minute_counts(&admitted, 3).into_iter().enumerate() {
            assert!(count >= rate as usize, "{n} replicas, minute {m}: {count}");
        }
        assert!(limiters.iter().all(|l| l.fallbacks() == 0));
        // Round trips follow tokens, not traffic: one a burst token (grants of one), three for
        // the missing row, then each replica asks once a token due, whatever its 5 requests
        // at once (they wait for one answer). 5 asking each would cost about 100 a replica.
        let most = u64::from(2 * rate + 3 + n * (3 * rate + 5));
        assert!(
            trips <= most,
            "{n} replicas: {trips} round trips, at most {most}"
        );
    }
}

#[tokio::test]
async fn one_replica_alone_gets_the_burst_then_at_least_the_plan_rate_every_minute() {
    let Some(url) = pg_database().await else {
        return;
    };
    let clock = clock();
    let limiters = replicas(&url, 1, &clock).await;
    let rate = plan_rate(Plan::Basic);
    let admitted = hammer(
        &clock,
        &limiters,
        TenantId::new_random(),
        rate,
        4 * MINUTE_MS,
        250,
        2,
    )
    .await;
    let counts = per_minute_counts(&admitted, 4);
    // The burst of 20 at once, then one every 6 s: at 6, 12, ... 54 s in the first minute.
    assert_eq!(counts[0], (3 * rate - 1) as usize, "{counts:?}");
    assert!(
        counts[1..].iter().all(|c| *c == rate as usize),
        "{counts:?}"
    );
}

#[tokio::test]
async fn a_shared_bucket_answers_as_the_in_memory_one_and_remembers_a_denial() {
    let Some(url) = pg_database().await else {
        return;
    };
    let clock = clock();
    let limiters = replicas(&url, 2, &clock).await;
    let t = TenantId::from_uuid(Uuid::new_v4());
    // Burst 20, spread over two replicas: remaining counts down across both.
    for i in 0..20u32 {
        let d = limiters[(i % 2) as usize].check(t, 10).await;
        assert_eq!(
            d,
            Decision::Allowed {
                limit: 10,
                remaining: 19 - i
            },
            "{i}"
        );
    }
    let d = limiters[0].check(t, 10).await;
    assert_eq!(
        d,
        Decision::Denied {
            limit: 10,
            retry_after_secs: 6
        },
        "one request every 6 s at 10 a minute"
    );
    // The denial is remembered: hammering costs no round trip until the retry time.
    let trips = limiters[0].round_trips();
    clock.advance(chrono::Duration::seconds(3));
    for _ in 0..50 {
        assert_eq!(
            limiters[0].check(t, 10).await,
            Decision::Denied {
                limit: 10,
                retry_after_secs: 3
            }
        );
    }
    assert_eq!(limiters[0].round_trips(), trips);
    clock.advance(chrono::Duration::seconds(3));
    assert!(matches!(
        limiters[1].check(t, 10).await,
        Decision::Allowed { .. }
    ));
    assert!(matches!(
        limiters[0].check(t, 10).await,
        Decision::Denied { .. }
    ));
    assert!(matches!(
        limiters[1].check(t, 10).await,
        Decision::Denied { .. }
    ));
}

#[tokio::test]
async fn a_fast_tenant_takes_tokens_in_grants_that_expire_after_a_second() {
    let Some(url) = pg_database().await else {
        return;
    };
    let clock = clock();
    let limiters = replicas(&url, 1, &clock).await;
    let l = &limiters[0];
    let t = TenantId::new_random();
    let allowed = |remaining| Decision::Allowed {
        limit: 1000,
        remaining,
    };
    // 1000 a minute: grants of two tokens, the second spent from memory. The first grant
    // finds no row: grant, insert, grant.
    assert_eq!(l.check(t, 1000).await, allowed(1999));
    assert_eq!(l.check(t, 1000).await, allowed(1998));
    assert_eq!(l.round_trips(), 3);
    assert_eq!(l.check(t, 1000).await, allowed(1997));
    assert_eq!(l.round_trips(), 4);
    // The unspent token of that grant is gone after a second: the next request asks again.
    // The row gave out 4 tokens and refilled 25 meanwhile (one every 60 ms): full again.
    clock.advance(chrono::Duration::milliseconds(1500));
    assert_eq!(l.check(t, 1000).await, allowed(1999));
    assert_eq!(l.round_trips(), 5);
}

#[tokio::test]
async fn without_the_database_each_replica_limits_to_its_share() {
    let clock = clock();
    // Nothing listens on port 1: every connection is refused at once.
    let pg = Pg::new("postgres://tenantry@127.0.0.1:1/gone", 2).unwrap();
    let l = SharedLimiter::new(pg, clock.clone(), 2);
    let t = TenantId::new_random();
    // Basic's 10 a minute over 2 replicas: 5 a minute each, burst 10.
    for i in 0..10 {
        let d = l.check(t, 10).await;
        assert!(
            matches!(d, Decision::Allowed { limit: 10, .. }),
            "{i}: {d:?}"
        );
    }
    assert!(matches!(
        l.check(t, 10).await,
        Decision::Denied {
            limit: 10,
            retry_after_secs: 12
        }
    ));
    assert_eq!(l.fallbacks(), 11);
    assert_eq!(l.round_trips(), 0);
}

#[tokio::test]
async fn a_replica_shares_the_bucket_again_once_the_database_answers() {
    let Some(url) = pg_database().await else {
        return;
    };
    // A database that does not exist yet refuses every connection.
    let (base, _) = url.rsplit_once('/').unwrap();
    let later = format!("{base}/t_{}", Uuid::new_v4().simple());
    let clock = clock();
    let l = SharedLimiter::new(Pg::new(&later, 2).unwrap(), clock.clone(), 3);
    let t = TenantId::new_random();
    assert!(matches!(l.check(t, 10).await, Decision::Allowed { .. }));
    assert_eq!(l.fallbacks(), 1);
    crate::helpers::pg_connect(&url)
        .await
        .batch_execute(&format!(
            "CREATE DATABASE {}",
            later.rsplit_once('/').unwrap().1
        ))
        .await
        .unwrap();
    Pg::open(&later, 1).await.unwrap();
    // The fallback answers alone for a second after a failure, then the database is asked.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(matches!(
        l.check(t, 10).await,
        Decision::Allowed { remaining: 19, .. }
    ));
    assert_eq!((l.fallbacks(), l.round_trips()), (1, 3));
}

/// A replica's clock, off the shared one by a fixed amount.
struct Skewed(Arc<ManualClock>, chrono::Duration);

impl Clock for Skewed {
    fn now(&self) -> chrono::DateTime<Utc> {
        self.0.now() + self.1
    }
}

#[tokio::test]
async fn replicas_whose_clocks_differ_by_a_second_stay_within_the_bound() {
    let Some(url) = pg_database().await else {
        return;
    };
    Pg::open(&url, 1).await.unwrap();
    let clock = clock();
    let limiters: Vec<_> = [-500, 0, 500]
        .into_iter()
        .map(|skew_ms| {
            let c = Arc::new(Skewed(
                clock.clone(),
                chrono::Duration::milliseconds(skew_ms),
            ));
            SharedLimiter::new(Pg::new(&url, 4).unwrap(), c, 3)
        })
        .collect();
    let rate = plan_rate(Plan::Basic);
    let admitted = hammer(
        &clock,
        &limiters,
        TenantId::new_random(),
        rate,
        3 * MINUTE_MS,
        100,
        5,
    )
    .await;
    let busiest = busiest_minute(&admitted);
    println!(
        "3 replicas with clocks 1 s apart: admitted per minute {:?}, busiest 60 s window {busiest}",
        per_minute_counts(&admitted, 3)
    );
    assert!(busiest <= 33, "{busiest}");
}

/// `cargo test --test api rate_limits_across_replicas_in_real_time -- --ignored --nocapture`:
/// docs/BENCHMARKS.md's "Rate limits across replicas". Real time (`TENANTRY_BENCH_SECONDS`,
/// default 65), the system clock, 4 clients a replica each asking every 2 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: over a minute of real time"]
async fn rate_limits_across_replicas_in_real_time() {
    let Some(url) = pg_database().await else {
        return;
    };
    Pg::open(&url, 1).await.unwrap();
    let seconds: u64 = std::env::var("TENANTRY_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(65);
    let rate = plan_rate(Plan::Basic);
    for n in [1u32, 2, 3] {
        let tenant = TenantId::new_random();
        let start = std::time::Instant::now();
        let deadline = start + std::time::Duration::from_secs(seconds);
        let limiters: Vec<_> = (0..n)
            .map(|_| {
                let clock = Arc::new(tenantry::clock::SystemClock);
                Arc::new(SharedLimiter::new(Pg::new(&url, 4).unwrap(), clock, n))
            })
            .collect();
        let clients = limiters.iter().flat_map(|l| {
            (0..4).map(move |_| {
                let l = l.clone();
                tokio::spawn(async move {
                    let (mut admitted, mut took) = (Vec::new(), Vec::new());
                    while std::time::Instant::now() < deadline {
                        let t0 = std::time::Instant::now();
                        let d = l.check(tenant, rate).await;
                        took.push(t0.elapsed());
                        if matches!(d, Decision::Allowed { .. }) {
                            admitted.push(start.elapsed().as_millis() as i64);
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                    (admitted, took)
                })
            })
        });
        let (mut admitted, mut took) = (Vec::new(), Vec::new());
        for r in join_all(clients.collect::<Vec<_>>()).await {
            let (a, t) = r.unwrap();
            admitted.extend(a);
            took.extend(t);
        }
        admitted.sort();
        took.sort();
        let q = |p: f64| took[((took.len() as f64 * p) as usize).min(took.len() - 1)];
        let trips: u64 = limiters.iter().map(|l| l.round_trips()).sum();
        let busiest = busiest_minute(&admitted);
        println!(
            "{n} replica(s), {seconds} s: {} checks, admitted in the first minute {}, busiest 60 s \
             window {busiest}, {:.1} round trips per tenant-minute; check p50 {:?} p99 {:?} \
             max {:?}; fallbacks {}",
            took.len(),
            per_minute_counts(&admitted, 1)[0],
            trips as f64 * 60.0 / seconds as f64,
            q(0.5),
            q(0.99),
            took[took.len() - 1],
            limiters.iter().map(|l| l.fallbacks()).sum::<u64>()
        );
        assert!(busiest <= 33, "{busiest}");
    }
}
