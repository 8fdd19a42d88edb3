//! The PostgreSQL store (docs/SCALE_OUT.md): the connection pool, the embedded
//! `migrations/postgres` applied under an advisory lock, the schema as the catalog describes it,
//! the cache listener and the leader election. Chosen by `TENANTRY_DATABASE_URL`; each area keeps
//! its own PostgreSQL statements beside its SQLite ones (see `Db::pg`).
pub mod copy;
pub mod leader;
pub mod listen;
pub mod meta;
pub mod migrate;
pub mod notify;
pub mod schema;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;

/// A pool of connections to one PostgreSQL database.
#[derive(Clone)]
pub struct Pg {
    pool: Pool,
    config: tokio_postgres::Config,
    /// Whether this replica holds the `leader` row (see `leader`); shared by the pool's clones.
    leader: leader::Flag,
}

pub type Client = deadpool_postgres::Object;

/// Whether `url` names a PostgreSQL database; the parse error never repeats the URL, which may
/// hold a password.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let shape = "must be a URL like postgres://user:password@host:5432/database";
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("TENANTRY_DATABASE_URL {shape}"));
    }
    let config = tokio_postgres::Config::from_str(url)
        .map_err(|_| format!("TENANTRY_DATABASE_URL {shape}"))?;
    if config.get_dbname().is_none() {
        return Err(format!(
            "TENANTRY_DATABASE_URL names no database; it {shape}"
        ));
    }
    Ok(config)
}

/// A connection error without the connection string: tokio-postgres's messages name the host
/// and the failure, never the password.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl Pg {
    /// A pool of at most `size` connections; nothing connects until the first use.
    pub fn new(url: &str, size: usize) -> Result<Pg, String> {
        let config = parse_url(url)?;
        let manager = Manager::from_config(
            config.clone(),
            tls(),
            ManagerConfig {
                // A connection that failed is dropped by deadpool; one that only idled is
                // reused without a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(std::time::Duration::from_secs(10)))
            .create_timeout(Some(std::time::Duration::from_secs(10)))
            .build()
            .map_err(|e| format!("cannot make a PostgreSQL pool: {e}"))?;
        Ok(Pg {
            pool,
            config,
            leader: leader::Flag::default(),
        })
    }

    /// The connection settings, for a connection of its own outside the pool (the usage writer).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    pub async fn client(&self) -> Result<Client, String> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => {
                format!("cannot connect to PostgreSQL: {}", describe(&e))
            }
            other => format!("cannot connect to PostgreSQL: {other}"),
        })
    }

    /// A pooled connection for a request: when PostgreSQL cannot be reached (down, restarting,
    /// failing over) or the pool stays exhausted, 503 `not_ready`, as `/ready` answers then.
    pub async fn conn(&self) -> Result<Client, crate::error::ApiError> {
        self.client().await.map_err(|e| {
            tracing::warn!(error = %e, "no PostgreSQL connection for a request");
            crate::error::ApiError::NotReady
        })
    }

    /// Connects and applies the pending migrations (see `migrate`): what every command that
    /// uses PostgreSQL does first.
    pub async fn open(url: &str, size: usize) -> Result<Pg, String> {
        let pg = Pg::new(url, size)?;
        let mut c = pg.client().await?;
        migrate::apply(&mut c).await?;
        Ok(pg)
    }
}

/// Runs `task` on a thread named `name` with a runtime of its own: the shape of every
/// PostgreSQL background loop (each ends by itself once its server's liveness is gone).
pub fn spawn_task<F>(name: &str, task: F) -> Result<(), String>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("{name}: no runtime: {e}"))?;
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || rt.block_on(task))
        .map(|_| ())
        .map_err(|e| format!("{name} did not start: {e}"))
}

/// Runs `f` on a small runtime of its own: for the commands (`migrate`, `copy`, `verify`), which
/// run outside the server's.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    Ok(rt.block_on(f))
}

/// Whether `e` is a unique or primary-key violation (SQLSTATE 23505), SQLite's
/// `sql::is_unique_violation` on PostgreSQL.
pub fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Maps a unique violation to 409 `conflict` with `what`, anything else to an internal error.
pub fn conflict_on_unique(e: tokio_postgres::Error, what: &str) -> crate::error::ApiError {
    if is_unique_violation(&e) {
        crate::error::ApiError::Conflict(what.to_string())
    } else {
        e.into()
    }
}

/// How tokio-postgres wraps a connection's socket under `tls()`.
pub type TlsStream =
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream;

/// The TLS every PostgreSQL connection may use: rustls (ring) with the system's root
/// certificates, loaded once. Whether a connection uses it is the URL's `sslmode`
/// (tokio-postgres: `prefer`, the default, tries TLS and falls back to plain when the server has
/// none; `require` refuses plain; `disable` never tries).
pub fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    static CONFIG: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let mut roots = rustls::RootCertStore::empty();
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A certificate the store cannot parse is skipped, as browsers do.
            let _ = roots.add(cert);
        }
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
    });
    tokio_postgres_rustls::MakeRustlsConnect::new(config.clone())
}
