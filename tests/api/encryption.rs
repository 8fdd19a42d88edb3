//! The master key: generated key file, refusal of a wrong key at start, and rotation.
use crate::helpers::{cli, config, start, ADMIN};
use serde_json::json;
use tenantry::config::Secret;
use tenantry::startup::Application;

fn low_kdf(c: &mut tenantry::config::Config) {
    c.kdf = tenantry::crypto::KdfParams::parse("scrypt:10:8:1").unwrap();
    c.admin_token = Some(Secret::new(ADMIN));
}

#[tokio::test]
async fn without_encryption_key_a_private_key_file_is_generated_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, &[("ENABLE_MULTI_TENANT", "true")]);
    low_kdf(&mut c);
    let app = start(dir, c).await;
    let path = app.dir.path().join("encryption.key");
    let meta = std::fs::metadata(&path).expect("key file generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(secret.trim().len() >= 40);
    app.put(
        "/api/settings/provider-keys/openai",
        ADMIN,
        json!({"api_key": "sk-file-key-123456"}),
    )
    .await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(ADMIN),
        Some(json!({"execution_mode": "byo_key"})),
    )
    .await;
    let app = app.restart().await;
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        secret,
        "reused, not regenerated"
    );
    assert_eq!(
        app.get("/api/credentials/openai", ADMIN).await.body["api_key"],
        "sk-file-key-123456"
    );
}

#[tokio::test]
async fn a_wrong_encryption_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, &[("ENCRYPTION_KEY", "the-right-key-0123456789")]);
    low_kdf(&mut c);
    let (dir, mut c) = start(dir, c).await.stop().await;
    c.encryption_key = Some(Secret::new("a-wrong-key-0123456789"));
    let err = Application::build(c).err().expect("refused");
    drop(dir);
    assert!(err.contains("ENCRYPTION_KEY does not match"), "{err}");
    assert!(!err.contains("a-wrong-key"), "the key itself is not echoed");
}

/// A database moved without its generated key file: the start is refused and no new key file is
/// written (one would be taken for the real key on every later start).
#[tokio::test]
async fn a_missing_key_file_is_refused_not_regenerated() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, &[]);
    low_kdf(&mut c);
    let (dir, c) = start(dir, c).await.stop().await;
    let path = dir.path().join("encryption.key");
    std::fs::remove_file(&path).unwrap();
    let err = Application::build(c.clone()).err().expect("refused");
    assert!(err.contains("encryption.key is missing"), "{err}");
    assert!(!path.exists(), "no new key file was written");
    let err = Application::build(c)
        .err()
        .expect("refused again, the same way");
    assert!(err.contains("encryption.key is missing"), "{err}");
}

#[tokio::test]
async fn rotation_re_encrypts_every_provider_key_or_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        &dir,
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENCRYPTION_KEY", "old-key-0123456789"),
        ],
    );
    low_kdf(&mut c);
    let app = start(dir, c.clone()).await;
    app.create_tenant("acme").await;
    for (slug, key) in [
        ("default", "sk-default-123456"),
        ("acme", "sk-acme-12345678"),
    ] {
        app.put(
            &format!("/api/tenant/{slug}/settings/provider-keys/openai"),
            ADMIN,
            json!({"api_key": key}),
        )
        .await;
        app.call(
            "PATCH",
            &format!("/api/tenant/{slug}/settings"),
            Some(ADMIN),
            Some(json!({"execution_mode": "byo_key"})),
        )
        .await;
    }
    // A webhook secret, rotated once: two sealed secrets to re-encrypt with the provider keys.
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
    // Rotation refuses to run beside a server.
    let path = app.dir.path().to_path_buf();
    let out = cli(&path)
        .arg("rotate-encryption-key")
        .env("ENCRYPTION_KEY_OLD", "old-key-0123456789")
        .env("ENCRYPTION_KEY", "new-key-0123456789")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("running"));
    let (dir, _) = app.stop().await;

    // A wrong old key changes nothing.
    let out = cli(&path)
        .arg("rotate-encryption-key")
        .env("ENCRYPTION_KEY_OLD", "not-the-old-key-123")
        .env("ENCRYPTION_KEY", "new-key-0123456789")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ENCRYPTION_KEY_OLD"), "{err}");

    let out = cli(&path)
        .arg("rotate-encryption-key")
        .env("ENCRYPTION_KEY_OLD", "old-key-0123456789")
        .env("ENCRYPTION_KEY", "new-key-0123456789")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("2 provider keys and 2 webhook secrets"),
        "{said}"
    );
    let checked = cli(&path)
        .arg("verify")
        .env("ENCRYPTION_KEY", "new-key-0123456789")
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}",
        crate::helpers::output_text(&checked)
    );

    // The old key no longer starts the server; the new one does and opens both keys.
    let mut old = c.clone();
    old.data_dir = path.clone();
    assert!(Application::build(old.clone()).is_err());
    let mut new = old;
    new.encryption_key = Some(Secret::new("new-key-0123456789"));
    let app = start(dir, new).await;
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
}
