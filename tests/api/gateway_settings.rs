//! The settings the gateway and the queue read: `enforce_limits`, `max_concurrent_calls`,
//! `max_running_jobs` (contract v2 "Settings additions").
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;

#[tokio::test]
async fn the_gateway_settings_start_soft_and_by_plan() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let r = app.get("/api/tenant/acme/settings", ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["enforce_limits"], false);
    assert!(r.body["max_concurrent_calls"].is_null());
    assert!(r.body["max_running_jobs"].is_null());
}

#[tokio::test]
async fn the_gateway_settings_change_and_roll_back_with_the_rest() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let body = json!({"enforce_limits": true, "max_concurrent_calls": 7, "max_running_jobs": 3});
    let r = app
        .call("PATCH", "/api/settings", Some(&owner), Some(body))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["enforce_limits"], true);
    assert_eq!(r.body["max_concurrent_calls"], 7);
    assert_eq!(r.body["max_running_jobs"], 3);
    let clear = json!({"max_concurrent_calls": null, "enforce_limits": false});
    let r = app
        .call("PATCH", "/api/settings", Some(&owner), Some(clear))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["max_concurrent_calls"].is_null());
    assert_eq!(r.body["max_running_jobs"], 3, "untouched");
    let r = app
        .call(
            "POST",
            "/api/settings/rollback",
            Some(&owner),
            Some(json!({"version": 2})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["enforce_limits"], true);
    assert_eq!(r.body["max_concurrent_calls"], 7);
}

#[tokio::test]
async fn out_of_range_gateway_settings_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    for bad in [
        json!({"enforce_limits": "yes"}),
        json!({"enforce_limits": null}),
        json!({"max_concurrent_calls": 0}),
        json!({"max_concurrent_calls": 100001}),
        json!({"max_concurrent_calls": 2.5}),
        json!({"max_running_jobs": -1}),
        json!({"max_running_jobs": "3"}),
    ] {
        let r = app
            .call("PATCH", "/api/settings", Some(&owner), Some(bad.clone()))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.body["error"], "invalid_request");
    }
    let r = app.get("/api/settings", &owner).await;
    assert_eq!(r.body["version"], 1, "nothing was written");
}
