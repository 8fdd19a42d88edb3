//! Building and running the application: open the store, load the caches, bind the listener
//! (port 0 in tests) and start the HTTP server with the shared state.
use crate::auth::{AdminToken, KeyCache};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::crypto::instance as encryption;
use crate::db::Db;
use crate::http;
use crate::settings::SettingsCache;
use crate::state::{AppState, Loaded};
use crate::tenancy::TenantCache;
use crate::usage::pricing::PricingTable;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{middleware, web, App, HttpServer};
use std::net::TcpListener;
use std::sync::Arc;

pub struct Application {
    port: u16,
    host: String,
    server: Server,
    state: AppState,
    /// The admin token, when this start generated it: the one time it is shown.
    pub generated_admin_token: Option<String>,
    /// Warnings for the operator (e.g. a generated encryption key file).
    pub notices: Vec<String>,
}

impl Application {
    pub fn build(config: Config) -> Result<Application, String> {
        Self::build_with_clock(config, Arc::new(SystemClock))
    }

    pub fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Application, String> {
        // Held for as long as any part of the server runs; released by the OS on exit or crash.
        let lock = crate::db::lock::acquire(&config.data_dir, std::time::Duration::from_secs(5))?;
        let mut notices = Vec::new();
        let (db, loaded, generated) = if let Some(url) = &config.database_url {
            open_postgres(&config, url.expose(), lock)?
        } else {
            let db = Db::open(&config.db_path(), config.sync_full)?;
            let mut c = db.conn().map_err(|e| e.to_string())?;
            let (master_key, notice) = encryption::master_key(&config, &mut c)?;
            notices.extend(notice);
            let load = |e: rusqlite::Error| format!("cannot load state from the database: {e}");
            let (admin, generated) =
                AdminToken::setup(&c, config.admin_token.as_ref()).map_err(load)?;
            let loaded = Loaded {
                tenants: TenantCache::load(&c).map_err(load)?,
                keys: KeyCache::load(&c).map_err(load)?,
                settings: SettingsCache::load(&c).map_err(load)?,
                pricing: PricingTable::load(&c).map_err(load)?,
                admin,
                master_key,
                lock,
            };
            (db, loaded, generated)
        };
        let listener = TcpListener::bind(&config.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let state = AppState::new(Arc::new(config), db, loaded, clock)?;
        match (state.db.pg(), &state.config.database_url) {
            (None, _) => start_background(&state)?,
            // On PostgreSQL the queue's rescue of expired leases and the webhook deliverer run
            // on every replica (safe together: `SKIP LOCKED`); finalizing statements,
            // retention, purge and the usage writer's receipts only on the replica that leads
            // (`Pg::leads`, §5.3).
            (Some(pg), Some(url)) => {
                let pool = crate::db::pg::Pg::new(url.expose(), 1)?;
                state.queue.start_rescuer(pool, state.liveness());
                // Sweeps only while this replica leads; a read of a final month stores its
                // statement on any replica.
                let pool = crate::db::pg::Pg::new(url.expose(), 1)?;
                let every = state.config.billing_finalize_every;
                state
                    .billing
                    .start_finalizer_pg(pool, every, state.liveness());
                start_leader_duties(&state, pg.clone(), url.expose())?;
                // Every replica delivers webhooks: leases keep each delivery to one (§5.2).
                crate::webhooks::deliverer_pg::Deliverer {
                    pool: crate::db::pg::Pg::new(url.expose(), 4)?,
                    clock: state.clock.clone(),
                    key: state.settings.master_key(),
                    timeout: state.config.webhook_timeout,
                    allow_private: state.config.webhook_allow_private,
                }
                .start(state.liveness())?;
            }
            (Some(_), None) => {}
        }
        let data = web::Data::new(state.clone());
        let bare = state.config.without_middleware;
        let server = HttpServer::new(move || {
            let app = App::new()
                .app_data(data.clone())
                .app_data(http::json_config())
                .app_data(http::query_config())
                .app_data(http::path_config())
                .app_data(web::PayloadConfig::new(http::MAX_BODY))
                .configure(http::configure)
                .default_service(web::to(http::not_found));
            let envelope = middleware::from_fn(http::middleware::envelope);
            // The body deadline sits inside the envelope, so a 408 gets its request id and log line.
            app.wrap(middleware::from_fn(http::body_timeout::limit))
                .wrap(middleware::Condition::new(!bare, envelope))
        })
        // A streamed answer is many small writes; with Nagle's algorithm each one after the
        // first waits for the client's delayed ACK (about 40 ms on Linux).
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .workers(workers)
        .shutdown_timeout(10)
        .listen(listener)
        .map_err(|e| format!("cannot serve on {addr}: {e}"))?
        .run();
        Ok(Application {
            port: addr.port(),
            host: addr.ip().to_string(),
            server,
            state,
            generated_admin_token: generated,
            notices,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until stopped (SIGTERM or SIGINT stop accepting and let in-flight requests
    /// finish, for up to 10 s), then waits for the usage writer to commit what it holds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Err(e) = self.state.usage.flush().await {
            tracing::error!(error = %e, "flushing the usage writer at shutdown");
        }
        if let Some(m) = &self.state.membership {
            m.resign().await;
        }
        result
    }
}

/// The SQLite server's background duties: backups, retention, finalizing statements, taking
/// back expired leases, purging, delivering webhooks. On PostgreSQL `build` starts their
/// PostgreSQL forms instead: lease rescue and webhook deliveries on every replica, the rest on
/// the replica that leads (docs/SCALE_OUT.md §5.3).
fn start_background(state: &AppState) -> Result<(), String> {
    let c = &state.config;
    if let Some(every) = c.backup_interval {
        let (db, dir) = (c.db_path(), c.data_dir.join("backups"));
        crate::db::backup::schedule(db, dir, every, c.backup_keep, state.liveness());
    }
    crate::events::retention::start(
        state.db.clone(),
        state.clock.clone(),
        c.events_retention_days,
        c.events_sweep_every,
        state.liveness(),
    );
    state
        .billing
        .start_finalizer(c.billing_finalize_every, state.liveness());
    state.queue.start_reclaimer(state.liveness());
    crate::usage::retention::start(
        state.db.clone(),
        state.clock.clone(),
        c.usage_retention_days,
        c.retention_sweep_every,
        state.liveness(),
    );
    crate::tenancy::purge::start(
        state.tenancy.clone(),
        c.purge_inactive_days,
        c.retention_sweep_every,
        state.liveness(),
    );
    crate::webhooks::worker::Worker {
        db: state.db.clone(),
        clock: state.clock.clone(),
        key: state.settings.master_key(),
        outbox: state.webhooks.outbox(),
        timeout: c.webhook_timeout,
        allow_private: c.webhook_allow_private,
    }
    .start(state.liveness())?;
    Ok(())
}

/// The leader's duties on PostgreSQL (docs/SCALE_OUT.md §5.3), each on a thread with a
/// connection of its own, each sweep skipped while `lead.leads()` is false.
fn start_leader_duties(state: &AppState, lead: crate::db::pg::Pg, url: &str) -> Result<(), String> {
    let c = &state.config;
    crate::events::retention::start_pg(
        lead.clone(),
        url,
        state.clock.clone(),
        c.events_retention_days,
        c.events_sweep_every,
        state.liveness(),
    )?;
    crate::usage::retention::start_pg(
        lead.clone(),
        url,
        state.clock.clone(),
        c.usage_retention_days,
        c.retention_sweep_every,
        state.liveness(),
    )?;
    crate::tenancy::purge::start_pg(
        state.tenancy.clone(),
        lead,
        url,
        c.purge_inactive_days,
        c.retention_sweep_every,
        state.liveness(),
    )
}

/// Opens PostgreSQL: migrates (under the advisory lock), installs or checks the encryption key
/// and the admin token in one transaction under the same lock (replicas starting together on
/// an empty database agree on one salt and one token), and loads the caches. The work runs on
/// a runtime of its own, on a thread of its own, since `build` may be called from inside one.
fn open_postgres(
    config: &Config,
    url: &str,
    lock: std::fs::File,
) -> Result<(Db, Loaded, Option<String>), String> {
    use crate::db::pg::{self, describe};
    if config.backup_interval.is_some() {
        return Err(
            "TENANTRY_BACKUP_INTERVAL is for the SQLite file; on PostgreSQL use pg_dump".into(),
        );
    }
    let load = || {
        pg::block_on(async {
            let start = pg::Pg::open(url, 1).await?;
            let mut c = start.client().await?;
            let fail =
                |e: tokio_postgres::Error| format!("cannot start on PostgreSQL: {}", describe(&e));
            let tx = c.transaction().await.map_err(fail)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&pg::migrate::LOCK])
                .await
                .map_err(fail)?;
            let master_key = encryption::master_key_pg(config, &tx).await?;
            let (admin, generated) = AdminToken::setup_pg(&tx, config.admin_token.as_ref())
                .await
                .map_err(fail)?;
            tx.commit().await.map_err(fail)?;
            let loaded = (
                TenantCache::load_pg(&**c).await?,
                KeyCache::load_pg(&**c).await?,
                SettingsCache::load_pg(&**c).await?,
                PricingTable::load_pg(&**c).await?,
                admin,
                master_key,
            );
            Ok::<_, String>((loaded, generated))
        })?
    };
    let ((tenants, keys, settings, pricing, admin, master_key), generated) =
        std::thread::scope(|s| s.spawn(load).join())
            .map_err(|_| "start-up on PostgreSQL failed")??;
    let db = Db::postgres(pg::Pg::new(url, 32)?);
    let loaded = Loaded {
        tenants,
        keys,
        settings,
        pricing,
        admin,
        master_key,
        lock,
    };
    Ok((db, loaded, generated))
}
