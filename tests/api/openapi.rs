//! `/openapi.json`: generated from the same tables the routes are registered from; every
//! contract endpoint is in it, and every operation in it is served.
use crate::helpers::{spawn_app, ADMIN};
use serde_json::Value;

/// The contract's endpoints (shared/API.md), as (method, path).
const CONTRACT: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/api/features"),
    ("post", "/api/tenants"),
    ("get", "/api/tenants"),
    ("get", "/api/tenants/{id}"),
    ("patch", "/api/tenants/{id}"),
    ("delete", "/api/tenants/{id}"),
    ("post", "/api/tenants/{id}/deactivate"),
    ("post", "/api/tenants/{id}/reactivate"),
    ("get", "/api/members"),
    ("put", "/api/members/{user_id}"),
    ("delete", "/api/members/{user_id}"),
    ("post", "/api/keys"),
    ("get", "/api/keys"),
    ("delete", "/api/keys/{id}"),
    ("get", "/api/settings"),
    ("patch", "/api/settings"),
    ("get", "/api/settings/history"),
    ("post", "/api/settings/rollback"),
    ("put", "/api/settings/provider-keys/{provider}"),
    ("delete", "/api/settings/provider-keys/{provider}"),
    ("get", "/api/credentials/{provider}"),
    ("post", "/api/usage/events"),
    ("get", "/api/usage/events"),
    ("get", "/api/usage/stats"),
    ("get", "/api/usage/limits"),
    ("get", "/api/usage/summary"),
    ("get", "/api/agents/usage"),
    ("get", "/api/agents/{agent_name}/preferences"),
    ("put", "/api/agents/{agent_name}/preferences"),
    ("get", "/api/pricing"),
    ("put", "/api/pricing/{model}"),
    ("get", "/api/stats"),
    ("get", "/api/events"),
    ("get", "/api/tenant/{slug}/members"),
    ("post", "/api/tenant/{slug}/usage/events"),
];

async fn doc() -> (crate::helpers::TestApp, Value) {
    let app = spawn_app().await;
    let r = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(r.status, 200, "public, no token");
    (app, r.body)
}

#[tokio::test]
async fn every_contract_endpoint_is_documented_with_schemas_and_errors() {
    let (_app, doc) = doc().await;
    assert_eq!(doc["openapi"], "3.0.3");
    for (method, path) in CONTRACT {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{method} {path}"
        );
        assert!(!op["responses"].as_object().unwrap().is_empty());
    }
    let ingest = &doc["paths"]["/api/usage/events"]["post"];
    assert_eq!(
        ingest["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/UsageIngest"
    );
    let codes = ingest["responses"]["403"]["content"]["application/json"]["schema"]["allOf"][1]
        ["properties"]["error"]["enum"]
        .to_string();
    assert!(
        codes.contains("tenant_unavailable") && codes.contains("feature_disabled"),
        "{codes}"
    );
    assert!(ingest["responses"]["413"].is_object() && ingest["responses"]["429"].is_object());
    let creds =
        &doc["paths"]["/api/credentials/{provider}"]["get"]["responses"]["409"]["description"];
    assert!(creds.as_str().unwrap().contains("byo_key_missing"));
    // Every schema a path refers to exists.
    let text = doc["paths"].to_string();
    for name in text
        .split("#/components/schemas/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
    {
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "schema {name} missing"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let (app, doc) = doc().await;
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            let concrete = path
                .replace("{slug}", "default")
                .replace("{id}", "00000000-0000-0000-0000-00000000abcd")
                .replace("{user_id}", "u1")
                .replace("{provider}", "openai")
                .replace("{agent_name}", "a1")
                .replace("{model}", "m1");
            // Raw: /metrics answers text, not JSON.
            let res = app
                .request(&method.to_uppercase(), &concrete, Some(ADMIN))
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body: Value =
                serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null);
            let no_route = status == 405 || (status == 404 && body["message"] == "no such route");
            assert!(
                !no_route,
                "{method} {path} is documented but not served ({status} {body})"
            );
            checked += 1;
        }
    }
    let served: usize = tenantry::http::routes::all()
        .iter()
        .map(|op| {
            if op.mount == tenantry::http::routes::Mount::Tenant {
                2
            } else {
                1
            }
        })
        .sum();
    assert_eq!(checked, served, "the document and the route table disagree");
    // And a route that is not documented is not served.
    let r = app
        .call("GET", "/api/undocumented", Some(ADMIN), None)
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (404, Some("no such route"))
    );
}
