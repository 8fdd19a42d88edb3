//! Malformed input over every endpoint: always a 4xx in the error format, never a 5xx, a panic
//! or a partial write, and the server stays up.
use crate::helpers::{spawn_app, Resp, TestApp, ADMIN};
use serde_json::{json, Map, Value};

/// Endpoints that take a body, with the fields they accept.
const BODY_ENDPOINTS: &[(&str, &str, &[&str])] = &[
    ("POST", "/api/tenants", &["name", "slug", "plan"]),
    ("PATCH", "/api/tenants/acme", &["name", "slug", "plan"]),
    ("PUT", "/api/members/u1", &["role"]),
    ("PUT", "/api/tenant/acme/members/u1", &["role"]),
    (
        "POST",
        "/api/keys",
        &["name", "role", "user_id", "expires_at"],
    ),
    (
        "POST",
        "/api/tenant/acme/keys",
        &["name", "role", "user_id", "expires_at"],
    ),
];

fn with_all(fields: &[&str], v: Value) -> Value {
    let mut m = Map::new();
    for f in fields {
        m.insert(f.to_string(), v.clone());
    }
    Value::Object(m)
}

#[track_caller]
fn assert_client_error(r: &Resp, what: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: got {} {}",
        r.status,
        r.body
    );
    assert!(
        r.body["error"].is_string() && r.body["message"].is_string(),
        "{what}: {}",
        r.body
    );
}

#[track_caller]
fn assert_not_server_error(r: &Resp, what: &str) {
    assert!(r.status < 500, "{what}: got {} {}", r.status, r.body);
    if r.status >= 400 {
        assert!(r.body["error"].is_string(), "{what}: {}", r.body);
    }
}

async fn counts(app: &TestApp) -> (usize, usize, usize) {
    let t = app.walk("/api/tenants", ADMIN, 1000).await.len();
    let m = app
        .walk("/api/tenant/acme/members", ADMIN, 1000)
        .await
        .len();
    let k = app.walk("/api/tenant/acme/keys", ADMIN, 1000).await.len();
    (t, m, k)
}

#[tokio::test]
async fn malformed_bodies_get_4xx_and_write_nothing() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let before = counts(&app).await;
    let huge = "x".repeat(300_000);
    for (method, path, fields) in BODY_ENDPOINTS {
        let raw_bodies: [&str; 7] = ["", "not json", "[]", "null", "123", "{", "{\"a\":1}"];
        for raw in raw_bodies {
            let req = app
                .request(method, path, Some(ADMIN))
                .header("content-type", "application/json")
                .body(raw);
            assert_client_error(&app.send(req).await, &format!("{method} {path} {raw:?}"));
        }
        for v in [
            json!(123),
            json!(true),
            json!(["a"]),
            json!({"nested": 1}),
            json!(huge),
            json!("a\u{0}b"),
            json!("\u{1b}[31mred"),
        ] {
            let body = with_all(fields, v.clone());
            let r = app.call(method, path, Some(ADMIN), Some(body)).await;
            let shown: String = v.to_string().chars().take(20).collect();
            assert_client_error(&r, &format!("{method} {path} all fields = {shown}"));
        }
    }
    assert_eq!(
        counts(&app).await,
        before,
        "a refused request wrote something"
    );
    assert_eq!(app.call("GET", "/health", None, None).await.status, 200);
}

#[tokio::test]
async fn hostile_strings_are_data_not_sql() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let nasty = [
        "x' OR '1'='1",
        "'; DROP TABLE tenants; --",
        "\" OR \"\"=\"",
        "%00",
        "😀 ünïcode",
    ];
    for s in nasty {
        let r = app.post("/api/tenants", ADMIN, json!({"name": s})).await;
        assert_not_server_error(&r, s);
        let r = app
            .post(
                "/api/tenants",
                ADMIN,
                json!({"name": "n", "slug": s, "plan": s}),
            )
            .await;
        assert_client_error(&r, s);
        let r = app
            .put("/api/tenant/acme/members/u1", ADMIN, json!({"role": s}))
            .await;
        assert_client_error(&r, s);
        let r = app
            .post(
                "/api/tenant/acme/keys",
                ADMIN,
                json!({"name": s, "role": "viewer"}),
            )
            .await;
        assert_eq!(r.status, 201, "a hostile key name is just a name");
        assert_eq!(r.body["name"], s);
    }
    let tenants = app.walk("/api/tenants", ADMIN, 1000).await;
    assert!(tenants
        .iter()
        .any(|t| t["name"] == "'; DROP TABLE tenants; --"));
    assert_eq!(app.call("GET", "/ready", None, None).await.status, 200);
}

#[tokio::test]
async fn hostile_paths_queries_and_headers_never_5xx() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let long = "a".repeat(2000);
    let segments = [
        "%00",
        "'%20OR%201=1--",
        "%FF%FE",
        "..%2F..%2Fetc",
        "%0A",
        long.as_str(),
    ];
    for s in segments {
        for (method, path) in [
            ("GET", format!("/api/tenants/{s}")),
            ("PATCH", format!("/api/tenants/{s}")),
            ("POST", format!("/api/tenants/{s}/deactivate")),
            ("DELETE", format!("/api/tenants/{s}?confirm={s}")),
            ("GET", format!("/api/tenant/{s}/members")),
            ("DELETE", format!("/api/members/{s}")),
            ("DELETE", format!("/api/keys/{s}")),
        ] {
            let body = (method == "PATCH").then(|| json!({"name": "x"}));
            let r = app.call(method, &path, Some(ADMIN), body).await;
            assert_client_error(&r, &format!("{method} {path}"));
        }
    }
    for q in [
        "limit=-1",
        "limit=abc",
        "limit=99999999999999",
        "cursor=%00",
        "status=%27%20OR%201=1",
        "limit=1&limit=2",
    ] {
        let r = app.get(&format!("/api/tenants?{q}"), ADMIN).await;
        assert_client_error(&r, q);
    }
    let bad_header = reqwest::header::HeaderValue::from_bytes(b"\xff\xfe").unwrap();
    let r = app
        .send(
            app.request("GET", "/api/members", Some(ADMIN))
                .header("X-Tenant-ID", bad_header),
        )
        .await;
    r.assert_error(400, "invalid_tenant_id");
    let latin1_token = reqwest::header::HeaderValue::from_bytes(b"Bearer \xfftk_x").unwrap();
    let r = app
        .send(
            app.request("GET", "/api/members", None)
                .header("Authorization", latin1_token),
        )
        .await;
    r.assert_error(401, "unauthorized");
    assert_eq!(app.call("GET", "/health", None, None).await.status, 200);
}
