//! `/api/keys`: creation shown once, listing without secrets, revocation and expiry effective on
//! the next request, and keys bound to a member never outranking it.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;
use tenantry::clock::Clock;

#[tokio::test]
async fn create_shows_the_key_once_and_list_never_does() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let r = app
        .post(
            "/api/keys",
            &owner,
            json!({"name": "backend", "role": "service"}),
        )
        .await;
    assert_eq!(r.status, 201);
    let key = r.body["key"].as_str().unwrap();
    assert!(key.starts_with("tk_") && key.len() >= 3 + 32, "{key}");
    assert!(key.starts_with(r.body["prefix"].as_str().unwrap()));
    for field in [
        "id",
        "name",
        "role",
        "user_id",
        "prefix",
        "created_at",
        "expires_at",
    ] {
        assert!(r.body.get(field).is_some(), "missing {field}");
    }
    let list = app.get("/api/keys", &owner).await;
    assert_eq!(list.status, 200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert!(items.iter().all(|k| k.get("key").is_none()));
    assert!(!list.body.to_string().contains(key));
}

#[tokio::test]
async fn the_database_holds_only_a_hash_of_the_key() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "owner").await;
    if let Some(pg) = crate::helpers::app_pg(&app).await {
        // Every row of every table, as text: none holds the key.
        let tables: Vec<String> = pg
            .query(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(tables.iter().any(|t| t == "api_keys"));
        for t in tables {
            let sql = format!("SELECT count(*) FROM {t} x WHERE strpos(x::text, $1) > 0");
            let n: i64 = pg.query_one(&sql, &[&key]).await.unwrap().get(0);
            assert_eq!(n, 0, "{t} holds the key");
        }
        return;
    }
    let raw = std::fs::read(app.dir.path().join("tenantry.db")).unwrap();
    let wal = std::fs::read(app.dir.path().join("tenantry.db-wal")).unwrap_or_default();
    let needle = key.as_bytes();
    for bytes in [raw, wal] {
        assert!(!bytes.windows(needle.len()).any(|w| w == needle));
    }
}

#[tokio::test]
async fn revoked_key_is_refused_from_the_next_request() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let r = app
        .post(
            "/api/keys",
            &owner,
            json!({"name": "tmp", "role": "viewer"}),
        )
        .await;
    let (id, key) = (
        r.body["id"].as_str().unwrap(),
        r.body["key"].as_str().unwrap(),
    );
    assert_eq!(app.get("/api/members", key).await.status, 200);
    assert_eq!(
        app.delete(&format!("/api/keys/{id}"), &owner).await.status,
        204
    );
    app.get("/api/members", key)
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        app.delete(&format!("/api/keys/{id}"), &owner).await.status,
        204,
        "idempotent"
    );
    let listed = app.get("/api/keys", &owner).await;
    let revoked = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap();
    assert!(revoked["revoked_at"].is_string());
    app.delete(&format!("/api/keys/{}", uuid::Uuid::new_v4()), &owner)
        .await
        .assert_error(404, "not_found");
    app.delete("/api/keys/not-a-uuid", &owner)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn expired_key_is_refused() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let expires = (app.clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let r = app
        .create_key_with(
            "acme",
            json!({"name": "short", "role": "viewer", "expires_at": expires}),
        )
        .await;
    let key = r["key"].as_str().unwrap();
    assert_eq!(app.get("/api/members", key).await.status, 200);
    app.clock.advance(chrono::Duration::minutes(61));
    app.get("/api/members", key)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn bad_key_requests_are_400() {
    let app = spawn_app().await;
    let past = (app.clock.now() - chrono::Duration::hours(1)).to_rfc3339();
    for body in [
        json!({"name": "k", "role": "root"}),
        json!({"name": "", "role": "viewer"}),
        json!({"role": "viewer"}),
        json!({"name": "k", "role": "viewer", "expires_at": "tomorrow"}),
        json!({"name": "k", "role": "viewer", "expires_at": past}),
        json!({"name": "k", "role": "viewer", "user_id": "nobody"}),
        json!({"name": "k", "role": "service", "user_id": "alice"}),
    ] {
        app.post("/api/keys", ADMIN, body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn a_key_with_user_id_cannot_outrank_its_member() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.put_member("acme", "vera", "viewer").await;
    let r = app
        .post(
            "/api/tenant/acme/keys",
            ADMIN,
            json!({"name": "k", "role": "member", "user_id": "vera"}),
        )
        .await;
    r.assert_error(403, "forbidden");
    let r = app
        .post(
            "/api/tenant/acme/keys",
            ADMIN,
            json!({"name": "k", "role": "viewer", "user_id": "vera"}),
        )
        .await;
    assert_eq!((r.status, r.body["user_id"].as_str()), (201, Some("vera")));
}

#[tokio::test]
async fn a_user_key_follows_its_member_down_and_out() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    app.put_member("acme", "olga", "owner").await;
    let r = app
        .post(
            "/api/tenant/acme/keys",
            ADMIN,
            json!({"name": "k", "role": "owner", "user_id": "olga"}),
        )
        .await;
    let key = r.body["key"].as_str().unwrap().to_string();
    assert_eq!(app.get("/api/keys", &key).await.status, 200);
    app.put_member("acme", "olga", "viewer").await;
    app.get("/api/keys", &key)
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        app.get("/api/members", &key).await.status,
        200,
        "still a viewer"
    );
    assert_eq!(
        app.delete("/api/tenant/acme/members/olga", ADMIN)
            .await
            .status,
        204
    );
    app.get("/api/members", &key)
        .await
        .assert_error(401, "unauthorized");
}
