//! `spawn_app`: the real application on port 0 with a fresh SQLite file in a temp dir, a manual
//! clock, and helpers that speak HTTP to it the way a client would.
use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use tempfile::TempDir;
use tenantry::clock::ManualClock;
use tenantry::config::{Config, Secret};
use tenantry::startup::Application;

pub const ADMIN: &str = "test-admin-token-0123456789";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub dir: TempDir,
    pub config: Config,
    pub generated_admin_token: Option<String>,
    handle: actix_web::dev::ServerHandle,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    /// The error code: the contract's `{"error": code}`, or, on a gateway path, OpenAI's
    /// `{"error": {"code"}}` or Anthropic's `{"type": "error", "error": {"type"}}`.
    pub fn code(&self) -> &str {
        let e = &self.body["error"];
        e.as_str()
            .or_else(|| e["code"].as_str())
            .or_else(|| e["type"].as_str())
            .unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the contract's error format and code.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {}",
            self.body
        );
        let message = self.body["message"]
            .as_str()
            .or_else(|| self.body["error"]["message"].as_str());
        assert!(
            message.is_some_and(|m| !m.is_empty()),
            "error without message: {}",
            self.body
        );
    }
}

pub fn config(dir: &TempDir, env: &[(&str, &str)]) -> Config {
    let mut map: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("TENANTRY_BIND".into(), "127.0.0.1:0".into());
    map.insert(
        "TENANTRY_DATA_DIR".into(),
        dir.path().to_string_lossy().into_owned(),
    );
    let mut c = Config::from_map(&map).expect("test config is valid");
    c.workers = 2;
    c
}

/// Multi-tenant mode, admin token `ADMIN`.
pub async fn spawn_app() -> TestApp {
    spawn_with(&[("ENABLE_MULTI_TENANT", "true")]).await
}

/// The OSS default: single-tenant mode.
pub async fn spawn_single_tenant() -> TestApp {
    spawn_with(&[]).await
}

pub async fn spawn_with(env: &[(&str, &str)]) -> TestApp {
    spawn_tuned(env, |_| {}).await
}

/// As `spawn_with`, with settings no variable reaches (a background thread's interval).
pub async fn spawn_tuned(env: &[(&str, &str)], tune: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env: Vec<(&str, &str)> = env.to_vec();
    let url;
    if on_postgres() && !env.iter().any(|(k, _)| *k == "TENANTRY_DATABASE_URL") {
        url = pg_database()
            .await
            .expect("TENANTRY_TEST_STORE=postgres needs TENANTRY_TEST_DATABASE_URL");
        env.push(("TENANTRY_DATABASE_URL", &url));
        if !env.iter().any(|(k, _)| *k == "ENCRYPTION_KEY") {
            env.push(("ENCRYPTION_KEY", "test-store-encryption-key"));
        }
    }
    let mut c = config(&dir, &env);
    tune(&mut c);
    // A low scrypt cost keeps each test server's start fast; production uses the default.
    c.kdf = tenantry::crypto::KdfParams::parse("scrypt:10:8:1").expect("valid params");
    if c.admin_token.is_none() {
        c.admin_token = Some(Secret::new(ADMIN));
    }
    start(dir, c).await
}

pub async fn start(dir: TempDir, config: Config) -> TestApp {
    // The server's warnings and errors (the cause behind a 500, for one) land in the output
    // of the test that failed.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build_with_clock(config.clone(), clock.clone()).expect("app builds");
    let address = app.base_url();
    let handle = app.handle();
    let generated_admin_token = app.generated_admin_token.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        clock,
        dir,
        config,
        generated_admin_token,
        handle,
    }
}

impl TestApp {
    /// Stops the server and starts a new one on the same data directory.
    pub async fn restart(self) -> TestApp {
        let (dir, config) = self.stop().await;
        start(dir, config).await
    }

    /// Stops the server, handing back its data directory and configuration.
    pub async fn stop(self) -> (TempDir, Config) {
        self.handle.stop(true).await;
        // The server's last handle on the data directory goes when its state is dropped, a
        // moment after it stops; wait for that, as a stopped process would have released it.
        let dir = self.dir.path().to_path_buf();
        let lock = tokio::task::spawn_blocking(move || {
            tenantry::db::lock::acquire(&dir, std::time::Duration::from_secs(10))
        })
        .await
        .expect("lock wait");
        drop(lock.expect("the stopped server lets go of the data directory"));
        (self.dir, self.config)
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.request(method, path, token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let m = Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.client.request(m, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let res = req.send().await.expect("request reaches the server");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("body");
        let text_answer = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("text/"));
        let body = if bytes.is_empty() {
            Value::Null
        } else if status < 400 && text_answer {
            // A text answer (a CSV export) by design; errors are always JSON.
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body with {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call("GET", path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("POST", path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call("PUT", path, Some(token), Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call("DELETE", path, Some(token), None).await
    }

    /// Creates a tenant as admin and returns it.
    pub async fn create_tenant(&self, slug: &str) -> Value {
        let r = self
            .post("/api/tenants", ADMIN, json!({"name": slug, "slug": slug}))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    pub async fn put_member(&self, slug: &str, user: &str, role: &str) {
        let r = self
            .put(
                &format!("/api/tenant/{slug}/members/{user}"),
                ADMIN,
                json!({"role": role}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
    }

    /// Creates a key as admin for the tenant with this slug and returns the `tk_` key.
    pub async fn create_key(&self, slug: &str, role: &str) -> String {
        self.create_key_with(slug, json!({"name": format!("{role} key"), "role": role}))
            .await["key"]
            .as_str()
            .expect("key in create response")
            .to_string()
    }

    pub async fn create_key_with(&self, slug: &str, body: Value) -> Value {
        let r = self
            .post(&format!("/api/tenant/{slug}/keys"), ADMIN, body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body
    }

    /// Walks a paginated list to its end with the given page size.
    pub async fn walk(&self, path: &str, token: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let mut p = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                p.push_str(&format!("&cursor={c}"));
            }
            let r = self.get(&p, token).await;
            assert_eq!(r.status, 200, "{}", r.body);
            let page = r.body["items"].as_array().expect("items").clone();
            assert!(page.len() <= limit as usize);
            items.extend(page);
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }
}

/// The real binary as a process on a free port, its stderr collected line by line.
pub struct Process {
    pub child: std::process::Child,
    pub url: String,
    log: Arc<std::sync::Mutex<String>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Process {
    /// Starts `tenantry serve` on `dir` with `env` and waits for the line naming its address.
    pub fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Process {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"));
        cmd.env("TENANTRY_DATA_DIR", dir)
            .env("TENANTRY_BIND", "127.0.0.1:0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Process::spawn(cmd)
    }

    /// Runs `cmd` (a `tenantry serve`, perhaps wrapped) and waits for the line naming its
    /// address: `tenantry: serving <url>`, or in JSON mode an object with `fields.url`.
    pub fn spawn(mut cmd: std::process::Command) -> Process {
        use std::io::{BufRead, BufReader};
        cmd.stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("the binary starts");
        let log: Arc<std::sync::Mutex<String>> = Arc::default();
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let url = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| {
                let mut s = log.lock().expect("log");
                s.push_str(&l);
                s.push('\n');
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    return v["fields"]["url"].as_str().map(String::from);
                }
                l.strip_prefix("tenantry: serving ")?
                    .split_whitespace()
                    .next()
                    .map(String::from)
            })
            .unwrap_or_else(|| panic!("server did not start:\n{}", log.lock().expect("log")));
        let sink = log.clone();
        // Keep reading: a server whose stderr pipe is closed is not what any test is about.
        let drain = std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                let mut s = sink.lock().expect("log");
                s.push_str(&l);
                s.push('\n');
            }
        });
        Process {
            child,
            url,
            log,
            drain: Some(drain),
        }
    }

    /// Waits for the process to exit; its exit status and everything it wrote to stderr.
    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait().expect("wait");
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
        let log = self.log.lock().expect("log").clone();
        (status, log)
    }
}

/// The command line, with none of tenantry's variables inherited from the test's environment.
pub fn cli(dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_tenantry"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TENANTRY_") || k.starts_with("ENABLE_") || k.starts_with("ENCRYPTION_KEY")
        {
            c.env_remove(k);
        }
    }
    c.env("TENANTRY_DATA_DIR", dir);
    c
}

/// Event ids acknowledged with 201, shared with the clients sending them.
pub type Acked = Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// `workers` clients send batches of `batch` uniquely identified events until a request is
/// refused or fails (the server stopped); every id answered 201 is recorded.
pub fn ingest_until_refused(
    url: &str,
    token: &str,
    workers: usize,
    batch: usize,
) -> (Acked, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Acked = Arc::default();
    let client = reqwest::Client::new();
    let tasks = (0..workers)
        .map(|w| {
            let (client, url, token, acked) = (client.clone(), url.to_string(), token.to_string(), acked.clone());
            tokio::spawn(async move {
                for b in 0.. {
                    let ids: Vec<String> = (0..batch).map(|i| format!("w{w}-b{b}-e{i}")).collect();
                    let events: Vec<Value> = ids
                        .iter()
                        .map(|id| json!({"event_id": id, "model": "gpt-4o", "input_tokens": 5, "output_tokens": 5}))
                        .collect();
                    let res = client
                        .post(format!("{url}/api/usage/events"))
                        .bearer_auth(&token)
                        .json(&json!({"events": events}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => acked.lock().expect("acked").extend(ids),
                        _ => return,
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

/// For tests that need a tool from outside the project (Chromium, a validator): true when it
/// is missing, after saying how to get it. Under CI (which installs them, see .ci/run) a
/// missing tool fails the test instead of skipping it.
pub fn skip_without(present: bool, what: &str, install: &str) -> bool {
    if present {
        return false;
    }
    assert!(
        std::env::var("CI").is_err(),
        "CI must have {what} (see .ci/run)"
    );
    eprintln!("skipped: needs {what} ({install})");
    true
}

/// Everything a finished process wrote, stdout then stderr.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A new, empty PostgreSQL database on the test cluster (`TENANTRY_TEST_DATABASE_URL`, started
/// by `.ci/pg.sh`), as a URL; `None` (skipped) without one, except under CI.
pub async fn pg_database() -> Option<String> {
    let base = std::env::var("TENANTRY_TEST_DATABASE_URL").ok();
    if skip_without(
        base.is_some(),
        "PostgreSQL",
        "eval \"$(bash .ci/pg.sh start)\" sets TENANTRY_TEST_DATABASE_URL",
    ) {
        return None;
    }
    let base = base.expect("checked");
    let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .expect("the test cluster answers");
    tokio::spawn(conn);
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    let (prefix, _) = base.rsplit_once('/').expect("a URL with a database");
    Some(format!("{prefix}/{name}"))
}

/// A connection to a PostgreSQL database by URL, driven on the test's runtime.
pub async fn pg_connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

/// A connection to the app's PostgreSQL database, when it serves from one: for tests that
/// inspect the store (on SQLite they open the file).
pub async fn app_pg(app: &TestApp) -> Option<tokio_postgres::Client> {
    match &app.config.database_url {
        Some(url) => Some(pg_connect(url.expose()).await),
        None => None,
    }
}

/// Whether this run serves the HTTP tests from PostgreSQL (`TENANTRY_TEST_STORE=postgres`, with
/// `TENANTRY_TEST_DATABASE_URL`): every `spawn_*` then gets a fresh database on the cluster.
/// `.ci/run` runs the test modules of the areas that have a PostgreSQL store this way too.
pub fn on_postgres() -> bool {
    std::env::var("TENANTRY_TEST_STORE").is_ok_and(|s| s == "postgres")
}
