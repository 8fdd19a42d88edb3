//! `/api/tenants`: the admin's tenant management.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;

#[tokio::test]
async fn create_returns_the_tenant() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/tenants",
            ADMIN,
            json!({"name": "Acme Corp", "slug": "acme", "plan": "pro"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let t = &r.body;
    assert!(uuid::Uuid::parse_str(t["id"].as_str().unwrap()).is_ok());
    assert_eq!(
        t["id"].as_str().unwrap(),
        t["id"].as_str().unwrap().to_lowercase()
    );
    assert_eq!(
        (t["name"].as_str(), t["slug"].as_str()),
        (Some("Acme Corp"), Some("acme"))
    );
    assert_eq!(
        (t["plan"].as_str(), t["status"].as_str()),
        (Some("pro"), Some("active"))
    );
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(t["updated_at"].is_string());
    assert!(t["deactivated_at"].is_null());
}

#[tokio::test]
async fn slug_is_derived_from_the_name_and_plan_defaults_to_basic() {
    let app = spawn_app().await;
    let r = app
        .post("/api/tenants", ADMIN, json!({"name": "Acme Corp, Inc."}))
        .await;
    assert_eq!(
        (r.body["slug"].as_str(), r.body["plan"].as_str()),
        (Some("acme-corp-inc"), Some("basic"))
    );
    let r = app
        .post("/api/tenants", ADMIN, json!({"name": "Acme Corp Inc"}))
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["slug"], "acme-corp-inc-2",
        "a derived slug is made unique"
    );
}

#[tokio::test]
async fn duplicate_slug_is_409_conflict() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.post(
        "/api/tenants",
        ADMIN,
        json!({"name": "Other", "slug": "acme"}),
    )
    .await
    .assert_error(409, "conflict");
    app.create_tenant("other").await;
    app.call(
        "PATCH",
        "/api/tenants/other",
        Some(ADMIN),
        Some(json!({"slug": "acme"})),
    )
    .await
    .assert_error(409, "conflict");
}

#[tokio::test]
async fn invalid_names_slugs_and_plans_are_400() {
    let app = spawn_app().await;
    for body in [
        json!({"name": ""}),
        json!({"name": "   "}),
        json!({"name": "x", "slug": "ab"}),
        json!({"name": "x", "slug": "Acme"}),
        json!({"name": "x", "slug": "acme_corp"}),
        json!({"name": "x", "slug": "a".repeat(64)}),
        json!({"name": "x", "slug": "00000000-0000-0000-0000-000000000001"}),
        json!({"name": "x", "plan": "gold"}),
        json!({"slug": "no-name"}),
        json!({"name": "bell\u{7}"}),
    ] {
        app.post("/api/tenants", ADMIN, body.clone())
            .await
            .assert_error(400, "invalid_request");
    }
    let r = app.get("/api/tenants", ADMIN).await;
    assert_eq!(
        r.body["items"].as_array().unwrap().len(),
        1,
        "nothing was written"
    );
}

#[tokio::test]
async fn tenants_need_the_admin_token() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "owner").await;
    app.get("/api/tenants", &key)
        .await
        .assert_error(403, "forbidden");
    app.post("/api/tenants", &key, json!({"name": "x"}))
        .await
        .assert_error(403, "forbidden");
    app.get("/api/tenants/acme", &key)
        .await
        .assert_error(403, "forbidden");
    app.call("GET", "/api/tenants", None, None)
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn get_by_id_or_slug_and_404_for_unknown() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let by_id = app
        .get(
            &format!("/api/tenants/{}", t["id"].as_str().unwrap()),
            ADMIN,
        )
        .await;
    let by_slug = app.get("/api/tenants/acme", ADMIN).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body, by_slug.body);
    app.get("/api/tenants/nope", ADMIN)
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/api/tenants/{}", uuid::Uuid::new_v4()), ADMIN)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn patch_changes_only_what_it_names() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap();
    let r = app
        .call(
            "PATCH",
            &format!("/api/tenants/{id}"),
            Some(ADMIN),
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (r.body["plan"].as_str(), r.body["name"].as_str()),
        (Some("enterprise"), Some("acme"))
    );
    let r = app
        .call(
            "PATCH",
            &format!("/api/tenants/{id}"),
            Some(ADMIN),
            Some(json!({"name": "Acme 2", "slug": "acme-2"})),
        )
        .await;
    assert_eq!(
        (r.body["slug"].as_str(), r.body["plan"].as_str()),
        (Some("acme-2"), Some("enterprise"))
    );
    // The new slug resolves at once, the old one is gone.
    assert_eq!(
        app.get("/api/tenant/acme-2/members", ADMIN).await.status,
        200
    );
    app.get("/api/tenant/acme/members", ADMIN)
        .await
        .assert_error(403, "tenant_unavailable");
    app.call(
        "PATCH",
        &format!("/api/tenants/{id}"),
        Some(ADMIN),
        Some(json!({"plan": "gold"})),
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn list_filters_by_status_and_pages_through_every_tenant_once() {
    let app = spawn_app().await;
    for i in 0..7 {
        app.create_tenant(&format!("tenant-{i}")).await;
    }
    app.post("/api/tenants/tenant-3/deactivate", ADMIN, json!({}))
        .await;
    let all = app.walk("/api/tenants", ADMIN, 2).await;
    assert_eq!(all.len(), 8, "seven plus the default tenant");
    let mut ids: Vec<_> = all
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "no tenant twice");
    let inactive = app.walk("/api/tenants?status=inactive", ADMIN, 2).await;
    assert_eq!(inactive.len(), 1);
    assert_eq!(inactive[0]["slug"], "tenant-3");
    assert_eq!(
        app.walk("/api/tenants?status=active", ADMIN, 3).await.len(),
        7
    );
    app.get("/api/tenants?status=deleted", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/api/tenants?limit=0", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/api/tenants?limit=1001", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/api/tenants?cursor=garbage!", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get("/api/tenants?stauts=active", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    let page = app.get("/api/tenants", ADMIN).await;
    assert!(page.body["next_cursor"].is_null());
}

#[tokio::test]
async fn deactivated_tenant_is_refused_on_the_next_request_and_reactivation_restores_it() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap();
    let key = app.create_key("acme", "owner").await;
    assert_eq!(app.get("/api/members", &key).await.status, 200);
    let r = app
        .post(&format!("/api/tenants/{id}/deactivate"), ADMIN, json!({}))
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("inactive"))
    );
    assert!(r.body["deactivated_at"].is_string());
    app.get("/api/members", &key)
        .await
        .assert_error(403, "tenant_unavailable");
    app.get("/api/tenant/acme/members", ADMIN)
        .await
        .assert_error(403, "tenant_unavailable");
    // Deactivating again changes nothing.
    let again = app
        .post(&format!("/api/tenants/{id}/deactivate"), ADMIN, json!({}))
        .await;
    assert_eq!(again.body["deactivated_at"], r.body["deactivated_at"]);
    let r = app
        .post(&format!("/api/tenants/{id}/reactivate"), ADMIN, json!({}))
        .await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("active")));
    assert!(r.body["deactivated_at"].is_null());
    assert_eq!(app.get("/api/members", &key).await.status, 200);
}

#[tokio::test]
async fn hard_delete_needs_an_inactive_tenant_and_the_slug_as_confirmation() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap().to_string();
    app.put_member("acme", "alice", "owner").await;
    let key = app.create_key("acme", "owner").await;
    app.delete(&format!("/api/tenants/{id}?confirm=acme"), ADMIN)
        .await
        .assert_error(409, "conflict");
    app.post(&format!("/api/tenants/{id}/deactivate"), ADMIN, json!({}))
        .await;
    app.delete(&format!("/api/tenants/{id}"), ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.delete(&format!("/api/tenants/{id}?confirm=wrong"), ADMIN)
        .await
        .assert_error(400, "invalid_request");
    let r = app
        .delete(&format!("/api/tenants/{id}?confirm=acme"), ADMIN)
        .await;
    assert_eq!(r.status, 204);
    app.get(&format!("/api/tenants/{id}"), ADMIN)
        .await
        .assert_error(404, "not_found");
    app.get("/api/members", &key)
        .await
        .assert_error(401, "unauthorized");
    // The owned rows are gone, not just hidden.
    for table in ["tenant_users", "api_keys", "settings_versions"] {
        let n = count_rows_of(&app, table, &id).await;
        assert_eq!(n, 0, "{table} still holds rows of the deleted tenant");
    }
    // The slug is free again.
    app.create_tenant("acme").await;
}

#[tokio::test]
async fn the_default_tenant_can_be_neither_deactivated_nor_deleted() {
    let app = spawn_app().await;
    let d = "00000000-0000-0000-0000-000000000000";
    app.post(&format!("/api/tenants/{d}/deactivate"), ADMIN, json!({}))
        .await
        .assert_error(409, "conflict");
    app.delete(&format!("/api/tenants/{d}?confirm=default"), ADMIN)
        .await
        .assert_error(409, "conflict");
    let r = app.get("/api/tenants/default", ADMIN).await;
    assert_eq!(
        (r.body["plan"].as_str(), r.body["status"].as_str()),
        (Some("enterprise"), Some("active"))
    );
}

/// The rows of `table` that belong to tenant `id`, read from the app's store.
async fn count_rows_of(app: &crate::helpers::TestApp, table: &str, id: &str) -> i64 {
    let sql = format!("SELECT count(*) FROM {table} WHERE tenant_id::text = $1");
    if let Some(pg) = crate::helpers::app_pg(app).await {
        return pg.query_one(&sql, &[&id]).await.unwrap().get(0);
    }
    let db = rusqlite::Connection::open(app.dir.path().join("tenantry.db")).unwrap();
    db.query_row(&sql.replace("::text", "").replace("$1", "?1"), [id], |r| {
        r.get(0)
    })
    .unwrap()
}
