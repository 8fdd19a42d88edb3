//! Access, as a table: every route the server declares, with the access the contract gives it,
//! and every route refuses the callers below it before its handler runs (403 `forbidden` for a
//! key of a lower role, 401 without a token), whatever the body.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::json;
use tenantry::auth::Access;
use tenantry::http::routes::{all, Mount};

/// The contract's access for each operation (method, path as declared).
const CONTRACT: &[(&str, &str, Access)] = &[
    ("GET", "/health", Access::Public),
    ("GET", "/ready", Access::Public),
    ("GET", "/openapi.json", Access::Public),
    ("GET", "/metrics", Access::Admin),
    ("GET", "/stats", Access::Admin),
    ("GET", "/features", Access::AnyToken),
    ("GET", "/pricing", Access::AnyToken),
    ("PUT", "/pricing/{model}", Access::Admin),
    ("POST", "/tenants", Access::Admin),
    ("GET", "/tenants", Access::Admin),
    ("GET", "/tenants/{id}", Access::Admin),
    ("PATCH", "/tenants/{id}", Access::Admin),
    ("DELETE", "/tenants/{id}", Access::Admin),
    ("POST", "/tenants/{id}/deactivate", Access::Admin),
    ("POST", "/tenants/{id}/reactivate", Access::Admin),
    ("GET", "/members", Access::Viewer),
    ("PUT", "/members/{user_id}", Access::Owner),
    ("DELETE", "/members/{user_id}", Access::Owner),
    ("POST", "/keys", Access::Owner),
    ("GET", "/keys", Access::Owner),
    ("DELETE", "/keys/{id}", Access::Owner),
    ("GET", "/settings", Access::Viewer),
    ("PATCH", "/settings", Access::Owner),
    ("GET", "/settings/history", Access::Viewer),
    ("POST", "/settings/rollback", Access::Owner),
    ("PUT", "/settings/provider-keys/{provider}", Access::Owner),
    (
        "DELETE",
        "/settings/provider-keys/{provider}",
        Access::Owner,
    ),
    ("GET", "/credentials/{provider}", Access::Service),
    ("POST", "/usage/events", Access::MemberOrService),
    ("GET", "/usage/events", Access::Viewer),
    ("GET", "/usage/events/export", Access::Viewer),
    ("GET", "/usage/stats", Access::Viewer),
    ("GET", "/usage/limits", Access::Viewer),
    ("GET", "/usage/summary", Access::Viewer),
    ("GET", "/agents/usage", Access::Viewer),
    ("GET", "/agents/{agent_name}/preferences", Access::Viewer),
    ("PUT", "/agents/{agent_name}/preferences", Access::Member),
    ("GET", "/events", Access::Viewer),
    ("POST", "/events", Access::MemberOrService),
    ("POST", "/webhooks", Access::Owner),
    ("GET", "/webhooks", Access::Owner),
    ("GET", "/webhooks/{id}", Access::Owner),
    ("PATCH", "/webhooks/{id}", Access::Owner),
    ("DELETE", "/webhooks/{id}", Access::Owner),
    ("POST", "/webhooks/{id}/rotate-secret", Access::Owner),
    ("POST", "/webhooks/{id}/test", Access::Owner),
    ("GET", "/webhooks/{id}/deliveries", Access::Owner),
    (
        "POST",
        "/webhooks/{id}/deliveries/{delivery_id}/retry",
        Access::Owner,
    ),
    ("POST", "/v1/chat/completions", Access::Gateway),
    ("POST", "/v1/embeddings", Access::Gateway),
    ("POST", "/v1/responses", Access::Gateway),
    ("POST", "/v1/messages", Access::Gateway),
    ("GET", "/v1/models", Access::Gateway),
    ("GET", "/gateway/calls", Access::Viewer),
    ("GET", "/billing/statements", Access::Viewer),
    ("GET", "/billing/statements/{period}", Access::Viewer),
    ("GET", "/billing/report", Access::Admin),
    ("POST", "/jobs", Access::MemberOrService),
    ("GET", "/jobs", Access::Viewer),
    ("GET", "/jobs/{id}", Access::Viewer),
    ("POST", "/jobs/{id}/cancel", Access::Member),
    ("POST", "/jobs/{id}/retry", Access::Member),
    ("GET", "/queue/counts", Access::Viewer),
    ("GET", "/queue/tenants", Access::Admin),
    ("POST", "/queue/lease", Access::Worker),
    ("POST", "/queue/jobs/{id}/heartbeat", Access::Worker),
    ("POST", "/queue/jobs/{id}/complete", Access::Worker),
    ("POST", "/queue/jobs/{id}/fail", Access::Worker),
];

/// The key roles the contract lets call a tenant-scoped operation of this access.
fn allowed(access: Access) -> &'static [&'static str] {
    match access {
        Access::Viewer => &["owner", "member", "viewer"],
        Access::Member => &["owner", "member"],
        Access::MemberOrService | Access::Gateway => &["owner", "member", "service"],
        Access::Service | Access::Worker => &["service"],
        Access::Owner => &["owner"],
        Access::Public | Access::AnyToken => &["owner", "member", "viewer", "service"],
        Access::Admin => &[],
    }
}

fn concrete(path: &str) -> String {
    path.replace("{model}", "m1")
        .replace("{id}", "6f9619ff-8b86-d011-b42d-00c04fc964ff")
        .replace("{user_id}", "u1")
        .replace("{provider}", "openai")
        .replace("{agent_name}", "a1")
        .replace("{delivery_id}", "7f9619ff-8b86-d011-b42d-00c04fc964ff")
}

#[test]
fn every_declared_route_has_the_contracts_access() {
    let declared: Vec<(String, &str, Access)> = all()
        .iter()
        .map(|op| (op.method.to_string(), op.path, op.access))
        .collect();
    for (m, p, a) in &declared {
        let expected = CONTRACT.iter().find(|(cm, cp, _)| cm == m && cp == p);
        assert_eq!(expected.map(|e| e.2), Some(*a), "{m} {p}");
    }
    assert_eq!(
        declared.len(),
        CONTRACT.len(),
        "a contract row is not served"
    );
}

#[tokio::test]
async fn every_route_refuses_the_callers_below_it() {
    let app = spawn_app().await;
    app.post(
        "/api/tenants",
        ADMIN,
        json!({"name": "Acme", "slug": "acme", "plan": "enterprise"}),
    )
    .await;
    let mut keys = Vec::new();
    for role in ["owner", "member", "viewer", "service"] {
        keys.push((role, app.create_key("acme", role).await));
    }
    let mut checked = 0;
    for op in all() {
        let path = concrete(op.path);
        let urls: Vec<String> = match op.mount {
            Mount::Root | Mount::Gateway => vec![path],
            Mount::Api => vec![format!("/api{path}")],
            Mount::Tenant => vec![format!("/api{path}"), format!("/api/tenant/acme{path}")],
        };
        let method = op.method.as_str();
        for url in &urls {
            let body = (op.body.is_some()).then(|| json!({}));
            let anonymous = app.call(method, url, None, body.clone()).await;
            if op.access == Access::Public {
                assert_ne!(anonymous.status, 401, "{method} {url} is public");
                continue;
            }
            anonymous.assert_error(401, "unauthorized");
            for (role, key) in &keys {
                let r = app.call(method, url, Some(key), body.clone()).await;
                if allowed(op.access).contains(role) {
                    assert!(
                        r.status != 401 && r.code() != "forbidden",
                        "{method} {url} must let a {role} key through: {} {}",
                        r.status,
                        r.body
                    );
                } else {
                    assert_eq!(
                        (r.status, r.code()),
                        (403, "forbidden"),
                        "{method} {url} must refuse a {role} key: {}",
                        r.body
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200, "{checked}");
}
