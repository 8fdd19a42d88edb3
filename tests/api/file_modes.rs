//! File modes: under the common umask 022 the data directory is still 0700 and every file in
//! it, backups and exports written to a file 0600 (the real binary, as an operator runs it).
#![cfg(unix)]
use crate::helpers::{cli, Process};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const ADMIN: &str = "file-modes-admin-token-0123";
const KEY: &str = "file-modes-encryption-key";

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// `cmd` run by a shell whose umask is 022, as most shells' is.
fn with_umask_022(cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh
}

fn run_022(dir: &Path, args: &[&str]) {
    let mut c = cli(dir);
    c.args(args).env("ENCRYPTION_KEY", KEY);
    let out = with_umask_022(&c).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tenantry serve` on `data`, on a free port, with the test's admin token.
fn serve_command(data: &Path) -> Command {
    let mut serve = cli(data);
    serve
        .arg("serve")
        .env("TENANTRY_BIND", "127.0.0.1:0")
        .env("TENANTRY_ADMIN_TOKEN", ADMIN);
    serve
}

#[tokio::test]
async fn the_data_dir_is_0700_and_every_file_0600_under_umask_022() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let serve = serve_command(&data);
    let server = Process::spawn(with_umask_022(&serve));
    // A write, so the WAL and SHM exist.
    let r = reqwest::Client::new()
        .post(format!("{}/api/keys", server.url))
        .bearer_auth(ADMIN)
        .json(&serde_json::json!({"name": "k", "role": "member"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let backup = root.path().join("snapshots").join("b.db");
    run_022(&data, &["backup", backup.to_str().unwrap()]);
    let export = root.path().join("default.json");
    run_022(
        &data,
        &[
            "tenant",
            "export",
            "default",
            "--output",
            export.to_str().unwrap(),
        ],
    );

    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(
        mode(backup.parent().unwrap()),
        0o700,
        "a directory made for a backup"
    );
    for f in [
        "tenantry.db",
        "tenantry.db-wal",
        "tenantry.db-shm",
        "tenantry.lock",
    ] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&backup), 0o600, "backup");
    assert_eq!(mode(&export), 0o600, "export");

    let mut server = server;
    server.child.kill().unwrap();
    server.wait();
    // A snapshot copied around with a loose mode is still restored 0600.
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    run_022(&data, &["restore", backup.to_str().unwrap()]);
    assert_eq!(mode(&data.join("tenantry.db")), 0o600, "restored database");
}

#[tokio::test]
async fn a_generated_key_file_is_0600_and_older_loose_files_are_tightened() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let serve = serve_command(&data);
    let mut server = Process::spawn(with_umask_022(&serve));
    server.child.kill().unwrap();
    server.wait();
    assert_eq!(mode(&data.join("encryption.key")), 0o600);
    // As an older version left them.
    for f in ["tenantry.db", "tenantry.db-wal", "tenantry.db-shm"] {
        let p = data.join(f);
        if p.exists() {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    let mut server = Process::spawn(with_umask_022(&serve));
    server.child.kill().unwrap();
    server.wait();
    for f in ["tenantry.db", "tenantry.db-wal", "tenantry.db-shm"] {
        let p = data.join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
}
