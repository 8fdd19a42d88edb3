//! `tenantry tenant export` / `import` between the stores: a tenant exported from a SQLite
//! instance imports into PostgreSQL beside a running replica, which then serves the same
//! answers for its reads (the CSV export byte for byte, its keys working); exported back from
//! PostgreSQL it imports into a new SQLite instance with the same answers again. On PostgreSQL
//! the import is one transaction with SQLite's refusals.
use crate::helpers::{cli, config, pg_database, spawn_tuned, start, TestApp, ADMIN};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const KEY: &str = "transfer-test-encryption-key";

/// The command line on `dir`, on PostgreSQL at `url` when given.
fn tenantry(dir: &Path, url: Option<&str>, key: &str, args: &[&str]) -> Output {
    let mut c = cli(dir);
    if let Some(url) = url {
        c.env("TENANTRY_DATABASE_URL", url);
    }
    c.env("ENCRYPTION_KEY", key).args(args).output().unwrap()
}

#[track_caller]
fn succeeds(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn fails_with(out: &Output, words: &str) {
    assert_eq!(out.status.code(), Some(1), "should have failed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(words), "`{words}` not in: {err}");
}

/// A SQLite instance, whatever `TENANTRY_TEST_STORE` says.
async fn sqlite_instance() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        &dir,
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_HOSTED_QUEUE", "true"),
            ("ENCRYPTION_KEY", KEY),
        ],
    );
    c.admin_token = Some(tenantry::config::Secret::new(ADMIN));
    c.kdf = tenantry::crypto::KdfParams::parse("scrypt:10:8:1").unwrap();
    start(dir, c).await
}

/// A replica serving the PostgreSQL database at `url`.
async fn pg_instance(url: &str, key: &str) -> TestApp {
    spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_HOSTED_QUEUE", "true"),
            ("TENANTRY_DATABASE_URL", url),
            ("ENCRYPTION_KEY", key),
        ],
        |_| {},
    )
    .await
}

/// Acme with a member, a service key (returned), settings with a limit, a provider key, an
/// application event, a queued job and 25 usage events.
async fn populate(app: &TestApp) -> String {
    app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    let key = app.create_key("acme", "service").await;
    let r = app
        .call(
            "PATCH",
            "/api/tenant/acme/settings",
            Some(ADMIN),
            Some(json!({"execution_mode": "byo_key", "limits": {"daily_tokens": 500000}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .put(
            "/api/tenant/acme/settings/provider-keys/openai",
            ADMIN,
            json!({"api_key": "sk-transferred-1234567"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            "/api/events",
            &key,
            json!({"category": "data.sync", "event_type": "crm.sync", "severity": "info",
                   "message": "synced", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = app
        .post(
            "/api/jobs",
            &key,
            json!({"kind": "crawl", "payload": {"url": "x"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"event_id": format!("e{i}"), "model": if i % 2 == 0 { "gpt-4o" } else { "claude-haiku-4-5" },
                        "input_tokens": 100 + i, "output_tokens": 7, "cache_read_tokens": i,
                        "reasoning_tokens": 2, "agent_name": "w", "user_id": format!("u{}", i % 3),
                        "metadata": {"run": i, "note": "a \"quoted\", field"}}))
        .collect();
    let r = app
        .post("/api/usage/events", &key, json!({ "events": events }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    key
}

/// What a client reads of acme; the same on every instance that holds the same tenant.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    let tenant = app.get("/api/tenants/acme", ADMIN).await;
    assert_eq!(tenant.status, 200, "{}", tenant.body);
    let mut out = vec![tenant.body];
    for p in [
        "/settings",
        "/settings/history",
        "/members",
        "/keys",
        "/usage/stats?group_by=model",
        "/usage/stats?group_by=user_id",
        "/credentials/openai",
        "/agents/usage",
        "/jobs",
    ] {
        let r = app.get(&format!("/api/tenant/acme{p}"), ADMIN).await;
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        out.push(r.body);
    }
    out.push(json!(
        app.walk("/api/tenant/acme/usage/events", ADMIN, 7).await
    ));
    out.push(json!(app.walk("/api/tenant/acme/events", ADMIN, 7).await));
    out
}

/// The CSV export's bytes.
async fn csv(app: &TestApp) -> String {
    let r = app
        .request("GET", "/api/tenant/acme/usage/events/export", Some(ADMIN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Waits (at most 5 s) until `app` serves acme: the import's notification reaches it.
async fn until_served(app: &TestApp) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.get("/api/tenant/acme/settings", ADMIN).await.status != 200 {
        assert!(Instant::now() < deadline, "acme is never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tenant_moves_from_sqlite_to_postgres_and_back_with_the_same_answers() {
    let Some(url) = pg_database().await else {
        return;
    };
    let source = sqlite_instance().await;
    let key = populate(&source).await;
    let expected = snapshot(&source).await;
    let expected_csv = csv(&source).await;
    assert_eq!(expected_csv.lines().count(), 26, "{expected_csv}");
    let doc = succeeds(&tenantry(
        source.dir.path(),
        None,
        KEY,
        &["tenant", "export", "acme"],
    ));
    let file = source.dir.path().join("acme.json");
    std::fs::write(&file, &doc).unwrap();
    let f = file.to_str().unwrap();

    // Into PostgreSQL while a replica serves it.
    let target = pg_instance(&url, KEY).await;
    let here = tempfile::tempdir().unwrap();
    succeeds(&tenantry(
        here.path(),
        Some(&url),
        KEY,
        &["tenant", "import", f],
    ));
    until_served(&target).await;
    assert_eq!(snapshot(&target).await, expected, "the same answers");
    assert_eq!(csv(&target).await, expected_csv, "the same CSV bytes");
    // Its key works there, and new usage adds to the imported totals.
    let r = target
        .post(
            "/api/usage/events",
            &key,
            json!({"event_id": "e0", "model": "gpt-4o", "input_tokens": 1, "output_tokens": 1}),
        )
        .await;
    assert_eq!(
        (r.status, r.body["duplicates"].as_i64()),
        (201, Some(1)),
        "{}",
        r.body
    );
    fails_with(
        &tenantry(here.path(), Some(&url), KEY, &["tenant", "import", f]),
        "--replace",
    );
    // Its queued job is leased there (the import gave it its place in the rotation).
    let r = target
        .post("/api/queue/lease", &key, json!({"max_jobs": 5}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["jobs"].as_array().unwrap().len(), 1, "{}", r.body);
    let leased = target.get("/api/tenant/acme/jobs", ADMIN).await.body;
    assert_eq!(leased["items"][0]["status"], "running", "{leased}");
    // Changed on the replica, then replaced by the import: the replica's caches follow the
    // import's notifications within a second (the settings cache, a revoked key's access).
    let r = target
        .call(
            "PATCH",
            "/api/tenant/acme/settings",
            Some(ADMIN),
            Some(json!({"execution_mode": "hosted"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let extra = target.create_key("acme", "viewer").await;
    assert_eq!(target.get("/api/usage/stats", &extra).await.status, 200);
    succeeds(&tenantry(
        here.path(),
        Some(&url),
        KEY,
        &["tenant", "import", "--replace", f],
    ));
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let now = target.get("/api/tenant/acme/settings", ADMIN).await.body;
        let gone = target.get("/api/usage/stats", &extra).await.status == 401;
        if now == expected[1] && gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {now}, extra key gone: {gone}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(snapshot(&target).await, expected, "replaced by the same");
    let checked = tenantry(here.path(), Some(&url), KEY, &["verify"]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Back out of PostgreSQL into a new SQLite instance.
    let back = succeeds(&tenantry(
        here.path(),
        Some(&url),
        KEY,
        &["tenant", "export", "acme"],
    ));
    let file = here.path().join("back.json");
    std::fs::write(&file, &back).unwrap();
    let (dir, c) = sqlite_instance().await.stop().await;
    succeeds(&tenantry(
        dir.path(),
        None,
        KEY,
        &["tenant", "import", file.to_str().unwrap()],
    ));
    let again = start(dir, c).await;
    assert_eq!(snapshot(&again).await, expected, "the same answers again");
    assert_eq!(csv(&again).await, expected_csv);
}

#[tokio::test]
async fn an_import_into_postgres_is_all_or_nothing_with_sqlites_refusals() {
    let Some(url) = pg_database().await else {
        return;
    };
    let source = sqlite_instance().await;
    populate(&source).await;
    let doc = succeeds(&tenantry(
        source.dir.path(),
        None,
        KEY,
        &["tenant", "export", "acme"],
    ));
    let mut doc: Value = serde_json::from_str(&doc).unwrap();
    let dir = source.dir.path();
    let write = |name: &str, v: &Value| {
        let p = dir.join(name);
        std::fs::write(&p, v.to_string()).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write("good.json", &doc);

    // Another ENCRYPTION_KEY on the target: refused, or imported without provider keys.
    let other = "other-transfer-key-0123456789";
    let target = pg_instance(&url, other).await;
    let here = tempfile::tempdir().unwrap();
    fails_with(
        &tenantry(here.path(), Some(&url), other, &["tenant", "import", &good]),
        "different ENCRYPTION_KEY",
    );

    // A row that does not fit, last in the file: nothing of the tenant is stored.
    let events = doc["tables"]["usage_events"].as_array_mut().unwrap();
    events.last_mut().unwrap()["input_tokens"] = json!("many");
    let bad = write("bad.json", &doc);
    fails_with(
        &tenantry(
            here.path(),
            Some(&url),
            other,
            &["tenant", "import", "--skip-provider-keys", &bad],
        ),
        "cannot import a row of usage_events",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(target.get("/api/tenants/acme", ADMIN).await.status, 404);
    let c = crate::helpers::pg_connect(&url).await;
    let left: i64 = c
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);

    // Another tenant here with the slug: refused.
    target.create_tenant("acme").await;
    fails_with(
        &tenantry(
            here.path(),
            Some(&url),
            other,
            &["tenant", "import", "--skip-provider-keys", &good],
        ),
        "already has the slug `acme`",
    );
    let r = target
        .call(
            "PATCH",
            "/api/tenants/acme",
            Some(ADMIN),
            Some(json!({"slug": "acme-here"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    succeeds(&tenantry(
        here.path(),
        Some(&url),
        other,
        &["tenant", "import", "--skip-provider-keys", &good],
    ));
    until_served(&target).await;
    assert_eq!(
        target.get("/api/tenant/acme/settings", ADMIN).await.body["provider_keys"],
        json!({})
    );
    assert_eq!(
        target.get("/api/tenant/acme/usage/stats", ADMIN).await.body["totals"]["events"],
        25
    );
    fails_with(
        &tenantry(
            here.path(),
            Some(&url),
            other,
            &["tenant", "export", "nobody"],
        ),
        "no tenant `nobody`",
    );
}

async fn default_stats(app: &TestApp) -> Value {
    let r = app
        .get("/api/tenant/default/usage/stats?group_by=model", ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn ingest_default(app: &TestApp, model: &str, n: i64) {
    let body = json!({"model": model, "input_tokens": n, "output_tokens": 1});
    let r = app
        .post("/api/tenant/default/usage/events", ADMIN, body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn the_default_tenant_is_replaced_in_place_on_postgres() {
    let Some(url) = pg_database().await else {
        return;
    };
    let source = sqlite_instance().await;
    ingest_default(&source, "gpt-4o", 10).await;
    ingest_default(&source, "gpt-4o", 20).await;
    let expected = default_stats(&source).await;
    let doc = succeeds(&tenantry(
        source.dir.path(),
        None,
        KEY,
        &["tenant", "export", "default"],
    ));
    let file = source.dir.path().join("default.json");
    std::fs::write(&file, &doc).unwrap();
    let f = file.to_str().unwrap();

    let target = pg_instance(&url, KEY).await;
    ingest_default(&target, "claude-haiku-4-5", 99).await;
    let here = tempfile::tempdir().unwrap();
    fails_with(
        &tenantry(here.path(), Some(&url), KEY, &["tenant", "import", f]),
        "--replace",
    );
    succeeds(&tenantry(
        here.path(),
        Some(&url),
        KEY,
        &["tenant", "import", "--replace", f],
    ));
    assert_eq!(
        default_stats(&target).await,
        expected,
        "only what was imported"
    );
    // New usage adds to what was imported; `verify` checks `usage_totals` against the rollups.
    ingest_default(&target, "gpt-4o", 5).await;
    let after = default_stats(&target).await;
    assert_eq!(after["totals"]["events"], 3, "{after}");
    assert_eq!(after["totals"]["input_tokens"], 35, "{after}");
    let checked = tenantry(here.path(), Some(&url), KEY, &["verify"]);
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
}
