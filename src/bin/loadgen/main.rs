//! Load generator for docs/BENCHMARKS.md: keep-alive HTTP/1.1 clients on plain threads (no
//! client library, so the measuring side stays small), plus the two baselines the numbers are
//! compared with: a bare actix handler and raw rusqlite inserts.
mod jobs;

use clap::{Parser, Subcommand};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "loadgen",
    about = "Load generator and baselines for tenantry's benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// POST usage events: `--batch 1` sends single events, larger sends {"events": [...]}.
    Ingest {
        #[arg(long)]
        url: String,
        /// A bearer token, or several separated by commas: client `c` uses the `c % n`th
        /// (one key per tenant spreads the events over tenants).
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Stop after this many requests in all (0: run for --seconds).
        #[arg(long, default_value_t = 0)]
        requests: u64,
        /// Spread events over this many past days (for seeding history).
        #[arg(long, default_value_t = 0)]
        spread_days: u64,
        /// Where the spread starts, Unix seconds (default 2026-01-01T00:00:00Z).
        #[arg(long, default_value_t = 1_767_225_600)]
        spread_from: u64,
        /// Tag event ids so runs never collide.
        #[arg(long, default_value = "run")]
        tag: String,
        /// Events shaped like an application's (for the storage benchmark): a UUID event_id,
        /// the client's own timestamp a little in the past, varied token counts and labels, a
        /// job_id on a quarter of them, a duration, and a small metadata object on half.
        #[arg(long)]
        realistic: bool,
        /// With --realistic: leave these fields out (comma-separated, e.g. `job_id,metadata`),
        /// to find what a field costs.
        #[arg(long, value_delimiter = ',')]
        without: Vec<String>,
        /// With --realistic: event ids that count up per client instead of UUIDs.
        #[arg(long)]
        sequential_ids: bool,
    },
    /// GET a path repeatedly and report latency.
    Get {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
    /// POST one JSON body over and over (a gateway call, or the same call straight to the fake
    /// provider for the baseline); reports calls/s and latency, and for streamed answers also
    /// the time to the first body byte.
    Call {
        /// The full URL, e.g. http://127.0.0.1:8080/v1/chat/completions
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 64)]
        clients: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long)]
        body: String,
    },
    /// A webhook receiver for the delivery benchmark: answers 204 to every POST; once deliveries
    /// stop for `--idle-ms` (after the first), prints their rate and the delay from each event's
    /// `timestamp` to its arrival, then exits.
    Receiver {
        #[arg(long, default_value = "127.0.0.1:18095")]
        bind: String,
        #[arg(long, default_value_t = 2000)]
        idle_ms: u64,
    },
    /// A bare actix-web server answering POST and GET with a small JSON body (the baseline).
    BareActix {
        #[arg(long, default_value = "127.0.0.1:18090")]
        bind: String,
        #[arg(long, default_value_t = 2)]
        workers: usize,
    },
    /// tenantry itself, built from the library: with `--without-middleware`, the same handlers
    /// without the response middleware (for the middleware-cost benchmark).
    Serve {
        #[arg(long)]
        data_dir: String,
        #[arg(long, default_value = "127.0.0.1:18110")]
        bind: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        without_middleware: bool,
    },
    /// Creates tenants through the API, as the admin.
    Tenants {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Slug prefix, so separate runs never collide.
        #[arg(long, default_value = "bench")]
        tag: String,
    },
    /// The hosted job queue: create tenants, enqueue jobs, run workers (lease -> complete).
    Jobs {
        #[command(subcommand)]
        cmd: jobs::JobsCmd,
    },
    /// Runs a SQL file on a database as a migration runs (one transaction, foreign keys on, the
    /// server's bundled SQLite), then a TRUNCATE checkpoint; prints the time of each. For
    /// timing a candidate migration on a copy of a large database.
    Sql {
        #[arg(long)]
        db: String,
        #[arg(long)]
        file: String,
    },
    /// Raw rusqlite inserts into a fresh WAL file: one row per transaction, and 1000 per.
    RawSqlite {
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
        #[arg(long, default_value = "normal")]
        sync: String,
        /// Build tenantry's schema only up to this migration (default: all), to measure what
        /// a migration changed.
        #[arg(long)]
        schema_version: Option<i64>,
    },
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Ingest {
            url,
            token,
            clients,
            seconds,
            batch,
            requests,
            spread_days,
            spread_from,
            tag,
            realistic,
            without,
            sequential_ids,
        } => {
            let without = Arc::new(without);
            let target = Target::parse(&url);
            let make = move |client: usize, n: u64| {
                let events: Vec<String> = (0..batch)
                    .map(|i| {
                        if realistic {
                            let k = n * batch as u64 + i as u64;
                            let id = if sequential_ids {
                                format!("{tag}-{client}-{k:012}")
                            } else {
                                uuid::Uuid::new_v4().to_string()
                            };
                            return realistic_event(client, k, &id, &without);
                        }
                        let ts = if spread_days > 0 {
                            let secs = spread_from + (n * batch as u64 + i as u64) % (spread_days * 86_400);
                            format!(",\"timestamp\":\"{}\"", chrono::DateTime::from_timestamp(secs as i64, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        } else {
                            String::new()
                        };
                        format!(
                            r#"{{"event_id":"{tag}-{client}-{n}-{i}","model":"{}","input_tokens":{},"output_tokens":{},"agent_name":"agent-{}","pipeline_stage":"stage-{}","user_id":"user-{}"{ts}}}"#,
                            ["gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"][i % 4],
                            100 + i % 900,
                            50 + n % 400,
                            client % 8,
                            i % 3,
                            n % 50
                        )
                    })
                    .collect();
                if batch == 1 {
                    events.into_iter().next().unwrap_or_default()
                } else {
                    format!("{{\"events\":[{}]}}", events.join(","))
                }
            };
            let r = run(
                &target,
                &token,
                clients,
                seconds,
                requests,
                "POST",
                "/api/usage/events",
                Arc::new(make),
            );
            r.print("ingest", batch);
        }
        Cmd::Get {
            url,
            token,
            clients,
            seconds,
        } => {
            let target = Target::parse(&url);
            let path = target.path.clone();
            let r = run(
                &target,
                &token,
                clients,
                seconds,
                0,
                "GET",
                &path,
                Arc::new(|_, _| String::new()),
            );
            r.print("get", 1);
        }
        Cmd::Call {
            url,
            token,
            clients,
            seconds,
            body,
        } => call(&Target::parse(&url), &token, clients, seconds, body),
        Cmd::BareActix { bind, workers } => bare_actix(&bind, workers),
        Cmd::Receiver { bind, idle_ms } => receiver(&bind, idle_ms),
        Cmd::Serve {
            data_dir,
            bind,
            token,
            without_middleware,
        } => {
            let env: std::collections::HashMap<String, String> = [
                ("TENANTRY_DATA_DIR", data_dir),
                ("TENANTRY_BIND", bind),
                ("TENANTRY_ADMIN_TOKEN", token),
                ("ENCRYPTION_KEY", "bench".into()),
                ("ENABLE_MULTI_TENANT", "true".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let mut config = tenantry::config::Config::from_map(&env).expect("config");
            config.without_middleware = without_middleware;
            actix_web::rt::System::new().block_on(async move {
                let app = tenantry::startup::Application::build(config).expect("build");
                println!(
                    "serving {} (middleware {})",
                    app.base_url(),
                    if without_middleware { "off" } else { "on" }
                );
                app.run_until_stopped().await.expect("serve");
            });
        }
        Cmd::Tenants {
            url,
            token,
            count,
            clients,
            tag,
        } => {
            let target = Target::parse(&url);
            let r = run(
                &target,
                &token,
                clients,
                0,
                count,
                "POST",
                "/api/tenants",
                Arc::new(move |c, n| {
                    format!(r#"{{"name":"{tag} tenant {c}-{n}","slug":"{tag}-{c}-{n}"}}"#)
                }),
            );
            r.print("create tenants", 1);
        }
        Cmd::RawSqlite {
            rows,
            sync,
            schema_version,
        } => raw_sqlite(rows, &sync, schema_version),
        Cmd::Sql { db, file } => timed_sql(&db, &file),
        Cmd::Jobs { cmd } => jobs::main(cmd),
    }
}

/// One event as an application would send it, without the fields named in `without`; `k`
/// numbers the client's events, and the pseudo-random choices are a hash of `(client, k)`, so
/// the mix is the same run to run.
fn realistic_event(client: usize, k: u64, event_id: &str, without: &[String]) -> String {
    let h = {
        let mut x = (client as u64) << 40 ^ k ^ 0x9E37_79B9_7F4A_7C15;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let pick = |shift: u32, n: u64| (h >> shift) % n;
    let model = [
        "gpt-4o-mini",
        "gpt-4o",
        "claude-sonnet-4-5",
        "gemini-2.5-flash",
        "gpt-4.1-mini",
    ][pick(0, 5) as usize];
    let input = 200 + pick(3, 6000);
    let at = chrono::Utc::now() - chrono::Duration::milliseconds(200 + pick(20, 5000) as i64);
    let mut fields = vec![
        ("event_id", format!("\"{event_id}\"")),
        (
            "timestamp",
            format!(
                "\"{}\"",
                at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            ),
        ),
        ("model", format!("\"{model}\"")),
        ("input_tokens", input.to_string()),
        ("output_tokens", (20 + pick(12, 1200)).to_string()),
        (
            "cache_read_tokens",
            if pick(16, 3) == 0 { input / 2 } else { 0 }.to_string(),
        ),
        (
            "agent_name",
            format!(
                "\"{}\"",
                ["support-agent", "research-agent", "triage", "summarizer"][pick(24, 4) as usize]
            ),
        ),
        (
            "pipeline_stage",
            format!(
                "\"{}\"",
                ["retrieve", "draft", "review"][pick(27, 3) as usize]
            ),
        ),
        ("user_id", format!("\"user_{}\"", pick(40, 2000))),
        ("duration_ms", (300 + pick(44, 9000)).to_string()),
    ];
    if pick(33, 4) == 0 {
        fields.push((
            "job_id",
            format!("\"job_{:08x}\"", (h >> 8) as u32 % 50_000),
        ));
    }
    if pick(36, 2) == 0 {
        fields.push((
            "metadata",
            format!(
                r#"{{"request_id":"req_{:016x}","route":"/v1/chat","region":"{}"}}"#,
                h.rotate_left(17),
                ["eu-west-1", "us-east-1"][pick(38, 2) as usize]
            ),
        ));
    }
    let body: Vec<String> = fields
        .into_iter()
        .filter(|(name, _)| !without.iter().any(|w| w == name))
        .map(|(name, value)| format!("\"{name}\":{value}"))
        .collect();
    format!("{{{}}}", body.join(","))
}

struct Target {
    addr: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Target {
        let rest = url.strip_prefix("http://").expect("an http:// url");
        let (addr, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Target {
            addr: addr.to_string(),
            path: path.to_string(),
        }
    }
}

struct Report {
    requests: u64,
    errors: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
}

impl Report {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }

    fn print(&self, what: &str, batch: usize) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{what}: {} requests ({} errors) in {:.2}s = {:.0} req/s, {:.0} events/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.requests,
            self.errors,
            secs,
            self.requests as f64 / secs,
            (self.requests * batch as u64) as f64 / secs,
            self.pct(0.50),
            self.pct(0.99),
            self.pct(1.0),
        );
    }
}

type BodyFn = Arc<dyn Fn(usize, u64) -> String + Send + Sync>;

#[allow(clippy::too_many_arguments)]
fn run(
    t: &Target,
    token: &str,
    clients: usize,
    seconds: u64,
    max_requests: u64,
    method: &str,
    path: &str,
    body: BodyFn,
) -> Report {
    let stop = Arc::new(AtomicBool::new(false));
    let per_client = if max_requests > 0 {
        max_requests.div_ceil(clients as u64)
    } else {
        u64::MAX
    };
    let started = Instant::now();
    let tokens: Vec<&str> = token.split(',').collect();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, token, method, path, body, stop) = (
                t.addr.clone(),
                tokens[c % tokens.len()].to_string(),
                method.to_string(),
                path.to_string(),
                body.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut errors = 0u64;
                let mut conn = Conn::open(&addr);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) && n < per_client {
                    let b = body(c, n);
                    let t0 = Instant::now();
                    match conn.request(&method, &path, &token, &b) {
                        Some(status) if status < 300 => lat.push(t0.elapsed().as_micros() as u64),
                        Some(_) => errors += 1,
                        None => {
                            errors += 1;
                            conn = Conn::open(&addr);
                        }
                    }
                    n += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    if max_requests == 0 {
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    }
    let mut report = Report {
        requests: 0,
        errors: 0,
        elapsed: Duration::ZERO,
        latencies_us: Vec::new(),
    };
    for h in handles {
        let (lat, errors) = h.join().expect("client thread");
        report.requests += lat.len() as u64;
        report.errors += errors;
        report.latencies_us.extend(lat);
    }
    report.elapsed = started.elapsed();
    report.latencies_us.sort_unstable();
    report
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    addr: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_nodelay(true).ok();
        Conn {
            reader: BufReader::new(s.try_clone().expect("clone socket")),
            writer: s,
            addr: addr.to_string(),
        }
    }

    /// Sends one request and reads the whole response; `None` on a broken connection.
    fn request(&mut self, method: &str, path: &str, token: &str, body: &str) -> Option<u16> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).ok()?;
        self.writer.write_all(body.as_bytes()).ok()?;
        let mut line = String::new();
        self.reader.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut len = 0usize;
        let mut close = false;
        loop {
            line.clear();
            self.reader.read_line(&mut line).ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
            // A proxy ends a kept-alive connection this way (nginx after 1000 requests): the
            // next request goes on a new one, as any HTTP/1.1 client does, not into a closed
            // socket counted as an error.
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).ok()?;
        if close {
            *self = Conn::open(&self.addr.clone());
        }
        Some(status)
    }
}

impl Conn {
    /// Sends one request with `extra` header lines (each ending in CRLF) and reads the whole
    /// response; its status and body. `None` on a broken connection.
    fn fetch(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        extra: &str,
        body: &str,
    ) -> Option<(u16, Vec<u8>)> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        self.writer.write_all(head.as_bytes()).ok()?;
        self.writer.write_all(body.as_bytes()).ok()?;
        let mut line = String::new();
        self.reader.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line).ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
        }
        let mut buf = vec![0u8; len];
        self.reader.read_exact(&mut buf).ok()?;
        Some((status, buf))
    }
}

/// `loadgen call`: every client thread sends `body` on its own keep-alive connection.
fn call(t: &Target, token: &str, clients: usize, seconds: u64, body: String) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, path, token, body, stop) = (
                t.addr.clone(),
                t.path.clone(),
                token.to_string(),
                body.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                let (mut total, mut first, mut errors) = (Vec::new(), Vec::new(), 0u64);
                let mut conn = Conn::open(&addr);
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    match conn.timed(&path, &token, &body) {
                        Some((status, ttfb)) if status < 300 => {
                            total.push(t0.elapsed().as_micros() as u64);
                            first.push(ttfb.as_micros() as u64);
                        }
                        Some(_) => errors += 1,
                        None => {
                            errors += 1;
                            conn = Conn::open(&addr);
                        }
                    }
                }
                (total, first, errors)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut first, mut errors) = (Vec::new(), Vec::new(), 0);
    for h in handles {
        let (t, f, e) = h.join().expect("client thread");
        total.extend(t);
        first.extend(f);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    total.sort_unstable();
    first.sort_unstable();
    let pct = |v: &[u64], p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    println!(
        "call: {} calls ({errors} errors) in {elapsed:.2}s = {:.0} calls/s; latency p50 {:.3} ms, p99 {:.3} ms; first byte p50 {:.3} ms, p99 {:.3} ms",
        total.len(),
        total.len() as f64 / elapsed,
        pct(&total, 0.5),
        pct(&total, 0.99),
        pct(&first, 0.5),
        pct(&first, 0.99),
    );
}

impl Conn {
    /// POSTs `body` and reads the whole answer, plain or chunked; gives the status and the
    /// time to its first body byte. `None` on a broken connection.
    fn timed(&mut self, path: &str, token: &str, body: &str) -> Option<(u16, Duration)> {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let t0 = Instant::now();
        self.writer.write_all(head.as_bytes()).ok()?;
        self.writer.write_all(body.as_bytes()).ok()?;
        let mut line = String::new();
        self.reader.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let (mut len, mut chunked) = (0usize, false);
        loop {
            line.clear();
            self.reader.read_line(&mut line).ok()?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().ok()?;
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if !chunked {
            let mut buf = vec![0u8; len];
            self.reader.read_exact(&mut buf[..len.min(1)]).ok()?;
            let first = t0.elapsed();
            self.reader.read_exact(&mut buf[len.min(1)..]).ok()?;
            return Some((status, first));
        }
        let mut first = None;
        loop {
            line.clear();
            self.reader.read_line(&mut line).ok()?;
            let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
            first.get_or_insert_with(|| t0.elapsed());
            let mut buf = vec![0u8; size + 2];
            self.reader.read_exact(&mut buf).ok()?;
            if size == 0 {
                return Some((status, first.unwrap_or_default()));
            }
        }
    }
}

fn receiver(bind: &str, idle_ms: u64) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    use std::sync::Mutex;
    struct Seen {
        first: Option<Instant>,
        last: Option<Instant>,
        delays_us: Vec<u64>,
    }
    let seen = web::Data::new(Mutex::new(Seen {
        first: None,
        last: None,
        delays_us: Vec::new(),
    }));
    let bind = bind.to_string();
    actix_web::rt::System::new().block_on(async move {
        println!("receiver on http://{bind}");
        let data = seen.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(
                    |body: web::Bytes, seen: web::Data<Mutex<Seen>>| async move {
                        let now = chrono::Utc::now();
                        let sent = serde_json::from_slice::<serde_json::Value>(&body)
                            .ok()
                            .and_then(|v| v["timestamp"].as_str().map(str::to_string))
                            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok());
                        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
                        s.first.get_or_insert_with(Instant::now);
                        s.last = Some(Instant::now());
                        let delay = sent.map_or(0, |t| {
                            (now - t.with_timezone(&chrono::Utc)).num_microseconds().unwrap_or(0).max(0) as u64
                        });
                        s.delays_us.push(delay);
                        HttpResponse::NoContent().finish()
                    },
                ))
        })
        .workers(1)
        .bind(&bind)
        .expect("bind")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        loop {
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            let s = seen.lock().unwrap_or_else(|p| p.into_inner());
            let idle = s
                .last
                .is_some_and(|l| l.elapsed() >= Duration::from_millis(idle_ms));
            if let (true, Some(first), Some(last)) = (idle, s.first, s.last) {
                let secs = (last - first).as_secs_f64();
                let mut d = s.delays_us.clone();
                d.sort_unstable();
                let pct = |p: f64| d[((d.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0;
                println!(
                    "receiver: {} deliveries in {secs:.2}s = {:.0}/s; delay from event to arrival p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    d.len(),
                    d.len() as f64 / secs.max(1e-9),
                    pct(0.5),
                    pct(0.99),
                    pct(1.0)
                );
                break;
            }
        }
        handle.stop(true).await;
    });
}

fn bare_actix(bind: &str, workers: usize) {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let bind = bind.to_string();
    actix_web::rt::System::new().block_on(async move {
        println!("bare actix on http://{bind}");
        HttpServer::new(|| {
            // Reads the whole body, as any real handler must, then answers a small JSON.
            App::new()
                .app_data(web::PayloadConfig::new(1 << 20))
                .default_service(web::to(|body: web::Bytes| async move {
                    HttpResponse::Created()
                        .json(serde_json::json!({"accepted": 1, "bytes": body.len()}))
                }))
        })
        .workers(workers)
        .bind(&bind)
        .expect("bind")
        .run()
        .await
        .expect("serve")
    });
}

fn timed_sql(db: &str, file: &str) {
    let sql = std::fs::read_to_string(file).expect("read the SQL file");
    let mut c = rusqlite::Connection::open(db).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
    )
    .expect("pragmas");
    let t0 = Instant::now();
    let tx = c.transaction().expect("begin");
    tx.execute_batch(&sql).expect("the SQL");
    tx.commit().expect("commit");
    let migrate = t0.elapsed().as_secs_f64();
    // The WAL holds every page the migration wrote until the checkpoint: the disk it needs on
    // top of the database file.
    let wal = std::fs::metadata(format!("{db}-wal")).map_or(0, |m| m.len());
    let t1 = Instant::now();
    c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    println!(
        "sql: {file} in {migrate:.2}s, checkpoint {:.2}s; WAL before the checkpoint {wal} bytes",
        t1.elapsed().as_secs_f64()
    );
}

/// Rows per second inserting `rows` (rounded down to a thousand) 1000 per transaction;
/// `insert` gets the row number, from 0.
fn batched_rate(
    c: &rusqlite::Connection,
    rows: u64,
    mut insert: impl FnMut(&rusqlite::Connection, u64),
) -> f64 {
    let t0 = Instant::now();
    for chunk in 0..rows / 1000 {
        c.execute_batch("BEGIN").expect("begin");
        for i in 0..1000 {
            insert(c, chunk * 1000 + i);
        }
        c.execute_batch("COMMIT").expect("commit");
    }
    (rows / 1000 * 1000) as f64 / t0.elapsed().as_secs_f64()
}

/// The writer's INSERT before migration 0005, for `--schema-version` below 5.
const INSERT_EVENT_BEFORE_5: &str =
    "INSERT INTO usage_events (id, tenant_id, event_id, ts, model, input_tokens, output_tokens,
         estimated_nanos, billed_nanos, input_price, output_price, cost_source, execution_mode,
         markup, pipeline_stage, agent_name, job_id, user_id, duration_ms, metadata, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
             ?19, ?20, ?21)
     ON CONFLICT (tenant_id, event_id) WHERE event_id IS NOT NULL DO NOTHING";

fn raw_sqlite(rows: u64, sync: &str, schema_version: Option<i64>) {
    let dir = std::env::temp_dir().join(format!("tenantry-raw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let c = rusqlite::Connection::open(dir.join("raw.db")).expect("open");
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync};
         CREATE TABLE e (seq INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, event_id TEXT, ts INTEGER,
             model TEXT, input_tokens INTEGER, output_tokens INTEGER, cost INTEGER);
         CREATE UNIQUE INDEX e_id ON e (tenant_id, event_id);"
    ))
    .expect("schema");
    let insert = |c: &rusqlite::Connection, i: u64| {
        c.prepare_cached("INSERT INTO e (tenant_id, event_id, ts, model, input_tokens, output_tokens, cost) VALUES ('t', ?1, ?2, 'gpt-4o', 100, 50, 12345)")
            .and_then(|mut s| s.execute(rusqlite::params![format!("ev-{i}"), i as i64]))
            .expect("insert");
    };
    let t0 = Instant::now();
    for i in 0..rows {
        insert(&c, i);
    }
    let single = rows as f64 / t0.elapsed().as_secs_f64();
    let batched = batched_rate(&c, rows, |c, n| insert(c, rows + n));
    println!("raw rusqlite (synchronous={sync}): {single:.0} rows/s one per transaction, {batched:.0} rows/s 1000 per transaction");
    // The ceiling for batch ingest: tenantry's own migrations and the writer's own INSERT, with
    // no HTTP, no parsing and no rollups, 1000 rows per transaction.
    let version = schema_version.unwrap_or_else(tenantry::db::migrate::latest);
    let mut c = rusqlite::Connection::open(dir.join("schema.db")).expect("open");
    c.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))
    .expect("pragmas");
    tenantry::db::migrate::apply_up_to(&mut c, version).expect("migrate");
    c.execute_batch(tenantry::db::checkpoint::WRITER_PRAGMAS)
        .expect("pragmas");
    let tenant = tenantry::tenancy::DEFAULT_TENANT_ID.to_string();
    // Migration 0005 added five columns at the end of the writer's INSERT; older schemas get
    // the statement of their time, which binds the first 21 values.
    let (sql, bound) = if version >= 5 {
        (tenantry::usage::store::INSERT_EVENT, 26)
    } else {
        (INSERT_EVENT_BEFORE_5, 21)
    };
    let schema = batched_rate(&c, rows, |c, n| {
        let (id, event_id) = (uuid::Uuid::new_v4().to_string(), format!("raw-{n}"));
        let (stage, agent, user) = (
            format!("stage-{}", n % 3),
            format!("agent-{}", n % 8),
            format!("user-{}", n % 50),
        );
        let (ts, input) = (1_790_000_000_000_000i64 + n as i64, 100 + (n % 900) as i64);
        let none = rusqlite::types::Null;
        // 20 of the 100..1000 input tokens read from the cache, at $0.075/M.
        let values: [&dyn rusqlite::ToSql; 26] = [
            &id,
            &tenant,
            &event_id,
            &ts,
            &"gpt-4o-mini",
            &input,
            &50i64,
            &15_000i64,
            &15_000i64,
            &150_000_000i64,
            &600_000_000i64,
            &"pricing",
            &"byo_key",
            &0i64,
            &stage,
            &agent,
            &none,
            &user,
            &none,
            &none,
            &1_790_000_000_000_000i64,
            &20i64,
            &0i64,
            &0i64,
            &75_000_000i64,
            &150_000_000i64,
        ];
        c.prepare_cached(sql)
            .and_then(|mut st| st.execute(&values[..bound]))
            .expect("insert");
    });
    println!("raw rusqlite, tenantry's usage_events schema (version {version}) and INSERT (synchronous={sync}): {schema:.0} rows/s 1000 per transaction");
    let _ = std::fs::remove_dir_all(dir);
}
