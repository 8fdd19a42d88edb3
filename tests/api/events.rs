//! `GET /api/events`: the operational events each change records.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::{json, Value};

fn types(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn changes_record_their_events_newest_first() {
    let app = spawn_app().await;
    let t = app.create_tenant("acme").await;
    let id = t["id"].as_str().unwrap();
    app.put_member("acme", "alice", "owner").await;
    let key = app
        .create_key_with("acme", json!({"name": "k", "role": "viewer"}))
        .await;
    app.delete(
        &format!("/api/tenant/acme/keys/{}", key["id"].as_str().unwrap()),
        ADMIN,
    )
    .await;
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"warn_at_percent": 70})),
    )
    .await;
    app.post(
        "/api/tenant/acme/settings/rollback",
        ADMIN,
        json!({"version": 1}),
    )
    .await;
    app.put(
        "/api/tenant/acme/settings/provider-keys/openai",
        ADMIN,
        json!({"api_key": "sk-event-canary-1234"}),
    )
    .await;
    app.delete("/api/tenant/acme/settings/provider-keys/openai", ADMIN)
        .await;
    app.post(&format!("/api/tenants/{id}/deactivate"), ADMIN, json!({}))
        .await;
    app.post(&format!("/api/tenants/{id}/reactivate"), ADMIN, json!({}))
        .await;

    let events = app.walk("/api/tenant/acme/events", ADMIN, 3).await;
    assert_eq!(
        types(&events),
        vec![
            "tenant.reactivated",
            "tenant.deactivated",
            "provider_key.removed",
            "provider_key.set",
            "settings.rolled_back",
            "settings.changed",
            "key.revoked",
            "key.created",
            "member.changed",
            "tenant.created",
        ]
    );
    for e in &events {
        assert_eq!(e["tenant_id"], id);
        for f in [
            "id",
            "category",
            "severity",
            "message",
            "data",
            "created_at",
        ] {
            assert!(!e[f].is_null(), "{f} missing in {e}");
        }
    }
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        !text.contains("sk-event-canary"),
        "a secret reached an event"
    );
    assert!(
        !text.contains(key["key"].as_str().unwrap()),
        "a key reached an event"
    );
    let deactivated = &events[1];
    assert_eq!(
        (
            deactivated["category"].as_str(),
            deactivated["severity"].as_str()
        ),
        (Some("api.lifecycle"), Some("warning"))
    );
    assert_eq!(events[9]["category"], "api.lifecycle");
    assert_eq!(events[8]["data"]["role"], "owner");
    assert_eq!(
        events[5]["data"]["changed_fields"],
        json!(["warn_at_percent"])
    );
}

#[tokio::test]
async fn events_filter_by_category_severity_and_time_and_are_tenant_scoped() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    app.create_tenant("other").await;
    app.create_key("acme", "owner").await;
    let viewer = app.create_key("acme", "viewer").await;
    let security = app.walk("/api/events?category=security", &viewer, 10).await;
    assert_eq!(types(&security), vec!["key.created", "key.created"]);
    let warnings = app.walk("/api/events?severity=warning", &viewer, 10).await;
    assert!(warnings.is_empty());
    let all = app.walk("/api/events", &viewer, 10).await;
    assert!(
        all.iter().all(|e| e["data"]["slug"] != "other"),
        "another tenant's events leaked"
    );
    let future = "2999-01-01T00:00:00Z";
    assert!(app
        .walk(&format!("/api/events?from={future}"), &viewer, 10)
        .await
        .is_empty());
    assert_eq!(
        app.walk(&format!("/api/events?to={future}"), &viewer, 10)
            .await
            .len(),
        all.len()
    );
    app.get("/api/events?severity=loud", &viewer)
        .await
        .assert_error(400, "invalid_request");
    app.get("/api/events?from=yesterday", &viewer)
        .await
        .assert_error(400, "invalid_request");
    let service = app.create_key("acme", "service").await;
    app.get("/api/events", &service)
        .await
        .assert_error(403, "forbidden");
}
