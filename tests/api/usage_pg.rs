//! The usage writer on PostgreSQL (issue 19), driven directly: the server does not serve from
//! PostgreSQL yet. Each "replica" is a writer of its own on one database, as two tenantry
//! processes would have. Compared with SQLite's writer on the same batches.
use crate::helpers::{pg_connect, pg_database};
use serde_json::{json, Value};
use std::sync::Arc;
use tenantry::limits::Level;
use tenantry::settings::cache::Current;
use tenantry::settings::Settings;
use tenantry::tenancy::TenantId;
use tenantry::usage::priced::Priced;
use tenantry::usage::writer::{Batch, ClosedBefore, Outcome, Writer};

const NOW: i64 = 1_780_000_000_000_000; // 2026-05-28, mid-month

fn open() -> ClosedBefore {
    Arc::new(|| None)
}

/// A migrated database with `n` tenants besides the default one; their ids.
async fn database(n: usize) -> Option<(String, Vec<TenantId>)> {
    let url = pg_database().await?;
    tenantry::db::pg::Pg::open(&url, 1).await.unwrap();
    let c = pg_connect(&url).await;
    let mut tenants = Vec::new();
    for i in 0..n {
        let id = uuid::Uuid::new_v4();
        c.execute(
            "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
             VALUES ($1, $2, $2, 'basic', 'active', 0, 0)",
            &[&id, &format!("t{i}")],
        )
        .await
        .unwrap();
        tenants.push(TenantId::from_uuid(id));
    }
    Some((url, tenants))
}

fn settings(s: Value) -> Arc<Current> {
    Arc::new(Current {
        version: 1,
        settings: serde_json::from_value::<Settings>(s).unwrap(),
        changed_at: 0,
    })
}

fn priced(events: &[Value], current: &Current) -> Vec<Priced> {
    events
        .iter()
        .map(|e| {
            let e = tenantry::usage::event::UsageEvent::parse(e.clone(), NOW).unwrap();
            Priced::new(e, &current.settings, None).unwrap()
        })
        .collect()
}

fn batch(tenant: TenantId, current: &Arc<Current>, events: Vec<Priced>) -> Batch {
    Batch {
        tenant,
        settings: current.clone(),
        events,
        now: NOW,
    }
}

fn tokens(n: u64, event_id: Option<String>) -> Value {
    let mut e =
        json!({"model": "gpt-4o", "input_tokens": n, "output_tokens": 0, "cost_usd": 0.001});
    if let Some(id) = event_id {
        e["event_id"] = json!(id);
    }
    e
}

/// Every rollup row, as text, in key order.
async fn rollups_pg(url: &str) -> Vec<String> {
    pg_connect(url)
        .await
        .query(
            "SELECT tenant_id::text, dim, day, key, events, input_tokens, output_tokens,
                    estimated_nanos, billed_nanos, cache_read_tokens, cache_write_tokens,
                    reasoning_tokens
             FROM usage_rollups ORDER BY tenant_id, dim, day, key",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let mut s = format!(
                "{}|{}|{}|{}",
                r.get::<_, String>(0),
                r.get::<_, String>(1),
                r.get::<_, i64>(2),
                r.get::<_, String>(3)
            );
            for i in 4..12 {
                s += &format!("|{}", r.get::<_, i64>(i));
            }
            s
        })
        .collect()
}

fn rollups_sqlite(path: &std::path::Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut s = c
        .prepare(
            "SELECT tenant_id, dim, day, key, events, input_tokens, output_tokens,
                    estimated_nanos, billed_nanos, cache_read_tokens, cache_write_tokens,
                    reasoning_tokens
             FROM usage_rollups ORDER BY tenant_id, dim, day, key",
        )
        .unwrap();
    s.query_map([], |r| {
        let mut s = format!(
            "{}|{}|{}|{}",
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, String>(3)?
        );
        for i in 4..12 {
            s += &format!("|{}", r.get::<_, i64>(i)?);
        }
        Ok(s)
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

fn summary(o: &Outcome) -> String {
    let ids: Vec<String> = o
        .events
        .iter()
        .map(|e| format!("{}:{}:{}", e.id, e.duplicate, e.billed.nanos()))
        .collect();
    format!(
        "{} {} {:?} {:?}",
        o.accepted, o.duplicates, o.limits.level, ids
    )
}

#[tokio::test]
async fn the_postgres_writer_stores_what_the_sqlite_writer_stores() {
    let Some((url, tenants)) = database(2).await else {
        return;
    };
    // The same tenants on SQLite.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tenantry.db");
    let db = tenantry::db::Db::open(&path, false).unwrap();
    {
        let c = db.conn().unwrap();
        for (i, t) in tenants.iter().enumerate() {
            c.execute(
                "INSERT INTO tenants (id, name, slug, plan, status, created_at, updated_at)
                 VALUES (?1, ?2, ?2, 'basic', 'active', 0, 0)",
                rusqlite::params![t.to_string(), format!("t{i}")],
            )
            .unwrap();
        }
    }
    let sqlite = Writer::start(
        db.dedicated().unwrap(),
        db.dedicated().unwrap(),
        Arc::default(),
        open(),
    );
    let pg = tenantry::usage::pg_writer::start(&url, open()).unwrap();
    let hosted = settings(json!({"markup_percent": 12.5, "limits": {"daily_tokens": 5000}}));
    let byo = settings(json!({"execution_mode": "byo_key"}));
    let requests: Vec<(TenantId, Arc<Current>, Vec<Value>)> = vec![
        (
            tenants[0],
            hosted.clone(),
            vec![tokens(1000, Some("a".into())), tokens(7, None)],
        ),
        // A duplicate of an earlier request's event, and one within the request.
        (
            tenants[0],
            hosted.clone(),
            vec![
                tokens(1000, Some("a".into())),
                tokens(5, Some("b".into())),
                tokens(5, Some("b".into())),
            ],
        ),
        // Past the warning mark, then past the limit.
        (tenants[0], hosted.clone(), vec![tokens(3100, None)]),
        (tenants[0], hosted.clone(), vec![tokens(2000, None)]),
        (
            tenants[1],
            byo.clone(),
            vec![
                json!({"model": "no-such-model", "input_tokens": 10, "output_tokens": 20, "agent_name": "agent \"x\"", "user_id": "u1", "job_id": "j1", "pipeline_stage": "s", "cache_read_tokens": 3, "reasoning_tokens": 4, "metadata": {"k": "é\n"}}),
                json!({"model": "gpt-4o", "input_tokens": 1, "output_tokens": 2, "cost_usd": 1.5, "timestamp": "2026-05-01T00:00:00Z"}),
            ],
        ),
    ];
    for (tenant, current, events) in requests {
        let events = priced(&events, &current);
        let a = sqlite
            .submit(batch(tenant, &current, events.clone()))
            .await
            .unwrap();
        let b = pg.submit(batch(tenant, &current, events)).await.unwrap();
        assert_eq!(summary(&a), summary(&b));
    }
    sqlite.flush().await.unwrap();
    let (s, p) = (rollups_sqlite(&path), rollups_pg(&url).await);
    assert!(s.len() > 12, "{s:#?}");
    assert_eq!(s, p);
    // The same operational events (type and once_key) on both stores.
    let pg_events: Vec<String> = pg_connect(&url)
        .await
        .query("SELECT tenant_id::text || ' ' || event_type || ' ' || coalesce(once_key, '') FROM events ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let c = rusqlite::Connection::open(&path).unwrap();
    let sqlite_events: Vec<String> = c
        .prepare("SELECT tenant_id || ' ' || event_type || ' ' || coalesce(once_key, '') FROM events WHERE tenant_id <> '00000000-0000-0000-0000-000000000000' ORDER BY 1")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(pg_events, sqlite_events);
    assert!(
        pg_events.iter().any(|e| e.contains("limit.exceeded")),
        "{pg_events:?}"
    );
    assert!(
        pg_events
            .iter()
            .any(|e| e.contains("pricing.unknown_model")),
        "{pg_events:?}"
    );
    assert_totals_match_events(&url).await;
    // The reads on the rollups (stats groups, limit windows) answer alike on both stores.
    let pg = pg_connect(&url).await;
    for t in &tenants {
        for dim in [
            "",
            "model",
            "agent_name",
            "user_id",
            "pipeline_stage",
            "model.hosted",
            "model.byo_key",
        ] {
            let s = tenantry::usage::store::groups(&c, &t.to_string(), dim, 0, i64::MAX).unwrap();
            let p = tenantry::usage::pg_reads::groups(&pg, t.as_uuid(), dim, 0, i64::MAX)
                .await
                .unwrap();
            assert_eq!(s, p, "{t} {dim}");
        }
        let s = tenantry::usage::store::total(&c, &t.to_string(), 0, i64::MAX).unwrap();
        let p = tenantry::usage::pg_reads::total(&pg, t.as_uuid(), 0, i64::MAX)
            .await
            .unwrap();
        assert_eq!(s, p);
        assert!(s.events > 0);
    }
}

/// `usage_totals` holds exactly the sums of the stored events, per tenant.
async fn assert_totals_match_events(url: &str) {
    let c = pg_connect(url).await;
    let off: i64 = c
        .query_one(
            "SELECT count(*) FROM usage_totals t FULL JOIN (
                 SELECT tenant_id, count(*) AS events, sum(input_tokens)::bigint AS input_tokens,
                        sum(estimated_nanos)::bigint AS estimated_nanos,
                        sum(billed_nanos)::bigint AS billed_nanos
                 FROM usage_events GROUP BY tenant_id) e ON e.tenant_id = t.tenant_id
             WHERE (t.events, t.input_tokens, t.estimated_nanos, t.billed_nanos)
                   IS DISTINCT FROM (e.events, e.input_tokens, e.estimated_nanos, e.billed_nanos)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(off, 0, "usage_totals differ from the events' sums");
}

#[tokio::test]
async fn the_same_event_id_sent_to_two_replicas_at_once_is_stored_once() {
    let Some((url, tenants)) = database(1).await else {
        return;
    };
    let (a, b) = (
        tenantry::usage::pg_writer::start(&url, open()).unwrap(),
        tenantry::usage::pg_writer::start(&url, open()).unwrap(),
    );
    let current = settings(json!({}));
    for round in 0..40 {
        let id = format!("e{round}");
        let (x, y) = tokio::join!(
            a.submit(batch(
                tenants[0],
                &current,
                priced(&[tokens(10, Some(id.clone()))], &current)
            )),
            b.submit(batch(
                tenants[0],
                &current,
                priced(&[tokens(10, Some(id.clone()))], &current)
            )),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.accepted + y.accepted, 1, "round {round}");
        assert_eq!(
            x.events[0].id, y.events[0].id,
            "both answer the stored event"
        );
    }
    let c = pg_connect(&url).await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM usage_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 40);
    assert_totals_match_events(&url).await;
}

/// Two replicas ingesting into one tenant at once: every mark is recorded exactly once, and each
/// writer sees what the other committed (a tenant at 40% with 50% added on each replica at once
/// ends exceeded, not at two warnings of 90%).
#[tokio::test]
async fn a_limit_crossed_by_concurrent_ingest_on_two_replicas_records_one_event_per_mark() {
    let Some((url, tenants)) = database(2).await else {
        return;
    };
    let replicas: Vec<Writer> = (0..2)
        .map(|_| tenantry::usage::pg_writer::start(&url, open()).unwrap())
        .collect();
    let current = settings(json!({"limits": {"daily_tokens": 1000}, "warn_at_percent": 80}));
    // Tenant 0: 40% first, then 50% on each replica at once.
    let t = tenants[0];
    let first = replicas[0]
        .submit(batch(t, &current, priced(&[tokens(400, None)], &current)))
        .await
        .unwrap();
    assert_eq!(first.limits.level, Level::Ok);
    let (x, y) = tokio::join!(
        replicas[0].submit(batch(t, &current, priced(&[tokens(500, None)], &current))),
        replicas[1].submit(batch(t, &current, priced(&[tokens(500, None)], &current))),
    );
    let mut levels = [x.unwrap().limits.level, y.unwrap().limits.level];
    levels.sort_by_key(|l| l.as_str());
    assert_eq!(levels, [Level::Exceeded, Level::Warning]);
    // Tenant 1: 16 clients over both replicas, 30 tokens each time, to 2.4x the limit.
    let u = tenants[1];
    let mut tasks = Vec::new();
    for client in 0..16 {
        let w = replicas[client % 2].clone();
        let current = current.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                w.submit(batch(u, &current, priced(&[tokens(30, None)], &current)))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let c = pg_connect(&url).await;
    for tenant in [t, u] {
        let rows = c
            .query(
                "SELECT event_type, count(*) FROM events WHERE tenant_id = $1 GROUP BY 1 ORDER BY 1",
                &[&tenant.as_uuid()],
            )
            .await
            .unwrap();
        let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            got,
            vec![("limit.exceeded".into(), 1), ("limit.warning".into(), 1)],
            "tenant {tenant}"
        );
    }
    assert_totals_match_events(&url).await;
}

/// A request that would take a tenant's all-time total past an i64 is refused whole on
/// PostgreSQL too, while the requests committed with it in the same group are stored.
#[tokio::test]
async fn a_request_past_the_bound_is_refused_whole_and_its_group_stored() {
    let Some((url, tenants)) = database(2).await else {
        return;
    };
    let c = pg_connect(&url).await;
    c.execute(
        "INSERT INTO usage_totals (tenant_id, events, estimated_nanos, billed_nanos)
         VALUES ($1, 1, $2, $2)",
        &[&tenants[0].as_uuid(), &(i64::MAX - 1_500_000)],
    )
    .await
    .unwrap();
    let w = tenantry::usage::pg_writer::start(&url, open()).unwrap();
    let current = settings(json!({}));
    let (over, fine) = tokio::join!(
        w.submit(batch(
            tenants[0],
            &current,
            priced(&[tokens(1, Some("x".into())), tokens(1, None)], &current)
        )),
        w.submit(batch(
            tenants[1],
            &current,
            priced(&[tokens(1, None)], &current)
        )),
    );
    let e = over.unwrap_err();
    assert!(e.to_string().contains("past what can be recorded"), "{e}");
    assert_eq!(fine.unwrap().accepted, 1);
    let stored: Vec<String> = c
        .query("SELECT tenant_id::text FROM usage_events", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, vec![tenants[1].to_string()]);
}
