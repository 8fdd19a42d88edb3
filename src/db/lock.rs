//! One server per data directory: a running server holds an exclusive lock on
//! `tenantry.lock`, and commands that must not run beside it (key rotation, restore) check it.
//! The lock is the operating system's, so a crashed server never leaves it behind.
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

fn open(dir: &Path) -> Result<File, String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let path = dir.join("tenantry.lock");
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

/// Takes the lock, waiting up to `wait` for a stopping server to let go of it.
pub fn acquire(dir: &Path, wait: Duration) -> Result<File, String> {
    let f = open(dir)?;
    let started = Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if started.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(TryLockError::WouldBlock) => {
                return Err(format!(
                    "another tenantry server is running on {}; stop it first",
                    dir.display()
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", dir.display()))
            }
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
}
