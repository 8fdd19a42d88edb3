//! The hosted job queue served from PostgreSQL (issue 19,
//! `ENABLE_HOSTED_QUEUE=true`): two replicas on one database leasing and completing each job
//! once, the per-replica rescue of expired leases, and a tenant row the store holds back
//! corrected from the caches. Only the default tenant and the admin token are used, so these
//! run before tenants and keys can be made on PostgreSQL.
use crate::helpers::{pg_connect, pg_database, spawn_tuned, TestApp, ADMIN};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEY: &str = "postgres-queue-test-encryption-key";
const DEFAULT: &str = "00000000-0000-0000-0000-000000000000";

/// A replica serving the queue from `url`.
async fn queue(url: &str) -> TestApp {
    spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url),
            ("ENCRYPTION_KEY", KEY),
            ("ENABLE_HOSTED_QUEUE", "true"),
        ],
        |_| {},
    )
    .await
}

async fn lease(app: &TestApp, body: Value) -> Vec<Value> {
    let r = app.post("/api/queue/lease", ADMIN, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["jobs"].as_array().unwrap().clone()
}

/// The hosted queue on two replicas sharing one database: jobs enqueued on the default tenant
/// through both, before and while 8 workers lease through both and complete through both
/// (half of them through the other replica). Every job is leased once and completed once, and
/// the default tenant's `max_running_jobs` (set to 3) holds across the replicas.
#[tokio::test]
async fn two_replicas_lease_each_job_once_and_hold_max_running_across_them() {
    let Some(url) = pg_database().await else {
        return;
    };
    // The settings API has no PostgreSQL store yet: the limit is set before the replicas start.
    let a = queue(&url).await;
    pg_connect(&url)
        .await
        .execute(
            "INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
             VALUES ($1::uuid, 2, '{\"max_running_jobs\": 3}', 'test', 0)",
            &[&uuid::Uuid::nil()],
        )
        .await
        .unwrap();
    let (a, b) = (a.restart().await, queue(&url).await);
    // Each test server has a manual clock: one time for both, so a job one enqueues is due on
    // the other.
    let at = chrono::Utc::now();
    a.clock.set(at);
    b.clock.set(at);
    let apps = Arc::new([a, b]);
    const BATCHES: usize = 12;
    const PER_BATCH: usize = 25;
    const JOBS: usize = BATCHES * PER_BATCH;
    let enqueue = |apps: Arc<[TestApp; 2]>, n: usize| async move {
        let jobs: Vec<Value> = (0..PER_BATCH)
            .map(|i| json!({"payload": {"batch": n, "i": i}}))
            .collect();
        let r = apps[n % 2]
            .post("/api/tenant/default/jobs", ADMIN, json!({ "jobs": jobs }))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    };
    for n in 0..BATCHES / 2 {
        enqueue(apps.clone(), n).await;
    }
    let leased: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
    let held = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (apps, leased, held, peak, done) = (
            apps.clone(),
            leased.clone(),
            held.clone(),
            peak.clone(),
            done.clone(),
        );
        workers.push(tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let (on, report_on) = (&apps[w % 2], &apps[(w / 2) % 2]);
            let started = std::time::Instant::now();
            while done.load(SeqCst) < JOBS && started.elapsed().as_secs() < 90 {
                let r = on
                    .post(
                        "/api/queue/lease",
                        ADMIN,
                        json!({"max_jobs": 2, "wait_seconds": 1}),
                    )
                    .await;
                assert_eq!(r.status, 200, "{}", r.body);
                let jobs = r.body["jobs"].as_array().unwrap().clone();
                // Counted after the server counted them running, uncounted before they are
                // reported: never more than the server holds.
                let now = held.fetch_add(jobs.len() as i64, SeqCst) + jobs.len() as i64;
                peak.fetch_max(now, SeqCst);
                for j in &jobs {
                    let id = j["id"].as_str().unwrap().to_string();
                    leased.lock().unwrap().push((w % 2, id.clone()));
                    held.fetch_sub(1, SeqCst);
                    let r = report_on
                        .post(
                            &format!("/api/queue/jobs/{id}/complete"),
                            ADMIN,
                            json!({"lease_token": j["lease_token"]}),
                        )
                        .await;
                    assert_eq!(
                        (r.status, r.body["status"].as_str()),
                        (200, Some("succeeded"))
                    );
                    done.fetch_add(1, SeqCst);
                }
            }
        }));
    }
    for n in BATCHES / 2..BATCHES {
        enqueue(apps.clone(), n).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for w in workers {
        w.await.unwrap();
    }
    let leased = leased.lock().unwrap().clone();
    let once: HashSet<&String> = leased.iter().map(|(_, id)| id).collect();
    assert_eq!(
        (leased.len(), once.len()),
        (JOBS, JOBS),
        "every job leased exactly once"
    );
    let through_a = leased.iter().filter(|(r, _)| *r == 0).count();
    assert!(
        through_a > 0 && through_a < JOBS,
        "both replicas leased: {through_a} of {JOBS} through the first"
    );
    let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
    assert!((2..=3).contains(&peak), "workers held {peak} jobs at once");
    let c = pg_connect(&url).await;
    let rows = c
        .query(
            "SELECT status, attempts, count(*) FROM jobs GROUP BY 1, 2",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(got, vec![("succeeded".to_string(), 1, JOBS as i64)]);
    for app in apps.iter() {
        let counts = app
            .get("/api/tenant/default/queue/counts", ADMIN)
            .await
            .body;
        assert_eq!(
            (counts["succeeded"].as_u64(), counts["running"].as_u64()),
            (Some(JOBS as u64), Some(0)),
            "{counts}"
        );
    }
}

/// Every replica runs the rescue of expired leases on its own, once a second: a lease that
/// expired is taken back (a failed attempt, `retrying`) although no worker leases again.
#[tokio::test]
async fn an_expired_lease_is_taken_back_by_the_replicas_rescuer_without_a_lease() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = queue(&url).await;
    let r = app
        .post(
            "/api/tenant/default/jobs",
            ADMIN,
            json!({"payload": {}, "lease_seconds": 5}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(lease(&app, json!({})).await.len(), 1);
    app.clock.advance(chrono::Duration::seconds(6));
    let path = format!("/api/tenant/default/jobs/{id}");
    let started = Instant::now();
    loop {
        let j = app.get(&path, ADMIN).await.body;
        if j["status"] == "retrying" {
            assert_eq!(j["last_error"], "the lease expired");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "still {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let counts = app
        .get("/api/tenant/default/queue/counts", ADMIN)
        .await
        .body;
    assert_eq!(
        (counts["running"].as_i64(), counts["retrying"].as_i64()),
        (Some(0), Some(1))
    );
}

/// A tenant row the store holds back (inactive, or at a `max_running_jobs` below the tenant's)
/// is never picked by a lease, so no lease corrects it: the service compares such rows with its
/// caches and tells the store. Here the rows are made stale by SQL, as a replica with an older
/// view of the tenant would have left them.
#[tokio::test]
async fn a_tenant_row_held_back_by_a_stale_view_is_corrected_from_the_caches() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = queue(&url).await;
    let jobs: Vec<Value> = (0..3).map(|_| json!({"payload": {}})).collect();
    let r = app
        .post("/api/tenant/default/jobs", ADMIN, json!({ "jobs": jobs }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = pg_connect(&url).await;
    let tenant = uuid::Uuid::parse_str(DEFAULT).unwrap();
    for stale in [
        "UPDATE queue_tenants SET active = false WHERE tenant_id = $1",
        "UPDATE queue_tenants SET max_running = 0 WHERE tenant_id = $1",
    ] {
        assert_eq!(c.execute(stale, &[&tenant]).await.unwrap(), 1);
        app.clock.advance(chrono::Duration::seconds(1));
        let got = lease(&app, json!({"wait_seconds": 3})).await;
        assert_eq!(got.len(), 1, "{stale}");
    }
    let row = c
        .query_one(
            "SELECT active, max_running, running FROM queue_tenants WHERE tenant_id = $1",
            &[&tenant],
        )
        .await
        .unwrap();
    let got: (bool, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(
        got,
        (true, 50, 2),
        "the enterprise plan's limit, two running"
    );
}

/// A long poll on one replica answers a job enqueued through another within a few of its
/// 100 ms looks, not at its deadline: replicas do not wake each other, so the poll is what
/// finds it.
#[tokio::test]
async fn a_long_poll_on_one_replica_answers_a_job_enqueued_on_another() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (queue(&url).await, queue(&url).await);
    let at = chrono::Utc::now();
    a.clock.set(at);
    b.clock.set(at);
    let a = Arc::new(a);
    let poller = {
        let a = a.clone();
        tokio::spawn(async move {
            let jobs = lease(&a, json!({"wait_seconds": 10})).await;
            (jobs, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = b
        .post(
            "/api/tenant/default/jobs",
            ADMIN,
            json!({"payload": {"from": "b"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let enqueued = Instant::now();
    let (jobs, answered) = poller.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["payload"]["from"], "b");
    let after = answered.duration_since(enqueued);
    assert!(
        after < Duration::from_secs(2),
        "answered {after:?} after the enqueue"
    );
}
