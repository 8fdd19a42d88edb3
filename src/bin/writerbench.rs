//! Benchmark fixture (not shipped as product): drives the usage writers directly, without HTTP,
//! to compare the SQLite writer, the PostgreSQL writer with one or more replicas' writers on
//! one database, and a raw PostgreSQL baseline (each request one multi-row INSERT and COMMIT
//! of its own, no rollups, totals or limits) in one run. Prints one line per run.
//!
//!   writerbench sqlite CLIENTS BATCH SECONDS
//!   writerbench postgres URL WRITERS CLIENTS BATCH SECONDS
//!   writerbench raw-postgres URL CLIENTS BATCH SECONDS
//!   writerbench reads URL EVENTS SECONDS
//!
//! `reads` stores EVENTS events of one tenant spread over 30 days on both stores (through
//! their writers), then times, one at a time for SECONDS each, the reads the limits and the
//! stats make on the rollups, on each store, beside a `SELECT 1` baseline on each.
//!
//! A postgres URL must name an empty database; it is migrated first.
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tenantry::settings::cache::Current;
use tenantry::settings::Settings;
use tenantry::tenancy::TenantId;
use tenantry::usage::priced::Priced;
use tenantry::usage::writer::{Batch, ClosedBefore, Writer};

const TENANTS: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> u64 {
        args.get(i)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let line = match args.first().map(String::as_str) {
        Some("sqlite") => runtime.block_on(sqlite(num(1), num(2), num(3))),
        Some("postgres") => runtime.block_on(postgres(&args[1], num(2), num(3), num(4), num(5))),
        Some("raw-postgres") => runtime.block_on(raw(&args[1], num(2), num(3), num(4))),
        Some("reads") => runtime.block_on(reads(&args[1], num(2), num(3))),
        _ => usage(),
    };
    println!("{line}");
}

fn usage() -> ! {
    eprintln!("usage: writerbench sqlite CLIENTS BATCH SECONDS | postgres URL WRITERS CLIENTS BATCH SECONDS | raw-postgres URL CLIENTS BATCH SECONDS | reads URL EVENTS SECONDS");
    std::process::exit(2)
}

fn tenants() -> Vec<TenantId> {
    (0..TENANTS).map(|_| TenantId::new_random()).collect()
}

fn current() -> Arc<Current> {
    Arc::new(Current {
        version: 1,
        settings: Settings::default(),
        changed_at: 0,
    })
}

/// `n` events as an app sends them: a unique event_id, a model, an agent, a client cost.
fn events(n: u64, seq: &AtomicU64, settings: &Settings) -> Vec<Priced> {
    let now = tenantry::time::to_micros(chrono::Utc::now());
    (0..n)
        .map(|_| {
            let i = seq.fetch_add(1, Ordering::Relaxed);
            let model = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "o3"][i as usize % 4];
            let e = json!({"event_id": format!("b-{i}"), "model": model,
                "input_tokens": 100 + i % 50, "output_tokens": 20, "agent_name": "bench", "cost_usd": 0.0001});
            let e = tenantry::usage::event::UsageEvent::parse(e, now).expect("a valid event");
            Priced::new(e, settings, None).expect("priced")
        })
        .collect()
}

/// Runs `clients` loops calling `submit` for `secs`; events/s and latency percentiles.
async fn drive<F, Fut>(clients: u64, batch: u64, secs: u64, submit: F) -> String
where
    F: Fn(u64, Vec<Priced>) -> Fut + Clone + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let seq = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let settings = current();
    let local = tokio::task::LocalSet::new();
    let start = Instant::now();
    for client in 0..clients {
        let (stop, done, seq, hist, submit, settings) = (
            stop.clone(),
            done.clone(),
            seq.clone(),
            hist.clone(),
            submit.clone(),
            settings.clone(),
        );
        local.spawn_local(async move {
            while !stop.load(Ordering::Relaxed) {
                let events = events(batch, &seq, &settings.settings);
                let t = Instant::now();
                if let Err(e) = submit(client, events).await {
                    eprintln!("writerbench: {e}");
                    std::process::exit(1);
                }
                hist.lock()
                    .expect("histogram")
                    .record(t.elapsed().as_micros() as u64)
                    .ok();
                done.fetch_add(batch, Ordering::Relaxed);
            }
        });
    }
    let stopper = stop.clone();
    local
        .run_until(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stopper.store(true, Ordering::Relaxed);
            // Let the requests in flight finish.
            tokio::time::sleep(Duration::from_millis(500)).await;
        })
        .await;
    let elapsed = start.elapsed().as_secs_f64() - 0.5;
    let h = hist.lock().expect("histogram");
    format!(
        "clients {clients}, batch {batch}: {:.0} events/s; latency p50 {:.2} ms, p99 {:.2} ms",
        done.load(Ordering::Relaxed) as f64 / elapsed,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0
    )
}

fn open() -> ClosedBefore {
    Arc::new(|| None)
}

fn to_batch(tenant: TenantId, events: Vec<Priced>) -> Batch {
    Batch {
        tenant,
        settings: current(),
        events,
        now: tenantry::time::to_micros(chrono::Utc::now()),
    }
}

async fn sqlite(clients: u64, batch: u64, secs: u64) -> String {
    let dir = std::env::temp_dir().join(format!("writerbench-{}", uuid::Uuid::new_v4()));
    let db = tenantry::db::Db::open(&dir.join("tenantry.db"), false).expect("open SQLite");
    let tenants = tenants();
    {
        let c = db.conn().expect("connection");
        for (i, t) in tenants.iter().enumerate() {
            c.execute(
                "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
                 VALUES (?1, ?2, ?2, 'enterprise', 'active', 0, 0)",
                rusqlite::params![t.to_string(), format!("bench-{i}")],
            )
            .expect("tenant");
        }
    }
    let writer = Writer::start(
        db.dedicated().expect("connection"),
        db.dedicated().expect("connection"),
        Arc::default(),
        open(),
    );
    let line = drive(clients, batch, secs, move |client, events| {
        let (writer, tenant) = (writer.clone(), tenants[client as usize % TENANTS]);
        async move {
            writer
                .submit(to_batch(tenant, events))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    format!("sqlite writer, {line}")
}

async fn pg_tenants(url: &str) -> (tenantry::db::pg::Pg, Vec<TenantId>) {
    let pg = tenantry::db::pg::Pg::open(url, 64)
        .await
        .expect("open PostgreSQL");
    let tenants = tenants();
    let c = pg.client().await.expect("connection");
    for (i, t) in tenants.iter().enumerate() {
        c.execute(
            "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
             VALUES ($1, $2, $2, 'enterprise', 'active', 0, 0)",
            &[&t.as_uuid(), &format!("bench-{i}")],
        )
        .await
        .expect("tenant");
    }
    (pg, tenants)
}

async fn postgres(url: &str, writers: u64, clients: u64, batch: u64, secs: u64) -> String {
    let (_pg, tenants) = pg_tenants(url).await;
    let writers: Vec<Writer> = (0..writers)
        .map(|_| tenantry::usage::pg_writer::start(url, open()).expect("writer"))
        .collect();
    let n = writers.len();
    let line = drive(clients, batch, secs, move |client, events| {
        let writer = writers[client as usize % n].clone();
        let tenant = tenants[client as usize % TENANTS];
        async move {
            writer
                .submit(to_batch(tenant, events))
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    format!("postgres writers {n}, {line}")
}

async fn raw(url: &str, clients: u64, batch: u64, secs: u64) -> String {
    let (pg, tenants) = pg_tenants(url).await;
    let line = drive(clients, batch, secs, move |client, events| {
        let (pg, tenant) = (pg.clone(), tenants[client as usize % TENANTS].as_uuid());
        async move {
            let mut c = pg.client().await?;
            let tx = c.transaction().await.map_err(|e| e.to_string())?;
            let rows: Vec<_> = events
                .iter()
                .map(|p| tenantry::usage::pg_store::NewRow {
                    tenant,
                    id: uuid::Uuid::parse_str(&p.id).expect("a uuid"),
                    priced: p,
                    mode: "hosted",
                    markup: 0,
                })
                .collect();
            let insert = tx
                .prepare_cached(tenantry::usage::pg_store::INSERT_EVENTS)
                .await
                .map_err(|e| e.to_string())?;
            tenantry::usage::pg_store::insert_events(&*tx, &insert, &rows, 0)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())
        }
    })
    .await;
    format!("raw postgres insert+commit per request, {line}")
}

/// Times `f` back to back for `secs`: "p50 A ms, p99 B ms (N reads)".
async fn time_reads<F, Fut>(secs: u64, mut f: F) -> String
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut h =
        hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        f().await;
        h.record(t.elapsed().as_micros() as u64).ok();
    }
    format!(
        "p50 {:.3} ms, p99 {:.3} ms ({} reads)",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len()
    )
}

async fn reads(url: &str, events: u64, secs: u64) -> String {
    use tenantry::usage::rollup::{day_of, month_span};
    let now = tenantry::time::to_micros(chrono::Utc::now());
    let (today, (first, next)) = (day_of(now), month_span(day_of(now)));
    let dir = std::env::temp_dir().join(format!("writerbench-{}", uuid::Uuid::new_v4()));
    let db = tenantry::db::Db::open(&dir.join("tenantry.db"), false).expect("open SQLite");
    let tenant = TenantId::new_random();
    db.conn()
        .expect("connection")
        .execute(
            "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
             VALUES (?1, 'reads', 'reads', 'enterprise', 'active', 0, 0)",
            [tenant.to_string()],
        )
        .expect("tenant");
    let sqlite = Writer::start(
        db.dedicated().expect("connection"),
        db.dedicated().expect("connection"),
        Arc::default(),
        open(),
    );
    let pg = tenantry::db::pg::Pg::open(url, 4)
        .await
        .expect("open PostgreSQL");
    pg.client()
        .await
        .expect("connection")
        .execute(
            "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
             VALUES ($1, 'reads', 'reads', 'enterprise', 'active', 0, 0)",
            &[&tenant.as_uuid()],
        )
        .await
        .expect("tenant");
    let postgres = tenantry::usage::pg_writer::start(url, open()).expect("writer");
    let settings = current();
    let fill = Instant::now();
    let mut i = 0u64;
    while i < events {
        let n = 1000.min(events - i);
        let batch: Vec<Priced> = (i..i + n)
            .map(|k| {
                let ts = now - (k % 30) as i64 * 86_400_000_000 - (k % 1000) as i64;
                let e = json!({"model": format!("model-{}", k % 20), "input_tokens": 100,
                    "output_tokens": 20, "agent_name": format!("agent-{}", k % 5),
                    "cost_usd": 0.0001, "timestamp": tenantry::time::rfc3339(ts)});
                let e = tenantry::usage::event::UsageEvent::parse(e, now).expect("event");
                Priced::new(e, &settings.settings, None).expect("priced")
            })
            .collect();
        let (a, b) = tokio::join!(
            sqlite.submit(to_batch(tenant, batch.clone())),
            postgres.submit(to_batch(tenant, batch))
        );
        a.expect("sqlite");
        b.expect("postgres");
        i += n;
    }
    let filled = fill.elapsed().as_secs_f64();
    let c = db.conn().expect("connection");
    let p = pg.client().await.expect("connection");
    let (t, u) = (tenant.to_string(), tenant.as_uuid());
    let statement = p
        .prepare_cached(&tenantry::usage::pg_store::day_and_month_sql())
        .await
        .expect("prepare");
    let mut out = vec![format!(
        "{events} events of one tenant over 30 days stored on both in {filled:.1} s"
    )];
    out.push(format!(
        "sqlite SELECT 1: {}",
        time_reads(secs, || async {
            c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))
                .expect("read");
        })
        .await
    ));
    out.push(format!(
        "sqlite limits (day + month totals): {}",
        time_reads(secs, || async {
            tenantry::usage::store::total(&c, &t, today, today + 1).expect("read");
            tenantry::usage::store::total(&c, &t, first, next).expect("read");
        })
        .await
    ));
    out.push(format!(
        "sqlite stats by model, 30 days: {}",
        time_reads(secs, || async {
            tenantry::usage::store::groups(&c, &t, "model", today - 29, today + 1).expect("read");
        })
        .await
    ));
    out.push(format!(
        "sqlite stats by day, 30 days: {}",
        time_reads(secs, || async {
            tenantry::usage::store::groups(&c, &t, "", today - 29, today + 1).expect("read");
        })
        .await
    ));
    out.push(format!(
        "postgres SELECT 1: {}",
        time_reads(secs, || async {
            p.query_one("SELECT 1", &[]).await.expect("read");
        })
        .await
    ));
    out.push(format!(
        "postgres limits (day + month totals): {}",
        time_reads(secs, || async {
            tenantry::usage::pg_store::day_and_month(&**p, &statement, &[u], today, (first, next))
                .await
                .expect("read");
        })
        .await
    ));
    out.push(format!(
        "postgres stats by model, 30 days: {}",
        time_reads(secs, || async {
            tenantry::usage::pg_reads::groups(&**p, u, "model", today - 29, today + 1)
                .await
                .expect("read");
        })
        .await
    ));
    out.push(format!(
        "postgres stats by day, 30 days: {}",
        time_reads(secs, || async {
            tenantry::usage::pg_reads::groups(&**p, u, "", today - 29, today + 1)
                .await
                .expect("read");
        })
        .await
    ));
    let _ = std::fs::remove_dir_all(&dir);
    out.join("\n")
}
