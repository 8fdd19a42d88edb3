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

const KEY: &str = "cli-test-encryption-key";

fn run(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    crate::helpers::cli(dir)
        .args(args)
        .env("ENCRYPTION_KEY", KEY)
        .output()
        .unwrap()
}

/// A failure: the exit code, and one line on stderr that says why.
#[track_caller]
fn fails_in_one_line(out: &std::process::Output, code: i32, words: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("tenantry: "), "{err}");
    assert!(err.contains(words), "`{words}` not in: {err}");
}

/// A real tenantry database with three b-tree pages overwritten: SQLite's integrity report
/// about it spans several lines.
fn damaged_snapshot(root: &std::path::Path) -> std::path::PathBuf {
    let src = root.join("source");
    assert!(run(&src, &["migrate"]).status.success());
    let mut bytes = std::fs::read(src.join("tenantry.db")).unwrap();
    for page in 3..6 {
        let at = (page - 1) * 4096 + 8;
        bytes[at..at + 32].fill(0xff);
    }
    let damaged = root.join("damaged.db");
    std::fs::write(&damaged, bytes).unwrap();
    damaged
}

#[test]
fn every_failing_command_says_why_in_one_line_and_creates_no_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let p = |name: &str| root.path().join(name).to_string_lossy().into_owned();
    std::fs::write(p("corrupt.db"), b"not a database, just bytes").unwrap();
    let damaged = damaged_snapshot(root.path());
    let export =
        r#"{"format": "tenantry-tenant-export", "format_version": 1, "schema_version": 1}"#;
    std::fs::write(p("export.json"), export).unwrap();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["restore".into(), p("missing.db")], "no such file"),
        (
            vec!["restore".into(), p("corrupt.db")],
            "not a readable SQLite database",
        ),
        (
            vec!["restore".into(), damaged.to_string_lossy().into()],
            "is corrupt",
        ),
        (vec!["backup".into(), p("out.db")], "no database"),
        (
            vec!["tenant".into(), "export".into(), "acme".into()],
            "no database",
        ),
        (
            vec!["tenant".into(), "import".into(), p("export.json")],
            "no database",
        ),
        (
            vec!["tenant".into(), "import".into(), p("missing.json")],
            "cannot read",
        ),
        (
            vec!["tenant".into(), "import".into(), p("corrupt.db")],
            "not JSON",
        ),
        (vec!["rotate-encryption-key".into()], "no database"),
        (
            vec!["pricing".into(), "import".into(), p("export.json")],
            "no database",
        ),
        (
            vec!["pricing".into(), "import".into(), p("missing.json")],
            "cannot read",
        ),
        (
            vec!["pricing".into(), "import".into(), p("corrupt.db")],
            "not JSON",
        ),
    ];
    for (args, words) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails_in_one_line(&run(&data, &args), 1, words);
        assert!(!data.exists(), "{args:?} created the data directory");
    }
    // The command line itself wrong: exit 2, still one line.
    for args in [
        vec!["restore"],
        vec!["frobnicate"],
        vec!["backup", "--nope", "x"],
    ] {
        fails_in_one_line(&run(&data, &args), 2, "");
        assert!(!data.exists());
    }
}

#[test]
fn failed_commands_leave_no_lock_file_in_an_existing_data_dir() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    assert!(run(&data, &["migrate"]).status.success());
    let corrupt = root.path().join("corrupt.db");
    std::fs::write(&corrupt, b"not a database").unwrap();
    let not_export = root.path().join("x.json");
    std::fs::write(&not_export, "{}").unwrap();
    let lock = data.join("tenantry.lock");
    assert!(!lock.exists());
    // No ENCRYPTION_KEY_OLD.
    let out = run(&data, &["rotate-encryption-key"]);
    fails_in_one_line(&out, 1, "ENCRYPTION_KEY_OLD");
    assert!(!lock.exists(), "rotate-encryption-key left a lock file");
    fails_in_one_line(
        &run(&data, &["restore", corrupt.to_str().unwrap()]),
        1,
        "SQLite",
    );
    assert!(!lock.exists(), "restore left a lock file");
    fails_in_one_line(
        &run(&data, &["tenant", "import", not_export.to_str().unwrap()]),
        1,
        "not a tenantry tenant export",
    );
    assert!(!lock.exists(), "import left a lock file");
    // A price file is read whole before the lock is taken; one that imports is no failure,
    // and it too leaves no lock file behind.
    fails_in_one_line(
        &run(&data, &["pricing", "import", corrupt.to_str().unwrap()]),
        1,
        "not JSON",
    );
    assert!(
        run(&data, &["pricing", "import", not_export.to_str().unwrap()])
            .status
            .success()
    );
    assert!(!lock.exists(), "pricing import left a lock file");
}

#[test]
fn backup_and_export_refuse_an_existing_file_unless_forced() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    assert!(run(&data, &["migrate"]).status.success());
    let file = root.path().join("snapshot.db");
    std::fs::write(&file, b"precious").unwrap();
    let f = file.to_str().unwrap();
    fails_in_one_line(&run(&data, &["backup", f]), 1, "--force");
    assert_eq!(std::fs::read(&file).unwrap(), b"precious", "left as it was");
    let out = run(&data, &["backup", "--force", f]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(std::fs::read(&file).unwrap(), b"precious");

    let json = root.path().join("default.json");
    std::fs::write(&json, b"precious").unwrap();
    let j = json.to_str().unwrap();
    fails_in_one_line(
        &run(&data, &["tenant", "export", "default", "--output", j]),
        1,
        "--force",
    );
    assert_eq!(std::fs::read(&json).unwrap(), b"precious");
    let out = run(
        &data,
        &["tenant", "export", "default", "--output", j, "--force"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(doc["tenant"]["slug"], "default");
}

#[test]
fn unknown_values_stop_the_start_with_one_line_naming_the_variable() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    for (var, value) in [
        ("TENANTRY_LOG_FORMAT", "xml"),
        ("TENANTRY_LOG", "nonsense==="),
        ("ENCRYPTION_KEY", "x"),
        ("TENANTRY_BODY_TIMEOUT", "forever"),
        ("TENANTRY_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("TENANTRY_TRUSTED_PROXIES", "proxy.internal"),
        ("TENANTRY_PROVIDER_KEY_open-ai", "sk-0123456789"),
        ("TENANTRY_BACKUP_KEEP", "many"),
    ] {
        let out = crate::helpers::cli(&data)
            .arg("serve")
            .env("TENANTRY_BIND", "127.0.0.1:0")
            .env(var, value)
            .output()
            .unwrap();
        fails_in_one_line(&out, 1, var);
        assert!(!data.exists(), "{var}={value} created the data directory");
    }
}

#[test]
fn help_lists_every_variable_the_code_reads_and_describes_every_argument() {
    let help = tenantry().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    // Every variable name anywhere in the sources.
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let words =
                text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'));
            for w in words {
                if ["TENANTRY_", "ENABLE_", "ENCRYPTION_KEY"]
                    .iter()
                    .any(|p| w.starts_with(p))
                {
                    names.insert(w.to_string());
                }
            }
        }
    }
    assert!(names.len() >= 15, "{names:?}");
    for name in &names {
        // `TENANTRY_PROVIDER_KEY_OPENAI` and the like are one family.
        let listed = if name.starts_with("TENANTRY_PROVIDER_KEY_") {
            help.contains("TENANTRY_PROVIDER_KEY_<PROVIDER>")
        } else {
            help.contains(&format!("{name} "))
        };
        assert!(listed, "{name} is not in --help:\n{help}");
    }
    // Every argument and option of every subcommand has a description.
    for cmd in [
        &["serve"][..],
        &["migrate"],
        &["rotate-encryption-key"],
        &["backup"],
        &["restore"],
        &["copy"],
        &["tenant", "export"],
        &["tenant", "import"],
    ] {
        let out = tenantry().args(cmd).arg("--help").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut section = false;
        for line in text.lines() {
            if line == "Arguments:" || line == "Options:" {
                section = true;
                continue;
            }
            if section && !line.trim().is_empty() {
                let described = line
                    .trim()
                    .split("  ")
                    .filter(|s| !s.trim().is_empty())
                    .count()
                    >= 2;
                assert!(described, "{cmd:?}: `{line}` has no description:\n{text}");
            }
        }
    }
}
