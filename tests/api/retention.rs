//! `TENANTRY_USAGE_RETENTION_DAYS`: raw usage events of old days are deleted, and every figure
//! built on the rollups (stats, summary, limits) stays exactly as it was; `tenantry verify`
//! still passes. Time is the test's manual clock.
use crate::helpers::{cli, spawn_tuned, TestApp, ADMIN};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn spawn_retaining(days: &str) -> TestApp {
    spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("TENANTRY_USAGE_RETENTION_DAYS", days),
        ],
        |c| c.retention_sweep_every = Duration::from_millis(50),
    )
    .await
}

fn set_clock(app: &TestApp, day: u32) {
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, day, 12, 0, 0).unwrap());
}

async fn ingest(app: &TestApp, events: Value) {
    let r = app
        .post(
            "/api/tenant/acme/usage/events",
            ADMIN,
            json!({ "events": events }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn event_ids(app: &TestApp) -> Vec<String> {
    app.walk("/api/tenant/acme/usage/events", ADMIN, 1000)
        .await
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or("").to_string())
        .collect()
}

/// Waits (at most 10 s) until the raw events listed are exactly `want`, newest first.
async fn until_events(app: &TestApp, want: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ids = event_ids(app).await;
        if ids == want {
            return;
        }
        assert!(Instant::now() < deadline, "still {ids:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Everything the rollups answer for November, as JSON.
async fn figures(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for group in ["day", "model", "agent_name", "user_id", "pipeline_stage"] {
        let path = format!(
            "/api/tenant/acme/usage/stats?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z&group_by={group}"
        );
        let r = app.get(&path, ADMIN).await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.push(r.body);
    }
    let summary = app.get("/api/tenant/acme/usage/summary", ADMIN).await.body;
    out.push(summary["month"].clone());
    out.push(summary["top_models"].clone());
    out.push(summary["top_agents"].clone());
    let limits = app.get("/api/tenant/acme/usage/limits", ADMIN).await.body;
    let monthly: Vec<Value> = limits["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["limit"] == "monthly_cost_usd")
        .cloned()
        .collect();
    assert_eq!(monthly.len(), 1, "{limits}");
    out.extend(monthly);
    out.push(app.get("/api/tenant/acme/agents/usage", ADMIN).await.body);
    out
}

fn old_events() -> Value {
    json!([
        {"event_id": "old-1", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 200,
         "cache_read_tokens": 300, "reasoning_tokens": 50, "agent_name": "writer",
         "user_id": "u1", "pipeline_stage": "draft"},
        {"event_id": "old-2", "model": "claude-haiku-4-5", "input_tokens": 500,
         "output_tokens": 100, "cache_write_tokens": 100, "cost_usd": 0.123456789,
         "agent_name": "checker"},
        {"event_id": "old-3", "model": "gpt-4o", "input_tokens": 7, "output_tokens": 3,
         "user_id": "u2"},
    ])
}

/// Acme with a monthly limit, three events on November 10 and one on November 11.
async fn acme_with_usage(app: &TestApp) {
    set_clock(app, 10);
    app.create_tenant("acme").await;
    let r = app
        .call(
            "PATCH",
            "/api/tenant/acme/settings",
            Some(ADMIN),
            Some(json!({"limits": {"monthly_cost_usd": 100}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    ingest(app, old_events()).await;
    set_clock(app, 11);
    ingest(
        app,
        json!([{"event_id": "kept", "model": "gpt-4o-mini", "input_tokens": 10,
                "output_tokens": 10, "agent_name": "writer"}]),
    )
    .await;
}

#[tokio::test]
async fn old_raw_events_vanish_and_every_figure_stays_exactly_the_same() {
    let app = spawn_retaining("1").await;
    acme_with_usage(&app).await;
    // Keeping one day before today: on the 11th, the 10th is still kept.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(event_ids(&app).await, ["kept", "old-3", "old-2", "old-1"]);
    let before = figures(&app).await;

    set_clock(&app, 12);
    until_events(&app, &["kept"]).await;
    assert_eq!(figures(&app).await, before);
    // The day's rollup still says three events, with the exact cost of each model.
    let day = &before[0]["groups"][0];
    assert_eq!(
        (day["key"].as_str(), day["events"].as_i64()),
        (Some("2026-11-10"), Some(3))
    );
}

#[tokio::test]
async fn verify_passes_after_retention_deleted_raw_events() {
    let app = spawn_retaining("1").await;
    acme_with_usage(&app).await;
    set_clock(&app, 12);
    until_events(&app, &["kept"]).await;
    let mut verify = cli(app.dir.path());
    // On PostgreSQL `verify` reads the app's database, opening keys with its ENCRYPTION_KEY.
    if let (Some(url), Some(key)) = (&app.config.database_url, &app.config.encryption_key) {
        verify
            .env("TENANTRY_DATABASE_URL", url.expose())
            .env("ENCRYPTION_KEY", key.expose());
    }
    let out = verify.arg("verify").output().unwrap();
    let text = crate::helpers::output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("usage rollups: ok"), "{text}");
}

#[tokio::test]
async fn an_event_id_is_deduplicated_only_while_its_raw_event_is_kept() {
    let app = spawn_retaining("1").await;
    acme_with_usage(&app).await;
    set_clock(&app, 12);
    until_events(&app, &["kept"]).await;
    // Within the retention window: a duplicate, not counted again.
    let r = app
        .post(
            "/api/tenant/acme/usage/events",
            ADMIN,
            json!({"event_id": "kept", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 10}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["duplicates"].as_i64()),
        (201, Some(1)),
        "{}",
        r.body
    );
    // Its raw row deleted, an event id is new again (docs/API.md says so).
    let r = app
        .post(
            "/api/tenant/acme/usage/events",
            ADMIN,
            json!({"event_id": "old-1", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_i64()),
        (201, Some(1)),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn without_the_setting_raw_events_are_kept_forever() {
    let app = spawn_tuned(&[("ENABLE_MULTI_TENANT", "true")], |c| {
        c.retention_sweep_every = Duration::from_millis(50)
    })
    .await;
    acme_with_usage(&app).await;
    app.clock.advance(chrono::Duration::days(36_500));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(event_ids(&app).await, ["kept", "old-3", "old-2", "old-1"]);
}

#[tokio::test]
async fn the_usage_writers_receipts_are_kept_a_day_then_pruned() {
    let app = spawn_tuned(&[("ENABLE_MULTI_TENANT", "true")], |c| {
        c.retention_sweep_every = Duration::from_millis(50)
    })
    .await;
    // Receipts (`writer_commits`) are the PostgreSQL writer's; SQLite's writer has none.
    let Some(c) = crate::helpers::app_pg(&app).await else {
        return;
    };
    let receipts = || async {
        c.query_one("SELECT count(*) FROM writer_commits", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    app.create_tenant("acme").await;
    ingest(&app, old_events()).await;
    let first = receipts().await;
    assert!(first >= 1, "a committed group leaves its receipt");
    // Twenty-three hours on: kept.
    app.clock.advance(chrono::Duration::hours(23));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receipts().await, first);
    // Past a day: pruned, while a new group's receipt stays.
    app.clock.advance(chrono::Duration::hours(2));
    ingest(
        &app,
        json!([{"event_id": "new", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}]),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while receipts().await != 1 {
        assert!(Instant::now() < deadline, "old receipts were never pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
