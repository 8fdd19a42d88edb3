//! The binary itself: help, migrate, refusing a newer schema, and what `serve` prints.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn tenantry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tenantry"));
    c.env_remove("TENANTRY_ADMIN_TOKEN")
        .env_remove("ENABLE_MULTI_TENANT")
        .env_remove("TENANTRY_BIND");
    c
}

#[test]
fn help_names_the_subcommands() {
    let out = tenantry().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("migrate"), "{text}");
}

#[test]
fn migrate_creates_the_database_at_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenantry()
        .arg("migrate")
        .env("TENANTRY_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
    let v: i64 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, tenantry::db::migrate::latest());
}

#[test]
fn a_newer_schema_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenantry.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.pragma_update(None, "user_version", 999).unwrap();
    drop(db);
    for cmd in ["migrate", "serve"] {
        let out = tenantry()
            .arg(cmd)
            .env("TENANTRY_DATA_DIR", dir.path())
            .env("TENANTRY_BIND", "127.0.0.1:0")
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        let reason: Vec<_> = err.lines().filter(|l| l.starts_with("tenantry:")).collect();
        assert_eq!(reason.len(), 1, "{err}");
        assert!(reason[0].contains("newer"), "{err}");
    }
}

#[test]
fn bad_configuration_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = tenantry()
        .env("TENANTRY_DATA_DIR", dir.path())
        .env("ENABLE_MULTI_TENANT", "maybe")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("ENABLE_MULTI_TENANT"));
}

/// What the README promises: `serve` prints where to go and, on first start, the admin token.
#[test]
fn serve_prints_the_url_and_a_working_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tenantry()
        .env("TENANTRY_DATA_DIR", dir.path())
        .env("TENANTRY_BIND", "127.0.0.1:0")
        .env("TENANTRY_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut url, mut token) = (None, None);
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("tenantry: serving ") {
            url = rest.split_whitespace().next().map(String::from);
        }
        if let Some(rest) =
            line.strip_prefix("tenantry: admin token (shown once, stored only as a hash): ")
        {
            token = Some(rest.trim().to_string());
            break;
        }
    }
    let (url, token) = (url.expect("url printed"), token.expect("token printed"));
    // Keep draining stderr: a server whose log pipe is closed is not what we are testing.
    std::thread::spawn(move || lines.for_each(drop));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/api/features"))
            .bearer_auth(&token)
            .send()
            .await
            .map(|r| r.status())
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status.expect("server answers"), 200);
}
