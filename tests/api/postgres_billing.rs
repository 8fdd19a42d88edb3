//! Billing across two replicas on one PostgreSQL database (issue 19, docs/SCALE_OUT.md §5.3):
//! both finalizing one month store one statement per tenant, and a period one replica made
//! final is closed on the other, whatever the other's clock says, without an event slipping
//! in between (the tenant's `usage_totals` row lock orders the two).
use crate::helpers::{pg_connect, pg_database, spawn_tuned, TestApp, ADMIN};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::Duration;

async fn replica(url: &str) -> TestApp {
    spawn_tuned(
        &[
            ("TENANTRY_DATABASE_URL", url),
            ("ENCRYPTION_KEY", "postgres-billing-test-key"),
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_BILLING", "true"),
        ],
        |c| c.billing_finalize_every = Duration::from_millis(20),
    )
    .await
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(id: &str, ts: &str, cost: f64) -> Value {
    json!({"event_id": id, "model": "m", "input_tokens": 10, "output_tokens": 2,
           "timestamp": ts, "cost_usd": cost})
}

async fn ingest(app: &TestApp, slug: &str, events: Vec<Value>) -> crate::helpers::Resp {
    app.post(
        &format!("/api/tenant/{slug}/usage/events"),
        ADMIN,
        json!({ "events": events }),
    )
    .await
}

async fn statement(app: &TestApp, slug: &str, period: &str) -> Value {
    let r = app
        .get(
            &format!("/api/tenant/{slug}/billing/statements/{period}"),
            ADMIN,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn two_replicas_finalizing_one_month_store_one_statement_per_tenant() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    let slugs: Vec<String> = (0..6).map(|i| format!("tenant-{i}")).collect();
    for s in &slugs {
        a.create_tenant(s).await;
    }
    for app in [&a, &b] {
        app.clock.set(at("2026-09-20T12:00:00Z"));
    }
    // Usage through both replicas; the drafts are what the statements must equal.
    for (i, s) in slugs.iter().enumerate() {
        for (n, app) in [&a, &b].into_iter().enumerate() {
            let events = (0..3)
                .map(|k| {
                    event(
                        &format!("{n}-{k}"),
                        "2026-09-10T00:00:00Z",
                        0.001 * (i + k + 1) as f64,
                    )
                })
                .collect();
            assert_eq!(ingest(app, s, events).await.status, 201);
        }
    }
    let mut drafts = Vec::new();
    for s in &slugs {
        drafts.push(statement(&a, s, "2026-09").await);
    }

    // September becomes final on both at once: both finalizers sweep, and both replicas are
    // asked for every statement at the same moment.
    for app in [&a, &b] {
        app.clock.set(at("2026-10-05T00:00:00Z"));
    }
    let reads = slugs.iter().flat_map(|s| {
        [&a, &b]
            .into_iter()
            .map(move |app| async move { statement(app, s, "2026-09").await })
    });
    let finals = futures_util::future::join_all(reads).await;
    for (i, pair) in finals.chunks(2).enumerate() {
        assert_eq!(
            pair[0], pair[1],
            "both replicas answer the one stored statement"
        );
        assert_eq!(pair[0]["status"], "final");
        for k in ["lines", "events", "billed_cost_usd", "amount_due_usd"] {
            assert_eq!(pair[0][k], drafts[i][k], "{k}");
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c = pg_connect(&url).await;
    let rows = c
        .query(
            "SELECT s.tenant_id, s.events, count(l.model)
             FROM statements s JOIN statement_lines l USING (tenant_id, period)
             WHERE period = '2026-09' GROUP BY s.tenant_id, s.events",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), slugs.len(), "one statement per tenant");
    for r in &rows {
        assert_eq!((r.get::<_, i64>(1), r.get::<_, i64>(2)), (6, 1));
    }
    let announced: i64 = c
        .query_one(
            "SELECT count(*) FROM events WHERE event_type = 'statement.finalized'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        announced,
        slugs.len() as i64,
        "statement.finalized once a tenant"
    );
}

#[tokio::test]
async fn a_month_final_on_one_replica_refuses_its_events_on_the_other_whatever_its_clock() {
    let Some(url) = pg_database().await else {
        return;
    };
    let (a, b) = (replica(&url).await, replica(&url).await);
    a.create_tenant("acme").await;
    for app in [&a, &b] {
        app.clock.set(at("2026-10-20T12:00:00Z"));
    }
    assert_eq!(
        ingest(
            &a,
            "acme",
            vec![event("first", "2026-10-20T00:00:00Z", 1.0)]
        )
        .await
        .status,
        201
    );
    // October is a draft on both (a day of grace); B's clock stays there.
    for app in [&a, &b] {
        app.clock.set(at("2026-11-01T12:00:00Z"));
    }

    // B takes late October events until A stores the statement, and none after: every event
    // B acknowledged is in the statement, every other one was refused whole.
    let sender = {
        let (address, client) = (b.address.clone(), b.client.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for n in 0..3000 {
                let r = client
                    .post(format!("{address}/api/tenant/acme/usage/events"))
                    .bearer_auth(ADMIN)
                    .json(&json!({"events": [event(&format!("late-{n}"), "2026-10-31T23:00:00Z", 0.5)]}))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                answers.push((status, body["error"].as_str().unwrap_or("").to_string()));
                if status != 201 && answers.iter().filter(|a| a.0 != 201).count() >= 20 {
                    break;
                }
            }
            answers
        })
    };
    // While B takes them, October becomes final by A's clock: A's finalizer stores it.
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.clock.set(at("2026-11-03T00:00:00Z"));
    let fin = statement(&a, "acme", "2026-10").await;
    assert_eq!(fin["status"], "final");
    let answers = sender.await.unwrap();
    let acked = answers.iter().take_while(|a| a.0 == 201).count();
    assert!(acked > 0, "B took late events while October was open to it");
    assert!(
        answers[acked..]
            .iter()
            .all(|a| (a.0, a.1.as_str()) == (409, "period_closed")),
        "after the statement every late event is period_closed: {:?}",
        &answers[acked..]
    );
    assert_eq!(
        fin["events"],
        1 + acked as i64,
        "every acknowledged event is in the statement"
    );

    // A request with an open month's event and a closed one is refused whole, on B.
    let r = ingest(
        &b,
        "acme",
        vec![
            event("nov", "2026-11-01T10:00:00Z", 1.0),
            event("oct", "2026-10-31T22:00:00Z", 1.0),
        ],
    )
    .await;
    r.assert_error(409, "period_closed");
    let c = pg_connect(&url).await;
    let stored: i64 = c
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        1 + acked as i64,
        "nothing of a refused request is stored"
    );
    assert_eq!(statement(&b, "acme", "2026-10").await, fin);
    // November is open on B.
    let r = ingest(&b, "acme", vec![event("nov", "2026-11-01T10:00:00Z", 1.0)]).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn storing_a_statement_waits_for_the_lock_every_usage_writer_takes() {
    let Some(url) = pg_database().await else {
        return;
    };
    let a = replica(&url).await;
    let id = a.create_tenant("acme").await["id"]
        .as_str()
        .unwrap()
        .to_string();
    a.clock.set(at("2026-10-20T12:00:00Z"));
    let r = ingest(&a, "acme", vec![event("e", "2026-10-20T00:00:00Z", 1.0)]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The test holds the tenant's totals row as a usage writer on another replica would.
    let mut c = pg_connect(&url).await;
    let tx = c.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM usage_totals WHERE tenant_id = $1::text::uuid FOR UPDATE",
        &[&id],
    )
    .await
    .unwrap();
    a.clock.set(at("2026-11-03T00:00:00Z"));
    let read = {
        let (address, client) = (a.address.clone(), a.client.clone());
        tokio::spawn(async move {
            client
                .get(format!(
                    "{address}/api/tenant/acme/billing/statements/2026-10"
                ))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !read.is_finished(),
        "the statement was stored under a writer's lock"
    );
    let stored: i64 = tx
        .query_one("SELECT count(*) FROM statements", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored, 0);
    tx.commit().await.unwrap();
    let fin = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("stored once the lock is free")
        .unwrap();
    assert_eq!(
        (fin["status"].as_str(), fin["events"].as_i64()),
        (Some("final"), Some(1))
    );
}
