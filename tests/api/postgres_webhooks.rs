//! Webhooks across two replicas on one PostgreSQL database (issue 19, docs/SCALE_OUT.md §5.2):
//! every replica runs a deliverer, and leases keep each delivery to one of them at a time.
//! The replicas are real processes, on the wall clock the leases are measured in, so one of
//! them can be killed with SIGKILL.
use crate::helpers::{pg_database, Process, ADMIN};
use crate::webhooks::{verified_by_the_official_library, Received, Receiver, Reply};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const KEY: &str = "postgres-webhooks-test-key";

fn env<'a>(url: &'a str, timeout: &'a str) -> Vec<(&'static str, &'a str)> {
    vec![
        ("TENANTRY_DATABASE_URL", url),
        ("ENCRYPTION_KEY", KEY),
        ("TENANTRY_ADMIN_TOKEN", ADMIN),
        ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TENANTRY_WEBHOOK_TIMEOUT", timeout),
        ("TENANTRY_LOG", "warn"),
    ]
}

async fn post(base: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(ADMIN)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn deliveries(base: &str, endpoint: &str) -> Vec<Value> {
    let r: Value = reqwest::Client::new()
        .get(format!(
            "{base}/api/webhooks/{endpoint}/deliveries?limit=100"
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["items"].as_array().unwrap().clone()
}

/// Whether one of a request's `v1,` signatures is the HMAC-SHA256 of `{id}.{timestamp}.{body}`
/// under the secret, computed here as Standard Webhooks specifies.
fn signed_with(secret: &str, r: &Received) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let h = |k: &str| r.headers[k].as_str().unwrap_or_default().to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", h("webhook-id"), h("webhook-timestamp"), r.body).as_bytes());
    let want = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    h("webhook-signature").split(' ').any(|s| s == want)
}

/// Events recorded through both replicas, to one endpoint whose receiver is slow at first (so
/// both deliverers hold leases at once): each event is delivered exactly once, signed, and
/// recorded as one successful attempt.
#[tokio::test]
async fn events_recorded_through_two_replicas_are_each_delivered_once() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = env(&url, "15s");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = Process::start(da.path(), &env);
    let mut b = Process::start(db.path(), &env);
    let rx = Receiver::start(&[Reply::Sleep(Duration::from_millis(200)); 16]).await;
    let (status, hook) = post(
        &a.url,
        "/api/webhooks",
        json!({"url": rx.url, "event_types": ["key.created"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let (id, secret) = (
        hook["id"].as_str().unwrap(),
        hook["secret"].as_str().unwrap(),
    );
    const EVENTS: usize = 40;
    let creates = (0..EVENTS).map(|i| {
        let base = if i % 2 == 0 { &a.url } else { &b.url };
        post(
            base,
            "/api/keys",
            json!({"name": format!("k{i}"), "role": "member"}),
        )
    });
    for (status, body) in futures_util::future::join_all(creates).await {
        assert_eq!(status, 201, "{body}");
    }
    rx.wait_for_ids(EVENTS).await;
    // Long enough for every deliverer to have polled several times: a second delivery of any
    // event would have arrived.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got = rx.got();
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        *by_id
            .entry(r.headers["webhook-id"].to_string())
            .or_default() += 1;
    }
    assert_eq!(by_id.len(), EVENTS);
    assert!(
        by_id.values().all(|n| *n == 1),
        "delivered more than once: {by_id:?}"
    );
    assert!(got.iter().all(|r| signed_with(secret, r)));
    if let Some(n) = verified_by_the_official_library(secret, &got) {
        assert_eq!(n, EVENTS);
    }
    // Either replica reads the same log: one successful attempt each.
    let log = deliveries(&b.url, id).await;
    assert_eq!(log.len(), EVENTS);
    for d in &log {
        assert_eq!(
            (&d["status"], &d["attempts"]),
            (&json!("succeeded"), &json!(1))
        );
    }
    a.child.kill().unwrap();
    b.child.kill().unwrap();
}

/// A replica killed with SIGKILL while its delivery is in flight: the other replica sends it
/// once the lease has run out (2 x the 2 s webhook timeout + 1 s = 5 s), not before, with the
/// same `webhook-id`, and records it as the delivery's first attempt (the dead one's attempt
/// was never recorded).
#[tokio::test]
async fn a_delivery_leased_by_a_killed_replica_is_sent_by_the_other_after_its_lease() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = env(&url, "2s");
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = Process::start(da.path(), &env);
    // The first request is held far past the kill; later ones are answered at once.
    let rx = Receiver::start(&[Reply::Sleep(Duration::from_secs(30))]).await;
    let (status, hook) = post(
        &victim.url,
        "/api/webhooks",
        json!({"url": rx.url, "event_types": ["key.created"]}),
    )
    .await;
    assert_eq!(status, 201, "{hook}");
    let id = hook["id"].as_str().unwrap();
    let (status, _) = post(
        &victim.url,
        "/api/keys",
        json!({"name": "k", "role": "member"}),
    )
    .await;
    assert_eq!(status, 201);
    let first = rx.wait_for(1).await;
    let leased = Instant::now();
    unsafe { libc::kill(victim.child.id() as i32, libc::SIGKILL) };
    victim.child.wait().unwrap();
    let mut survivor = Process::start(db.path(), &env);
    let got = rx.wait_for(2).await;
    let waited = leased.elapsed();
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1].headers["webhook-id"], first[0].headers["webhook-id"]);
    assert!(
        waited >= Duration::from_secs(4),
        "sent again after {waited:?}, before the lease ran out"
    );
    let mut log = Vec::new();
    for _ in 0..100 {
        log = deliveries(&survivor.url, id).await;
        if log.first().is_some_and(|d| d["status"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log.len(), 1);
    assert_eq!(
        (&log[0]["status"], &log[0]["attempts"]),
        (&json!("succeeded"), &json!(1))
    );
    survivor.child.kill().unwrap();
}

/// The outbox on PostgreSQL is part of the statement that records events: rolled back with
/// them, and matching endpoints as SQLite's outbox does (the tenant's own and the instance's,
/// enabled ones only, exact names and `prefix.*` filters, none for an event a `once_key`
/// stopped).
#[tokio::test]
async fn the_outbox_commits_with_its_events_and_matches_filters_as_on_sqlite() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = crate::helpers::spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url.as_str()),
            ("ENCRYPTION_KEY", KEY),
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
        |_| {},
    )
    .await;
    let acme = app.create_tenant("acme").await;
    let acme = tenantry::tenancy::TenantId::parse(acme["id"].as_str().unwrap()).unwrap();
    let owner = app.create_key("acme", "owner").await;
    let mut ids = HashMap::new();
    for (name, token, body) in [
        ("keys", owner.as_str(), json!({"event_types": ["key.*"]})),
        ("provider", &owner, json!({"event_types": ["provider.*"]})),
        ("all", &owner, json!({"event_types": null})),
        ("off", &owner, json!({})),
        ("default", ADMIN, json!({})),
        (
            "instance",
            ADMIN,
            json!({"scope": "instance", "event_types": ["limit.warning"]}),
        ),
    ] {
        let mut body = body;
        body["url"] = json!("http://127.0.0.1:9/hook");
        let r = app.post("/api/webhooks", token, body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        ids.insert(r.body["id"].as_str().unwrap().to_string(), name);
    }
    let off = ids.iter().find(|(_, n)| **n == "off").unwrap().0.clone();
    let r = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{off}"),
            Some(&owner),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    use tenantry::events::{Kind, NewEvent};
    let event = |kind| NewEvent::of(kind, acme, "m".into(), json!({}));
    let batch = || {
        vec![
            (1, event(Kind::KeyCreated)),
            (1, event(Kind::ProviderKeySet)),
            (1, event(Kind::LimitWarning).once("w".into())),
            (1, event(Kind::LimitWarning).once("w".into())),
        ]
    };
    let mut c = crate::helpers::pg_connect(&url).await;
    let rolled_back = batch();
    let tx = c.transaction().await.unwrap();
    tenantry::events::pg::record_many(&tx, &rolled_back)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let rolled_back: Vec<String> = rolled_back.iter().map(|(_, e)| e.id.to_string()).collect();
    assert!(outbox_rows(&c, &ids, rolled_back).await.is_empty());
    let committed = batch();
    let tx = c.transaction().await.unwrap();
    let written = tenantry::events::pg::record_many(&tx, &committed)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(written, 3, "the second limit.warning has a used once_key");
    let committed: Vec<String> = committed.iter().map(|(_, e)| e.id.to_string()).collect();
    let got = outbox_rows(&c, &ids, committed).await;
    let want = [
        ("key.created", "all"),
        ("key.created", "keys"),
        ("limit.warning", "all"),
        ("limit.warning", "instance"),
        ("provider_key.set", "all"),
    ];
    let want: std::collections::BTreeSet<_> =
        want.iter().map(|(t, n)| (t.to_string(), *n)).collect();
    assert_eq!(got, want);
}

/// The (event type, endpoint name) of each delivery of `events`.
async fn outbox_rows(
    c: &tokio_postgres::Client,
    names: &HashMap<String, &'static str>,
    events: Vec<String>,
) -> std::collections::BTreeSet<(String, &'static str)> {
    let rows = c
        .query(
            "SELECT endpoint_id::text, event_type FROM webhook_deliveries WHERE event_id = ANY($1)",
            &[&events],
        )
        .await
        .unwrap();
    rows.iter()
        .map(|r| (r.get::<_, String>(1), names[&r.get::<_, String>(0)]))
        .collect()
}
