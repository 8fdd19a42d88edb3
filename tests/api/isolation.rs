//! Tenant isolation: tenant A's keys of every role against tenant B's ids, header and slug path.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;

#[tokio::test]
async fn keys_of_one_tenant_never_reach_another() {
    let app = spawn_app().await;
    app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    let b_id = b["id"].as_str().unwrap();
    app.put_member("tenant-b", "bob", "owner").await;
    let b_key = app
        .create_key_with("tenant-b", json!({"name": "b", "role": "viewer"}))
        .await;
    let b_key_id = b_key["id"].as_str().unwrap();

    for role in ["owner", "member", "viewer", "service"] {
        let a = app.create_key("tenant-a", role).await;
        // Naming B in any way is forbidden, whatever the endpoint and method.
        let calls: [(&str, String, Option<serde_json::Value>); 6] = [
            ("GET", "/api/members".into(), None),
            (
                "PUT",
                "/api/members/bob".into(),
                Some(json!({"role": "viewer"})),
            ),
            ("DELETE", "/api/members/bob".into(), None),
            ("GET", "/api/keys".into(), None),
            (
                "POST",
                "/api/keys".into(),
                Some(json!({"name": "x", "role": "viewer"})),
            ),
            ("DELETE", format!("/api/keys/{b_key_id}"), None),
        ];
        for (method, path, body) in calls {
            let mut req = app
                .request(method, &path, Some(&a))
                .header("X-Tenant-ID", b_id);
            if let Some(b) = &body {
                req = req.json(b);
            }
            app.send(req).await.assert_error(403, "forbidden");
            let slug_path = path.replacen("/api/", "/api/tenant/tenant-b/", 1);
            app.call(method, &slug_path, Some(&a), body.clone())
                .await
                .assert_error(403, "forbidden");
        }
        // B's ids through A's own tenant find nothing.
        if role == "owner" {
            app.delete(&format!("/api/keys/{b_key_id}"), &a)
                .await
                .assert_error(404, "not_found");
            app.delete("/api/members/bob", &a)
                .await
                .assert_error(404, "not_found");
            let keys = app.get("/api/keys", &a).await;
            assert!(!keys.body.to_string().contains(b_key_id));
        }
        if role != "service" {
            let members = app.get("/api/members", &a).await;
            assert!(
                !members.body.to_string().contains("bob"),
                "{role} saw B's member"
            );
        }
        // A tenant key never reaches the admin surface.
        app.get("/api/tenants", &a)
            .await
            .assert_error(403, "forbidden");
        app.get(&format!("/api/tenants/{b_id}"), &a)
            .await
            .assert_error(403, "forbidden");
    }
    // B is untouched.
    let keys = app.get("/api/tenant/tenant-b/keys", ADMIN).await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 1);
    assert!(keys.body["items"][0]["revoked_at"].is_null());
    let members = app.get("/api/tenant/tenant-b/members", ADMIN).await;
    assert_eq!(members.body["items"][0]["role"], "owner");
}
