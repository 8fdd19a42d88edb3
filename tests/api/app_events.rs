//! `POST /api/events`: an application records its own operational events beside tenantry's;
//! and `TENANTRY_EVENTS_RETENTION_DAYS` deletes old ones.
use crate::helpers::{spawn_app, spawn_tuned, TestApp, ADMIN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EVENTS: &str = "/api/tenant/acme/events";

fn import_done() -> Value {
    json!({"category": "data.sync", "event_type": "crm.import_done", "severity": "info",
           "message": "imported 12 contacts", "data": {"source": "hubspot", "count": 12}})
}

async fn acme(app: &TestApp) -> String {
    let t = app.create_tenant("acme").await;
    t["id"].as_str().unwrap().to_string()
}

async fn stored(app: &TestApp) -> Vec<Value> {
    app.walk(EVENTS, ADMIN, 100).await
}

#[tokio::test]
async fn service_and_member_keys_post_events_the_list_shows_as_posted() {
    let app = spawn_app().await;
    let id = acme(&app).await;
    let service = app.create_key("acme", "service").await;
    let member = app.create_key("acme", "member").await;
    let viewer = app.create_key("acme", "viewer").await;

    let a = app.post("/api/events", &service, import_done()).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let b = app
        .post(
            "/api/events",
            &member,
            json!({"category": "user.interaction", "event_type": "chat.thumbs_down",
                   "severity": "warning", "message": "answer rated unhelpful"}),
        )
        .await;
    assert_eq!(b.status, 201, "{}", b.body);

    assert_eq!(a.body["tenant_id"], id.as_str());
    assert_eq!(a.body["category"], "data.sync");
    assert_eq!(a.body["event_type"], "crm.import_done");
    assert_eq!(a.body["severity"], "info");
    assert_eq!(a.body["message"], "imported 12 contacts");
    assert_eq!(a.body["data"], json!({"source": "hubspot", "count": 12}));
    assert!(a.body["created_at"].is_string() && a.body["id"].is_string());
    assert_eq!(
        b.body["data"],
        json!({}),
        "data defaults to an empty object"
    );

    // The answer is the event exactly as the list renders it, newest first.
    let listed = app.get("/api/events", &viewer).await;
    assert_eq!(listed.status, 200);
    let items = listed.body["items"].as_array().unwrap();
    assert_eq!(items[0], b.body);
    assert_eq!(items[1], a.body);
    let synced = app.get("/api/events?category=data.sync", &viewer).await;
    assert_eq!(synced.body["items"], json!([a.body]));
}

#[tokio::test]
async fn an_owner_may_post_and_a_viewer_may_not() {
    let app = spawn_app().await;
    acme(&app).await;
    let owner = app.create_key("acme", "owner").await;
    let viewer = app.create_key("acme", "viewer").await;
    let before = stored(&app).await.len();
    app.post("/api/events", &viewer, import_done())
        .await
        .assert_error(403, "forbidden");
    assert_eq!(stored(&app).await.len(), before);
    let r = app.post("/api/events", &owner, import_done()).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(stored(&app).await.len(), before + 1);
}

#[tokio::test]
async fn security_and_billing_are_tenantrys_own_categories() {
    let app = spawn_app().await;
    acme(&app).await;
    let service = app.create_key("acme", "service").await;
    for category in ["security", "billing"] {
        let mut body = import_done();
        body["category"] = json!(category);
        let r = app.post("/api/events", &service, body).await;
        r.assert_error(400, "invalid_request");
        assert!(r.body["message"].as_str().unwrap().contains(category));
    }
    for category in ["security", "billing"] {
        let r = app
            .get(&format!("{EVENTS}?category={category}"), ADMIN)
            .await;
        let types: Vec<&str> = r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].as_str().unwrap())
            .collect();
        assert!(!types.contains(&"crm.import_done"), "{category}: {types:?}");
    }
}

#[tokio::test]
async fn each_bad_field_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    acme(&app).await;
    let service = app.create_key("acme", "service").await;
    let before = stored(&app).await;
    let cases: Vec<(&str, Value)> = vec![
        ("category", json!("api.lifecycle")),
        ("category", json!(null)),
        ("event_type", json!("")),
        ("event_type", json!("CRM.Import")),
        ("event_type", json!("crm import")),
        ("event_type", json!("e".repeat(101))),
        ("severity", json!("fatal")),
        ("severity", json!(3)),
        ("message", json!("")),
        ("message", json!("line one\nline two")),
        ("message", json!("m".repeat(1001))),
        ("data", json!([1, 2, 3])),
        ("data", json!("text")),
        ("data", json!({"blob": "x".repeat(16 * 1024)})),
        ("tenant_id", json!("00000000-0000-0000-0000-000000000000")),
    ];
    for (field, value) in cases {
        let mut body = import_done();
        body[field] = value;
        let r = app.post("/api/events", &service, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "invalid_request"),
            "{field}: {}",
            r.body
        );
    }
    for missing in ["category", "event_type", "severity", "message"] {
        let mut body = import_done();
        body.as_object_mut().unwrap().remove(missing);
        let r = app.post("/api/events", &service, body).await;
        r.assert_error(400, "invalid_request");
    }
    // The 1 MiB bound of every /api body.
    let mut huge = import_done();
    huge["data"] = json!({"blob": "x".repeat(1024 * 1024)});
    app.post("/api/events", &service, huge)
        .await
        .assert_error(413, "payload_too_large");
    assert_eq!(stored(&app).await, before);
}

#[tokio::test]
async fn the_bounds_themselves_are_accepted() {
    let app = spawn_app().await;
    acme(&app).await;
    let service = app.create_key("acme", "service").await;
    let mut edge = import_done();
    edge["event_type"] = json!("e".repeat(100));
    edge["message"] = json!("é".repeat(1000));
    // {"blob":"..."} is 11 bytes around the string.
    edge["data"] = json!({"blob": "x".repeat(16 * 1024 - 11)});
    let r = app.post("/api/events", &service, edge).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn another_tenants_key_can_neither_post_nor_read_here() {
    let app = spawn_app().await;
    let acme_id = acme(&app).await;
    app.create_tenant("beta").await;
    let before = stored(&app).await;
    for role in ["owner", "member", "service"] {
        let key = app.create_key("beta", role).await;
        let named = app
            .request("POST", "/api/events", Some(&key))
            .header("X-Tenant-ID", acme_id.as_str())
            .json(&import_done());
        app.send(named).await.assert_error(403, "forbidden");
        app.post(EVENTS, &key, import_done())
            .await
            .assert_error(403, "forbidden");
        let read = app
            .request("GET", "/api/events", Some(&key))
            .header("X-Tenant-ID", acme_id.as_str());
        app.send(read).await.assert_error(403, "forbidden");
        app.get(EVENTS, &key).await.assert_error(403, "forbidden");
    }
    assert_eq!(stored(&app).await, before);
}

/// Polls the list until `done` holds for it, for up to ten seconds.
async fn until(app: &TestApp, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let items = stored(app).await;
        if done(&items) || Instant::now() > deadline {
            return items;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn messages(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect()
}

async fn spawn_retaining(days: &str) -> TestApp {
    spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_EVENTS_RETENTION_DAYS", days),
        ],
        |c| c.events_sweep_every = Duration::from_millis(50),
    )
    .await
}

async fn post_message(app: &TestApp, key: &str, message: &str) {
    let mut body = import_done();
    body["message"] = json!(message);
    let r = app.post("/api/events", key, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn events_older_than_the_retention_are_deleted_and_recent_ones_kept() {
    let app = spawn_retaining("30").await;
    acme(&app).await;
    let key = app.create_key("acme", "service").await;
    post_message(&app, &key, "old").await;
    app.clock.advance(chrono::Duration::days(20));
    post_message(&app, &key, "twenty days later").await;
    app.clock.advance(chrono::Duration::days(11));
    post_message(&app, &key, "recent").await;

    // "old" and tenantry's own events of the first day are now 31 days old.
    let items = until(&app, |items| !messages(items).contains(&"old")).await;
    assert_eq!(messages(&items), vec!["recent", "twenty days later"]);
}

#[tokio::test]
async fn zero_retention_keeps_every_event() {
    let app = spawn_retaining("0").await;
    acme(&app).await;
    let key = app.create_key("acme", "service").await;
    post_message(&app, &key, "old").await;
    let before = stored(&app).await;
    app.clock.advance(chrono::Duration::days(36_600));
    post_message(&app, &key, "a century later").await;
    // Many sweep intervals go by: a sweeper would have deleted everything but the last one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = stored(&app).await;
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(&after[1..], &before[..]);
}

/// The PostgreSQL sweep itself, on a database of its own: as SQLite's (`events::retention`'s
/// unit tests), batch by batch, stopping between batches once told to.
#[tokio::test]
async fn on_postgres_the_sweep_deletes_old_events_in_batches_and_stops_when_told() {
    use tenantry::events::{pg::record_many, retention::sweep_once_pg, Kind, NewEvent};
    let Some(url) = crate::helpers::pg_database().await else {
        return;
    };
    let pg = tenantry::db::pg::Pg::open(&url, 2).await.unwrap();
    let c = pg.client().await.unwrap();
    const DAY: i64 = 86_400_000_000;
    let now: i64 = 1_800_000_000_000_000;
    for (at, n) in [(now - 31 * DAY, 25), (now - 30 * DAY + 1, 3), (now, 2)] {
        let events: Vec<_> = (0..n)
            .map(|_| {
                let e = NewEvent::of(
                    Kind::TenantUpdated,
                    tenantry::tenancy::DEFAULT_TENANT_ID,
                    "m".into(),
                    json!({}),
                );
                (at, e)
            })
            .collect();
        record_many(&**c, &events).await.unwrap();
    }
    let count = || async {
        c.query_one("SELECT count(*) FROM events", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    let zero = Duration::ZERO;
    assert_eq!(
        sweep_once_pg(&pg, now, 0, 10, zero, &|| true)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        sweep_once_pg(&pg, now, 30, 10, zero, &|| false)
            .await
            .unwrap(),
        10
    );
    assert_eq!(
        sweep_once_pg(&pg, now, 30, 10, zero, &|| true)
            .await
            .unwrap(),
        15
    );
    assert_eq!(count().await, 5);
    assert_eq!(
        sweep_once_pg(&pg, now, 30, 10, zero, &|| true)
            .await
            .unwrap(),
        0
    );
}
