//! Conventions: health, readiness, request ids, the error format for framework failures.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;

#[tokio::test]
async fn health_and_ready_answer_without_a_token() {
    let app = spawn_app().await;
    let h = app.call("GET", "/health", None, None).await;
    assert_eq!((h.status, h.body.clone()), (200, json!({"status": "ok"})));
    let r = app.call("GET", "/ready", None, None).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (200, json!({"status": "ready"}))
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;
    let r = app.call("GET", "/health", None, None).await;
    assert!(r.header("x-request-id").is_some_and(|v| v.len() >= 16));
    let r = app
        .send(
            app.request("GET", "/api/nope", None)
                .header("X-Request-Id", "trace-abc-123"),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    let r = app.call("GET", "/api/members", None, None).await;
    assert_eq!(r.status, 401);
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn unknown_route_is_404_not_found() {
    let app = spawn_app().await;
    app.get("/api/does-not-exist", ADMIN)
        .await
        .assert_error(404, "not_found");
    app.get("/nothing/here", ADMIN)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn wrong_method_is_405_in_the_error_format() {
    let app = spawn_app().await;
    app.call("PATCH", "/health", None, None)
        .await
        .assert_error(405, "method_not_allowed");
    app.call("PUT", "/api/tenants", Some(ADMIN), Some(json!({})))
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn body_over_one_mebibyte_is_413() {
    let app = spawn_app().await;
    let name = "x".repeat((1 << 20) + 10);
    app.post("/api/tenants", ADMIN, json!({"name": name}))
        .await
        .assert_error(413, "payload_too_large");
}

#[tokio::test]
async fn malformed_json_and_unknown_fields_are_400() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.request("POST", "/api/tenants", Some(ADMIN))
                .header("content-type", "application/json")
                .body("{\"name\": "),
        )
        .await;
    r.assert_error(400, "invalid_request");
    let r = app
        .post("/api/tenants", ADMIN, json!({"name": "x", "nmae": "typo"}))
        .await;
    r.assert_error(400, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("nmae"));
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let app = spawn_app().await;
    let r = app
        .send(
            app.request("POST", "/api/tenants", Some(ADMIN))
                .header("content-type", "text/plain")
                .body("{\"name\": \"acme\"}"),
        )
        .await;
    r.assert_error(415, "unsupported_media_type");
}

#[tokio::test]
async fn wrong_type_errors_do_not_echo_string_values() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "ok", "plan": ["sk-canary-secret"]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    let r = app
        .put(
            "/api/members/u1",
            ADMIN,
            json!({"role": {"x": "sk-canary-secret"}}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert!(!r.body.to_string().contains("sk-canary-secret"));
}

#[tokio::test]
async fn features_reports_flags_edition_and_plan_features() {
    let app = spawn_app().await;
    let r = app.get("/api/features", ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["multi_tenant"], true);
    assert_eq!(r.body["usage_tracking"], true);
    assert_eq!(r.body["hosted_queue"], false);
    assert_eq!(r.body["billing"], false);
    assert_eq!(r.body["edition"], "hosted");
    // The default tenant is on the enterprise plan.
    assert_eq!(
        r.body["tenant_features"],
        json!([
            "basic-chat",
            "advanced-analytics",
            "priority-support",
            "custom-models",
            "dedicated-resources"
        ])
    );
    app.create_tenant("basic-co").await;
    let key = app.create_key("basic-co", "viewer").await;
    let r = app.get("/api/features", &key).await;
    assert_eq!(r.body["tenant_features"], json!(["basic-chat"]));
    let r = app
        .call(
            "PATCH",
            "/api/tenants/basic-co",
            Some(ADMIN),
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.get("/api/features", &key).await;
    assert_eq!(
        r.body["tenant_features"],
        json!(["basic-chat", "advanced-analytics", "priority-support"])
    );
    app.call("GET", "/api/features", None, None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn oss_defaults_report_the_oss_edition() {
    let app = crate::helpers::spawn_single_tenant().await;
    let r = app.get("/api/features", ADMIN).await;
    assert_eq!(r.body["multi_tenant"], false);
    assert_eq!(r.body["edition"], "oss");
}
