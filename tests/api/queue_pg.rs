//! The job queue's PostgreSQL store (`queue::pg`) with several replicas on one database: each
//! "replica" is its own `Pg` pool, used at once from tokio tasks. No HTTP yet (the server does
//! not run on PostgreSQL); tenants are made by SQL, as no PostgreSQL tenancy store exists.
use crate::helpers::{pg_connect, pg_database};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tenantry::db::pg::Pg;
use tenantry::error::ApiError;
use tenantry::queue::job::{Job, NewJob, Status};
use tenantry::queue::pg::{self as q, TenantInfo};
use tenantry::tenancy::{Plan, TenantId};

type Infos = Arc<HashMap<TenantId, TenantInfo>>;
/// Per job: (leased at, held until), one entry per lease.
type Spans = Arc<Mutex<HashMap<String, Vec<(i64, i64)>>>>;

/// A fresh database and `n` replicas' pools on it.
async fn replicas(n: usize, size: usize) -> Option<(String, Vec<Pg>)> {
    let url = pg_database().await?;
    let mut pools = Vec::new();
    for _ in 0..n {
        pools.push(Pg::open(&url, size).await.expect("open the database"));
    }
    Some((url, pools))
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A tenant made by SQL, and what a service would know of it.
async fn tenant(url: &str, slug: &str, plan: Plan, max_running: i64) -> (TenantId, TenantInfo) {
    let id = TenantId::from_uuid(uuid::Uuid::new_v4());
    let plan_name = match plan {
        Plan::Basic => "basic",
        Plan::Pro => "pro",
        Plan::Enterprise => "enterprise",
    };
    pg_connect(url)
        .await
        .execute(
            "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
             VALUES ($1, $2, $2, $3, 'active', 0, 0)",
            &[&id.as_uuid(), &slug, &plan_name],
        )
        .await
        .expect("insert a tenant");
    let info = TenantInfo {
        plan,
        active: true,
        max_running,
    };
    (id, info)
}

fn jobs(n: usize, at: i64) -> Vec<NewJob> {
    (0..n)
        .map(|_| NewJob::parse(serde_json::json!({"payload": {}}), at).expect("a job"))
        .collect()
}

async fn enqueue(pg: &Pg, t: TenantId, info: TenantInfo, mut all: Vec<NewJob>, at: i64) {
    let mut c = pg.client().await.unwrap();
    while !all.is_empty() {
        let rest = all.split_off(all.len().min(1000));
        q::enqueue(&mut c, t, &info, all, at)
            .await
            .expect("enqueue");
        all = rest;
    }
}

async fn lease(pg: &Pg, infos: &Infos, max_jobs: usize, at: i64) -> Vec<(Job, String)> {
    let mut c = pg.client().await.unwrap();
    q::lease(&mut c, None, None, max_jobs, at, &|t| {
        infos.get(&t).copied()
    })
    .await
    .expect("lease")
}

async fn complete(pg: &Pg, j: &Job, token: &str, at: i64) -> Result<Job, ApiError> {
    let mut c = pg.client().await.unwrap();
    q::complete(&mut c, None, &j.id, token, None, at).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_leasers_on_two_replicas_never_hold_one_job_at_once() {
    let Some((url, pools)) = replicas(2, 10).await else {
        return;
    };
    let mut infos = HashMap::new();
    for i in 0..4 {
        let (t, info) = tenant(&url, &format!("t{i}"), Plan::Enterprise, 50).await;
        infos.insert(t, info);
        let mut batch = jobs(500, now());
        // Every tenth job has a one-second lease that its first worker lets expire: it comes
        // back through the rescue, so some jobs are leased twice, one lease after the other.
        for j in batch.iter_mut().step_by(10) {
            j.lease_seconds = 1;
        }
        enqueue(&pools[i % 2], t, info, batch, now()).await;
    }
    let infos: Infos = Arc::new(infos);
    let leases: Spans = Default::default();
    let succeeded = Arc::new(AtomicI64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let rescuer = {
        let (pools, stop) = (pools.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let mut c = pools[n % 2].client().await.unwrap();
                q::rescue(&mut c, now(), q::RESCUE_BATCH).await.unwrap();
                n += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..16 {
        let (pg, infos, leases, succeeded) = (
            pools[w % 2].clone(),
            infos.clone(),
            leases.clone(),
            succeeded.clone(),
        );
        workers.push(tokio::spawn(async move {
            let started = Instant::now();
            while succeeded.load(Ordering::SeqCst) < 2000 && started.elapsed().as_secs() < 90 {
                let got = lease(&pg, &infos, 1 + w % 3, now()).await;
                if got.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                // The one-second leases first, so they are completed well within them.
                let mut got = got;
                got.sort_by_key(|(j, _)| j.lease_seconds);
                for (j, token) in got {
                    let at = now();
                    let start = j.updated_at;
                    if j.lease_seconds == 1 && j.attempts == 1 {
                        let end = j.lease_expires_at.unwrap();
                        leases
                            .lock()
                            .unwrap()
                            .entry(j.id)
                            .or_default()
                            .push((start, end));
                        continue;
                    }
                    match complete(&pg, &j, &token, at).await {
                        Ok(_) => leases
                            .lock()
                            .unwrap()
                            .entry(j.id)
                            .or_default()
                            .push((start, at)),
                        // A one-second lease may run out on a loaded machine before its
                        // complete: the job comes back, and the complete must be refused.
                        Err(ApiError::LeaseLost(_)) if j.lease_seconds == 1 => {
                            let end = j.lease_expires_at.unwrap();
                            leases
                                .lock()
                                .unwrap()
                                .entry(j.id)
                                .or_default()
                                .push((start, end));
                            continue;
                        }
                        Err(e) => panic!("a held lease completes: {e:?}"),
                    }
                    succeeded.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    rescuer.await.unwrap();
    let leases = std::mem::take(&mut *leases.lock().unwrap());
    assert_eq!(succeeded.load(Ordering::SeqCst), 2000, "every job ran");
    assert_eq!(leases.len(), 2000, "every job was leased");
    let mut again = 0;
    for (id, spans) in leases.iter() {
        let mut spans = spans.clone();
        spans.sort();
        again += usize::from(spans.len() > 1);
        for pair in spans.windows(2) {
            assert!(
                pair[0].1 <= pair[1].0,
                "job {id} held twice at once: {spans:?}"
            );
        }
    }
    assert_eq!(
        again, 200,
        "only the jobs whose lease expired were leased again"
    );
    let c = pg_connect(&url).await;
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM jobs",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (2000, 2000));
    assert_eq!(deadlocks(&url, pools).await, 0, "the lock order holds");
}

#[tokio::test]
async fn a_backlog_on_one_tenant_does_not_starve_another_across_replicas() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (alpha, a) = tenant(&url, "alpha", Plan::Basic, 2).await;
    let (bravo, b) = tenant(&url, "bravo", Plan::Basic, 2).await;
    let at = now();
    enqueue(&pools[0], alpha, a, jobs(10_000, at), at).await;
    enqueue(&pools[1], bravo, b, jobs(10, at), at).await;
    let infos: Infos = Arc::new([(alpha, a), (bravo, b)].into());
    let mut bravo_at = Vec::new();
    for n in 1..=20 {
        let pg = &pools[n % 2];
        let got = lease(pg, &infos, 1, now()).await;
        assert_eq!(got.len(), 1);
        if got[0].0.tenant_id == bravo.to_string() {
            bravo_at.push(n);
        }
        complete(pg, &got[0].0, &got[0].1, now()).await.unwrap();
    }
    assert_eq!(
        bravo_at.len(),
        10,
        "all of bravo's jobs within the first 20 leases: {bravo_at:?}"
    );
}

#[tokio::test]
async fn shares_follow_the_plan_weights_across_replicas_as_on_sqlite() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (big, b) = tenant(&url, "big", Plan::Enterprise, 50).await;
    let (small, s) = tenant(&url, "small", Plan::Basic, 2).await;
    let at = now();
    enqueue(&pools[0], big, b, jobs(200, at), at).await;
    enqueue(&pools[1], small, s, jobs(200, at), at).await;
    let infos: Infos = Arc::new([(big, b), (small, s)].into());
    let mut order = String::new();
    for n in 0..50 {
        let pg = &pools[n % 2];
        let got = lease(pg, &infos, 1, now()).await;
        order.push(if got[0].0.tenant_id == big.to_string() {
            'B'
        } else {
            's'
        });
        complete(pg, &got[0].0, &got[0].1, now()).await.unwrap();
    }
    assert_eq!(order, "BBBBs".repeat(10), "4 to 1 in every rotation");
    let got = lease(&pools[1], &infos, 10, now()).await;
    let from_big = got
        .iter()
        .filter(|(j, _)| j.tenant_id == big.to_string())
        .count();
    assert_eq!(
        (got.len(), from_big),
        (10, 8),
        "a lease of many takes the same shares"
    );
}

/// The database's count of the tenant's running jobs, the truth the limit is about.
async fn running(c: &tokio_postgres::Client, t: TenantId) -> i64 {
    c.query_one(
        "SELECT count(*) FROM jobs WHERE tenant_id = $1 AND status = 'running'",
        &[&t.as_uuid()],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn max_running_jobs_holds_across_replicas_under_sixteen_leasers() {
    let Some((url, pools)) = replicas(2, 10).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Enterprise, 3).await;
    let (other, o) = tenant(&url, "other", Plan::Basic, 2).await;
    let at = now();
    enqueue(&pools[0], acme, a, jobs(120, at), at).await;
    enqueue(&pools[1], other, o, jobs(40, at), at).await;
    let infos: Infos = Arc::new([(acme, a), (other, o)].into());
    let (done, stop) = (
        Arc::new(AtomicI64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let db_peak = Arc::new(AtomicI64::new(0));
    // Watches the jobs table itself while the workers run.
    let watcher = {
        let (url, stop, db_peak) = (url.clone(), stop.clone(), db_peak.clone());
        tokio::spawn(async move {
            let c = pg_connect(&url).await;
            while !stop.load(Ordering::SeqCst) {
                db_peak.fetch_max(running(&c, acme).await, Ordering::SeqCst);
            }
        })
    };
    let mut workers = Vec::new();
    for w in 0..16 {
        let (pg, infos, done) = (pools[w % 2].clone(), infos.clone(), done.clone());
        workers.push(tokio::spawn(async move {
            let started = Instant::now();
            while done.load(Ordering::SeqCst) < 160 && started.elapsed().as_secs() < 60 {
                let got = lease(&pg, &infos, 2, now()).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
                for (j, token) in &got {
                    complete(&pg, j, token, now()).await.unwrap();
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();
    assert_eq!(done.load(Ordering::SeqCst), 160, "every job ran");
    let peak = db_peak.load(Ordering::SeqCst);
    assert!(
        peak <= 3,
        "the database held {peak} of acme's jobs running at once"
    );
    assert!(peak >= 2, "the limit was reached, so the test tested it");
    let c = pg_connect(&url).await;
    let counts = q::counts(&pools[0].client().await.unwrap(), acme)
        .await
        .unwrap();
    assert_eq!((counts.succeeded, counts.running), (120, 0));
    assert_eq!(running(&c, acme).await, 0);
    assert_eq!(deadlocks(&url, pools).await, 0, "the lock order holds");
}

/// Deadlocks PostgreSQL broke in the database (each then retried by the store, so a test would
/// not see them otherwise). The pools close first: a backend reports its counts as it ends.
async fn deadlocks(url: &str, pools: Vec<Pg>) -> i64 {
    drop(pools);
    let c = pg_connect(url).await;
    let mut n = 0;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        n = c
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n > 0 {
            break;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_idempotency_key_sent_twenty_times_to_two_replicas_makes_one_job() {
    let Some((url, pools)) = replicas(2, 10).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Pro, 10).await;
    let at = now();
    let keyed = |key: &str| {
        let body = serde_json::json!({"payload": {"n": 1}, "idempotency_key": key});
        vec![NewJob::parse(body, at).unwrap()]
    };
    let mut calls = Vec::new();
    for i in 0..20 {
        let (pg, job) = (pools[i % 2].clone(), keyed("once"));
        calls.push(tokio::spawn(async move {
            let mut c = pg.client().await.unwrap();
            q::enqueue(&mut c, acme, &a, job, at).await.unwrap()
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for call in calls {
        let out = call.await.unwrap();
        ids.insert(out[0].0.id.clone());
        created += usize::from(out[0].1);
    }
    assert_eq!((ids.len(), created), (1, 1), "one job, created once");
    let c = pg_connect(&url).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM jobs", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let counts = q::counts(&pools[1].client().await.unwrap(), acme)
        .await
        .unwrap();
    assert_eq!(counts.queued, 1, "the counts saw one job");
    // Within one batch, the second use of a key is the first job; after 24 hours the key is
    // free again and makes a new job.
    let mut c1 = pools[0].client().await.unwrap();
    let mut batch = keyed("twice");
    batch.extend(keyed("twice"));
    let out = q::enqueue(&mut c1, acme, &a, batch, at).await.unwrap();
    assert_eq!((out[0].1, out[1].1), (true, false));
    assert_eq!(out[0].0.id, out[1].0.id);
    let later = at + 24 * 3600 * 1_000_000 + 1;
    let out = q::enqueue(&mut c1, acme, &a, keyed("once"), later)
        .await
        .unwrap();
    assert!(out[0].1, "a key older than 24 h makes a new job");
    assert!(!ids.contains(&out[0].0.id));
}

fn lease_lost(r: Result<Job, ApiError>) -> bool {
    matches!(r, Err(ApiError::LeaseLost(_)))
}

#[tokio::test]
async fn stale_or_wrong_tokens_lose_expiry_counts_an_attempt_and_backs_off_until_dead() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Pro, 10).await;
    let infos: Infos = Arc::new([(acme, a)].into());
    let (mut c0, mut c1) = (
        pools[0].client().await.unwrap(),
        pools[1].client().await.unwrap(),
    );
    let t0 = now();
    let mut batch = jobs(1, t0);
    batch[0].max_attempts = 2;
    enqueue(&pools[0], acme, a, batch, t0).await;
    let got = lease(&pools[0], &infos, 5, t0).await;
    let (j, token) = got[0].clone();
    assert_eq!((got.len(), j.attempts, j.status), (1, 1, Status::Running));
    // Wrong tokens, on the other replica.
    assert!(lease_lost(
        q::heartbeat(&mut c1, None, &j.id, "0000", None, t0).await
    ));
    assert!(lease_lost(
        q::complete(&mut c1, None, &j.id, "0000", None, t0).await
    ));
    assert!(lease_lost(
        q::fail(&mut c1, None, &j.id, "0000", "x", true, t0).await
    ));
    let missing = uuid::Uuid::now_v7().to_string();
    let r = q::complete(&mut c1, None, &missing, &token, None, t0).await;
    assert!(matches!(r, Err(ApiError::NotFound(_))), "{r:?}");
    // Another tenant's worker cannot see it.
    let (other, _) = tenant(&url, "other", Plan::Basic, 2).await;
    let r = q::complete(&mut c1, Some(other), &j.id, &token, None, t0).await;
    assert!(matches!(r, Err(ApiError::NotFound(_))), "{r:?}");
    // A heartbeat extends the lease; the rescue leaves it alone until it ends.
    let t1 = t0 + 20_000_000;
    let beat = q::heartbeat(&mut c1, None, &j.id, &token, Some(60), t1)
        .await
        .unwrap();
    assert_eq!(beat.lease_expires_at, Some(t1 + 60_000_000));
    assert_eq!(q::rescue(&mut c0, t0 + 61_000_000, 500).await.unwrap(), 0);
    // Expiry: one attempt spent, back off attempts^4 s (+0..10%).
    let t2 = t1 + 60_000_000;
    assert_eq!(q::rescue(&mut c1, t2, 500).await.unwrap(), 1);
    let back = q::get(&c0, acme, &j.id).await.unwrap();
    assert_eq!((back.status, back.attempts), (Status::Retrying, 1));
    assert_eq!(back.last_error.as_deref(), Some("the lease expired"));
    assert!(
        (t2 + 1_000_000..=t2 + 1_100_000).contains(&back.run_at),
        "{}",
        back.run_at
    );
    // The stale token is refused, even by the worker that held it.
    assert!(lease_lost(
        q::heartbeat(&mut c0, None, &j.id, &token, None, t2).await
    ));
    assert!(
        lease(&pools[0], &infos, 5, t2).await.is_empty(),
        "not before its backoff"
    );
    let got = lease(&pools[1], &infos, 5, back.run_at).await;
    let (j2, token2) = got[0].clone();
    assert_eq!((j2.id.as_str(), j2.attempts), (j.id.as_str(), 2));
    assert!(lease_lost(
        q::complete(&mut c0, None, &j.id, &token, None, back.run_at).await
    ));
    // Its second and last attempt fails: dead, with a `job.dead` event.
    let dead = q::fail(&mut c0, None, &j2.id, &token2, "boom", true, back.run_at)
        .await
        .unwrap();
    assert_eq!(
        (dead.status, dead.last_error.as_deref()),
        (Status::Dead, Some("boom"))
    );
    let c = pg_connect(&url).await;
    let events: Vec<String> = c
        .query(
            "SELECT data FROM events WHERE tenant_id = $1 AND event_type = 'job.dead'",
            &[&acme.as_uuid()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].contains(&j.id) && events[0].contains("boom"),
        "{events:?}"
    );
    assert!(lease_lost(
        q::complete(&mut c1, None, &j.id, &token2, None, back.run_at).await
    ));
    // A job whose only attempt expires is dead too, by the rescue.
    let mut batch = jobs(1, t2);
    batch[0].max_attempts = 1;
    enqueue(&pools[1], acme, a, batch, t2).await;
    let got = lease(&pools[1], &infos, 1, back.run_at).await;
    let t3 = back.run_at + 31_000_000;
    assert_eq!(q::rescue(&mut c0, t3, 500).await.unwrap(), 1);
    let gone = q::get(&c1, acme, &got[0].0.id).await.unwrap();
    assert_eq!((gone.status, gone.attempts), (Status::Dead, 1));
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'job.dead'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    let counts = q::counts(&c1, acme).await.unwrap();
    assert_eq!((counts.dead, counts.running, counts.retrying), (2, 0, 0));
}

/// Every tenant's counts from `queue_tenants` against `SELECT count(*)` of the jobs.
async fn counts_are_the_truth(url: &str, pg: &Pg, tenants: &[TenantId]) {
    let c = pg_connect(url).await;
    let client = pg.client().await.unwrap();
    for t in tenants {
        let mut truth: HashMap<String, i64> = HashMap::new();
        for r in c
            .query(
                "SELECT status, count(*) FROM jobs WHERE tenant_id = $1 GROUP BY status",
                &[&t.as_uuid()],
            )
            .await
            .unwrap()
        {
            truth.insert(r.get(0), r.get(1));
        }
        let n = |s: &str| truth.get(s).copied().unwrap_or(0);
        let got = q::counts(&client, *t).await.unwrap();
        assert_eq!(
            [
                got.queued,
                got.running,
                got.retrying,
                got.succeeded,
                got.dead,
                got.cancelled
            ],
            [
                n("queued"),
                n("running"),
                n("retrying"),
                n("succeeded"),
                n("dead"),
                n("cancelled")
            ],
            "tenant {t}"
        );
    }
    let overview = q::overview(&client).await.unwrap();
    assert_eq!(overview.len(), tenants.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_by_status_equal_the_jobs_after_a_mixed_workload_on_three_replicas() {
    let Some((url, pools)) = replicas(3, 6).await else {
        return;
    };
    let mut infos = HashMap::new();
    let mut ids = Vec::new();
    for (i, plan) in [Plan::Basic, Plan::Pro, Plan::Enterprise]
        .into_iter()
        .enumerate()
    {
        let (t, info) = tenant(&url, &format!("t{i}"), plan, 5).await;
        infos.insert(t, info);
        ids.push(t);
    }
    let infos: Infos = Arc::new(infos);
    let t0 = now();
    let mut tasks = Vec::new();
    for w in 0..9 {
        let (pg, infos, ids) = (pools[w % 3].clone(), infos.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = pg.client().await.unwrap();
            let t = ids[w % 3];
            let info = infos[&t];
            for round in 0..20i64 {
                let at = t0 + round * 1_000_000;
                let mut batch = jobs(5, at);
                batch[0].max_attempts = 1;
                batch[1].run_at = Some(at + 3_600_000_000);
                let made = q::enqueue(&mut c, t, &info, batch, at).await.unwrap();
                if round % 3 == 0 {
                    let _ = q::cancel(&mut c, t, &made[2].0.id, at).await;
                }
                if round % 4 == 0 {
                    // May lose to a lease: 409 then.
                    let _ = q::cancel(&mut c, t, &made[3].0.id, at).await;
                }
                let got = q::lease(&mut c, None, None, 4, at, &|t| infos.get(&t).copied())
                    .await
                    .unwrap();
                for (k, (j, token)) in got.iter().enumerate() {
                    let r = match (k + round as usize) % 4 {
                        0 => q::complete(&mut c, None, &j.id, token, Some("{}"), at).await,
                        1 => q::fail(&mut c, None, &j.id, token, "no", k % 2 == 0, at).await,
                        2 => continue, // left to expire
                        _ => q::heartbeat(&mut c, None, &j.id, token, Some(5), at).await,
                    };
                    // A lease another task's rescue took back (its clock runs ahead) is lost.
                    assert!(matches!(r, Ok(_) | Err(ApiError::LeaseLost(_))), "{r:?}");
                }
                if round % 5 == 0 {
                    let _ = q::rescue(&mut c, at + 40_000_000, 7).await.unwrap();
                }
                let dead = q::list(&c, t, Some(Status::Dead), None, None, None, 2)
                    .await
                    .unwrap();
                for j in dead {
                    let _ = q::retry(&mut c, t, &j.id, at).await;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    counts_are_the_truth(&url, &pools[2], &ids).await;
    // Then every status at once on one tenant, on the replicas in turn, and the counts again.
    let t = ids[0];
    let far = t0 + 3600 * 1_000_000_000;
    let mut c = pools[0].client().await.unwrap();
    q::rescue(&mut c, far, 100_000).await.unwrap();
    let mut batch = jobs(6, far);
    for j in &mut batch {
        j.priority = 9;
    }
    batch[0].max_attempts = 5;
    let made = q::enqueue(&mut c, t, &infos[&t], batch, far).await.unwrap();
    let mut c = pools[1].client().await.unwrap();
    let got = q::lease(&mut c, Some(t), None, 4, far, &|t| infos.get(&t).copied())
        .await
        .unwrap();
    let held: Vec<&str> = got.iter().map(|(j, _)| j.id.as_str()).collect();
    let ours: Vec<&str> = made[..4].iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(held, ours, "priority 9 first, then enqueue order");
    q::complete(&mut c, Some(t), &got[1].0.id, &got[1].1, None, far)
        .await
        .unwrap();
    let mut c = pools[2].client().await.unwrap();
    let r = q::fail(&mut c, Some(t), &got[0].0.id, &got[0].1, "again", true, far).await;
    assert_eq!(r.unwrap().status, Status::Retrying);
    let r = q::fail(&mut c, Some(t), &got[2].0.id, &got[2].1, "no", false, far).await;
    assert_eq!(r.unwrap().status, Status::Dead);
    let r = q::cancel(&mut c, t, &made[4].0.id, far).await;
    assert_eq!(r.unwrap().status, Status::Cancelled);
    counts_are_the_truth(&url, &pools[0], &ids).await;
    let c = pg_connect(&url).await;
    let statuses: Vec<String> = c
        .query("SELECT DISTINCT status FROM jobs ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        statuses.len(),
        6,
        "the workload reached every status: {statuses:?}"
    );
}

fn job_with(queue: &str, priority: i64, run_at: Option<i64>, at: i64) -> NewJob {
    let mut j = jobs(1, at).remove(0);
    j.queue = queue.into();
    j.priority = priority;
    j.run_at = run_at;
    j
}

#[tokio::test]
async fn priority_then_run_at_then_order_across_queues_and_delayed_jobs_wait() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Enterprise, 50).await;
    let infos: Infos = Arc::new([(acme, a)].into());
    let t0 = now();
    let batch = vec![
        job_with("mail", 1, None, t0),
        job_with("pdf", 9, Some(t0 - 5), t0),
        job_with("mail", 5, None, t0),
        job_with("pdf", 9, Some(t0 - 10), t0),
        job_with("mail", 9, Some(t0 + 60_000_000), t0),
        job_with("pdf", 5, None, t0),
    ];
    let mut c = pools[0].client().await.unwrap();
    let made: Vec<String> = q::enqueue(&mut c, acme, &a, batch, t0)
        .await
        .unwrap()
        .into_iter()
        .map(|(j, _)| j.id)
        .collect();
    let mut c = pools[1].client().await.unwrap();
    let only_pdf = ["pdf".to_string()];
    let got = q::lease(&mut c, Some(acme), Some(&only_pdf), 10, t0, &|t| {
        infos.get(&t).copied()
    })
    .await
    .unwrap();
    let ids: Vec<&str> = got.iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [&made[3], &made[1], &made[5]],
        "the pdf queue only, best first"
    );
    let got = lease(&pools[0], &infos, 10, t0).await;
    let ids: Vec<&str> = got.iter().map(|(j, _)| j.id.as_str()).collect();
    assert_eq!(
        ids,
        [&made[2], &made[0]],
        "priority, then order; the delayed job waits"
    );
    let got = lease(&pools[1], &infos, 10, t0 + 60_000_000).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.id, made[4], "due at its run_at");
}

#[tokio::test]
async fn the_callers_view_of_a_tenant_decides_whether_and_how_much_it_leases() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Pro, 10).await;
    let at = now();
    enqueue(&pools[0], acme, a, jobs(6, at), at).await;
    let view = |info: TenantInfo| -> Infos { Arc::new([(acme, info)].into()) };
    let off = TenantInfo { active: false, ..a };
    assert!(
        lease(&pools[1], &view(off), 5, at).await.is_empty(),
        "inactive"
    );
    assert!(
        lease(&pools[1], &view(a), 5, at).await.is_empty(),
        "the store remembers the deactivation until it is told otherwise"
    );
    q::set_tenant(&pools[0].client().await.unwrap(), acme, &a)
        .await
        .unwrap();
    let one = TenantInfo {
        max_running: 1,
        ..a
    };
    let got = lease(&pools[1], &view(one), 5, at).await;
    assert_eq!(got.len(), 1, "a lowered max_running_jobs applies at once");
    assert!(lease(&pools[0], &view(one), 5, at).await.is_empty());
    assert!(
        lease(&pools[0], &view(a), 5, at).await.is_empty(),
        "a tenant at the limit the store last heard of is not picked, so not corrected"
    );
    q::set_tenant(&pools[1].client().await.unwrap(), acme, &a)
        .await
        .unwrap();
    let got = lease(&pools[0], &view(a), 5, at).await;
    assert_eq!(
        got.len(),
        5,
        "the limit raised again; alone in the rotation, it takes turn after turn"
    );
    let forgotten: Infos = Arc::new(HashMap::new());
    assert!(
        lease(&pools[0], &forgotten, 5, at).await.is_empty(),
        "unknown: deleted"
    );
}

#[tokio::test]
async fn list_pages_by_keyset_and_cancel_and_retry_move_only_from_their_statuses() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Pro, 10).await;
    let (other, o) = tenant(&url, "other", Plan::Pro, 10).await;
    let at = now();
    enqueue(&pools[0], acme, a, jobs(5, at), at).await;
    enqueue(&pools[0], other, o, jobs(2, at), at).await;
    let c = pools[1].client().await.unwrap();
    let page = q::list(&c, acme, None, None, None, None, 3).await.unwrap();
    let next = q::list(&c, acme, None, None, None, Some(page[2].seq), 3)
        .await
        .unwrap();
    assert_eq!((page.len(), next.len()), (3, 2));
    assert!(
        page[0].seq > page[2].seq && page[2].seq > next[0].seq,
        "newest first"
    );
    let id = page[0].id.clone();
    assert!(matches!(
        q::get(&c, other, &id).await,
        Err(ApiError::NotFound(_))
    ));
    assert!(matches!(
        q::get(&c, acme, "nope").await,
        Err(ApiError::NotFound(_))
    ));
    let mut c = pools[0].client().await.unwrap();
    let r = q::retry(&mut c, acme, &id, at).await;
    assert!(matches!(r, Err(ApiError::Conflict(_))), "{r:?}");
    assert_eq!(
        q::cancel(&mut c, acme, &id, at).await.unwrap().status,
        Status::Cancelled
    );
    let r = q::cancel(&mut c, acme, &id, at).await;
    assert!(matches!(r, Err(ApiError::Conflict(_))), "{r:?}");
    let c1 = pools[1].client().await.unwrap();
    let cancelled = q::list(&c1, acme, Some(Status::Cancelled), None, None, None, 10)
        .await
        .unwrap();
    assert_eq!(cancelled.len(), 1);
    let back = q::retry(&mut c, acme, &id, at + 1).await.unwrap();
    assert_eq!(
        (back.status, back.attempts, back.run_at),
        (Status::Queued, 0, at + 1)
    );
    let counts = q::counts(&c1, acme).await.unwrap();
    assert_eq!((counts.queued, counts.cancelled), (5, 0));
}

#[tokio::test]
async fn rebuild_makes_the_tenant_rows_of_jobs_copied_in_by_sql_and_repairs_drift() {
    let Some((url, pools)) = replicas(2, 2).await else {
        return;
    };
    let (acme, a) = tenant(&url, "acme", Plan::Pro, 10).await;
    let (gone, _) = tenant(&url, "gone", Plan::Basic, 2).await;
    let at = now();
    // Jobs as `tenantry copy` writes them: rows only, no `queue_tenants`.
    let c = pg_connect(&url).await;
    for (i, (t, status)) in [
        (acme, "queued"),
        (acme, "queued"),
        (acme, "running"),
        (acme, "succeeded"),
        (acme, "dead"),
        (gone, "retrying"),
    ]
    .into_iter()
    .enumerate()
    {
        c.execute(
            "INSERT INTO jobs (id, tenant_id, queue, payload, priority, status, attempts,
                               max_attempts, lease_seconds, run_at, lease_expires_at,
                               lease_token, created_at, updated_at)
             VALUES ($1, $2, 'default', '{}', 5, $3, 1, 25, 30, $4, $5, 'copied', $4, $4)",
            &[
                &uuid::Uuid::now_v7(),
                &t.as_uuid(),
                &status,
                &(at + i as i64),
                &(status == "running").then_some(at + 30_000_000),
            ],
        )
        .await
        .unwrap();
    }
    let infos: Infos = Arc::new([(acme, a)].into());
    let mut c0 = pools[0].client().await.unwrap();
    let n = q::rebuild(&mut c0, &|t| infos.get(&t).copied())
        .await
        .unwrap();
    assert_eq!(n, 2);
    counts_are_the_truth(&url, &pools[1], &[acme, gone]).await;
    let got = lease(&pools[1], &infos, 10, at + 10).await;
    assert_eq!(
        got.len(),
        2,
        "acme's copied jobs lease; `gone` is unknown to the caller"
    );
    assert_eq!(q::rescue(&mut c0, at + 30_000_001, 500).await.unwrap(), 1);
    counts_are_the_truth(&url, &pools[0], &[acme, gone]).await;
    // Drift (a hand edit, a bug) is repaired.
    c.execute("UPDATE queue_tenants SET succeeded = 99, running = -3", &[])
        .await
        .unwrap();
    q::rebuild(&mut c0, &|t| infos.get(&t).copied())
        .await
        .unwrap();
    counts_are_the_truth(&url, &pools[1], &[acme, gone]).await;
}

/// Store-level throughput, not HTTP: workers on two pools lease and complete the jobs of eight
/// tenants. Run with `--ignored --nocapture`; the figures go to docs/BENCHMARKS.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn store_level_lease_and_complete_throughput() {
    for (workers, max_jobs, total) in [(16usize, 1usize, 20_000i64), (16, 10, 20_000), (1, 1, 4000)]
    {
        let Some((url, pools)) = replicas(2, 8).await else {
            return;
        };
        let mut infos = HashMap::new();
        for i in 0..8 {
            let (t, info) = tenant(&url, &format!("t{i}"), Plan::Enterprise, 50).await;
            infos.insert(t, info);
            enqueue(
                &pools[i % 2],
                t,
                info,
                jobs(total as usize / 8, now()),
                now(),
            )
            .await;
        }
        let infos: Infos = Arc::new(infos);
        let done = Arc::new(AtomicI64::new(0));
        let latencies: Arc<Mutex<Vec<Duration>>> = Default::default();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..workers {
            let (pg, infos, done, latencies) = (
                pools[w % 2].clone(),
                infos.clone(),
                done.clone(),
                latencies.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut c = pg.client().await.unwrap();
                let mut mine = Vec::new();
                loop {
                    let asked = Instant::now();
                    let got = q::lease(&mut c, None, None, max_jobs, now(), &|t| {
                        infos.get(&t).copied()
                    })
                    .await
                    .unwrap();
                    mine.push(asked.elapsed());
                    if got.is_empty() {
                        if done.load(Ordering::SeqCst) >= total {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    for (j, token) in got {
                        q::complete(&mut c, None, &j.id, &token, None, now())
                            .await
                            .unwrap();
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                }
                latencies.lock().unwrap().extend(mine);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        let mut l = std::mem::take(&mut *latencies.lock().unwrap());
        l.sort();
        let at = |p: f64| l[((l.len() - 1) as f64 * p) as usize].as_secs_f64() * 1000.0;
        println!(
            "{workers} workers, max_jobs {max_jobs}: {total} jobs leased and completed in \
             {secs:.2} s = {:.0} jobs/s; lease p50 {:.2} ms, p99 {:.2} ms",
            total as f64 / secs,
            at(0.5),
            at(0.99)
        );
    }
}
