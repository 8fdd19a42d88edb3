//! One server per data directory: a running server holds an exclusive lock on
//! `tenantry.lock`, and commands that must not run beside it (key rotation, restore) check it.
//! The lock is the operating system's, so a crashed server never leaves it behind.
use super::files;
use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn open(path: &Path) -> Result<File, String> {
    files::private_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

fn running(dir: &Path) -> String {
    format!(
        "another tenantry server is running on {}; stop it first",
        dir.display()
    )
}

/// Locks the file at `path`, waiting up to `wait`. A lock file a command removed (see
/// `CommandLock`) may be locked through a stale handle; then the path names another file, and
/// the lock is taken again on the one the path names now.
fn lock(dir: &Path, path: &Path, wait: Duration) -> Result<File, String> {
    let started = Instant::now();
    let mut f = open(path)?;
    loop {
        match f.try_lock() {
            Ok(()) if files::same_file(&f, path) => return Ok(f),
            Ok(()) => f = open(path)?,
            Err(TryLockError::WouldBlock) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(TryLockError::WouldBlock) => return Err(running(dir)),
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", dir.display()))
            }
        }
    }
}

/// Takes the server's lock, creating the data directory (0700) when it is missing, and waiting
/// up to `wait` for a stopping server to let go of it.
pub fn acquire(dir: &Path, wait: Duration) -> Result<File, String> {
    files::create_private_dir(dir)?;
    lock(dir, &dir.join("tenantry.lock"), wait)
}

/// The lock a command (restore, import, key rotation) holds while it changes the database.
/// It never creates the data directory, and removes the lock file if it created it, so a
/// command leaves nothing behind, whether it succeeds or fails.
#[derive(Debug)]
pub struct CommandLock {
    _file: File,
    path: PathBuf,
    created: bool,
}

impl CommandLock {
    pub fn acquire(dir: &Path) -> Result<CommandLock, String> {
        if !dir.is_dir() {
            return Err(format!("no data directory at {}", dir.display()));
        }
        let path = dir.join("tenantry.lock");
        let created = files::create_private_file(&path)?;
        match lock(dir, &path, Duration::ZERO) {
            Ok(file) => Ok(CommandLock {
                _file: file,
                path,
                created,
            }),
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e)
            }
        }
    }
}

impl Drop for CommandLock {
    fn drop(&mut self) {
        // Removed while still held: anyone who opened it meanwhile notices the path moved on.
        if self.created {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), Duration::ZERO).unwrap();
        let err = acquire(dir.path(), Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("running"), "{err}");
        drop(first);
        assert!(acquire(dir.path(), Duration::ZERO).is_ok());
    }

    #[test]
    fn a_command_lock_leaves_no_file_and_no_directory_behind() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(CommandLock::acquire(&missing).is_err());
        assert!(!missing.exists());
        let held = CommandLock::acquire(dir.path()).unwrap();
        assert!(
            acquire(dir.path(), Duration::ZERO).is_err(),
            "a server waits"
        );
        drop(held);
        assert!(!dir.path().join("tenantry.lock").exists());
        let server = acquire(dir.path(), Duration::ZERO).unwrap();
        assert!(CommandLock::acquire(dir.path())
            .unwrap_err()
            .contains("running"));
        drop(server);
        assert!(
            dir.path().join("tenantry.lock").exists(),
            "the server's file stays"
        );
    }
}
