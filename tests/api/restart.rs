//! Everything survives a restart on the same data directory.
use crate::helpers::spawn_app;
use crate::helpers::{config, start, ADMIN};
use serde_json::json;

#[tokio::test]
async fn restart_keeps_tenants_members_and_keys() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    let key = app.create_key("acme", "owner").await;
    let revoked = app
        .create_key_with("acme", json!({"name": "old", "role": "viewer"}))
        .await;
    app.delete(
        &format!("/api/tenant/acme/keys/{}", revoked["id"].as_str().unwrap()),
        ADMIN,
    )
    .await;
    app.create_tenant("gone").await;
    app.post("/api/tenants/gone/deactivate", ADMIN, json!({}))
        .await;

    let app = app.restart().await;
    let r = app.get("/api/members", &key).await;
    assert_eq!(
        (r.status, r.body["items"][0]["user_id"].as_str()),
        (200, Some("alice"))
    );
    app.get("/api/members", revoked["key"].as_str().unwrap())
        .await
        .assert_error(401, "unauthorized");
    app.get("/api/tenant/gone/members", ADMIN)
        .await
        .assert_error(403, "tenant_unavailable");
}

#[tokio::test]
async fn a_generated_admin_token_keeps_working_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(&dir, &[("ENABLE_MULTI_TENANT", "true")]);
    assert!(c.admin_token.is_none());
    let app = start(dir, c).await;
    let token = app
        .generated_admin_token
        .clone()
        .expect("generated on first start");
    assert!(token.len() >= 40);
    assert_eq!(app.get("/api/tenants", &token).await.status, 200);
    let app = app.restart().await;
    assert!(app.generated_admin_token.is_none(), "shown only once");
    assert_eq!(app.get("/api/tenants", &token).await.status, 200);
    app.get("/api/tenants", ADMIN)
        .await
        .assert_error(401, "unauthorized");
}
