//! `/api/settings`: versioned partial updates, history, rollback, validation, templates.
use crate::helpers::{spawn_app, Resp, ADMIN};
use serde_json::json;

#[tokio::test]
async fn a_new_tenant_starts_at_version_one_with_the_defaults() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let r = app.get("/api/tenant/acme/settings", ADMIN).await;
    assert_eq!(r.status, 200);
    let s = &r.body;
    assert_eq!(s["version"], 1);
    assert_eq!(s["execution_mode"], "hosted");
    assert_eq!(s["default_model"], "gpt-4o-mini");
    assert!(s["allowed_models"].is_null());
    assert_eq!(
        s["limits"],
        json!({"daily_cost_usd": null, "monthly_cost_usd": null, "daily_tokens": null, "monthly_tokens": null})
    );
    assert_eq!(
        (s["warn_at_percent"].as_i64(), s["markup_percent"].as_i64()),
        (Some(80), Some(0))
    );
    assert_eq!(s["provider_keys"], json!({}));
    assert!(s["updated_at"].is_string());
    // The default tenant has settings too.
    assert_eq!(app.get("/api/settings", ADMIN).await.body["version"], 1);
}

#[tokio::test]
async fn patch_changes_only_what_it_names_and_bumps_the_version() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let r = app
        .call(
            "PATCH",
            "/api/settings",
            Some(&owner),
            Some(json!({"limits": {"daily_cost_usd": 5.0, "monthly_tokens": 2000000}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 2);
    assert_eq!(r.body["limits"]["daily_cost_usd"].to_string(), "5");
    assert_eq!(r.body["limits"]["monthly_tokens"], 2000000);
    let r = app
        .call(
            "PATCH",
            "/api/settings",
            Some(&owner),
            Some(json!({"markup_percent": 12.5, "limits": {"daily_cost_usd": null}})),
        )
        .await;
    assert_eq!(r.body["version"], 3);
    assert!(r.body["limits"]["daily_cost_usd"].is_null(), "null clears");
    assert_eq!(r.body["limits"]["monthly_tokens"], 2000000, "untouched");
    assert_eq!(r.body["markup_percent"].to_string(), "12.5");
    assert_eq!(app.get("/api/settings", &owner).await.body, r.body);
}

#[tokio::test]
async fn money_in_settings_is_exact() {
    let app = spawn_app().await;
    // Raw text: a float literal in `json!` would pass through f64 before it is sent.
    let body =
        r#"{"limits": {"daily_cost_usd": 0.000000001, "monthly_cost_usd": 12345678.123456789}}"#;
    let r = app
        .send(
            app.request("PATCH", "/api/settings", Some(ADMIN))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["limits"]["daily_cost_usd"].to_string(),
        "0.000000001"
    );
    assert_eq!(
        r.body["limits"]["monthly_cost_usd"].to_string(),
        "12345678.123456789"
    );
}

#[tokio::test]
async fn invalid_settings_are_400_and_change_nothing() {
    let app = spawn_app().await;
    for body in [
        json!({"execution_mode": "local"}),
        json!({"limits": {"daily_cost_usd": -1}}),
        json!({"limits": {"monthly_tokens": -1}}),
        json!({"warn_at_percent": 0}),
        json!({"warn_at_percent": 101}),
        json!({"markup_percent": 1001}),
        json!({"markup_percent": -0.5}),
        json!({"allowed_models": ["gpt-4o"], "default_model": "claude-sonnet-4"}),
        json!({"version": 9}),
        json!({"provider_keys": {}}),
        json!({"updated_at": "2026-01-01T00:00:00Z"}),
        json!({"colour": "blue"}),
        json!({"limits": {"yearly_cost_usd": 1}}),
        json!([]),
    ] {
        app.call("PATCH", "/api/settings", Some(ADMIN), Some(body.clone()))
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(app.get("/api/settings", ADMIN).await.body["version"], 1);
}

#[tokio::test]
async fn viewers_read_settings_only_owners_write() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let viewer = app.create_key("acme", "viewer").await;
    let member = app.create_key("acme", "member").await;
    let service = app.create_key("acme", "service").await;
    assert_eq!(app.get("/api/settings", &viewer).await.status, 200);
    assert_eq!(app.get("/api/settings/history", &viewer).await.status, 200);
    for key in [&viewer, &member] {
        app.call(
            "PATCH",
            "/api/settings",
            Some(key),
            Some(json!({"warn_at_percent": 50})),
        )
        .await
        .assert_error(403, "forbidden");
        app.post("/api/settings/rollback", key, json!({"version": 1}))
            .await
            .assert_error(403, "forbidden");
        app.put(
            "/api/settings/provider-keys/openai",
            key,
            json!({"api_key": "sk-test-12345678"}),
        )
        .await
        .assert_error(403, "forbidden");
    }
    app.get("/api/settings", &service)
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn history_records_who_changed_what_and_rollback_restores_as_a_new_version() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app
        .create_key_with("acme", json!({"name": "o", "role": "owner"}))
        .await;
    let (owner_key, owner_id) = (
        owner["key"].as_str().unwrap(),
        owner["id"].as_str().unwrap(),
    );
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"warn_at_percent": 50})),
    )
    .await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(owner_key),
        Some(json!({"execution_mode": "byo_key", "warn_at_percent": 90})),
    )
    .await;
    let history = app.walk("/api/settings/history", owner_key, 2).await;
    let versions: Vec<_> = history
        .iter()
        .map(|h| h["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![3, 2, 1], "newest first");
    assert_eq!(history[0]["changed_by"], format!("key:{owner_id}"));
    assert_eq!(history[1]["changed_by"], "admin");
    assert_eq!(history[1]["settings"]["warn_at_percent"], 50);
    assert!(history[0]["changed_at"].is_string());

    let r = app
        .post("/api/settings/rollback", owner_key, json!({"version": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["version"], 4);
    assert_eq!(
        (
            r.body["warn_at_percent"].as_i64(),
            r.body["execution_mode"].as_str()
        ),
        (Some(50), Some("hosted"))
    );
    let history = app.get("/api/settings/history", owner_key).await;
    assert_eq!(
        history.body["items"][0]["settings"],
        history.body["items"][2]["settings"]
    );
    app.post("/api/settings/rollback", owner_key, json!({"version": 99}))
        .await
        .assert_error(404, "not_found");
    app.post(
        "/api/settings/rollback",
        owner_key,
        json!({"version": "two"}),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn templates_and_initial_settings_on_tenant_creation() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "Trial Co", "template": "trial"}),
        )
        .await;
    assert_eq!((r.status, r.body["plan"].as_str()), (201, Some("basic")));
    let s = app.get("/api/tenant/trial-co/settings", ADMIN).await.body;
    assert_eq!(s["limits"]["daily_cost_usd"].to_string(), "1");
    assert!(s["allowed_models"]
        .as_array()
        .unwrap()
        .contains(&json!("gpt-4o-mini")));

    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "Big", "template": "enterprise", "settings": {"warn_at_percent": 75}}),
        )
        .await;
    assert_eq!(r.body["plan"], "enterprise");
    let s = app.get("/api/tenant/big/settings", ADMIN).await.body;
    assert_eq!(
        (
            s["execution_mode"].as_str(),
            s["warn_at_percent"].as_i64(),
            s["version"].as_i64()
        ),
        (Some("byo_key"), Some(75), Some(1))
    );

    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "Start", "template": "startup", "plan": "enterprise"}),
        )
        .await;
    assert_eq!(
        r.body["plan"], "enterprise",
        "an explicit plan wins over the template's"
    );

    app.post(
        "/api/tenants",
        ADMIN,
        json!({"name": "X", "template": "gold"}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.post(
        "/api/tenants",
        ADMIN,
        json!({"name": "Y", "settings": {"warn_at_percent": 0}}),
    )
    .await
    .assert_error(400, "invalid_request");
    assert_eq!(
        app.walk("/api/tenants", ADMIN, 100).await.len(),
        4,
        "refused creations wrote nothing"
    );
}

/// `PATCH /api/settings` as `token` with `body`.
async fn patch(app: &crate::helpers::TestApp, token: &str, body: serde_json::Value) -> Resp {
    app.call("PATCH", "/api/settings", Some(token), Some(body))
        .await
}

#[tokio::test]
async fn custom_starts_as_an_empty_object() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let r = app.get("/api/tenant/acme/settings", ADMIN).await;
    assert_eq!(r.body["custom"], json!({}));
    assert_eq!(
        app.get("/api/settings", ADMIN).await.body["custom"],
        json!({})
    );
}

#[tokio::test]
async fn patch_replaces_custom_whole_and_leaves_the_rest() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let first = json!({"thresholds": {"relevance": 0.7, "max_items": 20}, "theme": "dark"});
    let r = patch(
        &app,
        &owner,
        json!({"custom": first, "warn_at_percent": 60}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["custom"], first);
    let r = patch(&app, &owner, json!({"custom": {"theme": "light"}})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["custom"], json!({"theme": "light"}), "not merged");
    assert_eq!(r.body["warn_at_percent"], 60, "untouched");
    assert_eq!(r.body["version"], 3);
    assert_eq!(
        app.get("/api/settings", &owner).await.body["custom"],
        json!({"theme": "light"})
    );
}

#[tokio::test]
async fn history_and_rollback_carry_custom() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    patch(&app, &owner, json!({"custom": {"flow": "v1"}})).await;
    patch(
        &app,
        &owner,
        json!({"custom": {"flow": "v2", "extra": [1, 2]}}),
    )
    .await;
    let history = app.get("/api/settings/history", &owner).await;
    assert_eq!(
        history.body["items"][0]["settings"]["custom"],
        json!({"flow": "v2", "extra": [1, 2]})
    );
    assert_eq!(
        history.body["items"][1]["settings"]["custom"],
        json!({"flow": "v1"})
    );
    assert_eq!(history.body["items"][2]["settings"]["custom"], json!({}));
    let r = app
        .post("/api/settings/rollback", &owner, json!({"version": 2}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["version"].as_i64(), &r.body["custom"]),
        (Some(4), &json!({"flow": "v1"}))
    );
    let r = app
        .post("/api/settings/rollback", &owner, json!({"version": 1}))
        .await;
    assert_eq!(r.body["custom"], json!({}));
}

#[tokio::test]
async fn custom_holds_up_to_64_kib_and_no_more() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    // {"k":"..."} is 8 bytes around the string.
    let sized = |n: usize| json!({"k": "x".repeat(n - 8)});
    assert_eq!(sized(65_536).to_string().len(), 65_536);
    let r = patch(&app, &owner, json!({"custom": sized(65_536)})).await;
    assert_eq!(r.status, 200, "{}", r.body["error"]);
    assert_eq!(r.body["custom"], sized(65_536));
    let r = patch(
        &app,
        &owner,
        json!({"custom": sized(65_537), "warn_at_percent": 10}),
    )
    .await;
    r.assert_error(400, "invalid_request");
    assert!(r.body["message"].as_str().unwrap().contains("custom"));
    let now = app.get("/api/settings", &owner).await.body;
    assert_eq!(
        (now["version"].as_i64(), now["warn_at_percent"].as_i64()),
        (Some(2), Some(80))
    );
}

#[tokio::test]
async fn custom_must_be_an_object() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    for v in [
        json!(null),
        json!([1, 2]),
        json!("x"),
        json!(7),
        json!(true),
    ] {
        patch(&app, &owner, json!({"custom": v}))
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(app.get("/api/settings", &owner).await.body["version"], 1);
}

#[tokio::test]
async fn one_tenants_custom_is_never_shown_to_another() {
    let app = spawn_app().await;
    let a = app.create_tenant("tenant-a").await;
    app.create_tenant("tenant-b").await;
    let a_owner = app.create_key("tenant-a", "owner").await;
    let b_owner = app.create_key("tenant-b", "owner").await;
    patch(&app, &a_owner, json!({"custom": {"canary": "only-for-a"}})).await;
    let b = app.get("/api/settings", &b_owner).await;
    assert_eq!(b.body["custom"], json!({}));
    let history = app.get("/api/settings/history", &b_owner).await;
    assert!(!history.body.to_string().contains("only-for-a"));
    for path in ["/api/settings", "/api/settings/history"] {
        let r = app
            .send(
                app.request("GET", path, Some(&b_owner))
                    .header("X-Tenant-ID", a["id"].as_str().unwrap()),
            )
            .await;
        r.assert_error(403, "forbidden");
        assert!(!r.body.to_string().contains("only-for-a"));
        let r = app
            .get(
                &path.replacen("/api/", "/api/tenant/tenant-a/", 1),
                &b_owner,
            )
            .await;
        r.assert_error(403, "forbidden");
    }
}
