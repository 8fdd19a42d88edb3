//! The hosted job queue (contract "Hosted job queue"): enqueue and idempotency, fair leasing
//! across tenants by plan weight, `max_running_jobs` under concurrent workers, leases,
//! heartbeats, backoff and `dead` on the manual clock, cancel and retry, job usage, isolation.
use crate::helpers::{spawn_with, Resp, TestApp, ADMIN};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const QUEUE: &[(&str, &str)] = &[
    ("ENABLE_MULTI_TENANT", "true"),
    ("ENABLE_HOSTED_QUEUE", "true"),
];

async fn queue_app() -> TestApp {
    spawn_with(QUEUE).await
}

async fn tenant(app: &TestApp, slug: &str, plan: &str) {
    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": slug, "slug": slug, "plan": plan}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn enqueue(app: &TestApp, slug: &str, body: Value) -> Resp {
    app.post(&format!("/api/tenant/{slug}/jobs"), ADMIN, body)
        .await
}

async fn lease(app: &TestApp, token: &str, body: Value) -> Vec<Value> {
    let r = app.post("/api/queue/lease", token, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["jobs"].as_array().unwrap().clone()
}

async fn complete(app: &TestApp, token: &str, job: &Value) -> Resp {
    app.post(
        &format!("/api/queue/jobs/{}/complete", job["id"].as_str().unwrap()),
        token,
        json!({"lease_token": job["lease_token"], "result": {"ok": true}}),
    )
    .await
}

#[tokio::test]
async fn enqueue_single_and_batch_with_defaults_bounds_and_one_transaction() {
    let app = queue_app().await;
    tenant(&app, "acme", "pro").await;
    let r = enqueue(
        &app,
        "acme",
        json!({"payload": {"doc": "a.pdf"}, "kind": "extract"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let j = &r.body;
    assert_eq!(
        (
            j["queue"].as_str(),
            j["priority"].as_i64(),
            j["status"].as_str()
        ),
        (Some("default"), Some(5), Some("queued"))
    );
    assert_eq!(
        (j["attempts"].as_i64(), j["max_attempts"].as_i64()),
        (Some(0), Some(25))
    );
    assert_eq!(j["payload"], json!({"doc": "a.pdf"}));
    assert!(j["lease_expires_at"].is_null() && j["result"].is_null() && j["usage"]["events"] == 0);
    let got = app
        .get(
            &format!("/api/tenant/acme/jobs/{}", j["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    assert_eq!(got.body["id"], j["id"]);

    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"payload": {"i": i}, "queue": "bulk"}))
        .collect();
    let r = enqueue(&app, "acme", json!({"jobs": batch})).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["jobs"].as_array().unwrap().len(), 1000);
    let counts = app.get("/api/tenant/acme/queue/counts", ADMIN).await.body;
    assert_eq!(counts["queued"], 1001);

    // One bad job refuses the batch: nothing of it is stored.
    let r = enqueue(
        &app,
        "acme",
        json!({"jobs": [{"payload": {}}, {"payload": {}, "priority": 10}]}),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("jobs[1]"));
    for bad in [
        json!({}),
        json!({"payload": "text"}),
        json!({"payload": {}, "max_attempts": 0}),
        json!({"payload": {}, "lease_seconds": 3601}),
        json!({"payload": {}, "run_at": "soon"}),
        json!({"payload": {}, "extra": true}),
        json!({"jobs": []}),
        json!({"payload": {"big": "x".repeat(256 * 1024)}}),
    ] {
        enqueue(&app, "acme", bad)
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(
        app.get("/api/tenant/acme/queue/counts", ADMIN).await.body["queued"],
        1001
    );
    let listed = app
        .get("/api/tenant/acme/jobs?queue=bulk&limit=5", ADMIN)
        .await
        .body;
    assert_eq!(listed["items"].as_array().unwrap().len(), 5);
    assert_eq!(listed["items"][0]["payload"]["i"], 999, "newest first");
    app.get("/api/tenant/acme/jobs?status=lost", ADMIN)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn one_idempotency_key_makes_one_job_even_when_sent_concurrently() {
    let app = Arc::new(queue_app().await);
    tenant(&app, "acme", "pro").await;
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let r = enqueue(
                &app,
                "acme",
                json!({"payload": {}, "idempotency_key": "order-42"}),
            )
            .await;
            (r.status, r.body["id"].as_str().unwrap().to_string())
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in tasks {
        let (status, id) = t.await.unwrap();
        assert!(status == 201 || status == 200, "{status}");
        created += usize::from(status == 201);
        ids.insert(id);
    }
    assert_eq!((ids.len(), created), (1, 1));
    // In a batch too, and only for 24 hours.
    let r = enqueue(&app, "acme", json!({"jobs": [{"payload": {}, "idempotency_key": "order-42"}, {"payload": {}, "idempotency_key": "order-43"}, {"payload": {}, "idempotency_key": "order-43"}]})).await;
    let jobs = r.body["jobs"].as_array().unwrap();
    assert!(ids.contains(jobs[0]["id"].as_str().unwrap()));
    assert_eq!(jobs[1]["id"], jobs[2]["id"]);
    app.clock.advance(chrono::Duration::hours(25));
    let r = enqueue(
        &app,
        "acme",
        json!({"payload": {}, "idempotency_key": "order-42"}),
    )
    .await;
    assert_eq!(r.status, 201, "a key older than 24 h makes a new job");
    assert!(!ids.contains(r.body["id"].as_str().unwrap()));
}

#[tokio::test]
async fn a_backlog_does_not_starve_another_tenant_of_the_same_plan() {
    let app = queue_app().await;
    tenant(&app, "alpha", "basic").await;
    tenant(&app, "bravo", "basic").await;
    for _ in 0..10 {
        let batch: Vec<Value> = (0..1000).map(|_| json!({"payload": {}})).collect();
        assert_eq!(
            enqueue(&app, "alpha", json!({"jobs": batch})).await.status,
            201
        );
    }
    let batch: Vec<Value> = (0..10).map(|_| json!({"payload": {}})).collect();
    assert_eq!(
        enqueue(&app, "bravo", json!({"jobs": batch})).await.status,
        201
    );
    let bravo = app.get("/api/tenants/bravo", ADMIN).await.body["id"].clone();
    let mut bravo_at = Vec::new();
    for n in 1..=20 {
        let jobs = lease(&app, ADMIN, json!({})).await;
        assert_eq!(jobs.len(), 1);
        if jobs[0]["tenant_id"] == bravo {
            bravo_at.push(n);
        }
        assert_eq!(complete(&app, ADMIN, &jobs[0]).await.status, 200);
    }
    assert_eq!(
        bravo_at.len(),
        10,
        "all of bravo's jobs within the first 20 leases: {bravo_at:?}"
    );
}

#[tokio::test]
async fn shares_follow_the_plan_weights_within_each_rotation() {
    let app = queue_app().await;
    tenant(&app, "big", "enterprise").await;
    tenant(&app, "small", "basic").await;
    for slug in ["big", "small"] {
        let batch: Vec<Value> = (0..200).map(|_| json!({"payload": {}})).collect();
        assert_eq!(
            enqueue(&app, slug, json!({"jobs": batch})).await.status,
            201
        );
    }
    let big = app.get("/api/tenants/big", ADMIN).await.body["id"].clone();
    let mut order = String::new();
    for _ in 0..50 {
        let jobs = lease(&app, ADMIN, json!({})).await;
        order.push(if jobs[0]["tenant_id"] == big {
            'B'
        } else {
            's'
        });
        complete(&app, ADMIN, &jobs[0]).await;
    }
    assert_eq!(order, "BBBBs".repeat(10), "4 to 1 in every rotation");
    // A lease of many takes the same shares.
    let jobs = lease(&app, ADMIN, json!({"max_jobs": 10})).await;
    let from_big = jobs.iter().filter(|j| j["tenant_id"] == big).count();
    assert_eq!((jobs.len(), from_big), (10, 8));
}

#[tokio::test]
async fn max_running_jobs_holds_under_sixteen_concurrent_workers() {
    let app = Arc::new(queue_app().await);
    tenant(&app, "acme", "enterprise").await;
    tenant(&app, "other", "basic").await;
    let r = app
        .call(
            "PATCH",
            "/api/tenant/acme/settings",
            Some(ADMIN),
            Some(json!({"max_running_jobs": 3})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let batch: Vec<Value> = (0..120).map(|_| json!({"payload": {}})).collect();
    assert_eq!(
        enqueue(&app, "acme", json!({"jobs": batch.clone()}))
            .await
            .status,
        201
    );
    assert_eq!(
        enqueue(&app, "other", json!({"jobs": batch[..40].to_vec()}))
            .await
            .status,
        201
    );
    let acme = app.get("/api/tenants/acme", ADMIN).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let held = Arc::new(AtomicI64::new(0));
    let peak = Arc::new(AtomicI64::new(0));
    let server_peak = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicI64::new(0));
    let mut workers = Vec::new();
    for _ in 0..16 {
        let (app, held, peak, server_peak, done, acme) = (
            app.clone(),
            held.clone(),
            peak.clone(),
            server_peak.clone(),
            done.clone(),
            acme.clone(),
        );
        workers.push(tokio::spawn(async move {
            let started = Instant::now();
            while done.load(Ordering::SeqCst) < 160 && started.elapsed() < Duration::from_secs(60) {
                let jobs = lease(&app, ADMIN, json!({"max_jobs": 2, "wait_seconds": 1})).await;
                for j in &jobs {
                    if j["tenant_id"] == acme.as_str() {
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                    }
                }
                let running = app.get("/api/tenant/acme/queue/counts", ADMIN).await.body["running"]
                    .as_i64()
                    .unwrap();
                server_peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                for j in &jobs {
                    if j["tenant_id"] == acme.as_str() {
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                    assert_eq!(complete(&app, ADMIN, j).await.status, 200);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::SeqCst), 160, "every job ran");
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "workers held {} of acme's jobs at once",
        peak.load(Ordering::SeqCst)
    );
    assert!(
        server_peak.load(Ordering::SeqCst) <= 3,
        "the server counted {} running",
        server_peak.load(Ordering::SeqCst)
    );
    assert!(
        peak.load(Ordering::SeqCst) >= 2,
        "the limit was reached, so the test tested it"
    );
    let counts = app.get("/api/tenant/acme/queue/counts", ADMIN).await.body;
    assert_eq!(
        (counts["succeeded"].as_i64(), counts["running"].as_i64()),
        (Some(120), Some(0))
    );
}

#[tokio::test]
async fn leases_expire_heartbeats_extend_and_failures_back_off_until_dead() {
    let app = queue_app().await;
    tenant(&app, "acme", "pro").await;
    let worker = app.create_key("acme", "service").await;
    let r = enqueue(
        &app,
        "acme",
        json!({"payload": {}, "max_attempts": 3, "lease_seconds": 30}),
    )
    .await;
    let id = r.body["id"].as_str().unwrap().to_string();
    let first = lease(&app, &worker, json!({})).await.remove(0);
    assert_eq!(
        (first["status"].as_str(), first["attempts"].as_i64()),
        (Some("running"), Some(1))
    );
    let token = first["lease_token"].as_str().unwrap().to_string();
    let path = |what: &str| format!("/api/queue/jobs/{id}/{what}");

    // A heartbeat moves the expiry; a wrong token is 409 lease_lost.
    app.clock.advance(chrono::Duration::seconds(20));
    let hb = app
        .post(
            &path("heartbeat"),
            &worker,
            json!({"lease_token": token, "lease_seconds": 60}),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.body);
    app.post(
        &path("heartbeat"),
        &worker,
        json!({"lease_token": "0".repeat(32)}),
    )
    .await
    .assert_error(409, "lease_lost");
    app.clock.advance(chrono::Duration::seconds(40));
    assert!(
        lease(&app, &worker, json!({})).await.is_empty(),
        "still leased after 60 s of 60+20"
    );

    // Expired: taken back as a failed attempt, retried after 1^4 s (+10%).
    app.clock.advance(chrono::Duration::seconds(21));
    assert!(
        lease(&app, &worker, json!({})).await.is_empty(),
        "backing off"
    );
    let j = app
        .get(&format!("/api/tenant/acme/jobs/{id}"), ADMIN)
        .await
        .body;
    assert_eq!(
        (j["status"].as_str(), j["last_error"].as_str()),
        (Some("retrying"), Some("the lease expired"))
    );
    app.post(&path("complete"), &worker, json!({"lease_token": token}))
        .await
        .assert_error(409, "lease_lost");
    app.clock.advance(chrono::Duration::milliseconds(1101));
    let second = lease(&app, &worker, json!({})).await.remove(0);
    assert_eq!(second["attempts"], 2);

    // Failed: retrying after 2^4 = 16 s (+ up to 10%), then dead after max_attempts.
    let r = app
        .post(
            &path("fail"),
            &worker,
            json!({"lease_token": second["lease_token"], "error": "parser crashed"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("retrying")),
        "{}",
        r.body
    );
    app.clock.advance(chrono::Duration::seconds(15));
    assert!(
        lease(&app, &worker, json!({})).await.is_empty(),
        "not before 16 s"
    );
    app.clock.advance(chrono::Duration::milliseconds(2700));
    let third = lease(&app, &worker, json!({})).await.remove(0);
    assert_eq!(third["attempts"], 3);
    let r = app
        .post(
            &path("fail"),
            &worker,
            json!({"lease_token": third["lease_token"], "error": "again"}),
        )
        .await;
    assert_eq!(r.body["status"], "dead", "{}", r.body);
    let events = app
        .walk("/api/tenant/acme/events?category=ai.operations", ADMIN, 100)
        .await;
    let dead: Vec<_> = events
        .iter()
        .filter(|e| e["event_type"] == "job.dead")
        .collect();
    assert_eq!(dead.len(), 1, "{events:?}");
    assert_eq!(dead[0]["data"]["job_id"], id.as_str());

    // Retry from dead: queued again with its attempts reset; cancel only from queued/retrying.
    let owner = app.create_key("acme", "member").await;
    let r = app
        .post(&format!("/api/jobs/{id}/retry"), &owner, json!({}))
        .await;
    assert_eq!(
        (
            r.status,
            r.body["status"].as_str(),
            r.body["attempts"].as_i64()
        ),
        (200, Some("queued"), Some(0))
    );
    app.post(&format!("/api/jobs/{id}/retry"), &owner, json!({}))
        .await
        .assert_error(409, "conflict");
    let r = app
        .post(&format!("/api/jobs/{id}/cancel"), &owner, json!({}))
        .await;
    assert_eq!(r.body["status"], "cancelled");
    app.post(&format!("/api/jobs/{id}/cancel"), &owner, json!({}))
        .await
        .assert_error(409, "conflict");
    assert!(
        lease(&app, &worker, json!({})).await.is_empty(),
        "a cancelled job is not leased"
    );
    // Fail with retry: false ends it at once.
    let r = app
        .post(&format!("/api/jobs/{id}/retry"), &owner, json!({}))
        .await;
    assert_eq!(r.status, 200);
    let fourth = lease(&app, &worker, json!({})).await.remove(0);
    let r = app
        .post(
            &path("fail"),
            &worker,
            json!({"lease_token": fourth["lease_token"], "error": "bad input", "retry": false}),
        )
        .await;
    assert_eq!(
        (r.body["status"].as_str(), r.body["attempts"].as_i64()),
        (Some("dead"), Some(1))
    );
    let running = lease(&app, &worker, json!({})).await;
    assert!(running.is_empty());
    let r = app
        .post(&format!("/api/jobs/{id}/cancel"), &owner, json!({}))
        .await;
    r.assert_error(409, "conflict");
}

#[tokio::test]
async fn priority_then_run_at_then_order_and_delayed_jobs_wait() {
    let app = queue_app().await;
    tenant(&app, "acme", "enterprise").await;
    let worker = app.create_key("acme", "service").await;
    let later =
        (tenantry::clock::Clock::now(&*app.clock) + chrono::Duration::minutes(5)).to_rfc3339();
    let jobs = json!({"jobs": [
        {"payload": {"n": 1}, "priority": 1},
        {"payload": {"n": 2}, "priority": 9, "run_at": later},
        {"payload": {"n": 3}, "priority": 5},
        {"payload": {"n": 4}, "priority": 9},
        {"payload": {"n": 5}, "priority": 5, "queue": "other"},
        {"payload": {"n": 6}, "priority": 5},
    ]});
    assert_eq!(enqueue(&app, "acme", jobs).await.status, 201);
    let got = lease(&app, &worker, json!({"max_jobs": 10})).await;
    let order: Vec<i64> = got
        .iter()
        .map(|j| j["payload"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [4, 3, 5, 6, 1], "the delayed one waits");
    let only = enqueue(&app, "acme", json!({"payload": {"n": 7}, "queue": "other"})).await;
    assert_eq!(only.status, 201);
    let got = lease(&app, &worker, json!({"queues": ["default"]})).await;
    assert!(got.is_empty(), "queue filter");
    app.clock.advance(chrono::Duration::minutes(5));
    let got = lease(
        &app,
        &worker,
        json!({"queues": ["default", "other"], "max_jobs": 5}),
    )
    .await;
    let order: Vec<i64> = got
        .iter()
        .map(|j| j["payload"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [2, 7]);
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_a_job_is_enqueued() {
    let app = Arc::new(queue_app().await);
    tenant(&app, "acme", "pro").await;
    let worker = app.create_key("acme", "service").await;
    let started = Instant::now();
    let none = lease(&app, &worker, json!({"wait_seconds": 1})).await;
    assert!(none.is_empty() && started.elapsed() >= Duration::from_millis(900));
    let poller = {
        let (app, worker) = (app.clone(), worker.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            (
                lease(&app, &worker, json!({"wait_seconds": 10})).await,
                t.elapsed(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        enqueue(&app, "acme", json!({"payload": {}})).await.status,
        201
    );
    let (jobs, waited) = poller.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    app.post("/api/queue/lease", &worker, json!({"wait_seconds": 31}))
        .await
        .assert_error(400, "invalid_request");
    app.post("/api/queue/lease", &worker, json!({"max_jobs": 0}))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_job_shows_the_usage_of_the_events_that_name_it() {
    let app = queue_app().await;
    tenant(&app, "acme", "pro").await;
    let id = enqueue(&app, "acme", json!({"payload": {}})).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events: Vec<Value> = (0..3)
        .map(|i| json!({"model": "m", "input_tokens": 100 + i, "output_tokens": 10, "cost_usd": 0.001, "job_id": id}))
        .chain([json!({"model": "m", "input_tokens": 5, "output_tokens": 5, "job_id": "another"})])
        .collect();
    let r = app
        .post(
            "/api/tenant/acme/usage/events",
            ADMIN,
            json!({"events": events}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let job = app
        .get(&format!("/api/tenant/acme/jobs/{id}"), ADMIN)
        .await
        .body;
    assert_eq!(job["usage"]["events"], 3);
    assert_eq!(job["usage"]["input_tokens"], 303);
    assert_eq!(job["usage"]["estimated_cost_usd"].to_string(), "0.003");
    // A worker's lease and its report show the same usage.
    let worker = app.create_key("acme", "service").await;
    let leased = lease(&app, &worker, json!({})).await.remove(0);
    assert_eq!(leased["usage"], job["usage"]);
    let done = complete(&app, &worker, &leased).await;
    assert_eq!(
        (done.body["status"].as_str(), &done.body["usage"]),
        (Some("succeeded"), &job["usage"])
    );
    assert_eq!(done.body["result"], json!({"ok": true}));
}

#[tokio::test]
async fn a_service_key_never_leases_sees_or_finishes_another_tenants_job() {
    let app = queue_app().await;
    tenant(&app, "alpha", "pro").await;
    tenant(&app, "bravo", "pro").await;
    let a_job = enqueue(&app, "alpha", json!({"payload": {"secret": "alpha-data"}}))
        .await
        .body;
    let a_id = a_job["id"].as_str().unwrap();
    let b = app.create_key("bravo", "service").await;
    assert!(lease(&app, &b, json!({"max_jobs": 100})).await.is_empty());
    let a = app.create_key("alpha", "service").await;
    let leased = lease(&app, &a, json!({})).await.remove(0);
    let token = leased["lease_token"].as_str().unwrap();
    // Bravo's key with alpha's id and the real token: not found, nothing changes.
    for what in ["heartbeat", "complete"] {
        app.post(
            &format!("/api/queue/jobs/{a_id}/{what}"),
            &b,
            json!({"lease_token": token}),
        )
        .await
        .assert_error(404, "not_found");
    }
    app.post(
        &format!("/api/queue/jobs/{a_id}/fail"),
        &b,
        json!({"lease_token": token, "error": "x"}),
    )
    .await
    .assert_error(404, "not_found");
    let viewer = app.create_key("bravo", "viewer").await;
    app.get(&format!("/api/jobs/{a_id}"), &viewer)
        .await
        .assert_error(404, "not_found");
    let list = app.get("/api/jobs", &viewer).await.body;
    assert!(!list.to_string().contains("alpha-data"));
    let member = app.create_key("bravo", "member").await;
    app.post(&format!("/api/jobs/{a_id}/cancel"), &member, json!({}))
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/tenant/alpha/jobs/{a_id}"), &viewer)
        .await
        .assert_error(403, "forbidden");
    // Alpha's worker still holds its lease.
    let r = app
        .post(
            &format!("/api/queue/jobs/{a_id}/complete"),
            &a,
            json!({"lease_token": token}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("succeeded"))
    );
    // Viewers and members are not workers.
    for key in [viewer, member] {
        app.post("/api/queue/lease", &key, json!({}))
            .await
            .assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn with_the_queue_off_every_queue_path_is_403() {
    let app = spawn_with(&[("ENABLE_MULTI_TENANT", "true")]).await;
    let member = app.create_key("default", "member").await;
    let service = app.create_key("default", "service").await;
    app.post("/api/jobs", &member, json!({"payload": {}}))
        .await
        .assert_error(403, "feature_disabled");
    app.get("/api/jobs", &member)
        .await
        .assert_error(403, "feature_disabled");
    app.get("/api/queue/counts", &member)
        .await
        .assert_error(403, "feature_disabled");
    app.get("/api/queue/tenants", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
    app.post("/api/queue/lease", &service, json!({}))
        .await
        .assert_error(403, "feature_disabled");
}

/// A job's whole life with only the default tenant and the admin token, so it runs on both
/// stores (PostgreSQL has no tenant or key creation yet): a long poll woken by an enqueue, an
/// idempotency key, a heartbeat, an expired lease taken back at the next lease, the backoff,
/// `dead`, retry, cancel, complete, and the counts, list and overview that follow each step.
#[tokio::test]
async fn the_default_tenants_job_lives_its_whole_life_through_the_admin_token() {
    let app = Arc::new(queue_app().await);
    let poller = {
        let app = app.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let jobs = lease(&app, ADMIN, json!({"wait_seconds": 10})).await;
            (jobs, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = json!({"payload": {"n": 1}, "max_attempts": 2, "idempotency_key": "once"});
    let made = enqueue(&app, "default", body.clone()).await;
    assert_eq!(made.status, 201, "{}", made.body);
    let again = enqueue(&app, "default", body).await;
    assert_eq!((again.status, &again.body["id"]), (200, &made.body["id"]));
    let (jobs, waited) = poller.await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let first = &jobs[0];
    let id = first["id"].as_str().unwrap().to_string();
    assert_eq!(
        (first["id"].as_str(), first["attempts"].as_i64()),
        (Some(id.as_str()), Some(1))
    );
    let counts = |app: Arc<TestApp>| async move {
        app.get("/api/tenant/default/queue/counts", ADMIN)
            .await
            .body
    };
    assert_eq!(counts(app.clone()).await["running"], 1);
    let path = |what: &str| format!("/api/queue/jobs/{id}/{what}");

    // A heartbeat extends the lease; once it expires the next lease takes it back.
    app.clock.advance(chrono::Duration::seconds(20));
    let token = first["lease_token"].clone();
    let hb = app
        .post(
            &path("heartbeat"),
            ADMIN,
            json!({"lease_token": token, "lease_seconds": 60}),
        )
        .await;
    assert_eq!(
        (hb.status, hb.body["status"].as_str()),
        (200, Some("running")),
        "{}",
        hb.body
    );
    app.clock.advance(chrono::Duration::seconds(40));
    assert!(
        lease(&app, ADMIN, json!({})).await.is_empty(),
        "still leased"
    );
    app.clock.advance(chrono::Duration::seconds(21));
    assert!(
        lease(&app, ADMIN, json!({})).await.is_empty(),
        "backing off"
    );
    let j = app
        .get(&format!("/api/tenant/default/jobs/{id}"), ADMIN)
        .await
        .body;
    assert_eq!(
        (j["status"].as_str(), j["last_error"].as_str()),
        (Some("retrying"), Some("the lease expired"))
    );
    app.post(&path("complete"), ADMIN, json!({"lease_token": token}))
        .await
        .assert_error(409, "lease_lost");
    app.clock.advance(chrono::Duration::milliseconds(1101));
    let second = lease(&app, ADMIN, json!({})).await.remove(0);
    assert_eq!(second["attempts"], 2);
    let r = app
        .post(
            &path("fail"),
            ADMIN,
            json!({"lease_token": second["lease_token"], "error": "no"}),
        )
        .await;
    assert_eq!(r.body["status"], "dead", "{}", r.body);

    // Retry and cancel, then a run to the end.
    let tenant_path = |what: &str| format!("/api/tenant/default/jobs/{id}/{what}");
    let r = app.post(&tenant_path("retry"), ADMIN, json!({})).await;
    assert_eq!(
        (r.status, r.body["attempts"].as_i64()),
        (200, Some(0)),
        "{}",
        r.body
    );
    let r = app.post(&tenant_path("cancel"), ADMIN, json!({})).await;
    assert_eq!(r.body["status"], "cancelled");
    app.post(&tenant_path("cancel"), ADMIN, json!({}))
        .await
        .assert_error(409, "conflict");
    assert!(lease(&app, ADMIN, json!({})).await.is_empty());
    assert_eq!(
        app.post(&tenant_path("retry"), ADMIN, json!({}))
            .await
            .status,
        200
    );
    let third = lease(&app, ADMIN, json!({})).await.remove(0);
    let done = complete(&app, ADMIN, &third).await;
    assert_eq!(
        (done.status, &done.body["result"]),
        (200, &json!({"ok": true}))
    );
    app.post(
        &path("heartbeat"),
        ADMIN,
        json!({"lease_token": third["lease_token"]}),
    )
    .await
    .assert_error(409, "lease_lost");
    let missing = format!("/api/queue/jobs/{}/complete", uuid::Uuid::new_v4());
    app.post(&missing, ADMIN, json!({"lease_token": "x"}))
        .await
        .assert_error(404, "not_found");

    let c = counts(app.clone()).await;
    assert_eq!(
        (
            c["succeeded"].as_i64(),
            c["running"].as_i64(),
            c["queued"].as_i64()
        ),
        (Some(1), Some(0), Some(0))
    );
    let listed = app
        .get("/api/tenant/default/jobs?status=succeeded", ADMIN)
        .await
        .body;
    assert_eq!(listed["items"][0]["id"].as_str(), Some(id.as_str()));
    let overview = app.get("/api/queue/tenants", ADMIN).await.body;
    assert_eq!(overview["tenants"][0]["slug"], "default", "{overview}");
    assert_eq!(overview["tenants"][0]["counts"]["succeeded"], 1);
}
