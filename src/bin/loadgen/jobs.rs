//! `loadgen jobs`: the hosted job queue's benchmarks (docs/BENCHMARKS.md, "Job queue"). Tenants
//! are named `{tag}-{i}`; every request uses the admin token, which no rate limit applies to.
use super::{Conn, Target};
use clap::Subcommand;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Subcommand)]
pub enum JobsCmd {
    /// Creates `--tenants` tenants `{tag}-{i}`, with `rate_limit_per_minute` 1000000 and
    /// `max_running_jobs` raised to `--max-running`.
    Setup {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 4)]
        tenants: usize,
        #[arg(long, default_value = "q")]
        tag: String,
        #[arg(long, default_value = "pro")]
        plan: String,
        #[arg(long, default_value_t = 100_000)]
        max_running: u64,
        #[arg(long, default_value_t = 4)]
        clients: usize,
    },
    /// Enqueues batches of `--batch` jobs (single jobs with 1), each request to the next
    /// tenant in turn; reports jobs/s and request latency.
    Enqueue {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 4)]
        tenants: usize,
        #[arg(long, default_value = "q")]
        tag: String,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Stop after this many jobs in all (0: run for --seconds).
        #[arg(long, default_value_t = 0)]
        jobs: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// `--workers` threads, each leasing `--max-jobs` at a time with the admin token and
    /// completing each job it gets; reports jobs completed/s and lease and complete latency.
    Work {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long, default_value_t = 16)]
        workers: usize,
        #[arg(long, default_value_t = 1)]
        max_jobs: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Enqueue one job to the same tenant for each job completed, so the number queued
        /// stays where it started (the "10 queued" measure).
        #[arg(long)]
        refill: bool,
    },
}

pub fn main(cmd: JobsCmd) {
    match cmd {
        JobsCmd::Setup {
            url,
            token,
            tenants,
            tag,
            plan,
            max_running,
            clients,
        } => setup(
            &Target::parse(&url),
            &token,
            tenants,
            &tag,
            &plan,
            max_running,
            clients,
        ),
        JobsCmd::Enqueue {
            url,
            token,
            tenants,
            tag,
            clients,
            batch,
            jobs,
            seconds,
        } => enqueue(
            &Target::parse(&url),
            &token,
            tenants,
            &tag,
            clients,
            batch,
            jobs,
            seconds,
        ),
        JobsCmd::Work {
            url,
            token,
            workers,
            max_jobs,
            seconds,
            refill,
        } => work(
            &Target::parse(&url),
            &token,
            workers,
            max_jobs,
            seconds,
            refill,
        ),
    }
}

fn pct(sorted_us: &[u64], p: f64) -> f64 {
    sorted_us
        .get(((sorted_us.len().max(1) - 1) as f64 * p).round() as usize)
        .map_or(0.0, |us| *us as f64 / 1000.0)
}

fn latency(v: &mut [u64]) -> String {
    v.sort_unstable();
    format!(
        "p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(v, 0.5),
        pct(v, 0.99),
        pct(v, 1.0)
    )
}

fn setup(
    t: &Target,
    token: &str,
    tenants: usize,
    tag: &str,
    plan: &str,
    max_running: u64,
    clients: usize,
) {
    let started = Instant::now();
    let failed = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let (addr, token, tag, plan, failed) = (
                t.addr.clone(),
                token.to_string(),
                tag.to_string(),
                plan.to_string(),
                failed.clone(),
            );
            std::thread::spawn(move || {
                let mut conn = Conn::open(&addr);
                for i in (c..tenants).step_by(clients) {
                    let slug = format!("{tag}-{i}");
                    let body = format!(r#"{{"name":"{slug}","slug":"{slug}","plan":"{plan}"}}"#);
                    let created = conn.fetch("POST", "/api/tenants", &token, "", &body);
                    let settings = format!(
                        r#"{{"rate_limit_per_minute":1000000,"max_running_jobs":{max_running}}}"#
                    );
                    let path = format!("/api/tenant/{slug}/settings");
                    let patched = conn.fetch("PATCH", &path, &token, "", &settings);
                    if !matches!(created, Some((201, _))) || !matches!(patched, Some((200, _))) {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    println!(
        "setup: {tenants} tenants ({} failed) in {:.2}s",
        failed.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}

#[allow(clippy::too_many_arguments)]
fn enqueue(
    t: &Target,
    token: &str,
    tenants: usize,
    tag: &str,
    clients: usize,
    batch: usize,
    jobs: u64,
    seconds: u64,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let requests = match jobs {
        0 => u64::MAX,
        n => n.div_ceil(batch as u64),
    };
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, token, tag, stop, next) = (
                t.addr.clone(),
                token.to_string(),
                tag.to_string(),
                stop.clone(),
                next.clone(),
            );
            std::thread::spawn(move || {
                let (mut lat, mut errors, mut done) = (Vec::new(), 0u64, 0u64);
                let mut conn = Conn::open(&addr);
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= requests {
                        break;
                    }
                    let job = format!(r#"{{"payload":{{"doc":"d-{n}.pdf"}},"kind":"extract"}}"#);
                    let body = match batch {
                        1 => job,
                        _ => format!(r#"{{"jobs":[{}]}}"#, vec![job; batch].join(",")),
                    };
                    let path = format!("/api/tenant/{tag}-{}/jobs", n % tenants as u64);
                    let t0 = Instant::now();
                    match conn.fetch("POST", &path, &token, "", &body) {
                        Some((201, _)) => {
                            lat.push(t0.elapsed().as_micros() as u64);
                            done += batch as u64;
                        }
                        Some(_) => errors += 1,
                        None => {
                            errors += 1;
                            conn = Conn::open(&addr);
                        }
                    }
                }
                (lat, errors, done)
            })
        })
        .collect();
    if jobs == 0 {
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    }
    let (mut lat, mut errors, mut done) = (Vec::new(), 0, 0);
    for h in handles {
        let (l, e, d) = h.join().expect("client thread");
        lat.extend(l);
        errors += e;
        done += d;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "enqueue: {done} jobs in {} requests of {batch} ({errors} errors) in {secs:.2}s = {:.0} jobs/s; request latency {}",
        lat.len(),
        done as f64 / secs,
        latency(&mut lat)
    );
}

/// What one worker thread saw.
#[derive(Default)]
struct Worked {
    leases: Vec<u64>,
    completes: Vec<u64>,
    empty: u64,
    done: u64,
    errors: u64,
}

fn work(t: &Target, token: &str, workers: usize, max_jobs: usize, seconds: u64, refill: bool) {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (addr, token, stop) = (t.addr.clone(), token.to_string(), stop.clone());
            std::thread::spawn(move || {
                let mut w = Worked::default();
                let mut conn = Conn::open(&addr);
                let lease = format!(r#"{{"max_jobs":{max_jobs}}}"#);
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let body = match conn.fetch("POST", "/api/queue/lease", &token, "", &lease) {
                        Some((200, body)) => body,
                        Some(_) => {
                            w.errors += 1;
                            continue;
                        }
                        None => {
                            w.errors += 1;
                            conn = Conn::open(&addr);
                            continue;
                        }
                    };
                    w.leases.push(t0.elapsed().as_micros() as u64);
                    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                    let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
                    if jobs.is_empty() {
                        w.empty += 1;
                    }
                    for j in jobs {
                        let (Some(id), Some(lease_token)) =
                            (j["id"].as_str(), j["lease_token"].as_str())
                        else {
                            w.errors += 1;
                            continue;
                        };
                        let path = format!("/api/queue/jobs/{id}/complete");
                        let body = format!(r#"{{"lease_token":"{lease_token}"}}"#);
                        let t1 = Instant::now();
                        match conn.fetch("POST", &path, &token, "", &body) {
                            Some((200, _)) => {
                                w.completes.push(t1.elapsed().as_micros() as u64);
                                w.done += 1;
                            }
                            _ => w.errors += 1,
                        }
                        if refill {
                            let tenant = j["tenant_id"].as_str().unwrap_or_default();
                            let header = format!("X-Tenant-ID: {tenant}\r\n");
                            let job = r#"{"payload":{"doc":"refill.pdf"},"kind":"extract"}"#;
                            if !matches!(
                                conn.fetch("POST", "/api/jobs", &token, &header, job),
                                Some((201, _))
                            ) {
                                w.errors += 1;
                            }
                        }
                    }
                }
                w
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Worked::default();
    for h in handles {
        let w = h.join().expect("worker thread");
        all.leases.extend(w.leases);
        all.completes.extend(w.completes);
        all.empty += w.empty;
        all.done += w.done;
        all.errors += w.errors;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "work: {workers} workers, max_jobs {max_jobs}{}: {} jobs leased and completed ({} errors) in {secs:.2}s = {:.0} jobs/s; {} leases ({} empty); lease latency {}; complete latency {}",
        if refill { ", refilled" } else { "" },
        all.done,
        all.errors,
        all.done as f64 / secs,
        all.leases.len(),
        all.empty,
        latency(&mut all.leases),
        latency(&mut all.completes),
    );
}
