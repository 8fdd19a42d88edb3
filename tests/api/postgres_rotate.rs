//! `tenantry rotate-encryption-key` on PostgreSQL: refused while any replica serves (each holds
//! the key it started with), then one transaction that re-encrypts every provider key and
//! webhook secret, after which only the new key starts a replica and opens them all.
use crate::helpers::{cli, output_text, pg_database, spawn_tuned, ADMIN};
use serde_json::json;

const OLD: &str = "old-key-0123456789";
const NEW: &str = "new-key-0123456789";

#[tokio::test]
async fn rotation_waits_for_every_replica_to_stop_then_re_encrypts_everything() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = |key: &'static str| {
        [
            ("TENANTRY_DATABASE_URL", url.clone()),
            ("ENCRYPTION_KEY", key.to_string()),
            ("ENABLE_MULTI_TENANT", "true".to_string()),
        ]
    };
    let spawn = |key: &'static str| {
        let env = env(key);
        async move {
            let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            spawn_tuned(&pairs, |c| {
                c.kdf = tenantry::crypto::KdfParams::parse("scrypt:10:8:1").unwrap();
            })
            .await
        }
    };
    let app = spawn(OLD).await;
    app.create_tenant("acme").await;
    for (slug, key) in [
        ("default", "sk-default-123456"),
        ("acme", "sk-acme-12345678"),
    ] {
        let r = app
            .put(
                &format!("/api/tenant/{slug}/settings/provider-keys/openai"),
                ADMIN,
                json!({"api_key": key}),
            )
            .await;
        assert!(r.status < 300, "{}", r.body);
        let r = app
            .call(
                "PATCH",
                &format!("/api/tenant/{slug}/settings"),
                Some(ADMIN),
                Some(json!({"execution_mode": "byo_key"})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let hook = app
        .post(
            "/api/webhooks",
            ADMIN,
            json!({"url": "http://203.0.113.9/hook"}),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    let rotated = format!(
        "/api/webhooks/{}/rotate-secret",
        hook.body["id"].as_str().unwrap()
    );
    assert_eq!(app.post(&rotated, ADMIN, json!({})).await.status, 200);

    let dir = app.dir.path().to_path_buf();
    let rotate = |old: &str, new: &str| {
        cli(&dir)
            .arg("rotate-encryption-key")
            .env("TENANTRY_DATABASE_URL", &url)
            .env("ENCRYPTION_KEY_OLD", old)
            .env("ENCRYPTION_KEY", new)
            .output()
            .unwrap()
    };
    // A replica serves: refused, nothing changed.
    let out = rotate(OLD, NEW);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("stop every replica"),
        "{}",
        output_text(&out)
    );
    let _kept = app.stop().await;

    let out = rotate("not-the-old-key-123", NEW);
    assert!(!out.status.success());
    let err = output_text(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ENCRYPTION_KEY_OLD"), "{err}");

    let out = rotate(OLD, NEW);
    assert!(out.status.success(), "{}", output_text(&out));
    let said = output_text(&out);
    assert!(
        said.contains("2 provider keys and 2 webhook secrets"),
        "{said}"
    );

    // The old key no longer starts a replica; the new one does and opens both keys.
    let refused = cli(&dir)
        .env("TENANTRY_DATABASE_URL", &url)
        .env("ENCRYPTION_KEY", OLD)
        .env("TENANTRY_BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        output_text(&refused).contains("does not match"),
        "{}",
        output_text(&refused)
    );
    let app = spawn(NEW).await;
    assert_eq!(
        app.get("/api/credentials/openai", ADMIN).await.body["api_key"],
        "sk-default-123456"
    );
    assert_eq!(
        app.get("/api/tenant/acme/credentials/openai", ADMIN)
            .await
            .body["api_key"],
        "sk-acme-12345678"
    );
    // The webhook's secrets open too: it can be rotated again (which opens the current one).
    assert_eq!(app.post(&rotated, ADMIN, json!({})).await.status, 200);
}
