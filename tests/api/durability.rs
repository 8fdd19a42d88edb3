//! Acknowledged usage events survive `kill -9` of the server in the middle of ingest.
use crate::helpers::{ingest_until_refused, Process};
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ADMIN: &str = "durability-admin-token-0123";

#[tokio::test]
async fn every_acknowledged_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Process::start(
        dir.path(),
        &[
            ("TENANTRY_ADMIN_TOKEN", ADMIN),
            ("ENCRYPTION_KEY", "durability-test-key"),
            ("TENANTRY_LOG", "warn"),
        ],
    );
    let url = server.url.clone();

    let started = Instant::now();
    let (acked, tasks) = ingest_until_refused(&url, ADMIN, 8, 20);
    while acked.lock().unwrap().len() < 2000 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.kill().unwrap(); // SIGKILL
    server.wait();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 2000,
        "only {} events were acknowledged before the kill",
        acked.len()
    );

    let db = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    let mut stmt = db.prepare("SELECT event_id FROM usage_events").unwrap();
    let stored: HashSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).take(5).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost: {lost:?} (of {})",
        acked.len()
    );
    // The rollups agree with the events.
    let rolled: i64 = db
        .query_row(
            "SELECT sum(events) FROM usage_rollups WHERE dim = ''",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rolled as usize, stored.len());
}
