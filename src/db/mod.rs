//! The SQLite store: one r2d2 pool of connections with the same pragmas, the embedded migrations,
//! and `Db::run`, which moves blocking database work off the async workers.
pub mod backup;
pub mod checkpoint;
pub mod files;
pub mod lock;
pub mod meta;
pub mod migrate;
pub mod pg;
pub mod sql;
pub mod sweep;

use crate::error::ApiError;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

pub type Pool = r2d2::Pool<SqliteConnectionManager>;

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    path: std::path::PathBuf,
    sync_full: bool,
    /// Serialises the writes that update an in-memory cache after their commit (tenants,
    /// members, keys, settings, provider keys), so each write and its cache update happen as
    /// one step: two concurrent writers cannot leave a cache stale. Shared by every clone.
    writes: std::sync::Arc<std::sync::Mutex<()>>,
}

/// Pragmas every connection gets. WAL lets readers run beside the writer; `synchronous=NORMAL`
/// in WAL mode keeps every committed transaction across a process crash (`kill -9`).
fn init_connection(c: &mut Connection, sync_full: bool) -> rusqlite::Result<()> {
    c.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;
         PRAGMA temp_store = MEMORY;",
    )?;
    c.pragma_update(
        None,
        "synchronous",
        if sync_full { "FULL" } else { "NORMAL" },
    )
}

impl Db {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub fn open(path: &Path, sync_full: bool) -> Result<Db, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            files::create_private_dir(dir)?;
        }
        // SQLite gives the WAL and SHM the database file's mode, so a database created 0600
        // keeps all three private; older installs are brought in line.
        files::create_private_file(path)?;
        files::make_database_private(path)?;
        {
            // WAL is a property of the file; set it once before the pool opens it.
            let c = Connection::open(path)
                .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
            c.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| format!("cannot enable WAL on {}: {e}", path.display()))?;
        }
        let manager = SqliteConnectionManager::file(path)
            .with_init(move |c: &mut Connection| init_connection(c, sync_full));
        let pool = r2d2::Pool::builder()
            .max_size(16)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| format!("cannot open database {}: {e}", path.display()))?;
        let db = Db {
            pool,
            path: path.to_path_buf(),
            sync_full,
            writes: std::sync::Arc::default(),
        };
        {
            let mut c = db.pool.get().map_err(|e| e.to_string())?;
            migrate::apply(&mut c)?;
        }
        Ok(db)
    }

    /// A connection of its own, outside the pool, for the usage writer thread.
    pub fn dedicated(&self) -> Result<Connection, String> {
        let mut c = Connection::open(&self.path).map_err(|e| e.to_string())?;
        init_connection(&mut c, self.sync_full).map_err(|e| e.to_string())?;
        Ok(c)
    }

    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, ApiError> {
        Ok(self.pool.get()?)
    }

    /// Runs blocking database work on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Whether the database answers a query (readiness).
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.run(|c| {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
            Ok(())
        })
        .await
    }

    /// As `run`, one write at a time (see `writes`); `f` updates its caches after its commit.
    pub async fn write<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let writes = self.writes.clone();
        self.run(move |c| {
            let _serial = writes.lock().unwrap_or_else(|p| p.into_inner());
            f(c)
        })
        .await
    }

    /// As `write`, for a thread of its own outside the async runtime (the events sweeper).
    pub fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.pool.get()?;
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut conn)
    }
}
