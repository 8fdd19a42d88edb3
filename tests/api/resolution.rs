//! Authentication and the tenant-resolution table of the contract, over HTTP.
use crate::helpers::{spawn_app, spawn_single_tenant, ADMIN};
use serde_json::json;

const DEFAULT: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn missing_malformed_and_unknown_tokens_are_401() {
    let app = spawn_app().await;
    app.call("GET", "/api/members", None, None)
        .await
        .assert_error(401, "unauthorized");
    let r = app
        .send(
            app.request("GET", "/api/members", None)
                .header("Authorization", "Basic YTpi"),
        )
        .await;
    r.assert_error(401, "unauthorized");
    app.get("/api/members", "tk_unknownunknownunknown")
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/members", "not-the-admin-token")
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/tenants", "")
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn admin_without_naming_acts_on_the_default_tenant() {
    let app = spawn_app().await;
    let r = app.get("/api/members", ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tenant-id"), Some(DEFAULT));
}

#[tokio::test]
async fn header_names_the_tenant_and_is_echoed() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap();
    let r = app
        .send(
            app.request("GET", "/api/members", Some(ADMIN))
                .header("X-Tenant-ID", id),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tenant-id"), Some(id));
}

#[tokio::test]
async fn slug_path_names_the_tenant() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    let r = app.get("/api/tenant/acme/members", ADMIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tenant-id"), t["id"].as_str());
    assert_eq!(r.body["items"][0]["user_id"], "alice");
    let r = app.get("/api/members", ADMIN).await;
    assert_eq!(
        r.body["items"],
        json!([]),
        "the default tenant has no members"
    );
}

#[tokio::test]
async fn header_wins_over_slug() {
    let app = spawn_app().await;
    let a = app.create_tenant("tenant-a").await;
    app.create_tenant("tenant-b").await;
    let r = app
        .send(
            app.request("GET", "/api/tenant/tenant-b/members", Some(ADMIN))
                .header("X-Tenant-ID", a["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.header("x-tenant-id"), a["id"].as_str());
}

#[tokio::test]
async fn key_without_naming_acts_on_its_own_tenant() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let key = app.create_key("acme", "viewer").await;
    let r = app.get("/api/members", &key).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-tenant-id"), t["id"].as_str());
}

#[tokio::test]
async fn header_that_is_not_a_uuid_is_400_invalid_tenant_id() {
    let app = spawn_app().await;
    for bad in [
        "acme",
        "1234",
        "00000000-0000-0000-0000-00000000000g",
        "' OR 1=1 --",
    ] {
        let r = app
            .send(
                app.request("GET", "/api/members", Some(ADMIN))
                    .header("X-Tenant-ID", bad),
            )
            .await;
        r.assert_error(400, "invalid_tenant_id");
    }
}

#[tokio::test]
async fn unknown_and_inactive_tenants_get_the_same_403() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4().to_string();
    let by_header = |tid: String| {
        app.send(
            app.request("GET", "/api/members", Some(ADMIN))
                .header("X-Tenant-ID", tid),
        )
    };
    by_header(unknown)
        .await
        .assert_error(403, "tenant_unavailable");
    app.get("/api/tenant/no-such-slug/members", ADMIN)
        .await
        .assert_error(403, "tenant_unavailable");
    let r = app
        .post(&format!("/api/tenants/{id}/deactivate"), ADMIN, json!({}))
        .await;
    assert_eq!(r.status, 200);
    let inactive = by_header(id.to_string()).await;
    inactive.assert_error(403, "tenant_unavailable");
    let unknown = by_header(uuid::Uuid::new_v4().to_string()).await;
    assert_eq!(inactive.body["message"], unknown.body["message"]);
}

#[tokio::test]
async fn a_key_of_one_tenant_naming_another_is_403_forbidden() {
    let app = spawn_app().await;
    app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    let key_a = app.create_key("tenant-a", "owner").await;
    let r = app
        .send(
            app.request("GET", "/api/members", Some(&key_a))
                .header("X-Tenant-ID", b["id"].as_str().unwrap()),
        )
        .await;
    r.assert_error(403, "forbidden");
    app.get("/api/tenant/tenant-b/members", &key_a)
        .await
        .assert_error(403, "forbidden");
    // The same answer for a slug that does not exist: a key learns nothing about other tenants.
    app.get("/api/tenant/no-such-slug/members", &key_a)
        .await
        .assert_error(403, "forbidden");
    let r = app
        .send(
            app.request("GET", "/api/members", Some(&key_a))
                .header("X-Tenant-ID", uuid::Uuid::new_v4().to_string()),
        )
        .await;
    r.assert_error(403, "forbidden");
}

#[tokio::test]
async fn single_tenant_mode_serves_only_the_default_tenant() {
    let app = spawn_single_tenant().await;
    let r = app.get("/api/members", ADMIN).await;
    assert_eq!((r.status, r.header("x-tenant-id")), (200, Some(DEFAULT)));
    let r = app.get("/api/tenant/default/members", ADMIN).await;
    assert_eq!(r.status, 200);
    // Keys land on the default tenant.
    let key = app.create_key("default", "viewer").await;
    let r = app.get("/api/members", &key).await;
    assert_eq!((r.status, r.header("x-tenant-id")), (200, Some(DEFAULT)));
    // Naming any other tenant, or creating one, is a disabled feature.
    let r = app
        .send(
            app.request("GET", "/api/members", Some(ADMIN))
                .header("X-Tenant-ID", uuid::Uuid::new_v4().to_string()),
        )
        .await;
    r.assert_error(403, "feature_disabled");
    app.get("/api/tenant/other/members", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
    app.post("/api/tenants", ADMIN, json!({"name": "Acme"}))
        .await
        .assert_error(403, "feature_disabled");
    // The default tenant is still listed.
    let r = app.get("/api/tenants", ADMIN).await;
    assert_eq!(r.body["items"][0]["id"], DEFAULT);
}

#[tokio::test]
async fn single_tenant_mode_refuses_keys_of_other_tenants_left_from_multi_tenant_mode() {
    let multi = spawn_app().await;
    multi.create_tenant("acme").await;
    let key = multi.create_key("acme", "owner").await;
    // Same data dir, multi-tenancy switched off.
    let mut single = multi;
    single.config.flags.multi_tenant = false;
    let single = single.restart().await;
    single
        .get("/api/members", &key)
        .await
        .assert_error(403, "feature_disabled");
}
