//! Rate limits, per-tenant stats, metrics, security headers and admin-token throttling.
use crate::helpers::{spawn_app, spawn_single_tenant, ADMIN};
use serde_json::json;

#[tokio::test]
async fn a_burst_of_twice_the_plan_rate_then_429_with_retry_after() {
    let app = spawn_app().await;
    app.create_tenant("basic-co").await; // basic: 10 a minute, burst 20
    app.create_tenant("other").await;
    let key = app.create_key("basic-co", "viewer").await;
    let other = app.create_key("other", "viewer").await;
    for i in 0..20 {
        let r = app.get("/api/members", &key).await;
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(r.header("x-ratelimit-limit"), Some("10"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some((19 - i).to_string().as_str())
        );
    }
    let r = app.get("/api/members", &key).await;
    r.assert_error(429, "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(
        app.get("/api/members", &other).await.status,
        200,
        "another tenant is unaffected"
    );
    assert_eq!(
        app.get("/api/tenant/basic-co/members", ADMIN).await.status,
        200,
        "the admin is never limited"
    );
    // Refill: one request every 6 s at 10 a minute.
    app.clock.advance(chrono::Duration::seconds(6));
    assert_eq!(app.get("/api/members", &key).await.status, 200);
    app.get("/api/members", &key)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn the_setting_raises_and_lowers_one_tenants_limit_at_once() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "owner").await;
    let r = app
        .call(
            "PATCH",
            "/api/tenant/acme/settings",
            Some(ADMIN),
            Some(json!({"rate_limit_per_minute": 2})),
        )
        .await;
    assert_eq!(r.body["rate_limit_per_minute"], 2);
    for _ in 0..4 {
        assert_eq!(app.get("/api/members", &key).await.status, 200);
    }
    app.get("/api/members", &key)
        .await
        .assert_error(429, "rate_limited");
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"rate_limit_per_minute": 500})),
    )
    .await;
    let r = app.get("/api/members", &key).await;
    assert_eq!(
        (r.status, r.header("x-ratelimit-limit")),
        (200, Some("500"))
    );
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"rate_limit_per_minute": null})),
    )
    .await;
    assert_eq!(
        app.get("/api/members", &key)
            .await
            .header("x-ratelimit-limit"),
        Some("10"),
        "back to the plan's"
    );
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"rate_limit_per_minute": 0})),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn single_tenant_mode_is_unlimited_unless_the_setting_is_set() {
    let app = spawn_single_tenant().await;
    let key = app.create_key("default", "viewer").await;
    for _ in 0..60 {
        let r = app.get("/api/members", &key).await;
        assert_eq!(
            (r.status, r.header("x-ratelimit-limit")),
            (200, Some("unlimited"))
        );
    }
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"rate_limit_per_minute": 1})),
    )
    .await;
    assert_eq!(app.get("/api/members", &key).await.status, 200);
    assert_eq!(app.get("/api/members", &key).await.status, 200);
    app.get("/api/members", &key)
        .await
        .assert_error(429, "rate_limited");
}

#[tokio::test]
async fn stats_count_allowed_and_denied_per_tenant_for_the_admin_only() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let key = app.create_key("acme", "viewer").await;
    for _ in 0..22 {
        app.get("/api/members", &key).await;
    }
    let r = app.get("/api/stats", ADMIN).await;
    assert_eq!(r.status, 200);
    let s = &r.body["tenants"][t["id"].as_str().unwrap()];
    // 22 with the key, and the admin's own request that created the key.
    assert_eq!(
        (
            s["requests"].as_u64(),
            s["allowed"].as_u64(),
            s["denied"].as_u64()
        ),
        (Some(23), Some(21), Some(2))
    );
    for f in ["avg_latency_ms", "p50_ms", "p95_ms", "p99_ms"] {
        assert!(s[f].as_f64().is_some_and(|v| v >= 0.0), "{f}: {s}");
    }
    app.get("/api/stats", &key)
        .await
        .assert_error(403, "forbidden");
    app.call("GET", "/api/stats", None, None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn metrics_expose_the_contract_series_for_the_admin_only() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    app.post(
        "/api/usage/events",
        &key,
        json!({"model": "gpt-4o", "input_tokens": 100, "output_tokens": 7}),
    )
    .await;
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"rate_limit_per_minute": 1})),
    )
    .await;
    for _ in 0..3 {
        app.get("/api/usage/limits", &key).await;
    }
    let res = app
        .request("GET", "/metrics", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    for series in [
        "tenantry_requests_total{",
        "tenantry_rate_limited_total{",
        "tenantry_usage_tokens_total{",
        "kind=\"input\"",
        "kind=\"output\"",
        "tenantry_usage_cost_usd_total{",
        "tenantry_request_duration_seconds_bucket{",
    ] {
        assert!(text.contains(series), "{series} missing in\n{text}");
    }
    assert!(
        text.contains("route=\"/api/usage/events\""),
        "route patterns label durations"
    );
    assert!(!text.contains(&key), "no secret in metrics");
    app.get("/metrics", &key)
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for (path, token) in [
        ("/health", None),
        ("/api/members", Some(ADMIN)),
        ("/api/nope", Some(ADMIN)),
        ("/api/members", None),
    ] {
        let r = app.call("GET", path, token, None).await;
        assert_eq!(
            r.header("content-security-policy"),
            Some("default-src 'self'"),
            "{path}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }
}

#[tokio::test]
async fn admin_token_guessing_is_throttled_per_address() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "viewer").await;
    for _ in 0..10 {
        app.get("/api/tenants", "wrong-admin-token-guess")
            .await
            .assert_error(401, "unauthorized");
    }
    let r = app.get("/api/tenants", ADMIN).await;
    r.assert_error(429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        app.get("/api/members", &key).await.status,
        200,
        "tenant keys are not affected"
    );
    let other = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let res = other
        .get(format!("{}/api/tenants", app.address))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "another address still gets in");
    app.clock.advance(chrono::Duration::seconds(61));
    assert_eq!(
        app.get("/api/tenants", ADMIN).await.status,
        200,
        "the window passed"
    );
}
