//! Operations: online backup, verified restore, tenant export and import, graceful shutdown.
use crate::helpers::{
    cli, config, ingest_until_refused, spawn_with, start, Process, TestApp, ADMIN,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn tenantry(dir: &Path, args: &[&str], key: &str) -> Output {
    cli(dir)
        .args(args)
        .env("ENCRYPTION_KEY", key)
        .output()
        .unwrap()
}

#[track_caller]
fn fails_with(out: &Output, words: &str) {
    assert!(!out.status.success(), "should have failed");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains(words), "`{words}` not in: {err}");
}

fn event_ids(db: &Path) -> HashSet<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut s = c
        .prepare("SELECT event_id FROM usage_events WHERE event_id IS NOT NULL")
        .unwrap();
    let ids = s
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids
}

/// Ingests batches of 10 until told to stop; returns the acknowledged event ids.
fn ingest_in_background(
    app: &TestApp,
    stop: Arc<Mutex<bool>>,
) -> (Arc<Mutex<HashSet<String>>>, tokio::task::JoinHandle<()>) {
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (client, url, a) = (app.client.clone(), app.address.clone(), acked.clone());
    let handle = tokio::spawn(async move {
        for b in 0.. {
            if *stop.lock().unwrap() {
                return;
            }
            let ids: Vec<String> = (0..10).map(|i| format!("b{b}-{i}")).collect();
            let events: Vec<Value> = ids.iter().map(|id| json!({"event_id": id, "model": "gpt-4o", "input_tokens": 3, "output_tokens": 1})).collect();
            let res = client
                .post(format!("{url}/api/usage/events"))
                .bearer_auth(ADMIN)
                .json(&json!({"events": events}))
                .send()
                .await;
            match res {
                Ok(r) if r.status() == 201 => a.lock().unwrap().extend(ids),
                _ => return,
            }
        }
    });
    (acked, handle)
}

#[tokio::test]
async fn a_backup_taken_during_ingest_holds_every_event_acknowledged_before_it() {
    let app = spawn_with(&[("ENCRYPTION_KEY", "ops-key-0123456789")]).await;
    let stop = Arc::new(Mutex::new(false));
    let (acked, handle) = ingest_in_background(&app, stop.clone());
    while acked.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = acked.lock().unwrap().clone();
    let file = app.dir.path().join("snap.db");
    let out = tenantry(
        app.dir.path(),
        &["backup", file.to_str().unwrap()],
        "ops-key-0123456789",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    *stop.lock().unwrap() = true;
    handle.await.unwrap();
    let in_backup = event_ids(&file);
    assert!(
        before.is_subset(&in_backup),
        "{} acknowledged before the backup are missing",
        before.difference(&in_backup).count()
    );
    assert!(
        !app.dir.path().read_dir().unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains(".tmp-")),
        "no temporary file left"
    );
}

#[tokio::test]
async fn restore_refuses_corrupt_newer_and_busy_and_keeps_the_replaced_database() {
    let app = spawn_with(&[
        ("ENABLE_MULTI_TENANT", "true"),
        ("ENCRYPTION_KEY", "ops-key-0123456789"),
    ])
    .await;
    app.create_tenant("before").await;
    let dir = app.dir.path().to_path_buf();
    let good = dir.join("good.db");
    assert!(tenantry(
        &dir,
        &["backup", good.to_str().unwrap()],
        "ops-key-0123456789"
    )
    .status
    .success());
    // A running server holds the database.
    fails_with(
        &tenantry(
            &dir,
            &["restore", good.to_str().unwrap()],
            "ops-key-0123456789",
        ),
        "running",
    );
    app.create_tenant("after").await;
    let (dir_guard, cfg) = app.stop().await;

    let corrupt = dir.join("corrupt.db");
    std::fs::write(&corrupt, b"this is not a database at all, just bytes").unwrap();
    fails_with(
        &tenantry(
            &dir,
            &["restore", corrupt.to_str().unwrap()],
            "ops-key-0123456789",
        ),
        "not a readable SQLite database",
    );
    let newer = dir.join("newer.db");
    std::fs::copy(&good, &newer).unwrap();
    rusqlite::Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 999)
        .unwrap();
    fails_with(
        &tenantry(
            &dir,
            &["restore", newer.to_str().unwrap()],
            "ops-key-0123456789",
        ),
        "newer",
    );
    fails_with(
        &tenantry(
            &dir,
            &["restore", dir.join("missing.db").to_str().unwrap()],
            "ops-key-0123456789",
        ),
        "no such file",
    );

    let out = tenantry(
        &dir,
        &["restore", good.to_str().unwrap()],
        "ops-key-0123456789",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let aside: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tenantry.db.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "the replaced database is kept");
    let app = start(dir_guard, cfg).await;
    assert_eq!(app.get("/api/tenants/before", ADMIN).await.status, 200);
    assert_eq!(
        app.get("/api/tenants/after", ADMIN).await.status,
        404,
        "the snapshot's state is back"
    );
}

async fn populated(key: &str) -> TestApp {
    let app = spawn_with(&[("ENABLE_MULTI_TENANT", "true"), ("ENCRYPTION_KEY", key)]).await;
    app.create_tenant("acme").await;
    app.put_member("acme", "alice", "owner").await;
    // A webhook endpoint first, so the events below queue deliveries that travel with it.
    let hook = app
        .post(
            "/api/tenant/acme/webhooks",
            ADMIN,
            json!({"url": "http://203.0.113.9/hook", "event_types": ["settings.*", "key.*"]}),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.body);
    app.create_key("acme", "service").await;
    app.call(
        "PATCH",
        "/api/tenant/acme/settings",
        Some(ADMIN),
        Some(json!({"execution_mode": "byo_key", "limits": {"daily_tokens": 5000}})),
    )
    .await;
    app.put(
        "/api/tenant/acme/settings/provider-keys/openai",
        ADMIN,
        json!({"api_key": "sk-exported-1234567"}),
    )
    .await;
    let events: Vec<Value> = (0..25).map(|i| json!({"event_id": format!("e{i}"), "model": "gpt-4o", "input_tokens": 100 + i, "output_tokens": 7, "cache_read_tokens": i, "cache_write_tokens": 1, "reasoning_tokens": 2, "agent_name": "w"})).collect();
    app.post(
        "/api/tenant/acme/usage/events",
        ADMIN,
        json!({"events": events}),
    )
    .await;
    app
}

async fn snapshot(app: &TestApp) -> Vec<Value> {
    let mut out = Vec::new();
    for p in [
        "/settings",
        "/settings/history",
        "/members",
        "/keys",
        "/usage/stats?group_by=model",
        "/credentials/openai",
        "/agents/usage",
        "/webhooks",
    ] {
        let mut v = app.get(&format!("/api/tenant/acme{p}"), ADMIN).await.body;
        if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
            for i in items {
                i.as_object_mut().unwrap().remove("revoked_at");
            }
        }
        out.push(v);
    }
    let events = app.walk("/api/tenant/acme/usage/events", ADMIN, 1000).await;
    out.push(json!(events.len()));
    // The raw events' own counts travel too, not only the rollups built from them.
    for field in [
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ] {
        let sum: i64 = events.iter().filter_map(|e| e[field].as_i64()).sum();
        out.push(json!({ field: sum }));
    }
    out
}

#[tokio::test]
async fn export_then_import_reproduces_the_tenant_and_a_different_key_is_refused_or_skipped() {
    let source = populated("shared-key-0123456789").await;
    let expected = snapshot(&source).await;
    let out = tenantry(
        source.dir.path(),
        &["tenant", "export", "acme"],
        "shared-key-0123456789",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = source.dir.path().join("acme.json");
    std::fs::write(&file, &out.stdout).unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("sk-exported"),
        "provider keys stay sealed"
    );

    // A fresh instance with the same ENCRYPTION_KEY (and so its own salt).
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        &dir,
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENCRYPTION_KEY", "shared-key-0123456789"),
        ],
    );
    c.admin_token = Some(tenantry::config::Secret::new(ADMIN));
    let target = start(dir, c.clone()).await;
    let (dir, c) = target.stop().await;
    let f = file.to_str().unwrap();
    let out = tenantry(
        dir.path(),
        &["tenant", "import", f],
        "shared-key-0123456789",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fails_with(
        &tenantry(
            dir.path(),
            &["tenant", "import", f],
            "shared-key-0123456789",
        ),
        "--replace",
    );
    assert!(tenantry(
        dir.path(),
        &["tenant", "import", "--replace", f],
        "shared-key-0123456789"
    )
    .status
    .success());
    let target = start(dir, c).await;
    assert_eq!(
        snapshot(&target).await,
        expected,
        "the imported tenant is the exported one"
    );
    // Its webhook secret was sealed again under this instance's key, deliveries with it.
    let hooks = target.get("/api/tenant/acme/webhooks", ADMIN).await.body;
    let id = hooks["items"][0]["id"].as_str().unwrap().to_string();
    let d = target
        .get(&format!("/api/tenant/acme/webhooks/{id}/deliveries"), ADMIN)
        .await;
    assert_eq!(d.body["items"].as_array().unwrap().len(), 2, "{}", d.body);
    let checked = tenantry(dir_of(&target), &["verify"], "shared-key-0123456789");
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );

    // Another ENCRYPTION_KEY: refused, or imported without provider keys when asked.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(
        &dir,
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENCRYPTION_KEY", "other-key-0123456789"),
        ],
    );
    c.admin_token = Some(tenantry::config::Secret::new(ADMIN));
    let (dir, c) = start(dir, c).await.stop().await;
    fails_with(
        &tenantry(dir.path(), &["tenant", "import", f], "other-key-0123456789"),
        "different ENCRYPTION_KEY",
    );
    let out = tenantry(
        dir.path(),
        &["tenant", "import", "--skip-provider-keys", f],
        "other-key-0123456789",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = start(dir, c).await;
    assert_eq!(
        other.get("/api/tenant/acme/settings", ADMIN).await.body["provider_keys"],
        json!({})
    );
    // Webhook secrets are sealed like provider keys, so they are skipped with them.
    assert_eq!(
        other.get("/api/tenant/acme/webhooks", ADMIN).await.body["items"],
        json!([])
    );
    other
        .get("/api/tenant/acme/credentials/openai", ADMIN)
        .await
        .assert_error(409, "byo_key_missing");
    assert_eq!(
        other.get("/api/tenant/acme/usage/stats", ADMIN).await.body["totals"]["events"],
        25
    );
    fails_with(
        &tenantry(
            dir_of(&other),
            &["tenant", "import", "/nonexistent.json"],
            "other-key-0123456789",
        ),
        "cannot read",
    );
}

fn dir_of(app: &TestApp) -> &Path {
    app.dir.path()
}

#[tokio::test]
async fn sigterm_during_ingest_exits_0_and_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start(
        dir.path(),
        &[
            ("TENANTRY_ADMIN_TOKEN", ADMIN),
            ("ENCRYPTION_KEY", "sigterm-key-0123456789"),
            ("TENANTRY_LOG", "warn"),
        ],
    );
    let url = server.url.clone();
    let (acked, tasks) = ingest_until_refused(&url, ADMIN, 6, 10);
    while acked.lock().unwrap().len() < 1000 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let (status, _) = server.wait();
    for t in tasks {
        let _ = t.await;
    }
    assert_eq!(status.code(), Some(0), "graceful exit");
    let stored = event_ids(&dir.path().join("tenantry.db"));
    let acked = acked.lock().unwrap().clone();
    let lost = acked.difference(&stored).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events lost",
        acked.len()
    );
}

#[tokio::test]
async fn scheduled_backups_are_written_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(&dir, &[("ENCRYPTION_KEY", "sched-key-0123456789")]);
    c.admin_token = Some(tenantry::config::Secret::new(ADMIN));
    // The environment variable allows a minute at least; the test sets a second directly.
    c.backup_interval = Some(Duration::from_millis(700));
    c.backup_keep = 2;
    let app = start(dir, c).await;
    app.post(
        "/api/usage/events",
        ADMIN,
        json!({"event_id": "x1", "model": "m", "input_tokens": 1, "output_tokens": 1}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let backups = app.dir.path().join("backups");
    let mut files: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "rotated to the newest 2: {files:?}");
    assert!(event_ids(files.last().unwrap()).contains("x1"));
}
