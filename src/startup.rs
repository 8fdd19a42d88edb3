//! Building and running the application: open the store, load the caches, bind the listener
//! (port 0 in tests) and start the HTTP server with the shared state.
use crate::auth::{AdminToken, KeyCache};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::db::Db;
use crate::http;
use crate::state::AppState;
use crate::tenancy::TenantCache;
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
}

impl Application {
    pub fn build(config: Config) -> Result<Application, String> {
        Self::build_with_clock(config, Arc::new(SystemClock))
    }

    pub fn build_with_clock(config: Config, clock: Arc<dyn Clock>) -> Result<Application, String> {
        let db = Db::open(&config.db_path())?;
        let (tenants, keys, (admin, generated)) = {
            let c = db.conn().map_err(|e| e.to_string())?;
            let load = |e: rusqlite::Error| format!("cannot load state from the database: {e}");
            (
                TenantCache::load(&c).map_err(load)?,
                KeyCache::load(&c).map_err(load)?,
                AdminToken::setup(&c, config.admin_token.as_ref()).map_err(load)?,
            )
        };
        let listener = TcpListener::bind(&config.bind)
            .map_err(|e| format!("cannot listen on {}: {e}", config.bind))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let state = AppState::new(Arc::new(config), db, tenants, keys, admin, clock);
        let data = web::Data::new(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(http::json_config())
                .app_data(http::query_config())
                .app_data(http::path_config())
                .app_data(web::PayloadConfig::new(http::MAX_BODY))
                .configure(http::configure)
                .default_service(web::to(http::not_found))
                .wrap(middleware::from_fn(http::middleware::envelope))
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

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}
