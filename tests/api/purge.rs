//! `TENANTRY_PURGE_INACTIVE_DAYS`: a tenant inactive for longer is deleted with everything it
//! owns and a `tenant.purged` system event on the default tenant; a tenant inactive for less,
//! an active one and the default tenant stay. Time is the test's manual clock.
use crate::helpers::{app_pg, spawn_tuned, TestApp, ADMIN};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn spawn_purging(days: &str) -> TestApp {
    spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_PURGE_INACTIVE_DAYS", days),
        ],
        |c| c.retention_sweep_every = Duration::from_millis(50),
    )
    .await
}

async fn deactivate(app: &TestApp, slug: &str) {
    let r = app
        .post(&format!("/api/tenants/{slug}/deactivate"), ADMIN, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

async fn status_of(app: &TestApp, slug: &str) -> u16 {
    app.get(&format!("/api/tenants/{slug}"), ADMIN).await.status
}

async fn purged_events(app: &TestApp) -> Vec<Value> {
    app.walk("/api/tenant/default/events?category=system", ADMIN, 100)
        .await
        .into_iter()
        .filter(|e| e["event_type"] == "tenant.purged")
        .collect()
}

/// The tables that hold the most of a tenant's data.
const OWNED: [&str; 5] = [
    "usage_events",
    "usage_rollups",
    "events",
    "api_keys",
    "tenant_users",
];

/// Rows that still name `tenant` in `OWNED` (and, on PostgreSQL, in its own per-tenant rows).
async fn rows_left(app: &TestApp, tenant: &str) -> i64 {
    if let Some(c) = app_pg(app).await {
        let id = uuid::Uuid::parse_str(tenant).unwrap();
        let mut n = 0;
        for t in OWNED
            .iter()
            .chain(&["usage_totals", "queue_tenants", "rate_buckets"])
        {
            let sql = format!("SELECT count(*) FROM {t} WHERE tenant_id = $1");
            n += c.query_one(&sql, &[&id]).await.unwrap().get::<_, i64>(0);
        }
        return n;
    }
    let c = rusqlite::Connection::open(app.config.db_path()).unwrap();
    OWNED
        .iter()
        .map(|t| {
            c.query_row(
                &format!("SELECT count(*) FROM {t} WHERE tenant_id = ?1"),
                [tenant],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_or_else(|e| panic!("{t}: {e}"))
        })
        .sum()
}

#[tokio::test]
async fn a_tenant_inactive_past_the_limit_is_deleted_with_all_it_owns() {
    let app = spawn_purging("30").await;
    let gone = app.create_tenant("gone").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.create_tenant("recent").await;
    app.create_tenant("active").await;
    app.put_member("gone", "u1", "owner").await;
    let key = app.create_key("gone", "member").await;
    let r = app
        .post(
            "/api/usage/events",
            &key,
            json!({"model": "gpt-4o", "input_tokens": 5, "output_tokens": 5}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(rows_left(&app, &gone).await > 0);

    deactivate(&app, "gone").await;
    app.clock.advance(chrono::Duration::days(20));
    deactivate(&app, "recent").await;
    app.clock.advance(chrono::Duration::days(10));
    // Thirty days exactly is not more than thirty: nothing yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&app, "gone").await, 200);

    app.clock.advance(chrono::Duration::hours(1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while status_of(&app, "gone").await != 404 {
        assert!(Instant::now() < deadline, "gone was never purged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(rows_left(&app, &gone).await, 0);
    assert_eq!(
        status_of(&app, "recent").await,
        200,
        "inactive for 11 days only"
    );
    assert_eq!(status_of(&app, "active").await, 200);
    assert_eq!(status_of(&app, "default").await, 200);
    app.get("/api/usage/stats", &key)
        .await
        .assert_error(401, "unauthorized");

    let events = purged_events(&app).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["category"], "system");
    assert_eq!(e["severity"], "warning");
    assert_eq!(e["data"]["tenant_id"], gone.as_str());
    assert_eq!(e["data"]["slug"], "gone");
    assert_eq!(e["data"]["purge_inactive_days"], 30);

    // The slug is free again, and the new tenant starts from nothing.
    app.create_tenant("gone").await;
    let stats = app.get("/api/tenant/gone/usage/summary", ADMIN).await;
    assert_eq!(stats.body["month"]["events"], 0, "{}", stats.body);
}

#[tokio::test]
async fn a_reactivated_tenant_is_never_purged() {
    let app = spawn_purging("1").await;
    app.create_tenant("back").await;
    deactivate(&app, "back").await;
    let r = app
        .post("/api/tenants/back/reactivate", ADMIN, json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.clock.advance(chrono::Duration::days(5));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&app, "back").await, 200);
    assert!(purged_events(&app).await.is_empty());
}

#[tokio::test]
async fn without_the_setting_inactive_tenants_are_kept_forever() {
    let app = spawn_tuned(&[("ENABLE_MULTI_TENANT", "true")], |c| {
        c.retention_sweep_every = Duration::from_millis(50)
    })
    .await;
    app.create_tenant("idle").await;
    deactivate(&app, "idle").await;
    app.clock.advance(chrono::Duration::days(36_600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status_of(&app, "idle").await, 200);
}
