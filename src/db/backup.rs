//! Copies of the database file: a consistent online backup (also on a schedule), and a
//! verified restore that keeps the replaced file aside.
use super::{files, migrate};
use crate::config::Config;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

pub(crate) fn open_read_only(path: &Path) -> Result<Connection, String> {
    if !path.exists() {
        return Err(format!("no such file: {}", path.display()));
    }
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    c.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    Ok(c)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Writes a consistent snapshot of `db` to `out`, atomically (a temporary file, then a rename),
/// 0600. Safe while a server runs and writes: `VACUUM INTO` reads one committed state. An
/// existing `out` is refused unless `overwrite`.
pub fn backup(db: &Path, out: &Path, overwrite: bool) -> Result<u64, String> {
    let exists = || {
        format!(
            "{} already exists; pass --force to overwrite it",
            out.display()
        )
    };
    if !overwrite && out.exists() {
        return Err(exists());
    }
    let c = open_read_only(db)?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    files::create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name().and_then(|n| n.to_str()).unwrap_or("backup"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    // `VACUUM INTO` accepts an empty file and keeps its mode: the snapshot is never readable
    // by others, not even while it is written.
    files::create_private_file(&tmp)?;
    let written = c
        .execute("VACUUM INTO ?1", [tmp.to_string_lossy()])
        .map_err(|e| format!("backup failed: {e}"))
        .and_then(|_| files::make_private(&tmp))
        .and_then(|_| check_snapshot(&tmp).map_err(|e| format!("the snapshot did not verify: {e}")))
        .and_then(|_| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("cannot sync {}: {e}", tmp.display()))
        })
        .and_then(|_| {
            if overwrite {
                std::fs::rename(&tmp, out)
            } else {
                // A link fails on an existing name, so a file that appeared meanwhile is
                // still not overwritten.
                std::fs::hard_link(&tmp, out)
            }
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => exists(),
                _ => format!("cannot write {}: {e}", out.display()),
            })
        });
    let _ = std::fs::remove_file(&tmp);
    written?;
    sync_dir(dir);
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| e.to_string())
}

/// Writes `doc` as one line of JSON to a new file, 0600 (an export holds a tenant's data);
/// an existing file is refused unless `overwrite`.
pub fn check_snapshot(path: &Path) -> Result<i64, String> {
    let c = open_read_only(path)?;
    let ok: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{} is not a readable SQLite database ({e})", path.display()))?;
    if ok != "ok" {
        return Err(format!("{} is corrupt: {ok}", path.display()));
    }
    let version = migrate::current(&c).map_err(|e| e.to_string())?;
    let has_tenants: bool = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'tenants'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n == 1)
        .unwrap_or(false);
    if version < 1 || !has_tenants {
        return Err(format!("{} is not a tenantry database", path.display()));
    }
    if version > migrate::latest() {
        return Err(format!(
            "{} has schema version {version}, newer than this binary knows ({}); upgrade tenantry first",
            path.display(),
            migrate::latest()
        ));
    }
    Ok(version)
}

/// Replaces the database with a verified snapshot; the replaced file is kept beside it.
/// Refuses while a server holds the data directory. The snapshot is checked before anything is
/// created; a missing data directory is created (0700) only then, and removed again if the
/// restore fails after all.
pub fn restore(config: &Config, snapshot: &Path) -> Result<Option<PathBuf>, String> {
    check_snapshot(snapshot)?;
    let created = !config.data_dir.exists();
    if created {
        files::create_private_dir(&config.data_dir)?;
    }
    let staged = config.data_dir.join("tenantry.db.restoring");
    let result = crate::db::lock::CommandLock::acquire(&config.data_dir)
        .and_then(|_lock| replace_database(config, snapshot, &staged));
    if result.is_err() {
        let _ = std::fs::remove_file(&staged);
        if created {
            let _ = std::fs::remove_dir(&config.data_dir);
        }
    }
    result
}

fn replace_database(
    config: &Config,
    snapshot: &Path,
    staged: &Path,
) -> Result<Option<PathBuf>, String> {
    let db = config.db_path();
    std::fs::copy(snapshot, staged)
        .map_err(|e| format!("cannot copy {}: {e}", snapshot.display()))?;
    // `copy` gives the copy the snapshot's mode; the database is 0600 whatever that was.
    files::make_private(staged)?;
    std::fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| e.to_string())?;
    let mut aside = None;
    if db.exists() {
        // Fold the WAL into the file first, so the file set aside is complete on its own.
        let c = Connection::open(&db).map_err(|e| e.to_string())?;
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .map_err(|e| e.to_string())?;
        drop(c);
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let target = config
            .data_dir
            .join(format!("tenantry.db.replaced-{stamp}"));
        std::fs::rename(&db, &target)
            .map_err(|e| format!("cannot move the current database aside: {e}"))?;
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(config.data_dir.join(format!("tenantry.db{suffix}")));
        }
        aside = Some(target);
    }
    std::fs::rename(staged, &db).map_err(|e| format!("cannot put the snapshot in place: {e}"))?;
    sync_dir(&config.data_dir);
    Ok(aside)
}

/// Writes `backups/tenantry-<UTC time>.db` every `every`, keeping the newest `keep`.
pub fn schedule(
    db: std::path::PathBuf,
    dir: std::path::PathBuf,
    every: std::time::Duration,
    keep: usize,
    alive: std::sync::Weak<std::fs::File>,
) {
    std::thread::Builder::new()
        .name("backups".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            if alive.upgrade().is_none() {
                return;
            }
            let name = format!(
                "tenantry-{}.db",
                chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
            );
            match backup(&db, &dir.join(&name), false) {
                Ok(bytes) => tracing::info!(file = %name, bytes, "scheduled backup written"),
                Err(e) => tracing::error!(error = %e, "scheduled backup failed"),
            }
            let mut old: Vec<_> = std::fs::read_dir(&dir)
                .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            old.retain(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("tenantry-") && n.ends_with(".db"))
            });
            old.sort();
            for p in old.iter().take(old.len().saturating_sub(keep)) {
                let _ = std::fs::remove_file(p);
            }
        })
        .expect("the backup thread starts");
}
