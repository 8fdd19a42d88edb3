//! PostgreSQL as the store (issue 19, being built): migrations, the schema against SQLite's,
//! and the commands' refusals. Each test makes its own database on the cluster `.ci/pg.sh`
//! starts; without one they are skipped, except under CI.
use crate::helpers::{cli, output_text, pg_connect, pg_database};
use tenantry::db::pg::schema;

fn migrate(dir: &std::path::Path, url: &str) -> std::process::Output {
    cli(dir)
        .arg("migrate")
        .env("TENANTRY_DATABASE_URL", url)
        .output()
        .expect("run tenantry migrate")
}

#[tokio::test]
async fn postgres_schema_matches_sqlite_table_for_table() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = migrate(dir.path(), &url);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        output_text(&out).contains("schema version 12"),
        "{}",
        output_text(&out)
    );
    let pg = schema::postgres(&pg_connect(&url).await).await.unwrap();
    let sqlite = schema::expected().unwrap();
    assert!(sqlite.len() >= 16, "SQLite's tables: {:?}", sqlite.keys());
    let differences = schema::differences(&sqlite, &pg);
    assert!(differences.is_empty(), "{differences:#?}");
    // The comparison itself sees what it must: a column, an index and a check removed on
    // PostgreSQL are each reported.
    let c = pg_connect(&url).await;
    c.batch_execute(
        "ALTER TABLE jobs DROP COLUMN result;
         DROP INDEX jobs_leased;
         ALTER TABLE tenants DROP CONSTRAINT tenants_plan_check;",
    )
    .await
    .unwrap();
    let differences = schema::differences(&sqlite, &schema::postgres(&c).await.unwrap());
    assert_eq!(differences.len(), 3, "{differences:#?}");
}

#[tokio::test]
async fn the_default_tenant_exists_and_cannot_be_deleted_or_deactivated_on_postgres() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(migrate(dir.path(), &url).status.success());
    let c = pg_connect(&url).await;
    let row = c
        .query_one(
            "SELECT t.slug, s.version FROM tenants t JOIN settings_versions s ON s.tenant_id = t.id
             WHERE t.id = '00000000-0000-0000-0000-000000000000'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "default");
    assert_eq!(row.get::<_, i64>(1), 1);
    let delete = c
        .execute(
            "DELETE FROM tenants WHERE id = '00000000-0000-0000-0000-000000000000'",
            &[],
        )
        .await;
    let message = |e: tokio_postgres::Error| e.as_db_error().unwrap().message().to_string();
    assert!(message(delete.unwrap_err()).contains("cannot be deleted"));
    let deactivate = c
        .execute(
            "UPDATE tenants SET status = 'inactive' WHERE slug = 'default'",
            &[],
        )
        .await;
    assert!(message(deactivate.unwrap_err()).contains("cannot be deactivated"));
}

/// Replicas starting together on an empty database: every one succeeds and each migration is
/// applied once (the advisory lock), not once per replica.
#[tokio::test]
async fn replicas_migrating_at_once_apply_each_migration_once() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let children: Vec<_> = dirs
        .iter()
        .map(|d| {
            cli(d.path())
                .arg("migrate")
                .env("TENANTRY_DATABASE_URL", &url)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", output_text(&out));
    }
    let c = pg_connect(&url).await;
    let rows = c
        .query(
            "SELECT version, count(*) FROM schema_migrations GROUP BY 1",
            &[],
        )
        .await
        .unwrap();
    let versions: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i64, i64)> = (10..=tenantry::db::pg::migrate::latest())
        .map(|v| (v, 1))
        .collect();
    let mut versions = versions;
    versions.sort();
    assert_eq!(versions, expected);
    let tenants: i64 = c
        .query_one("SELECT count(*) FROM tenants", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tenants, 1, "one default tenant, not one per replica");
}

#[tokio::test]
async fn a_postgres_schema_newer_than_the_binary_is_refused() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    assert!(migrate(dir.path(), &url).status.success());
    pg_connect(&url)
        .await
        .batch_execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
        .await
        .unwrap();
    let out = migrate(dir.path(), &url);
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("newer than this binary"),
        "{}",
        output_text(&out)
    );
}

/// The password in TENANTRY_DATABASE_URL never reaches the output, whatever fails.
#[tokio::test]
async fn commands_on_postgres_refuse_plainly_and_never_print_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], url: &str| {
        let out = cli(dir.path())
            .args(args)
            .env("TENANTRY_DATABASE_URL", url)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let text = output_text(&out);
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert_eq!(text.trim().lines().count(), 1, "{text}");
        text
    };
    let closed = "postgres://u:s3cret-pw@127.0.0.1:1/x";
    assert!(run(&["migrate"], closed).contains("cannot connect to PostgreSQL"));
    assert!(run(&["backup", "/tmp/never"], closed).contains("pg_dump"));
    assert!(run(&["restore", "/tmp/never"], closed).contains("pg_dump"));
    assert!(run(&["verify"], "mysql://u:s3cret-pw@h/x").contains("postgres://"));
    assert!(run(&["migrate"], "postgres://u:s3cret-pw@h").contains("names no database"));
}
