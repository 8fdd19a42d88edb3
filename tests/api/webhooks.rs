//! Webhooks: deliveries verified by the official Standard Webhooks library, the retry schedule
//! driven by the manual clock, 410 and 5-day disabling, tenant isolation, SSRF refusals and
//! deliveries that survive `kill -9`.
use crate::helpers::{skip_without, spawn_with, Process, TestApp, ADMIN};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tenantry::clock::Clock;

const PRIVATE_OK: (&str, &str) = ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true");

/// How the receiver answers one request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reply {
    Status(u16),
    RetryAfter(u16, u32),
    /// Answers this status with `Retry-After` as an HTTP date.
    RetryAt(u16, std::time::SystemTime),
    /// Answers 200 after this long.
    Sleep(Duration),
}

#[derive(Clone, Debug)]
pub(crate) struct Received {
    pub(crate) headers: Value,
    pub(crate) body: String,
}

/// A webhook receiver on a free port: records every request and answers by its script, then
/// 200 once the script is spent.
#[derive(Clone, Default)]
pub(crate) struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    /// Requests being answered now, and the most there ever were at once.
    active: Arc<Mutex<(usize, usize)>>,
    pub(crate) url: String,
}

impl Receiver {
    pub(crate) async fn start(script: &[Reply]) -> Receiver {
        let mut r = Receiver::default();
        r.script.lock().unwrap().extend(script.iter().copied());
        let state = r.clone();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        r.url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(receive))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        r
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn script(&self, replies: &[Reply]) {
        let mut s = self.script.lock().unwrap();
        s.clear();
        s.extend(replies.iter().copied());
    }

    /// Waits until requests with `n` different `webhook-id`s arrived; returns one of each.
    pub(crate) async fn wait_for_ids(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let mut seen = std::collections::HashSet::new();
            let got: Vec<Received> = self
                .got()
                .into_iter()
                .filter(|r| seen.insert(r.headers["webhook-id"].to_string()))
                .collect();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} different events, got {:#?}", self.got());
    }

    /// Asks for a test send to `endpoint` and waits for its delivery, known by its event id.
    async fn test_send(&self, app: &TestApp, endpoint: &str) -> Received {
        let r = app
            .post(&format!("/api/webhooks/{endpoint}/test"), ADMIN, json!({}))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let event_id = r.body["event_id"].clone();
        for _ in 0..200 {
            let got = self.got();
            if let Some(r) = got
                .into_iter()
                .find(|r| r.headers["webhook-id"] == event_id)
            {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no delivery of test event {event_id}: {:#?}", self.got());
    }

    /// Waits until at least `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        for _ in 0..200 {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} requests, got {:#?}", self.got());
    }
}

async fn receive(req: HttpRequest, body: web::Bytes, r: web::Data<Receiver>) -> HttpResponse {
    let headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or_default())))
        .collect();
    r.got.lock().unwrap().push(Received {
        headers: Value::Object(headers),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let reply = r.script.lock().unwrap().pop_front();
    match reply {
        None => HttpResponse::Ok().finish(),
        Some(Reply::Status(s)) => HttpResponse::build(s.try_into().unwrap()).finish(),
        Some(Reply::RetryAfter(s, secs)) => HttpResponse::build(s.try_into().unwrap())
            .insert_header(("retry-after", secs.to_string()))
            .finish(),
        Some(Reply::RetryAt(s, at)) => HttpResponse::build(s.try_into().unwrap())
            .insert_header(("retry-after", httpdate::fmt_http_date(at)))
            .finish(),
        Some(Reply::Sleep(d)) => {
            {
                let mut a = r.active.lock().unwrap();
                a.0 += 1;
                a.1 = a.1.max(a.0);
            }
            tokio::time::sleep(d).await;
            r.active.lock().unwrap().0 -= 1;
            HttpResponse::Ok().finish()
        }
    }
}

/// Verifies each request with the official `standardwebhooks` Python library and `secret`;
/// returns how many verified. None when the library is missing (outside CI).
pub(crate) fn verified_by_the_official_library(secret: &str, got: &[Received]) -> Option<usize> {
    let present = std::process::Command::new("python3")
        .args(["-c", "import standardwebhooks"])
        .output()
        .is_ok_and(|o| o.status.success());
    if skip_without(
        present,
        "python3 with standardwebhooks",
        "python3 -m pip install standardwebhooks",
    ) {
        return None;
    }
    let script = r#"
import json, sys
from standardwebhooks import Webhook
doc = json.load(sys.stdin)
wh = Webhook(doc["secret"])
ok = 0
for r in doc["requests"]:
    wh.verify(r["body"], r["headers"])
    ok += 1
print(ok)
"#;
    let input = json!({
        "secret": secret,
        "requests": got.iter().map(|r| json!({"headers": r.headers, "body": r.body})).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "standardwebhooks refused a delivery: {}",
        crate::helpers::output_text(&out)
    );
    Some(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap())
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app.post("/api/webhooks", token, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body
}

async fn deliveries(app: &TestApp, id: &str) -> Vec<Value> {
    let r = app
        .get(&format!("/api/webhooks/{id}/deliveries"), ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["items"].as_array().unwrap().clone()
}

/// Waits until the endpoint's newest `webhook.test` delivery has made `attempts` attempts.
async fn wait_attempts(app: &TestApp, id: &str, attempts: i64) -> Value {
    for _ in 0..200 {
        let d = deliveries(app, id).await;
        let test = d.iter().find(|d| d["event_type"] == "webhook.test");
        if let Some(t) = test.filter(|d| d["attempts"] == attempts) {
            return t.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no delivery reached {attempts} attempts: {:#?}",
        deliveries(app, id).await
    );
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

fn seconds_until(app: &TestApp, at: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(at.as_str().unwrap()).unwrap();
    (at.with_timezone(&chrono::Utc) - app.clock.now()).num_seconds()
}

#[tokio::test]
async fn deliveries_verify_with_the_official_library_including_during_a_rotation() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let secret = hook["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    let id = hook["id"].as_str().unwrap();
    // A key, a limit crossing and a test send: three real events.
    app.post("/api/keys", ADMIN, json!({"name": "k", "role": "member"}))
        .await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"limits": {"daily_tokens": 100}})),
    )
    .await;
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"model": "m", "input_tokens": 200, "output_tokens": 0}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let test = app
        .post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    assert_eq!(test.status, 202);
    // key.created, settings.changed, pricing.unknown_model, limit.warning, limit.exceeded and
    // webhook.test: six events, told apart by their webhook-id (a delivery may come twice).
    let got = rx.wait_for_ids(6).await;
    let mut types: Vec<String> = got
        .iter()
        .map(|r| body(r)["type"].as_str().unwrap().to_string())
        .collect();
    types.sort();
    types.dedup();
    for t in [
        "key.created",
        "limit.exceeded",
        "settings.changed",
        "webhook.test",
    ] {
        assert!(types.contains(&t.to_string()), "{t} not in {types:?}");
    }
    let key = got
        .iter()
        .find(|r| body(r)["type"] == "key.created")
        .unwrap();
    let event = body(key);
    assert_eq!(key.headers["webhook-id"], event["data"]["id"]);
    assert_eq!(event["data"]["event_type"], "key.created");
    if let Some(n) = verified_by_the_official_library(&secret, &got) {
        assert_eq!(n, got.len());
    }
    // Rotation: for 24 hours both secrets sign every delivery.
    let rotated = app
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    let new = rotated.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, secret);
    // The test send after the rotation is found by its event id, not by its place in the
    // arrivals: a delivery of the first six may still arrive (late, or a second time).
    let after = rx.test_send(&app, id).await;
    let sig = after.headers["webhook-signature"].as_str().unwrap();
    assert_eq!(sig.split(' ').count(), 2, "{sig}");
    let after = std::slice::from_ref(&after);
    if let Some(n) = verified_by_the_official_library(&secret, after) {
        assert_eq!(n, 1);
        assert_eq!(verified_by_the_official_library(&new, after), Some(1));
    }
    // After the overlap only the new secret signs.
    app.clock.advance(chrono::Duration::hours(25));
    let last = rx.test_send(&app, id).await;
    let sig = last.headers["webhook-signature"].as_str().unwrap();
    assert_eq!(sig.split(' ').count(), 1, "{sig}");
    assert_eq!(
        verified_by_the_official_library(&new, std::slice::from_ref(&last)).unwrap_or(1),
        1
    );
}

#[tokio::test]
async fn deliveries_waiting_their_turn_at_a_rotation_are_signed_with_both_secrets() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    // The first four requests (all one endpoint takes at once) are held for two seconds, so
    // the other eight wait their turn, already read by the worker, while the secret rotates.
    let rx = Receiver::start(&[Reply::Sleep(Duration::from_secs(2)); 4]).await;
    let hook = create(
        &app,
        ADMIN,
        json!({"url": rx.url, "event_types": ["key.created"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    for i in 0..12 {
        let r = app
            .post(
                "/api/keys",
                ADMIN,
                json!({"name": format!("k{i}"), "role": "member"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    rx.wait_for(4).await;
    let rotated = app
        .post(
            &format!("/api/webhooks/{id}/rotate-secret"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(rotated.status, 200);
    assert_eq!(rx.got().len(), 4, "the first four are still being answered");
    let got = rx.wait_for_ids(12).await;
    // In arrival order: the four sent before the rotation, then the eight sent after it.
    let all = rx.got();
    for r in &all[4..] {
        let sig = r.headers["webhook-signature"].as_str().unwrap();
        assert_eq!(sig.split(' ').count(), 2, "sent after the rotation: {sig}");
    }
    assert_eq!(got.len(), 12);
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_schedule_with_the_same_webhook_id() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[Reply::Status(500), Reply::Status(502)]).await;
    let hook = create(
        &app,
        ADMIN,
        json!({"url": rx.url, "event_types": ["webhook.*"]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, id, 1).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["last_status"], 500);
    let wait = seconds_until(&app, &d["next_attempt_at"]);
    assert!((4..=6).contains(&wait), "first retry after {wait} s");
    // Not before it is due.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 1);
    app.clock.advance(chrono::Duration::seconds(6));
    let d = wait_attempts(&app, id, 2).await;
    let wait = seconds_until(&app, &d["next_attempt_at"]);
    assert!((270..=330).contains(&wait), "second retry after {wait} s");
    app.clock.advance(chrono::Duration::minutes(6));
    let d = wait_attempts(&app, id, 3).await;
    assert_eq!(d["status"], "succeeded");
    assert_eq!(d["next_attempt_at"], Value::Null);
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert!(got
        .iter()
        .all(|r| r.headers["webhook-id"] == got[0].headers["webhook-id"]));
    let succeeded = app
        .get(
            &format!("/api/webhooks/{id}/deliveries?status=succeeded"),
            ADMIN,
        )
        .await;
    assert_eq!(succeeded.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_schedule_ends_exhausted_and_an_endpoint_failing_for_5_days_is_disabled() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[Reply::Status(500); 20]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    // 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts in all.
    let mut d = wait_attempts(&app, id, 1).await;
    for n in 2..=8 {
        let wait = seconds_until(&app, &d["next_attempt_at"]);
        app.clock.advance(chrono::Duration::seconds(wait + 1));
        d = wait_attempts(&app, id, n).await;
    }
    assert_eq!(d["status"], "exhausted");
    assert_eq!(d["next_attempt_at"], Value::Null);
    app.clock.advance(chrono::Duration::hours(12));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 8);
    // Still failing five days after the first failure: disabled, with an event.
    app.clock.advance(chrono::Duration::days(4));
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    wait_attempts(&app, id, 1).await;
    let e = app.get(&format!("/api/webhooks/{id}"), ADMIN).await;
    assert_eq!(e.body["enabled"], false, "{}", e.body);
    assert_eq!(e.body["disabled_reason"], "failing");
    let events = app.get("/api/events?category=api.lifecycle", ADMIN).await;
    assert!(
        events.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "webhook.disabled" && e["data"]["reason"] == "failing"),
        "{}",
        events.body
    );
}

#[tokio::test]
async fn a_410_disables_the_endpoint_as_gone() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[Reply::Status(410)]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, id, 1).await;
    assert_eq!(d["last_status"], 410);
    assert_eq!(d["next_attempt_at"], Value::Null);
    let e = app.get(&format!("/api/webhooks/{id}"), ADMIN).await;
    assert_eq!(e.body["enabled"], false);
    assert_eq!(e.body["disabled_reason"], "gone");
    // Nothing more is sent to it; enabling it again clears the reason.
    app.post("/api/keys", ADMIN, json!({"name": "k", "role": "member"}))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 1);
    let r = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(ADMIN),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.body["disabled_reason"], Value::Null);
    assert_eq!(r.body["enabled"], true);
}

#[tokio::test]
async fn a_receiver_that_does_not_answer_in_time_fails_the_attempt() {
    let app = spawn_with(&[PRIVATE_OK, ("TENANTRY_WEBHOOK_TIMEOUT", "1s")]).await;
    let rx = Receiver::start(&[Reply::Sleep(Duration::from_secs(3))]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, id, 1).await;
    assert_eq!(d["status"], "failed");
    assert_eq!(d["last_status"], Value::Null);
    assert!(d["last_error"].as_str().unwrap().contains("in time"), "{d}");
}

#[tokio::test]
async fn a_longer_retry_after_on_429_is_honoured_and_a_retry_sends_at_once() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[Reply::RetryAfter(429, 120)]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, id, 1).await;
    assert_eq!(d["last_status"], 429);
    let wait = seconds_until(&app, &d["next_attempt_at"]);
    assert!((119..=120).contains(&wait), "retry after {wait} s");
    app.clock.advance(chrono::Duration::seconds(10));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.got().len(), 1, "retried before Retry-After");
    // A manual retry is due now.
    let did = d["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/webhooks/{id}/deliveries/{did}/retry"),
            ADMIN,
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202);
    let d = wait_attempts(&app, id, 2).await;
    assert_eq!(d["status"], "succeeded");
    let missing = app
        .post(
            &format!("/api/webhooks/{id}/deliveries/{}/retry", uuid_like()),
            ADMIN,
            json!({}),
        )
        .await;
    missing.assert_error(404, "not_found");
}

#[tokio::test]
async fn a_retry_after_http_date_on_503_is_honoured() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    // Ten minutes from the server's (manual) clock, in IMF-fixdate.
    let at = std::time::SystemTime::from(app.clock.now() + chrono::Duration::minutes(10));
    let rx = Receiver::start(&[Reply::RetryAt(503, at)]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap();
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, id, 1).await;
    assert_eq!(d["last_status"], 503);
    let wait = seconds_until(&app, &d["next_attempt_at"]);
    assert!((598..=600).contains(&wait), "retry after {wait} s");
    // Past the schedule's 5 s but before the date: not yet.
    app.clock.advance(chrono::Duration::seconds(60));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(rx.got().len(), 1, "retried before the Retry-After date");
    app.clock.advance(chrono::Duration::seconds(541));
    let d = wait_attempts(&app, id, 2).await;
    assert_eq!(d["status"], "succeeded");
}

fn uuid_like() -> &'static str {
    "6f9619ff-8b86-d011-b42d-00c04fc964ff"
}

#[tokio::test]
async fn a_tenants_endpoint_gets_only_its_events_and_an_instance_endpoint_gets_every_tenants() {
    let app = spawn_with(&[PRIVATE_OK, ("ENABLE_MULTI_TENANT", "true")]).await;
    app.create_tenant("acme").await;
    app.create_tenant("bolt").await;
    let owner_a = app.create_key("acme", "owner").await;
    let owner_b = app.create_key("bolt", "owner").await;
    let (rx_a, rx_all) = (Receiver::start(&[]).await, Receiver::start(&[]).await);
    let own = create(
        &app,
        &owner_a,
        json!({"url": rx_a.url, "event_types": ["key.*"]}),
    )
    .await;
    // Only the admin token makes instance endpoints.
    let r = app
        .post(
            "/api/webhooks",
            &owner_a,
            json!({"url": rx_all.url, "scope": "instance"}),
        )
        .await;
    r.assert_error(403, "forbidden");
    let instance = create(
        &app,
        ADMIN,
        json!({"url": rx_all.url, "scope": "instance", "event_types": ["key.created"]}),
    )
    .await;
    assert_eq!(instance["scope"], "instance");
    app.create_key("bolt", "member").await;
    app.create_key("acme", "member").await;
    let got_all = rx_all.wait_for(2).await;
    let got_a = rx_a.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rx_a.got().len(),
        1,
        "tenant a's endpoint got another tenant's event"
    );
    let tenant_a = app.get("/api/tenants/acme", ADMIN).await.body["id"].clone();
    let tenant_b = app.get("/api/tenants/bolt", ADMIN).await.body["id"].clone();
    assert_eq!(body(&got_a[0])["data"]["tenant_id"], tenant_a);
    let mut tenants: Vec<String> = got_all
        .iter()
        .map(|r| body(r)["data"]["tenant_id"].as_str().unwrap().to_string())
        .collect();
    tenants.sort();
    let mut want = vec![
        tenant_a.as_str().unwrap().to_string(),
        tenant_b.as_str().unwrap().to_string(),
    ];
    want.sort();
    assert_eq!(tenants, want);
    // Tenant b sees neither a's endpoint nor the instance's.
    let own_id = own["id"].as_str().unwrap();
    let r = app.get(&format!("/api/webhooks/{own_id}"), &owner_b).await;
    r.assert_error(404, "not_found");
    let r = app
        .get(
            &format!("/api/webhooks/{}", instance["id"].as_str().unwrap()),
            &owner_a,
        )
        .await;
    r.assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/webhooks", &owner_b).await.body["items"],
        json!([])
    );
    // Below owner: refused. No list or read shows a secret.
    for role in ["viewer", "member"] {
        let key = app.create_key("acme", role).await;
        app.get("/api/webhooks", &key)
            .await
            .assert_error(403, "forbidden");
        app.get(&format!("/api/webhooks/{own_id}"), &key)
            .await
            .assert_error(403, "forbidden");
    }
    let list = app.get("/api/webhooks", &owner_a).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let one = app.get(&format!("/api/webhooks/{own_id}"), &owner_a).await;
    for text in [list.body.to_string(), one.body.to_string()] {
        assert!(
            !text.contains("whsec_") && !text.contains("secret"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn private_and_local_addresses_are_refused_without_the_flag() {
    let app = spawn_with(&[]).await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let r = app.post("/api/webhooks", ADMIN, json!({"url": url})).await;
        r.assert_error(400, "invalid_request");
    }
    for bad in [
        json!({"url": "ftp://example.com/"}),
        json!({"url": "http://203.0.113.9/", "format": "xml"}),
        json!({"url": "http://203.0.113.9/", "event_types": ["Bad Type"]}),
    ] {
        app.post("/api/webhooks", ADMIN, bad)
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(
        app.get("/api/webhooks", ADMIN).await.body["items"],
        json!([])
    );
}

#[tokio::test]
async fn pending_deliveries_are_delivered_after_kill_9_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        PRIVATE_OK,
        ("TENANTRY_ADMIN_TOKEN", ADMIN),
        ("ENCRYPTION_KEY", "webhook-test-encryption-key-0123"),
    ];
    // The receiver holds every request, so deliveries are in flight or pending at the kill.
    let rx = Receiver::start(&[Reply::Sleep(Duration::from_secs(30)); 8]).await;
    let mut server = Process::start(dir.path(), &env);
    let client = reqwest::Client::new();
    let hook: Value = client
        .post(format!("{}/api/webhooks", server.url))
        .bearer_auth(ADMIN)
        .json(&json!({"url": rx.url, "event_types": ["key.created"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hook["id"].as_str().unwrap().to_string();
    for i in 0..12 {
        let r = client
            .post(format!("{}/api/keys", server.url))
            .bearer_auth(ADMIN)
            .json(&json!({"name": format!("k{i}"), "role": "member"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    rx.wait_for(4).await; // four in flight to the endpoint, the rest pending
    server.child.kill().unwrap(); // SIGKILL
    let _ = server.wait();
    rx.script(&[]);
    let server = Process::start(dir.path(), &env);
    let got = rx.wait_for(4 + 12).await;
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.headers["webhook-id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 12, "every event delivered at least once");
    let mut succeeded = 0;
    for _ in 0..100 {
        let list: Value = client
            .get(format!(
                "{}/api/webhooks/{id}/deliveries?status=succeeded",
                server.url
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        succeeded = list["items"].as_array().unwrap().len();
        if succeeded == 12 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(succeeded, 12);
    let mut server = server;
    server.child.kill().unwrap();
}

#[tokio::test]
async fn a_private_address_allowed_at_creation_is_refused_at_delivery_once_the_flag_is_off() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[]).await;
    let hook = create(&app, ADMIN, json!({"url": rx.url})).await;
    let id = hook["id"].as_str().unwrap().to_string();
    let (dir, mut config) = app.stop().await;
    config.webhook_allow_private = false;
    let app = crate::helpers::start(dir, config).await;
    app.post(&format!("/api/webhooks/{id}/test"), ADMIN, json!({}))
        .await;
    let d = wait_attempts(&app, &id, 1).await;
    assert_eq!(d["status"], "failed");
    assert!(
        d["last_error"]
            .as_str()
            .unwrap()
            .contains("private or local"),
        "{d}"
    );
    assert!(rx.got().is_empty(), "a refused address was called");
}

#[tokio::test]
async fn a_slack_endpoint_gets_one_line_of_text() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let rx = Receiver::start(&[]).await;
    let hook = create(
        &app,
        ADMIN,
        json!({"url": rx.url, "format": "slack", "event_types": ["key.created"]}),
    )
    .await;
    assert_eq!(hook["format"], "slack");
    app.post("/api/keys", ADMIN, json!({"name": "ci", "role": "member"}))
        .await;
    let got = rx.wait_for(1).await;
    let text = body(&got[0]);
    assert_eq!(text.as_object().unwrap().len(), 1, "{text}");
    let line = text["text"].as_str().unwrap();
    assert!(line.starts_with("info key.created: "), "{line}");
    assert!(line.ends_with("created by admin"), "{line}");
}

#[tokio::test]
async fn at_most_four_deliveries_reach_one_endpoint_at_once() {
    let app = spawn_with(&[PRIVATE_OK]).await;
    let slow = Receiver::start(&[Reply::Sleep(Duration::from_millis(400)); 12]).await;
    let other = Receiver::start(&[]).await;
    create(
        &app,
        ADMIN,
        json!({"url": slow.url, "event_types": ["key.created"]}),
    )
    .await;
    create(
        &app,
        ADMIN,
        json!({"url": other.url, "event_types": ["key.created"]}),
    )
    .await;
    for i in 0..12 {
        let r = app
            .post(
                "/api/keys",
                ADMIN,
                json!({"name": format!("k{i}"), "role": "member"}),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    // The slow endpoint's backlog does not hold up the other endpoint.
    other.wait_for(12).await;
    assert!(slow.got().len() < 12, "the slow one cannot be done yet");
    slow.wait_for(12).await;
    let most = slow.active.lock().unwrap().1;
    assert_eq!(most, 4, "at most 4 at once per endpoint, and 4 were used");
}

/// A job that dies records `job.dead`, and its tenant's endpoint receives it: the queue's
/// events reach the outbox in the transaction that kills the job, on either store.
#[tokio::test]
async fn a_dead_job_is_delivered_to_its_tenants_endpoint() {
    let app = spawn_with(&[
        PRIVATE_OK,
        ("ENABLE_MULTI_TENANT", "true"),
        ("ENABLE_HOSTED_QUEUE", "true"),
    ])
    .await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let worker = app.create_key("acme", "service").await;
    let rx = Receiver::start(&[]).await;
    create(
        &app,
        &owner,
        json!({"url": rx.url, "event_types": ["job.*"]}),
    )
    .await;
    let r = app
        .post(
            "/api/tenant/acme/jobs",
            ADMIN,
            json!({"payload": {}, "max_attempts": 1}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let leased = app.post("/api/queue/lease", &worker, json!({})).await;
    let job = leased.body["jobs"][0].clone();
    let r = app
        .post(
            &format!("/api/queue/jobs/{}/fail", job["id"].as_str().unwrap()),
            &worker,
            json!({"lease_token": job["lease_token"], "error": "parser crashed"}),
        )
        .await;
    assert_eq!(r.body["status"], "dead", "{}", r.body);
    let got = rx.wait_for(1).await;
    let event = body(&got[0]);
    assert_eq!(event["type"], "job.dead");
    assert_eq!(event["data"]["data"]["job_id"], job["id"]);
}
