//! `tenantry verify`: passes on a healthy database, beside a running server too, and names the
//! tenant and table of each kind of damage an operator must hear about.
use crate::helpers::{cli, spawn_with, ADMIN};
use serde_json::json;
use std::path::Path;
use std::process::Output;

const KEY: &str = "verify-encryption-key-0123";
const DEFAULT: &str = "00000000-0000-0000-0000-000000000000";

fn verify(dir: &Path) -> Output {
    cli(dir)
        .arg("verify")
        .env("ENCRYPTION_KEY", KEY)
        .output()
        .unwrap()
}

fn report(out: &Output) -> String {
    crate::helpers::output_text(out)
}

#[track_caller]
fn passes(out: &Output) {
    assert!(out.status.success(), "{}", report(out));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "one line per check: {text}");
    assert!(lines.iter().all(|l| l.ends_with(": ok")), "{text}");
}

/// The line of check `name`, after asserting the command failed with one line on stderr.
#[track_caller]
fn fails(out: &Output, name: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", report(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("checks failed"), "{err}");
    line_of(out, name)
}

fn line_of(out: &Output, name: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} line in: {text}"))
        .to_string()
}

/// A stopped instance with two tenants, usage in every dimension and a provider key each;
/// returns its data directory and the id of tenant `acme`.
async fn populated() -> (tempfile::TempDir, String) {
    let app = spawn_with(&[("ENABLE_MULTI_TENANT", "true"), ("ENCRYPTION_KEY", KEY)]).await;
    let acme = app.create_tenant("acme").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for slug in ["acme", "default"] {
        let r = app
            .put(
                &format!("/api/tenant/{slug}/settings/provider-keys/openai"),
                ADMIN,
                json!({"api_key": format!("sk-{slug}-0123456789abcdef")}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let events: Vec<_> = (0..5)
            .map(|i| {
                json!({"model": if i % 2 == 0 { "gpt-4o" } else { "claude-sonnet-4" },
                       "input_tokens": 100 + i, "output_tokens": 10 * i,
                       "cache_read_tokens": 10 * i, "cache_write_tokens": i,
                       "reasoning_tokens": i,
                       "agent_name": format!("agent-{}", i % 3), "user_id": "u1",
                       "pipeline_stage": if i > 2 { Some("rank") } else { None }})
            })
            .collect();
        let r = app
            .post(
                &format!("/api/tenant/{slug}/usage/events"),
                ADMIN,
                json!({"events": events}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let r = app
            .post(
                &format!("/api/tenant/{slug}/webhooks"),
                ADMIN,
                json!({"url": "http://203.0.113.9/hook"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Beside the running server, with the ingest just committed.
    passes(&verify(app.dir.path()));
    let (dir, _) = app.stop().await;
    (dir, acme)
}

/// Changes the stopped instance's database directly, foreign keys off, as damage would.
fn damage(dir: &Path, sql: &str) {
    let c = rusqlite::Connection::open(dir.join("tenantry.db")).unwrap();
    c.execute_batch("PRAGMA foreign_keys = OFF;").unwrap();
    c.execute_batch(sql).unwrap();
}

#[tokio::test]
async fn a_healthy_database_passes_every_check_running_or_stopped() {
    let (dir, _) = populated().await;
    passes(&verify(dir.path()));
}

#[tokio::test]
async fn a_row_of_a_missing_tenant_is_named_with_its_table() {
    let (dir, _) = populated().await;
    let ghost = "11111111-2222-3333-4444-555555555555";
    damage(
        dir.path(),
        &format!(
            "INSERT INTO agent_preferences (tenant_id, agent_name, body, updated_at)
             VALUES ('{ghost}', 'a1', '{{}}', 0);"
        ),
    );
    let out = verify(dir.path());
    let line = fails(&out, "tenant ownership");
    assert!(
        line.contains("agent_preferences") && line.contains(ghost),
        "{line}"
    );
    let line = fails(&out, "foreign keys");
    assert!(line.contains("agent_preferences"), "{line}");
}

#[tokio::test]
async fn a_rollup_that_differs_from_its_raw_events_is_named() {
    let (dir, acme) = populated().await;
    damage(
        dir.path(),
        &format!(
            "UPDATE usage_rollups SET billed_nanos = billed_nanos + 1
             WHERE tenant_id = '{acme}' AND dim = 'model' AND key = 'gpt-4o';"
        ),
    );
    let out = verify(dir.path());
    let line = fails(&out, "usage rollups");
    assert!(
        line.contains(&acme) && line.contains("usage_rollups") && line.contains("gpt-4o"),
        "{line}"
    );
    assert!(line.contains("billed_nanos"), "{line}");
    assert!(
        !line.contains(DEFAULT),
        "only acme's rollup changed: {line}"
    );
    for ok in ["integrity", "tenant ownership", "provider keys"] {
        assert!(line_of(&out, ok).ends_with(": ok"), "{}", report(&out));
    }
}

#[tokio::test]
async fn a_cache_token_rollup_that_differs_from_its_raw_events_is_named() {
    let (dir, acme) = populated().await;
    damage(
        dir.path(),
        &format!(
            "UPDATE usage_rollups SET cache_read_tokens = cache_read_tokens + 1
             WHERE tenant_id = '{acme}' AND dim = 'agent_name' AND key = 'agent-1';"
        ),
    );
    let line = fails(&verify(dir.path()), "usage rollups");
    assert!(
        line.contains(&acme) && line.contains("agent-1") && line.contains("cache_read_tokens"),
        "{line}"
    );
}

#[tokio::test]
async fn a_raw_event_without_its_rollup_is_named() {
    let (dir, acme) = populated().await;
    damage(
        dir.path(),
        &format!(
            "DELETE FROM usage_events WHERE seq = (SELECT max(seq) FROM usage_events
             WHERE tenant_id = '{acme}');"
        ),
    );
    let line = fails(&verify(dir.path()), "usage rollups");
    assert!(line.contains(&acme) && line.contains("events"), "{line}");
}

#[tokio::test]
async fn a_provider_key_with_a_flipped_byte_is_named() {
    let (dir, acme) = populated().await;
    let db = dir.path().join("tenantry.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    let mut sealed: Vec<u8> = c
        .query_row(
            "SELECT ciphertext FROM provider_keys WHERE tenant_id = ?1",
            [&acme],
            |r| r.get(0),
        )
        .unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    c.execute(
        "UPDATE provider_keys SET ciphertext = ?1 WHERE tenant_id = ?2",
        rusqlite::params![sealed, acme],
    )
    .unwrap();
    drop(c);
    let line = fails(&verify(dir.path()), "provider keys");
    assert!(
        line.contains(&acme) && line.contains("provider_keys") && line.contains("openai"),
        "{line}"
    );
    assert!(
        !line.contains(DEFAULT),
        "the default tenant's key opens: {line}"
    );
}

#[tokio::test]
async fn a_provider_key_copied_from_another_tenant_does_not_open() {
    let (dir, acme) = populated().await;
    damage(
        dir.path(),
        &format!(
            "UPDATE provider_keys SET ciphertext =
                 (SELECT ciphertext FROM provider_keys WHERE tenant_id = '{DEFAULT}')
             WHERE tenant_id = '{acme}';"
        ),
    );
    let line = fails(&verify(dir.path()), "provider keys");
    assert!(line.contains(&acme), "{line}");
}

#[tokio::test]
async fn a_webhook_secret_copied_to_another_endpoint_does_not_open() {
    let (dir, acme) = populated().await;
    damage(
        dir.path(),
        &format!(
            "UPDATE webhook_endpoints SET secret =
                 (SELECT secret FROM webhook_endpoints WHERE tenant_id = '{DEFAULT}')
             WHERE tenant_id = '{acme}';"
        ),
    );
    let line = fails(&verify(dir.path()), "webhook secrets");
    assert!(line.contains(&acme), "{line}");
}

#[tokio::test]
async fn a_wrong_encryption_key_fails_the_provider_key_check() {
    let (dir, _) = populated().await;
    let out = cli(dir.path())
        .arg("verify")
        .env("ENCRYPTION_KEY", "another-key-0123456789")
        .output()
        .unwrap();
    let line = fails(&out, "provider keys");
    assert!(line.contains("ENCRYPTION_KEY"), "{line}");
}

#[tokio::test]
async fn a_missing_default_tenant_is_named() {
    let (dir, _) = populated().await;
    damage(
        dir.path(),
        &format!(
            "DROP TRIGGER default_tenant_is_permanent;
             DELETE FROM tenants WHERE id = '{DEFAULT}';"
        ),
    );
    let out = verify(dir.path());
    let line = fails(&out, "default tenant");
    assert!(line.contains(DEFAULT) && line.contains("tenants"), "{line}");
    // Its rows stay behind, owned by nobody.
    let line = fails(&out, "tenant ownership");
    assert!(line.contains("settings_versions"), "{line}");
}

#[test]
fn without_a_database_it_fails_with_one_line_and_creates_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let out = verify(&dir);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no database"), "{err}");
    assert!(!dir.exists(), "the data directory was created");
}

#[test]
fn a_database_of_another_schema_version_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
    tenantry::db::migrate::apply_up_to(&mut c, 3).unwrap();
    drop(c);
    let out = verify(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("older") && err.contains("migrate"), "{err}");
    assert!(out.stdout.is_empty());
}
