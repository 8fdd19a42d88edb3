//! Serving from PostgreSQL (issue 19): health, authentication and usage ingest with its reads,
//! on one replica and on two replicas sharing one database.
use crate::helpers::{
    cli, output_text, pg_connect, pg_database, spawn_tuned, Process, TestApp, ADMIN,
};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub const KEY: &str = "postgres-test-encryption-key";

pub async fn replica(url: &str) -> TestApp {
    spawn_tuned(
        &[("TENANTRY_DATABASE_URL", url), ("ENCRYPTION_KEY", KEY)],
        |_| {},
    )
    .await
}

fn event(id: &str, tokens: u64) -> Value {
    json!({"event_id": id, "model": "gpt-4o", "input_tokens": tokens, "output_tokens": 0, "agent_name": "a"})
}

#[tokio::test]
async fn one_replica_ingests_and_reads_usage_from_postgres() {
    let Some(url) = pg_database().await else {
        return;
    };
    let app = replica(&url).await;
    assert_eq!(app.get("/ready", ADMIN).await.status, 200);
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"events": [event("a", 100), event("b", 50), event("a", 100)]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["duplicates"], 1);
    let again = app.post("/api/usage/events", ADMIN, event("b", 50)).await;
    assert_eq!(again.body["duplicates"], 1);
    let stats = app.get("/api/usage/stats?group_by=model", ADMIN).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["totals"]["events"], 2);
    assert_eq!(stats.body["totals"]["input_tokens"], 150);
    assert_eq!(stats.body["groups"][0]["key"], "gpt-4o");
    let summary = app.get("/api/usage/summary", ADMIN).await;
    assert_eq!(summary.status, 200, "{}", summary.body);
    assert_eq!(summary.body["today"]["events"], 2);
    assert_eq!(app.get("/api/usage/limits", ADMIN).await.status, 200);
    // The rows are in PostgreSQL, with the totals row the writers lock.
    let c = pg_connect(&url).await;
    let n: i64 = c
        .query_one("SELECT events FROM usage_totals", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 2);
    // Webhooks have their PostgreSQL store now (postgres_webhooks: across replicas).
    let r = app.get("/api/webhooks", ADMIN).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app.get("/openapi.json", ADMIN).await;
    assert_eq!(r.status, 200);
}

/// Two replicas on one database: an event acknowledged by one is read by the other at once,
/// and one `event_id` sent to both at the same time is stored once.
#[tokio::test]
async fn two_replicas_share_ingest_and_store_one_event_id_once() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let r = a.post("/api/usage/events", ADMIN, event("first", 40)).await;
    assert_eq!(r.status, 201);
    let stats = b.get("/api/usage/stats", ADMIN).await;
    assert_eq!(stats.body["totals"]["events"], 1, "{}", stats.body);
    for round in 0..30 {
        let id = format!("both-{round}");
        let (x, y) = tokio::join!(
            a.post("/api/usage/events", ADMIN, event(&id, 10)),
            b.post("/api/usage/events", ADMIN, event(&id, 10))
        );
        assert_eq!((x.status, y.status), (201, 201));
        let accepted = x.body["accepted"].as_i64().unwrap() + y.body["accepted"].as_i64().unwrap();
        assert_eq!(accepted, 1, "round {round}");
        assert_eq!(x.body["events"][0]["id"], y.body["events"][0]["id"]);
    }
    let n: i64 = pg_connect(&url)
        .await
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 31);
    for app in [&a, &b] {
        let stats = app.get("/api/usage/stats", ADMIN).await;
        assert_eq!(stats.body["totals"]["events"], 31);
    }
}

/// A limit crossed by ingest on two replicas at once: one event per limit, window and mark,
/// and both replicas report the tenant over its limit afterwards.
#[tokio::test]
async fn a_limit_crossed_on_two_replicas_records_each_mark_once() {
    let Some(url) = pg_database().await else {
        return;
    };
    // The settings API has no PostgreSQL store yet: the limit is set before the replicas start.
    let a = replica(&url).await;
    pg_connect(&url)
        .await
        .execute(
            "INSERT INTO settings_versions (tenant_id, version, body, changed_by, changed_at)
             VALUES ('00000000-0000-0000-0000-000000000000', 2,
                     '{\"limits\": {\"daily_tokens\": 1000}}', 'test', 0)",
            &[],
        )
        .await
        .unwrap();
    let (a, b) = (a.restart().await, replica(&url).await);
    let mut sends = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        sends.push(app.post("/api/usage/events", ADMIN, event(&format!("e{i}"), 60)));
    }
    for r in futures_util::future::join_all(sends).await {
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let rows = pg_connect(&url)
        .await
        .query(
            "SELECT event_type, count(*) FROM events WHERE event_type LIKE 'limit.%' GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        got,
        vec![("limit.exceeded".into(), 1), ("limit.warning".into(), 1)]
    );
    for app in [&a, &b] {
        let limits = app.get("/api/usage/limits", ADMIN).await;
        assert_eq!(limits.body["status"], "exceeded", "{}", limits.body);
    }
}

/// `kill -9` of one replica while clients ingest through both: every event either replica
/// acknowledged is in the database.
#[tokio::test]
async fn kill_9_of_one_replica_under_ingest_loses_no_acknowledged_event() {
    let Some(url) = pg_database().await else {
        return;
    };
    let env = [
        ("TENANTRY_DATABASE_URL", url.as_str()),
        ("ENCRYPTION_KEY", KEY),
        ("TENANTRY_ADMIN_TOKEN", ADMIN),
        ("TENANTRY_LOG", "warn"),
    ];
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut victim = Process::start(da.path(), &env);
    let survivor = Process::start(db.path(), &env);
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for (r, base) in [&victim.url, &survivor.url].into_iter().enumerate() {
        for w in 0..4 {
            let (client, base, acked) = (client.clone(), base.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..100_000 {
                    let ids: Vec<String> = (0..20).map(|i| format!("r{r}-w{w}-{n}-{i}")).collect();
                    let events: Vec<Value> = ids.iter().map(|id| event(id, 1)).collect();
                    let res = client
                        .post(format!("{base}/api/usage/events"))
                        .bearer_auth(ADMIN)
                        .json(&json!({"events": events}))
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().extend(ids),
                        _ if r == 0 => return,
                        _ => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                    }
                    if r == 1 && n > 0 && acked.lock().unwrap().len() > 40_000 {
                        return;
                    }
                }
            }));
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    unsafe { libc::kill(victim.child.id() as i32, libc::SIGKILL) };
    victim.child.wait().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    let from_victim = acked.iter().filter(|id| id.starts_with("r0-")).count();
    assert!(
        from_victim > 0 && acked.len() > from_victim,
        "both replicas acknowledged events"
    );
    let stored: HashSet<String> = pg_connect(&url)
        .await
        .query("SELECT event_id FROM usage_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains(*id))
        .take(5)
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged events lost, e.g. {lost:?}",
        acked.iter().filter(|id| !stored.contains(*id)).count()
    );
    let mut survivor = survivor;
    survivor.child.kill().unwrap();
    survivor.child.wait().unwrap();
}

#[tokio::test]
async fn serving_from_postgres_without_an_encryption_key_is_refused_in_one_line() {
    let Some(url) = pg_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = cli(dir.path());
        c.env("TENANTRY_DATABASE_URL", &url)
            .env("TENANTRY_BIND", "127.0.0.1:0");
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(!out.status.success());
        output_text(&out)
    };
    let text = run(&[]);
    assert!(text.contains("ENCRYPTION_KEY must be set"), "{text}");
    assert_eq!(text.trim().lines().count(), 1, "{text}");
}
