//! The job queue under `kill -9`: every acknowledged job survives, a job running at the crash
//! is leased again only once its lease has expired, and no job is ever held by two live leases.
use crate::helpers::Process;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "queue-durability-admin-token-0123";
const ENV: &[(&str, &str)] = &[
    ("TENANTRY_ADMIN_TOKEN", ADMIN),
    ("ENCRYPTION_KEY", "queue-durability-test-key"),
    ("TENANTRY_LOG", "warn"),
    ("ENABLE_MULTI_TENANT", "true"),
    ("ENABLE_HOSTED_QUEUE", "true"),
];
const TENANTS: [&str; 3] = ["alpha", "beta", "gamma"];
/// The shortest lease the contract allows, so the crash's leases expire within the test.
const LEASE_SECONDS: i64 = 5;

/// One lease as a worker was answered: the job, when it was leased (`updated_at`) and when the
/// lease ends (`lease_expires_at`), in microseconds; `after_restart` for the second server.
#[derive(Clone, Debug)]
struct Lease {
    job: String,
    from: i64,
    until: i64,
    after_restart: bool,
}

#[derive(Default)]
struct Seen {
    /// Job ids answered 201 to an enqueue.
    acked: HashSet<String>,
    leases: Vec<Lease>,
    /// Job ids whose complete was answered 200 before the crash.
    completed: HashSet<String>,
}

type Shared = Arc<Mutex<Seen>>;

fn micros(v: &Value) -> i64 {
    let s = v.as_str().expect("a timestamp");
    chrono::DateTime::parse_from_rfc3339(s)
        .expect("RFC 3339")
        .timestamp_micros()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Enqueues jobs (`batch` 1: single POSTs, else batches) until a request fails, recording every
/// id answered 201.
fn enqueuer(url: String, slug: &str, batch: usize, seen: Shared) -> tokio::task::JoinHandle<()> {
    let path = format!("{url}/api/tenant/{slug}/jobs");
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let job = || json!({"payload": {"doc": "a.pdf"}, "lease_seconds": LEASE_SECONDS});
        for _ in 0.. {
            let body = match batch {
                1 => job(),
                n => json!({"jobs": (0..n).map(|_| job()).collect::<Vec<_>>()}),
            };
            let r = client
                .post(&path)
                .bearer_auth(ADMIN)
                .json(&body)
                .send()
                .await;
            let Ok(r) = r else { return };
            if r.status() != 201 {
                return;
            }
            let Ok(v) = r.json::<Value>().await else {
                return;
            };
            let jobs = match batch {
                1 => vec![v],
                _ => v["jobs"].as_array().cloned().unwrap_or_default(),
            };
            {
                let mut s = seen.lock().unwrap();
                for j in jobs {
                    s.acked.insert(j["id"].as_str().unwrap().to_string());
                }
            }
            // Paced, so the workers after the restart get through the backlog within seconds.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// Leases with the admin token until `stop` or a failed request, recording every lease, and
/// completes the jobs `complete` picks.
fn worker(
    url: String,
    seen: Shared,
    stop: Arc<AtomicBool>,
    after_restart: bool,
    complete: fn(usize) -> bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let r = client
                .post(format!("{url}/api/queue/lease"))
                .bearer_auth(ADMIN)
                .json(&json!({"max_jobs": 5, "wait_seconds": 1}))
                .send()
                .await;
            let Ok(r) = r else { return };
            if r.status() != 200 {
                return;
            }
            let Ok(v) = r.json::<Value>().await else {
                return;
            };
            let jobs = v["jobs"].as_array().cloned().unwrap_or_default();
            seen.lock()
                .unwrap()
                .leases
                .extend(jobs.iter().map(|j| Lease {
                    job: j["id"].as_str().unwrap().to_string(),
                    from: micros(&j["updated_at"]),
                    until: micros(&j["lease_expires_at"]),
                    after_restart,
                }));
            for j in jobs {
                n += 1;
                if !complete(n) {
                    continue;
                }
                let id = j["id"].as_str().unwrap();
                let r = client
                    .post(format!("{url}/api/queue/jobs/{id}/complete"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"lease_token": j["lease_token"]}))
                    .send()
                    .await;
                let Ok(r) = r else { return };
                if r.status() == 200 && !after_restart {
                    seen.lock().unwrap().completed.insert(id.to_string());
                }
            }
        }
    })
}

async fn setup(url: &str) {
    let client = reqwest::Client::new();
    for slug in TENANTS {
        let r = client
            .post(format!("{url}/api/tenants"))
            .bearer_auth(ADMIN)
            .json(&json!({"name": slug, "slug": slug, "plan": "pro"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        // Workers leave half their jobs running: the plan's 10 would stall leasing.
        let r = client
            .patch(format!("{url}/api/tenant/{slug}/settings"))
            .bearer_auth(ADMIN)
            .json(&json!({"max_running_jobs": 100000}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

/// The jobs table as the crash left it: every id, and each running job's lease end.
fn stored(dir: &std::path::Path) -> (HashSet<String>, HashMap<String, i64>) {
    let db = rusqlite::Connection::open(dir.join("tenantry.db")).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let ids = db
        .prepare("SELECT id FROM jobs")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let running = db
        .prepare("SELECT id, lease_expires_at FROM jobs WHERE status = 'running'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    (ids, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_enqueue_and_lease_loses_no_job_and_never_leases_one_twice_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(dir.path(), ENV);
    let url = server.url.clone();
    setup(&url).await;

    // Before the crash: single and batch enqueuers, and workers completing every other job.
    let seen: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, slug) in TENANTS.iter().enumerate() {
        tasks.push(enqueuer(url.clone(), slug, 1, seen.clone()));
        tasks.push(enqueuer(url.clone(), slug, 10 + 10 * i, seen.clone()));
    }
    for _ in 0..4 {
        tasks.push(worker(
            url.clone(),
            seen.clone(),
            stop.clone(),
            false,
            |n| n % 2 == 0,
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.child.kill().unwrap(); // SIGKILL
    server.wait();
    for t in tasks {
        let _ = t.await;
    }

    let (ids, running) = stored(dir.path());
    {
        let s = seen.lock().unwrap();
        assert!(
            s.acked.len() >= 200 && !s.completed.is_empty() && !running.is_empty(),
            "too little happened before the kill: {} acknowledged, {} completed, {} running",
            s.acked.len(),
            s.completed.len(),
            running.len()
        );
        let lost: Vec<_> = s.acked.difference(&ids).take(5).collect();
        assert!(
            lost.is_empty(),
            "acknowledged but lost: {lost:?} (of {})",
            s.acked.len()
        );
    }

    // After the restart: workers lease until every job running at the crash is leased again
    // (its lease expires, then one second of backoff), completing all they get.
    let server = Process::start(dir.path(), ENV);
    let last_expiry = running.values().copied().max().unwrap_or(0);
    let deadline = Instant::now()
        + Duration::from_micros((last_expiry - now_micros()).max(0) as u64)
        + Duration::from_secs(4);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            worker(server.url.clone(), seen.clone(), stop.clone(), true, |_| {
                true
            })
        })
        .collect();
    loop {
        let released: HashSet<String> = {
            let s = seen.lock().unwrap();
            s.leases
                .iter()
                .filter(|l| l.after_restart)
                .map(|l| l.job.clone())
                .collect()
        };
        if running.keys().all(|id| released.contains(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let mut server = server;
    server.child.kill().unwrap();
    server.wait();

    let s = seen.lock().unwrap();
    eprintln!(
        "{} acknowledged, {} completed before the crash, {} running at it, {} leases, {} after the restart",
        s.acked.len(),
        s.completed.len(),
        running.len(),
        s.leases.len(),
        s.leases.iter().filter(|l| l.after_restart).count()
    );
    let mut by_job: HashMap<&str, Vec<&Lease>> = HashMap::new();
    for l in &s.leases {
        by_job.entry(&l.job).or_default().push(l);
    }
    for (id, expiry) in &running {
        let again: Vec<_> = by_job
            .get(id.as_str())
            .map(|ls| ls.iter().filter(|l| l.after_restart).collect())
            .unwrap_or_default();
        assert!(
            !again.is_empty(),
            "job {id}, running at the crash, was not leased again"
        );
        for l in again {
            assert!(
                l.from >= *expiry,
                "job {id} was leased again at {} before its lease ended at {expiry}",
                l.from
            );
        }
    }
    for id in &s.completed {
        let n = by_job.get(id.as_str()).map_or(0, Vec::len);
        assert_eq!(
            n, 1,
            "job {id}, completed before the crash, was leased {n} times"
        );
    }
    for (id, ls) in by_job.iter_mut() {
        ls.sort_by_key(|l| l.from);
        for w in ls.windows(2) {
            assert!(
                w[1].from >= w[0].until,
                "job {id} was held by two live leases: {:?} and {:?}",
                w[0],
                w[1]
            );
        }
    }
}
