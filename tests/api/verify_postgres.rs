//! `tenantry verify` on PostgreSQL (TENANTRY_DATABASE_URL): passes on a copied instance, says
//! why `integrity` was skipped without `amcheck`, and names each kind of damage with the line
//! of its check. Damage that PostgreSQL's keys and triggers would refuse is made as a restore
//! could: as the superuser with `session_replication_role = replica`.
use crate::copy::{copy, populate, used_instance, KEY};
use crate::helpers::{cli, output_text, pg_connect, pg_database};
use std::path::Path;
use std::process::Output;

const CHECKS: usize = 9;

fn verify(dir: &Path, url: &str, key: &str) -> Output {
    cli(dir)
        .arg("verify")
        .env("TENANTRY_DATABASE_URL", url)
        .env("ENCRYPTION_KEY", key)
        .output()
        .unwrap()
}

fn line_of(out: &Output, name: &str) -> String {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} line in: {text}"))
        .to_string()
}

#[track_caller]
fn passes(out: &Output) {
    assert!(out.status.success(), "{}", output_text(out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), CHECKS, "one line per check: {text}");
}

/// The line of check `name`, after asserting that only it failed.
#[track_caller]
fn only_fails(out: &Output, name: &str) -> String {
    assert_eq!(out.status.code(), Some(1), "{}", output_text(out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("verify: 1 of 9 checks failed"),
        "{}",
        output_text(out)
    );
    line_of(out, name)
}

#[tokio::test]
async fn verify_on_postgres_passes_after_a_copy_and_names_each_kind_of_damage() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    let keys = populate(&app).await;
    let (dir, _) = app.stop().await;
    assert!(copy(dir.path(), &url).status.success());
    let empty = tempfile::tempdir().unwrap();
    let run = || verify(empty.path(), &url, KEY);
    let pg = pg_connect(&url).await;

    let out = run();
    passes(&out);
    assert_eq!(
        line_of(&out, "integrity"),
        "integrity: skipped: the amcheck extension is not installed in this database \
         (CREATE EXTENSION amcheck to check every index and table)"
    );
    pg.batch_execute("CREATE EXTENSION amcheck").await.unwrap();
    let out = run();
    passes(&out);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.lines().all(|l| l.ends_with(": ok")), "{text}");
    let acme = &keys[0].0;

    // Each damage, the line that names it, and the repair before the next.
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "schema",
            "CREATE INDEX jobs_by_kind ON jobs (kind)".into(),
            "DROP INDEX jobs_by_kind".into(),
            "schema: jobs: indexes",
        ),
        (
            "foreign keys",
            format!(
                "SET session_replication_role = replica;
                 INSERT INTO statement_lines VALUES ('{acme}', '1999-01', 'hosted', 'm',
                     1, 1, 1, 0, 0, 0, 1, 1);
                 SET session_replication_role = origin;"
            ),
            "DELETE FROM statement_lines WHERE period = '1999-01'".into(),
            "foreign keys: 1 row of table statement_lines refer to missing rows of statements",
        ),
        (
            "default tenant",
            "SET session_replication_role = replica;
             UPDATE tenants SET status = 'inactive' WHERE slug = 'default';
             SET session_replication_role = origin;"
                .into(),
            "UPDATE tenants SET status = 'active' WHERE slug = 'default'".into(),
            "default tenant: the default tenant 00000000-0000-0000-0000-000000000000 is inactive, not active",
        ),
        (
            "usage rollups",
            format!(
                "UPDATE usage_rollups SET billed_nanos = billed_nanos + 1
                 WHERE tenant_id = '{acme}' AND dim = 'model' AND key = 'gpt-4o'"
            ),
            format!(
                "UPDATE usage_rollups SET billed_nanos = billed_nanos - 1
                 WHERE tenant_id = '{acme}' AND dim = 'model' AND key = 'gpt-4o'"
            ),
            "usage rollups: tenant",
        ),
        (
            "usage totals",
            format!("UPDATE usage_totals SET events = events + 1 WHERE tenant_id = '{acme}'"),
            format!("UPDATE usage_totals SET events = events - 1 WHERE tenant_id = '{acme}'"),
            "usage totals: tenant",
        ),
        (
            "provider keys",
            flip("provider_keys", "ciphertext", acme),
            flip("provider_keys", "ciphertext", acme),
            "provider keys: tenant",
        ),
        (
            "webhook secrets",
            flip("webhook_endpoints", "secret", "00000000-0000-0000-0000-000000000000"),
            flip("webhook_endpoints", "secret", "00000000-0000-0000-0000-000000000000"),
            "webhook secrets: tenant 00000000-0000-0000-0000-000000000000: webhook",
        ),
    ];
    for (check, damage, repair, expected) in cases {
        pg.batch_execute(&damage).await.unwrap();
        let out = run();
        let line = only_fails(&out, check);
        assert!(line.starts_with(expected), "{check}: {line}");
        pg.batch_execute(&repair).await.unwrap();
        passes(&run());
    }

    // A row of a tenant that does not exist: the key to tenants fails too, both are named.
    pg.batch_execute(
        "SET session_replication_role = replica;
         INSERT INTO agent_preferences VALUES
             ('11111111-1111-4111-8111-111111111111', 'agent', '{}', 0);
         SET session_replication_role = origin;",
    )
    .await
    .unwrap();
    let out = run();
    assert!(
        line_of(&out, "tenant ownership").contains(
            "table agent_preferences has 1 row of tenant 11111111-1111-4111-8111-111111111111, which does not exist"
        ),
        "{}",
        output_text(&out)
    );
    assert!(line_of(&out, "foreign keys")
        .contains("agent_preferences refer to missing rows of tenants"));
    pg.batch_execute("DELETE FROM agent_preferences WHERE agent_name = 'agent'")
        .await
        .unwrap();

    // The wrong key: the sealed values cannot be checked, and verify says so.
    let out = verify(empty.path(), &url, "another-key-0123456789abc");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        line_of(&out, "provider keys").contains("is not the key this database was encrypted with")
    );
}

/// Flips one byte of a sealed column of a tenant's rows (doing it twice repairs it).
fn flip(table: &str, column: &str, tenant: &str) -> String {
    format!(
        "UPDATE {table} SET {column} = set_byte({column}, 20, get_byte({column}, 20) # 1)
         WHERE tenant_id = '{tenant}'"
    )
}

#[tokio::test]
async fn verify_on_postgres_refuses_a_database_that_is_not_migrated() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = verify(dir.path(), &url, KEY);
    assert_eq!(out.status.code(), Some(1));
    let text = output_text(&out);
    assert!(
        text.contains("schema version 0") && text.contains("tenantry migrate"),
        "{text}"
    );
    assert!(out.stdout.is_empty(), "{text}");
}
