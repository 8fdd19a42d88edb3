//! Provider keys (stored encrypted, shown masked) and `/api/credentials`.
use crate::helpers::{pg_connect, spawn_app, spawn_with, TestApp, ADMIN};
use serde_json::json;
use uuid::Uuid;

const SECRET: &str = "sk-proj-canary-0123456789abcdefWXYZ";

/// The app's `provider_keys` table, read and changed behind the server's back: in its SQLite
/// file, or in its PostgreSQL database.
enum RawKeys {
    Sqlite(rusqlite::Connection),
    Pg(tokio_postgres::Client),
}

impl RawKeys {
    async fn open(app: &TestApp) -> RawKeys {
        match &app.config.database_url {
            Some(url) => RawKeys::Pg(pg_connect(url.expose()).await),
            None => {
                let db = rusqlite::Connection::open(app.dir.path().join("tenantry.db")).unwrap();
                db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
                RawKeys::Sqlite(db)
            }
        }
    }

    async fn sealed(&self, tenant: &str, provider: &str) -> Vec<u8> {
        let sql = "SELECT ciphertext FROM provider_keys WHERE tenant_id = $1 AND provider = $2";
        match self {
            RawKeys::Sqlite(db) => db
                .query_row(&sql.replace('$', "?"), [tenant, provider], |r| r.get(0))
                .unwrap(),
            RawKeys::Pg(c) => c
                .query_one(sql, &[&uuid(tenant), &provider])
                .await
                .unwrap()
                .get(0),
        }
    }

    async fn store(&self, tenant: &str, provider: &str, bytes: &[u8]) {
        let sql = "UPDATE provider_keys SET ciphertext = $3 WHERE tenant_id = $1 AND provider = $2";
        match self {
            RawKeys::Sqlite(db) => db
                .execute(
                    &sql.replace('$', "?"),
                    rusqlite::params![tenant, provider, bytes],
                )
                .map(|_| ())
                .unwrap(),
            RawKeys::Pg(c) => c
                .execute(sql, &[&uuid(tenant), &provider, &bytes])
                .await
                .map(|_| ())
                .unwrap(),
        }
    }

    /// Copies every key row of tenant `from` into tenant `to`.
    async fn copy_rows(&self, from: &str, to: &str) {
        let sql = "INSERT INTO provider_keys (tenant_id, provider, ciphertext, masked, updated_at)
                   SELECT $1, provider, ciphertext, masked, updated_at FROM provider_keys
                   WHERE tenant_id = $2";
        match self {
            RawKeys::Sqlite(db) => db
                .execute(&sql.replace('$', "?"), [to, from])
                .map(|_| ())
                .unwrap(),
            RawKeys::Pg(c) => c
                .execute(sql, &[&uuid(to), &uuid(from)])
                .await
                .map(|_| ())
                .unwrap(),
        }
    }
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

#[tokio::test]
async fn a_provider_key_is_stored_encrypted_and_shown_masked() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let r = app
        .put(
            "/api/settings/provider-keys/openai",
            &owner,
            json!({"api_key": SECRET}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let masked = r.body["provider_keys"]["openai"]["masked"]
        .as_str()
        .unwrap();
    assert_eq!(masked, "sk-...WXYZ");
    assert!(r.body["provider_keys"]["openai"]["updated_at"].is_string());
    assert!(!r.body.to_string().contains("canary"));
    let viewer = app.create_key("acme", "viewer").await;
    let r = app.get("/api/settings", &viewer).await;
    assert_eq!(r.body["provider_keys"]["openai"]["masked"], "sk-...WXYZ");
    // Neither the database file nor its WAL holds the key.
    for f in ["tenantry.db", "tenantry.db-wal"] {
        let bytes = std::fs::read(app.dir.path().join(f)).unwrap_or_default();
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "{f}"
        );
    }
    // Nor, on PostgreSQL, the key's row or the events.
    if let Some(url) = &app.config.database_url {
        let c = pg_connect(url.expose()).await;
        let hits: i64 = c
            .query_one(
                "SELECT (SELECT count(*) FROM provider_keys
                         WHERE position(convert_to($1, 'UTF8') in ciphertext) > 0
                            OR strpos(masked, $1) > 0)
                      + (SELECT count(*) FROM events WHERE strpos(data, $1) > 0)",
                &[&SECRET],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(hits, 0);
        let stored: i64 = c
            .query_one("SELECT count(*) FROM provider_keys", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(stored, 1);
    }
}

/// Puts the tenant in `byo_key` mode; its owner and service keys.
async fn byo_key_tenant(app: &crate::helpers::TestApp, slug: &str) -> (String, String) {
    let owner = app.create_key(slug, "owner").await;
    let service = app.create_key(slug, "service").await;
    let r = app
        .call(
            "PATCH",
            &format!("/api/tenant/{slug}/settings"),
            Some(&owner),
            Some(json!({"execution_mode": "byo_key"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (owner, service)
}

#[tokio::test]
async fn byo_key_mode_hands_out_the_tenants_own_key_to_service_keys_and_admin_only() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let (owner, service) = byo_key_tenant(&app, "acme").await;
    app.get("/api/credentials/openai", &service)
        .await
        .assert_error(409, "byo_key_missing");
    app.put(
        "/api/settings/provider-keys/openai",
        &owner,
        json!({"api_key": SECRET}),
    )
    .await;
    let r = app.get("/api/credentials/openai", &service).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"provider": "openai", "api_key": SECRET, "source": "byo_key"})
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = app.get("/api/tenant/acme/credentials/openai", ADMIN).await;
    assert_eq!(r.body["api_key"], SECRET);
    for role in ["owner", "member", "viewer"] {
        let k = app.create_key("acme", role).await;
        app.get("/api/credentials/openai", &k)
            .await
            .assert_error(403, "forbidden");
    }
    // Removal takes effect at once.
    assert_eq!(
        app.delete("/api/settings/provider-keys/openai", &owner)
            .await
            .status,
        204
    );
    app.get("/api/credentials/openai", &service)
        .await
        .assert_error(409, "byo_key_missing");
    app.delete("/api/settings/provider-keys/openai", &owner)
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn hosted_mode_hands_out_the_instances_key() {
    let app = spawn_with(&[
        ("ENABLE_MULTI_TENANT", "true"),
        ("TENANTRY_PROVIDER_KEY_OPENAI", "sk-instance-key-123456"),
        (
            "TENANTRY_PROVIDER_KEY_AZURE_OPENAI",
            "az-instance-key-123456",
        ),
    ])
    .await;
    app.create_tenant("acme").await;
    let service = app.create_key("acme", "service").await;
    let r = app.get("/api/credentials/openai", &service).await;
    assert_eq!(
        r.body,
        json!({"provider": "openai", "api_key": "sk-instance-key-123456", "source": "hosted"})
    );
    assert_eq!(
        app.get("/api/credentials/azure-openai", &service)
            .await
            .body["api_key"],
        "az-instance-key-123456"
    );
    app.get("/api/credentials/anthropic", &service)
        .await
        .assert_error(409, "hosted_key_missing");
    // A tenant's own key is not used in hosted mode.
    app.put(
        "/api/tenant/acme/settings/provider-keys/anthropic",
        ADMIN,
        json!({"api_key": SECRET}),
    )
    .await;
    app.get("/api/credentials/anthropic", &service)
        .await
        .assert_error(409, "hosted_key_missing");
}

#[tokio::test]
async fn provider_keys_of_one_tenant_never_open_for_another() {
    let app = spawn_app().await;
    app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    for slug in ["tenant-a", "tenant-b"] {
        app.call(
            "PATCH",
            &format!("/api/tenant/{slug}/settings"),
            Some(ADMIN),
            Some(json!({"execution_mode": "byo_key"})),
        )
        .await;
    }
    app.put(
        "/api/tenant/tenant-b/settings/provider-keys/openai",
        ADMIN,
        json!({"api_key": SECRET}),
    )
    .await;
    let a_service = app.create_key("tenant-a", "service").await;
    let a_owner = app.create_key("tenant-a", "owner").await;
    app.get("/api/credentials/openai", &a_service)
        .await
        .assert_error(409, "byo_key_missing");
    let r = app
        .send(
            app.request("GET", "/api/credentials/openai", Some(&a_service))
                .header("X-Tenant-ID", b["id"].as_str().unwrap()),
        )
        .await;
    r.assert_error(403, "forbidden");
    app.get("/api/tenant/tenant-b/credentials/openai", &a_service)
        .await
        .assert_error(403, "forbidden");
    app.get("/api/tenant/tenant-b/settings", &a_owner)
        .await
        .assert_error(403, "forbidden");
    app.delete(
        "/api/tenant/tenant-b/settings/provider-keys/openai",
        &a_owner,
    )
    .await
    .assert_error(403, "forbidden");
    let a = app.get("/api/settings", &a_owner).await;
    assert_eq!(a.body["provider_keys"], json!({}));

    // A ciphertext copied into another tenant's row does not open there.
    let a_id = app.get("/api/tenants/tenant-a", ADMIN).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    RawKeys::open(&app)
        .await
        .copy_rows(b["id"].as_str().unwrap(), &a_id)
        .await;
    // Contract v2: not a 500 any more, but the 409 every unreadable key gets.
    let r = app.get("/api/credentials/openai", &a_service).await;
    r.assert_error(409, "provider_key_unreadable");
    assert!(!r.body.to_string().contains("canary"));
}

#[tokio::test]
async fn bad_provider_names_and_keys_are_400() {
    let app = spawn_app().await;
    for (provider, key) in [
        ("OpenAI", SECRET),
        ("open%20ai", SECRET),
        ("openai", "short"),
        ("openai", "has space in it"),
    ] {
        app.put(
            &format!("/api/settings/provider-keys/{provider}"),
            ADMIN,
            json!({"api_key": key}),
        )
        .await
        .assert_error(400, "invalid_request");
    }
    app.put(
        "/api/settings/provider-keys/openai",
        ADMIN,
        json!({"key": SECRET}),
    )
    .await
    .assert_error(400, "invalid_request");
    app.get("/api/credentials/Open_AI", ADMIN)
        .await
        .assert_error(400, "invalid_request");
}

/// Every way a stored ciphertext can stop opening answers 409 `provider_key_unreadable` (never a
/// 5xx) and records one critical `security` event, and the key is never echoed.
#[tokio::test]
async fn a_key_that_cannot_be_opened_is_a_409_and_a_critical_security_event() {
    let app = spawn_app().await;
    let (acme, other) = (
        app.create_tenant("acme").await,
        app.create_tenant("other").await,
    );
    let (acme, other) = (
        acme["id"].as_str().unwrap().to_string(),
        other["id"].as_str().unwrap().to_string(),
    );
    let db = RawKeys::open(&app).await;
    let (owner, service) = byo_key_tenant(&app, "acme").await;
    let other_owner = app.create_key("other", "owner").await;
    let set = |token: String, provider: &'static str| {
        let app = &app;
        async move {
            let r = app
                .put(
                    &format!("/api/settings/provider-keys/{provider}"),
                    &token,
                    json!({"api_key": SECRET}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
        }
    };
    type Damage = Box<dyn Fn(Vec<u8>) -> Vec<u8>>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "bytes flipped",
            Box::new(|mut b: Vec<u8>| {
                let last = b.len() - 1;
                b[last] ^= 0x01;
                b
            }),
        ),
        ("truncated", Box::new(|b: Vec<u8>| b[..10].to_vec())),
        ("emptied", Box::new(|_| Vec::new())),
        (
            "unknown envelope version",
            Box::new(|mut b: Vec<u8>| {
                b[0] = 9;
                b
            }),
        ),
    ];
    let mut expected = 0;
    let check = |expected: usize, case: &str| {
        let app = &app;
        let service = service.clone();
        let case = case.to_string();
        async move {
            let r = app.get("/api/credentials/openai", &service).await;
            r.assert_error(409, "provider_key_unreadable");
            assert!(!r.body.to_string().contains(SECRET), "{case}");
            let events: Vec<_> = app
                .walk("/api/tenant/acme/events?category=security", ADMIN, 100)
                .await
                .into_iter()
                .filter(|e| e["event_type"] == "provider_key.unreadable")
                .collect();
            assert_eq!(events.len(), expected, "{case}: {events:?}");
            assert_eq!(events[0]["severity"], "critical", "{case}");
            assert_eq!(events[0]["data"]["provider"], "openai", "{case}");
        }
    };
    for (case, damage) in &cases {
        set(owner.clone(), "openai").await;
        let damaged = damage(db.sealed(&acme, "openai").await);
        db.store(&acme, "openai", &damaged).await;
        expected += 1;
        check(expected, case).await;
        // Asking again does not record the same damage twice.
        check(expected, case).await;
    }
    // Another tenant's ciphertext for the same provider, copied into this tenant's row.
    set(other_owner.clone(), "openai").await;
    set(owner.clone(), "openai").await;
    db.store(&acme, "openai", &db.sealed(&other, "openai").await)
        .await;
    expected += 1;
    check(expected, "another tenant's ciphertext").await;
    // This tenant's own keys, with the providers swapped.
    set(owner.clone(), "openai").await;
    set(owner.clone(), "anthropic").await;
    let (o, a) = (
        db.sealed(&acme, "openai").await,
        db.sealed(&acme, "anthropic").await,
    );
    db.store(&acme, "openai", &a).await;
    db.store(&acme, "anthropic", &o).await;
    expected += 1;
    check(expected, "providers swapped").await;
    // Setting the key again mends it.
    set(owner.clone(), "openai").await;
    assert_eq!(
        app.get("/api/credentials/openai", &service).await.body["api_key"],
        SECRET
    );
}
