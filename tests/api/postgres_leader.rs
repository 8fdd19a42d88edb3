//! The leader for the background duties on PostgreSQL (docs/SCALE_OUT.md §5.3): of several
//! replicas on one database exactly one leads, the others count it alive, and when the leader
//! is killed another takes over once its lease expires.
use crate::helpers::{pg_database, Process, ADMIN};
use crate::postgres_serve::KEY;
use std::time::{Duration, Instant};

/// A replica's `tenantry_replica_leader` and `tenantry_replicas_alive` from `/metrics`.
async fn membership(base: &str) -> Option<(i64, i64)> {
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok())
    };
    Some((
        value("tenantry_replica_leader")?,
        value("tenantry_replicas_alive")?,
    ))
}

/// Polls until `ok` holds for the replicas' memberships, or `within` passes.
async fn until(
    bases: &[&str],
    within: Duration,
    ok: impl Fn(&[(i64, i64)]) -> bool,
) -> Vec<(i64, i64)> {
    let start = Instant::now();
    loop {
        let mut seen = Vec::new();
        for b in bases {
            seen.push(membership(b).await.unwrap_or((-1, -1)));
        }
        if ok(&seen) || start.elapsed() > within {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn one_of_three_replicas_leads_and_another_takes_over_when_it_is_killed() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = [
        ("TENANTRY_DATABASE_URL", url.as_str()),
        ("ENCRYPTION_KEY", KEY),
        ("TENANTRY_ADMIN_TOKEN", ADMIN),
        ("TENANTRY_LOG", "warn"),
    ];
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut replicas: Vec<Process> = dirs
        .iter()
        .map(|d| Process::start(d.path(), &env))
        .collect();
    let bases: Vec<String> = replicas.iter().map(|p| p.url.clone()).collect();
    let refs: Vec<&str> = bases.iter().map(String::as_str).collect();

    let one_leader = |seen: &[(i64, i64)]| {
        seen.iter().filter(|s| s.0 == 1).count() == 1
            && seen.iter().all(|s| s.0 >= 0 && s.1 == seen.len() as i64)
    };
    let seen = until(&refs, Duration::from_secs(10), one_leader).await;
    assert!(one_leader(&seen), "three replicas: {seen:?}");
    // Still exactly one a few renewals later: no flapping between replicas.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let later = until(&refs, Duration::ZERO, |_| true).await;
    assert_eq!(later, seen, "the leader stays the leader while it renews");

    let leader = seen.iter().position(|s| s.0 == 1).unwrap();
    let mut victim = replicas.remove(leader);
    unsafe { libc::kill(victim.child.id() as i32, libc::SIGKILL) };
    victim.child.wait().unwrap();
    let killed_at = Instant::now();
    let rest: Vec<&str> = replicas.iter().map(|p| p.url.as_str()).collect();
    let taken_over = |seen: &[(i64, i64)]| {
        seen.iter().filter(|s| s.0 == 1).count() == 1 && seen.iter().all(|s| s.1 == 2)
    };
    // The lease (10 s) expires, the next renewal (every 2 s) takes it; the dead replica's
    // heartbeat stops counting after 10 s.
    let seen = until(&rest, Duration::from_secs(20), taken_over).await;
    assert!(taken_over(&seen), "after the kill: {seen:?}");
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(7),
        "nobody may take a lease before it expires (took over after {took:?})"
    );
    eprintln!("a new leader after {took:?}");
}
