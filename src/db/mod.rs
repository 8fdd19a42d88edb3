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
    backend: Backend,
    /// Serialises the writes that update an in-memory cache after their commit (tenants,
    /// members, keys, settings, provider keys), so each write and its cache update happen as
    /// one step: two concurrent writers cannot leave a cache stale. Shared by every clone.
    writes: std::sync::Arc<std::sync::Mutex<()>>,
    /// The same for the PostgreSQL paths, which hold it across awaits.
    pg_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Which store this server keeps its state in.
#[derive(Clone)]
enum Backend {
    Sqlite {
        pool: Pool,
        path: std::path::PathBuf,
        sync_full: bool,
    },
    /// PostgreSQL (issue 19, being built): the areas that have a PostgreSQL store take
    /// `Db::pg`; the SQLite entry points below refuse, so an area without one fails loudly
    /// instead of touching a file that is not the database.
    Postgres(Box<pg::Pg>),
}

fn sqlite_only() -> ApiError {
    ApiError::NotOnPostgres
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
        {
            let mut c = pool.get().map_err(|e| e.to_string())?;
            migrate::apply(&mut c)?;
        }
        Ok(Db::with(Backend::Sqlite {
            pool,
            path: path.to_path_buf(),
            sync_full,
        }))
    }

    fn with(backend: Backend) -> Db {
        Db {
            backend,
            writes: std::sync::Arc::default(),
            pg_writes: std::sync::Arc::default(),
        }
    }

    /// A PostgreSQL database, already migrated (`pg::Pg::open`).
    pub fn postgres(pg: pg::Pg) -> Db {
        Db::with(Backend::Postgres(Box::new(pg)))
    }

    /// The PostgreSQL pool, when the store is PostgreSQL.
    pub fn pg(&self) -> Option<&pg::Pg> {
        match &self.backend {
            Backend::Postgres(pg) => Some(pg),
            Backend::Sqlite { .. } => None,
        }
    }

    /// As `write`'s lock, for PostgreSQL paths: held across their awaits until the cache is
    /// updated after the commit.
    pub async fn pg_write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.pg_writes.lock().await
    }

    /// The same lock, shared: the replica listener applies other replicas' changes under it.
    pub fn pg_writes(&self) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        self.pg_writes.clone()
    }

    fn pool(&self) -> Result<&Pool, ApiError> {
        match &self.backend {
            Backend::Sqlite { pool, .. } => Ok(pool),
            Backend::Postgres(_) => Err(sqlite_only()),
        }
    }

    /// A connection of its own, outside the pool, for the usage writer thread.
    pub fn dedicated(&self) -> Result<Connection, String> {
        let Backend::Sqlite {
            path, sync_full, ..
        } = &self.backend
        else {
            return Err(sqlite_only().to_string());
        };
        let mut c = Connection::open(path).map_err(|e| e.to_string())?;
        init_connection(&mut c, *sync_full).map_err(|e| e.to_string())?;
        Ok(c)
    }

    pub fn conn(&self) -> Result<r2d2::PooledConnection<SqliteConnectionManager>, ApiError> {
        Ok(self.pool()?.get()?)
    }

    /// Runs blocking database work on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut Connection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool()?.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Whether the database answers a query (readiness).
    pub async fn ping(&self) -> Result<(), ApiError> {
        if let Some(pg) = self.pg() {
            pg.client()
                .await
                .map_err(ApiError::internal)?
                .query_one("SELECT 1", &[])
                .await?;
            return Ok(());
        }
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
            immediate(c, f)
        })
        .await
    }

    /// As `write`, for a thread of its own outside the async runtime (the events sweeper).
    pub fn write_blocking<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.pool()?.get()?;
        let _serial = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        immediate(&mut conn, f)
    }
}

/// Runs a write with the connection's transactions begun IMMEDIATE: the write lock is taken
/// (waiting in the busy handler) before the transaction reads. A deferred transaction that read
/// first and writes after another connection committed (the usage writer, the webhook recorder)
/// fails at once with SQLITE_BUSY_SNAPSHOT, which no busy handler retries ("database is
/// locked"). The pooled connection goes back deferred, for the reads.
fn immediate<T>(
    c: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    c.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
    let result = f(c);
    c.set_transaction_behavior(rusqlite::TransactionBehavior::Deferred);
    result
}
