//! Soft limits: status at each mark, crossing events exactly once, and UTC day and month
//! rollover with the injected clock.
use crate::helpers::{spawn_app, TestApp, ADMIN};
use chrono::{TimeZone, Utc};
use serde_json::{json, Value};

async fn spend(app: &TestApp, usd: &str) -> crate::helpers::Resp {
    let body = format!(r#"{{"model":"m","input_tokens":0,"output_tokens":0,"cost_usd":{usd}}}"#);
    app.send(
        app.request("POST", "/api/usage/events", Some(ADMIN))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

async fn crossings(app: &TestApp) -> Vec<Value> {
    app.walk("/api/events?category=billing", ADMIN, 100)
        .await
        .into_iter()
        .filter(|e| e["event_type"].as_str().unwrap().starts_with("limit."))
        .collect()
}

#[tokio::test]
async fn status_is_ok_below_warning_at_the_mark_and_exceeded_at_the_limit() {
    let app = spawn_app().await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"limits": {"daily_cost_usd": 10}, "warn_at_percent": 80})),
    )
    .await;
    let r = spend(&app, "7.99").await;
    assert_eq!(
        (
            r.header("x-usage-limit-status"),
            r.body["limits"]["status"].as_str()
        ),
        (Some("ok"), Some("ok"))
    );
    let r = spend(&app, "0.01").await;
    assert_eq!(r.header("x-usage-limit-status"), Some("warning"));
    assert_eq!(r.body["limits"]["checks"][0]["percent"], 80);
    assert_eq!(r.body["limits"]["warnings"].as_array().unwrap().len(), 1);
    let r = spend(&app, "2").await;
    assert_eq!(r.header("x-usage-limit-status"), Some("exceeded"));
    assert_eq!(r.status, 201, "a soft limit never refuses an event");
    let r = spend(&app, "5").await;
    assert_eq!(
        (r.status, r.header("x-usage-limit-status")),
        (201, Some("exceeded"))
    );
    let l = app.get("/api/usage/limits", ADMIN).await;
    assert_eq!(l.header("x-usage-limit-status"), Some("exceeded"));
    let check = &l.body["checks"][0];
    assert_eq!(
        (
            check["limit"].as_str(),
            check["used"].to_string(),
            check["max"].to_string()
        ),
        (Some("daily_cost_usd"), "15".into(), "10".into())
    );
    assert_eq!(check["percent"], 150);
    assert_eq!(l.body["errors"].as_array().unwrap().len(), 1);
    let kinds: Vec<_> = crossings(&app)
        .await
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds,
        vec!["limit.exceeded", "limit.warning"],
        "one event per mark"
    );
}

#[tokio::test]
async fn without_limits_there_are_no_checks() {
    let app = spawn_app().await;
    let r = spend(&app, "1000").await;
    assert_eq!(
        r.body["limits"],
        json!({"status": "ok", "checks": [], "warnings": [], "errors": []})
    );
}

#[tokio::test]
async fn a_crossing_is_recorded_exactly_once_under_concurrent_ingest() {
    let app = spawn_app().await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"limits": {"daily_tokens": 1000, "monthly_tokens": 1500}})),
    )
    .await;
    let sends = (0..16).map(|_| async {
        for _ in 0..5 {
            let r = app
                .post(
                    "/api/usage/events",
                    ADMIN,
                    json!({"model": "m", "input_tokens": 10, "output_tokens": 10}),
                )
                .await;
            assert_eq!(r.status, 201);
        }
    });
    futures_util::future::join_all(sends).await; // 16 × 5 × 20 = 1600 tokens
    let events = crossings(&app).await;
    let mut keys: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event_type"].as_str().unwrap(),
                e["data"]["limit"].as_str().unwrap()
            )
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "limit.exceeded daily_tokens",
            "limit.exceeded monthly_tokens",
            "limit.warning daily_tokens",
            "limit.warning monthly_tokens"
        ]
    );
    assert_eq!(
        app.get("/api/usage/limits", ADMIN).await.body["checks"][0]["used"],
        1600
    );
}

#[tokio::test]
async fn windows_roll_over_at_utc_midnight_and_month_start() {
    let app = spawn_app().await;
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 0).unwrap());
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"limits": {"daily_cost_usd": 10, "monthly_cost_usd": 100}})),
    )
    .await;
    let r = spend(&app, "9").await;
    assert_eq!(r.body["limits"]["status"], "warning");
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 11, 30, 23, 59, 59).unwrap());
    let l = app.get("/api/usage/limits", ADMIN).await.body;
    assert_eq!(l["checks"][0]["used"], 9);

    // Midnight, and the first of the month: both windows start again.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 1).unwrap());
    let l = app.get("/api/usage/limits", ADMIN).await.body;
    assert_eq!(
        (
            l["checks"][0]["used"].as_i64(),
            l["checks"][1]["used"].as_i64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(l["status"], "ok");
    let r = spend(&app, "1").await;
    assert_eq!(r.body["limits"]["checks"][0]["used"], 1);
    assert_eq!(r.body["limits"]["checks"][1]["used"], 1);

    // A day later within the month: the day resets, the month keeps counting.
    app.clock
        .set(Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap());
    let r = spend(&app, "9.5").await;
    assert_eq!(r.body["limits"]["checks"][0]["used"].to_string(), "9.5");
    assert_eq!(r.body["limits"]["checks"][1]["used"].to_string(), "10.5");
    assert_eq!(r.body["limits"]["status"], "warning");
    let summary = app.get("/api/usage/summary", ADMIN).await.body;
    assert_eq!(summary["today"]["estimated_cost_usd"].to_string(), "9.5");
    assert_eq!(summary["month"]["estimated_cost_usd"].to_string(), "10.5");
    // The warning of each day window is its own event.
    let warnings = crossings(&app).await;
    let windows: Vec<_> = warnings
        .iter()
        .map(|e| e["data"]["window"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(windows, vec!["2026-12-02", "2026-11-30"]);
}

#[tokio::test]
async fn a_warning_event_says_warning_even_when_one_event_jumps_past_the_limit() {
    let app = spawn_app().await;
    let limits = json!({"limits": {"daily_cost_usd": 10}, "warn_at_percent": 80});
    app.call("PATCH", "/api/settings", Some(ADMIN), Some(limits))
        .await;
    assert_eq!(spend(&app, "15").await.status, 201);
    let events = crossings(&app).await;
    let message = |kind: &str| {
        events
            .iter()
            .find(|e| e["event_type"] == kind)
            .and_then(|e| e["message"].as_str())
            .unwrap_or_default()
            .to_string()
    };
    let (warning, exceeded) = (message("limit.warning"), message("limit.exceeded"));
    assert!(
        warning.contains("warning") && !warning.contains("exceeded"),
        "{warning}"
    );
    assert!(exceeded.contains("exceeded"), "{exceeded}");
}
