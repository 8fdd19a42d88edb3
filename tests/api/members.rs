//! `/api/members` and the role rules around them.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;

#[tokio::test]
async fn owner_adds_changes_lists_and_removes_members() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let r = app
        .put("/api/members/alice", &owner, json!({"role": "owner"}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["user_id"].as_str(), r.body["role"].as_str()),
        (Some("alice"), Some("owner"))
    );
    assert!(r.body["created_at"].is_string());
    let created = r.body["created_at"].clone();
    app.put("/api/members/bob", &owner, json!({"role": "viewer"}))
        .await;
    let r = app
        .put("/api/members/bob", &owner, json!({"role": "member"}))
        .await;
    assert_eq!(r.body["role"], "member");
    let list = app.get("/api/members", &owner).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["items"][0]["created_at"], created);
    assert_eq!(app.delete("/api/members/bob", &owner).await.status, 204);
    app.delete("/api/members/bob", &owner)
        .await
        .assert_error(404, "not_found");
    assert_eq!(
        app.get("/api/members", &owner).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn viewer_reads_but_cannot_write() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let viewer = app.create_key("acme", "viewer").await;
    assert_eq!(app.get("/api/members", &viewer).await.status, 200);
    app.put("/api/members/x", &viewer, json!({"role": "viewer"}))
        .await
        .assert_error(403, "forbidden");
    app.delete("/api/members/x", &viewer)
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn member_cannot_manage_members_or_keys() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let member = app.create_key("acme", "member").await;
    app.put("/api/members/x", &member, json!({"role": "viewer"}))
        .await
        .assert_error(403, "forbidden");
    app.post("/api/keys", &member, json!({"name": "k", "role": "viewer"}))
        .await
        .assert_error(403, "forbidden");
    app.get("/api/keys", &member)
        .await
        .assert_error(403, "forbidden");
}

#[tokio::test]
async fn service_key_cannot_read_members() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let service = app.create_key("acme", "service").await;
    app.get("/api/members", &service)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(app.get("/api/features", &service).await.status, 200);
}

#[tokio::test]
async fn last_owner_can_be_neither_removed_nor_demoted() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    app.delete("/api/tenant/acme/members/alice", ADMIN)
        .await
        .assert_error(409, "conflict");
    app.put(
        "/api/tenant/acme/members/alice",
        ADMIN,
        json!({"role": "member"}),
    )
    .await
    .assert_error(409, "conflict");
    app.put_member("acme", "bob", "owner").await;
    let r = app
        .put(
            "/api/tenant/acme/members/alice",
            ADMIN,
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(r.status, 200);
    app.delete("/api/tenant/acme/members/bob", ADMIN)
        .await
        .assert_error(409, "conflict");
}

#[tokio::test]
async fn member_roles_and_user_ids_are_validated() {
    let app = spawn_app().await;
    for role in ["service", "admin", "", "OWNER"] {
        app.put("/api/members/alice", ADMIN, json!({"role": role}))
            .await
            .assert_error(400, "invalid_request");
    }
    let long = "u".repeat(256);
    app.put(
        &format!("/api/members/{long}"),
        ADMIN,
        json!({"role": "viewer"}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.put("/api/members/a%0Ab", ADMIN, json!({"role": "viewer"}))
        .await
        .assert_error(400, "invalid_request");
    // Printable characters, percent-encoded in the path, are kept as sent.
    let r = app
        .put(
            "/api/members/alice%40example.com",
            ADMIN,
            json!({"role": "viewer"}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["user_id"].as_str()),
        (200, Some("alice@example.com"))
    );
    let r = app
        .put("/api/members/user%20one", ADMIN, json!({"role": "viewer"}))
        .await;
    assert_eq!(r.body["user_id"], "user one");
    assert_eq!(
        app.delete("/api/members/user%20one", ADMIN).await.status,
        204
    );
}

#[tokio::test]
async fn members_page_through_in_user_id_order() {
    let app = spawn_app().await;
    for i in 0..9 {
        app.put(
            &format!("/api/members/user-{i}"),
            ADMIN,
            json!({"role": "viewer"}),
        )
        .await;
    }
    let all = app.walk("/api/members", ADMIN, 4).await;
    let ids: Vec<_> = all.iter().map(|m| m["user_id"].as_str().unwrap()).collect();
    let expected: Vec<String> = (0..9).map(|i| format!("user-{i}")).collect();
    assert_eq!(ids, expected);
}
