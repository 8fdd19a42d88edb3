//! `tenantry copy --to <postgres-url>` (contract "PostgreSQL and several replicas"): a used
//! SQLite instance arrives in PostgreSQL row for row, secrets sealed byte for byte and still
//! opening with the same ENCRYPTION_KEY; a non-empty target is refused and left alone; a failed
//! copy names the row without its value and leaves the target as it was.
mod instance;
mod rows;

use crate::helpers::{
    cli, ingest_until_refused, output_text, pg_connect, pg_database, spawn_tuned, Process, ADMIN,
};
pub use instance::{ok, populate, used_instance};
use rows::assert_same_rows;
use serde_json::json;
use std::path::Path;
use std::process::Output;

pub const KEY: &str = "copy-encryption-key-0123456789";
const PASSWORD: &str = "s3cret-copy-pw";

/// The test cluster trusts local connections, so a password in the URL is ignored there; it
/// is only there to prove the copy never prints it.
fn with_password(url: &str) -> String {
    url.replacen("://tenantry@", &format!("://tenantry:{PASSWORD}@"), 1)
}

pub fn copy(dir: &Path, url: &str) -> Output {
    let out = cli(dir)
        .args(["copy", "--to", &with_password(url)])
        .env("ENCRYPTION_KEY", KEY)
        .output()
        .expect("run tenantry copy");
    assert!(
        !output_text(&out).contains(PASSWORD),
        "{}",
        output_text(&out)
    );
    out
}

async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn copy_moves_every_row_into_postgres_and_sealed_keys_open_with_the_same_key() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    let provider_keys = populate(&app).await;
    let (dir, config) = app.stop().await;

    let out = copy(dir.path(), &url);
    assert!(out.status.success(), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let pg = pg_connect(&url).await;
    let copied = assert_same_rows(&config.db_path(), &pg).await;
    // One line per table in foreign-key order, usage_totals, then the summary.
    assert_eq!(lines.len(), copied.len() + 2, "{text}");
    assert!(lines[0].starts_with("meta: "), "{text}");
    for (table, n) in &copied {
        let rows = if *n == 1 {
            "1 row".to_string()
        } else {
            format!("{n} rows")
        };
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("{table}: {rows}, "))),
            "no line for {table} with {rows}: {text}"
        );
        assert!(
            *n > 0 || table == "pricing_overrides" || table == "agent_preferences",
            "{table} is empty"
        );
    }
    let tenants_pos = lines
        .iter()
        .position(|l| l.starts_with("tenants:"))
        .unwrap();
    let events_pos = lines
        .iter()
        .position(|l| l.starts_with("usage_events:"))
        .unwrap();
    assert!(tenants_pos < events_pos, "{text}");
    assert!(
        lines.contains(&"usage_events: 37 rows, counts and per-tenant sums match"),
        "{text}"
    );
    assert!(
        lines.contains(&"usage_totals: 3 rows, equal to the rollups' all-time totals"),
        "{text}"
    );
    let total: usize = copied.iter().map(|(_, n)| n).sum();
    assert_eq!(
        lines.last().unwrap(),
        &format!(
            "copied {} tables ({total} rows) into PostgreSQL at schema version {}; committed",
            copied.len(),
            tenantry::db::pg::migrate::latest()
        )
    );

    // usage_totals holds each tenant's all-time total, as the rollups' total dimension sums it.
    let acme = &provider_keys[0].0;
    let r = pg
        .query_one(
            "SELECT version, events, billed_nanos FROM usage_totals WHERE tenant_id::text = $1",
            &[acme],
        )
        .await
        .unwrap();
    let raw: (i64, i64) = {
        let c = rusqlite::Connection::open(config.db_path()).unwrap();
        c.query_row(
            "SELECT count(*), sum(billed_nanos) FROM usage_events WHERE tenant_id = ?1",
            [acme],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
    };
    assert_eq!((r.get::<_, i64>(0), r.get(1), r.get(2)), (0, raw.0, raw.1));

    // The provider keys open from PostgreSQL's ciphertext with the instance's key (its record
    // copied with `meta`), bound to their tenants as before.
    let meta = |k: &'static str| {
        let pg = &pg;
        async move {
            pg.query_one("SELECT value FROM meta WHERE key = $1", &[&k])
                .await
                .unwrap()
                .get::<_, String>(0)
        }
    };
    let record = tenantry::crypto::KeyRecord {
        salt: tenantry::crypto::unhex(&meta("encryption_salt").await).unwrap(),
        params: tenantry::crypto::KdfParams::parse(&meta("encryption_kdf").await).unwrap(),
        check: meta("encryption_check").await,
    };
    let master = record
        .open_with(KEY)
        .unwrap()
        .expect("ENCRYPTION_KEY opens the copied record");
    for (tenant, secret) in &provider_keys {
        let sealed: Vec<u8> = pg
            .query_one(
                "SELECT ciphertext FROM provider_keys WHERE tenant_id::text = $1 AND provider = 'openai'",
                &[tenant],
            )
            .await
            .unwrap()
            .get(0);
        let opened =
            tenantry::crypto::open(&master, &sealed, tenant.parse().unwrap(), "openai").unwrap();
        assert_eq!(opened.expose(), secret);
    }

    // A second copy into the same database is refused and changes nothing.
    let again = copy(dir.path(), &url);
    assert!(!again.status.success());
    let err = output_text(&again);
    assert!(
        err.contains("not empty") && err.contains("tenants has 2 rows beyond the default tenant"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_same_rows(&config.db_path(), &pg).await;
    assert_eq!(count(&pg, "usage_totals").await, 3);
}

#[tokio::test]
async fn copy_refuses_a_database_with_a_row_of_its_own_and_leaves_it_alone() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    app.create_tenant("acme").await;
    let (dir, _) = app.stop().await;
    // Migrated, then one operator setting written: not what the migrations make.
    let pg = pg_connect(&url).await;
    let out = cli(dir.path())
        .arg("migrate")
        .env("TENANTRY_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    pg.batch_execute("INSERT INTO meta (key, value) VALUES ('foreign', 'row')")
        .await
        .unwrap();
    let out = copy(dir.path(), &url);
    assert!(!out.status.success());
    let err = output_text(&out);
    assert!(err.contains("not empty (meta has 1 row)"), "{err}");
    // Not a PostgreSQL URL: the flag is named, the value is not repeated.
    let out = cli(dir.path())
        .args(["copy", "--to", &format!("mysql://u:{PASSWORD}@h/x")])
        .output()
        .unwrap();
    let err = output_text(&out);
    assert!(!out.status.success() && !err.contains(PASSWORD), "{err}");
    assert!(err.contains("--to must be a URL like postgres://"), "{err}");
    assert_eq!(count(&pg, "meta").await, 1);
    assert_eq!(count(&pg, "tenants").await, 1);
    assert_eq!(count(&pg, "usage_totals").await, 0);
}

/// A value PostgreSQL cannot take fails the whole copy, naming table, column and row but not
/// the value; the target is as it was, and the copy runs again once the value is fixed.
#[tokio::test]
async fn a_failed_copy_names_the_row_not_the_value_and_leaves_the_target_as_it_was() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    app.create_tenant("acme").await;
    app.create_key("acme", "member").await;
    let (dir, config) = app.stop().await;
    let db = rusqlite::Connection::open(config.db_path()).unwrap();
    db.execute(
        "UPDATE events SET id = 'secret-looking-value' WHERE seq = (SELECT max(seq) FROM events)",
        [],
    )
    .unwrap();
    let seq: i64 = db
        .query_row("SELECT max(seq) FROM events", [], |r| r.get(0))
        .unwrap();
    let out = copy(dir.path(), &url);
    assert!(!out.status.success());
    let err = output_text(&out);
    assert!(!err.contains("secret-looking-value"), "{err}");
    assert!(
        err.contains(&format!(
            "cannot copy table events: column id of the row with key ({seq}) is not a UUID"
        )),
        "{err}"
    );
    let pg = pg_connect(&url).await;
    assert_eq!(
        count(&pg, "tenants").await,
        1,
        "the failed copy left nothing"
    );
    assert_eq!(count(&pg, "settings_versions").await, 1);
    assert_eq!(count(&pg, "api_keys").await, 0);

    db.execute(
        "UPDATE events SET id = '0190a8c8-0000-7000-8000-000000000001' WHERE seq = ?1",
        [seq],
    )
    .unwrap();
    let out = copy(dir.path(), &url);
    assert!(out.status.success(), "{}", output_text(&out));
    assert_same_rows(&config.db_path(), &pg).await;
}

/// Identities continue after the copied rows: a row inserted without `seq` gets a larger one.
#[tokio::test]
async fn identities_continue_after_the_copied_rows() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    app.create_tenant("acme").await;
    ok(
        &app,
        "POST",
        "/api/tenant/acme/usage/events",
        json!({"events": [{"model": "m", "input_tokens": 1, "output_tokens": 1},
                          {"model": "m", "input_tokens": 2, "output_tokens": 2}]}),
    )
    .await;
    let (dir, _) = app.stop().await;
    let out = copy(dir.path(), &url);
    assert!(out.status.success(), "{}", output_text(&out));
    let pg = pg_connect(&url).await;
    let max: i64 = pg
        .query_one("SELECT max(seq) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    let seq: i64 = pg
        .query_one(
            "INSERT INTO usage_events (id, tenant_id, ts, model, input_tokens, output_tokens,
                 estimated_nanos, billed_nanos, cost_source, execution_mode, markup, created_at)
             SELECT gen_random_uuid(), tenant_id, 0, 'm', 0, 0, 0, 0, 'client', 'hosted', 0, 0
             FROM usage_events LIMIT 1 RETURNING seq",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(seq > max, "new seq {seq} after copied max {max}");
    let events_seq: i64 = pg
        .query_one(
            "INSERT INTO events (id, tenant_id, category, event_type, severity, message, data, created_at)
             SELECT gen_random_uuid(), tenant_id, 'c', 't', 'info', 'm', '{}', 0
             FROM events LIMIT 1 RETURNING seq",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let events_max: i64 = pg
        .query_one("SELECT max(seq) FROM events WHERE category <> 'c'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(events_seq > events_max);
}

/// The checks compare what PostgreSQL stored, not what was sent: a trigger in the target that
/// alters one amount on the way in makes the copy fail, naming table, tenant and sum, and
/// nothing is committed.
#[tokio::test]
async fn a_sum_that_differs_after_the_copy_fails_it_and_nothing_is_committed() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    let acme = app.create_tenant("acme").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(
        &app,
        "POST",
        "/api/tenant/acme/usage/events",
        json!({"events": [{"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 1}]}),
    )
    .await;
    let (dir, _) = app.stop().await;
    let out = cli(dir.path())
        .arg("migrate")
        .env("TENANTRY_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", output_text(&out));
    let pg = pg_connect(&url).await;
    pg.batch_execute(
        "CREATE FUNCTION skim() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN NEW.billed_nanos := NEW.billed_nanos - 1; RETURN NEW; END $$;
         CREATE TRIGGER skim BEFORE INSERT ON usage_events FOR EACH ROW EXECUTE FUNCTION skim();",
    )
    .await
    .unwrap();
    let out = copy(dir.path(), &url);
    assert!(!out.status.success());
    let err = output_text(&out);
    assert!(
        err.contains(&format!(
            "nothing was copied: table usage_events, tenant {acme}: sum of billed_nanos 1000000000 in SQLite, 999999999 in PostgreSQL"
        )),
        "{err}"
    );
    assert!(
        out.stdout.is_empty(),
        "no table lines for a copy that failed: {err}"
    );
    for table in [
        "usage_events",
        "usage_rollups",
        "usage_totals",
        "api_keys",
        "events",
    ] {
        assert_eq!(count(&pg, table).await, 0, "{table}");
    }
    assert_eq!(count(&pg, "tenants").await, 1);
}

/// Beside a server that keeps ingesting, the copy reads one snapshot: its counts and sums
/// check out against that snapshot, the copied rollups equal the copied raw events (verify on
/// PostgreSQL), and the events written after it stay behind in SQLite.
#[tokio::test]
async fn copy_beside_a_running_server_copies_one_consistent_snapshot() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let admin = "copy-admin-token-0123456789";
    let mut server = Process::start(
        dir.path(),
        &[
            ("TENANTRY_ADMIN_TOKEN", admin),
            ("ENCRYPTION_KEY", KEY),
            ("TENANTRY_LOG", "warn"),
        ],
    );
    let (acked, tasks) = ingest_until_refused(&server.url, admin, 4, 20);
    let started = std::time::Instant::now();
    while acked.lock().unwrap().len() < 500 && started.elapsed().as_secs() < 30 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let path = dir.path().to_path_buf();
    let target = url.clone();
    let out = tokio::task::spawn_blocking(move || copy(&path, &target))
        .await
        .unwrap();
    let during = acked.lock().unwrap().len();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.child.kill().unwrap();
    server.wait();
    for t in tasks {
        let _ = t.await;
    }
    assert!(out.status.success(), "{}", output_text(&out));
    let pg = pg_connect(&url).await;
    let copied = count(&pg, "usage_events").await;
    let db = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
    let stored: i64 = db
        .query_row("SELECT count(*) FROM usage_events", [], |r| r.get(0))
        .unwrap();
    assert!(copied >= 500, "{copied} events copied");
    assert!(
        stored > copied,
        "ingest went on during and after the copy: {stored} stored, {copied} copied, {during} acknowledged by the copy's end"
    );
    let verify = cli(dir.path())
        .arg("verify")
        .env("TENANTRY_DATABASE_URL", &url)
        .env("ENCRYPTION_KEY", KEY)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", output_text(&verify));
}

/// The copy serves what the SQLite instance served: a PostgreSQL replica (the preview) started on
/// the copied database answers the same reads with the same keys, opens the same provider keys
/// with the same `ENCRYPTION_KEY`, and gives the same usage figures to the nano-dollar.
#[tokio::test]
async fn a_replica_on_the_copy_serves_the_same_answers() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = used_instance().await;
    populate(&app).await;
    let owner = app.create_key("acme", "owner").await;
    let service = app.create_key("default", "service").await;
    let reads: Vec<(&str, &str)> = vec![
        ("/api/tenants", ADMIN),
        ("/api/tenants/acme", ADMIN),
        ("/api/tenant/acme/members", ADMIN),
        ("/api/members", owner.as_str()),
        ("/api/settings", owner.as_str()),
        ("/api/settings/history", owner.as_str()),
        ("/api/keys", owner.as_str()),
        ("/api/pricing", owner.as_str()),
        ("/api/credentials/openai", service.as_str()),
        ("/api/tenant/acme/keys", ADMIN),
        (
            "/api/usage/stats?group_by=model&from=2026-09-01T00:00:00Z&to=2026-10-01T00:00:00Z",
            owner.as_str(),
        ),
        (
            "/api/usage/stats?group_by=day&from=2026-09-01T00:00:00Z&to=2026-10-01T00:00:00Z",
            owner.as_str(),
        ),
        ("/api/usage/events?limit=100", owner.as_str()),
        ("/api/agents/usage", owner.as_str()),
        ("/api/events?limit=100", owner.as_str()),
    ];
    let mut before = Vec::new();
    for (path, token) in &reads {
        let r = app.get(path, token).await;
        assert_eq!(r.status, 200, "{path} on SQLite: {}", r.body);
        before.push(r.body);
    }
    let clock_at = tenantry::clock::Clock::now(&*app.clock);
    let (dir, _) = app.stop().await;
    let out = copy(dir.path(), &url);
    assert!(out.status.success(), "{}", output_text(&out));
    let replica = spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url.as_str()),
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENCRYPTION_KEY", KEY),
        ],
        |_| {},
    )
    .await;
    replica.clock.set(clock_at);
    for ((path, token), expected) in reads.iter().zip(before) {
        let r = replica.get(path, token).await;
        assert_eq!(r.status, 200, "{path} on PostgreSQL: {}", r.body);
        assert_eq!(r.body, expected, "{path} answers differently on the copy");
    }
}
