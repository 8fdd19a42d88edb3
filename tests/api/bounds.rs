//! The contract's input bounds and totals: no sequence of accepted requests can make a later one
//! fail. Events that would take a total (a day, a month, a group, all time) past an SQLite
//! integer are refused whole, and every read keeps answering at the bound, also after a restart.
use crate::helpers::{TestApp, ADMIN};
use chrono::{Datelike, Duration, TimeZone, Utc};
use serde_json::{json, Value};

/// i64::MAX nano-USD, the largest total the store holds.
const MAX_USD: &str = "9223372036.854775807";

async fn ingest(app: &TestApp, key: &str, body: String) -> crate::helpers::Resp {
    app.send(
        app.request("POST", "/api/usage/events", Some(key))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

fn event(cost: &str, ts: &str, model: &str, id: Option<&str>) -> String {
    let id = id.map_or(String::new(), |i| format!(r#","event_id":"{i}""#));
    format!(
        r#"{{"model":"{model}","input_tokens":1,"output_tokens":1,"cost_usd":{cost},"timestamp":"{ts}","agent_name":"a-{model}"{id}}}"#
    )
}

fn batch(events: Vec<String>) -> String {
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

/// Every usage read the contract has that did not answer 200, as `(path, status)`.
async fn failing_reads(app: &TestApp, key: &str) -> Vec<(String, u16)> {
    let mut paths = vec![
        "/api/usage/limits".to_string(),
        "/api/usage/summary".into(),
        "/api/agents/usage".into(),
        "/api/usage/events?limit=5".into(),
        "/api/usage/stats?from=2000-01-01T00:00:00Z".into(),
    ];
    for g in [
        "day",
        "month",
        "model",
        "pipeline_stage",
        "agent_name",
        "user_id",
    ] {
        paths.push(format!(
            "/api/usage/stats?from=2000-01-01T00:00:00Z&group_by={g}"
        ));
    }
    let mut out = Vec::new();
    for p in paths {
        let r = app.get(&p, key).await;
        if r.status != 200 {
            out.push((p, r.status));
        }
    }
    out
}

async fn all_time(app: &TestApp, key: &str) -> Value {
    app.get("/api/usage/stats?from=2000-01-01T00:00:00Z", key)
        .await
        .body["totals"]
        .clone()
}

#[tokio::test]
async fn costs_tokens_and_prices_past_the_contracts_bounds_are_refused() {
    let app = crate::helpers::spawn_app().await;
    let one = |cost: &str, tokens: &str| {
        format!(r#"{{"model":"m","input_tokens":{tokens},"output_tokens":0,"cost_usd":{cost}}}"#)
    };
    for (cost, tokens) in [
        ("1000000.000000001", "1"),
        ("1000000000", "1"),
        ("1", "1000000000001"),
    ] {
        ingest(&app, ADMIN, one(cost, tokens))
            .await
            .assert_error(400, "invalid_request");
    }
    let r = ingest(&app, ADMIN, one("1000000", "1000000000000")).await;
    assert_eq!(
        r.status, 201,
        "the bounds themselves are accepted: {}",
        r.body
    );
    let price = |p: &str| {
        let body: Value = serde_json::from_str(&format!(
            r#"{{"input_usd_per_million":{p},"output_usd_per_million":0}}"#
        ))
        .unwrap();
        app.put("/api/pricing/pricey", ADMIN, body)
    };
    price("1000000.000000001")
        .await
        .assert_error(400, "invalid_request");
    price("1000000000")
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(price("1000000").await.status, 200);
}

/// The review's second case: an admin price at the bound times a token count at the bound costs
/// $10^12, which no total can hold. Refused, not stored, and the tenant keeps working.
#[tokio::test]
async fn a_priced_cost_beyond_what_can_be_held_is_refused() {
    let app = crate::helpers::spawn_app().await;
    let r = app
        .put(
            "/api/pricing/pricey",
            ADMIN,
            json!({"input_usd_per_million": 1000000, "output_usd_per_million": 1000000}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"model": "pricey", "input_tokens": 1_000_000_000_000u64, "output_tokens": 0}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(all_time(&app, ADMIN).await["events"], 0);
    let bad = failing_reads(&app, ADMIN).await;
    assert!(bad.is_empty(), "{bad:?}");
}

/// The review's first case: a member key sending ten events of a billion dollars each pushed the
/// day to i64::MAX, and every later ingest and read of the tenant answered 500.
#[tokio::test]
async fn the_reported_overflow_is_refused_and_the_tenant_keeps_working() {
    let app = crate::helpers::spawn_app().await;
    app.create_tenant("acme").await;
    let member = app.create_key("acme", "member").await;
    let viewer = app.create_key("acme", "viewer").await;
    let now = Utc::now().to_rfc3339();
    let ten = batch(vec![event("1000000000", &now, "m", None); 10]);
    ingest(&app, &member, ten)
        .await
        .assert_error(400, "invalid_request");
    let r = ingest(&app, &member, event("1", &now, "m", None)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let app = app.restart().await;
    let r = ingest(&app, &member, event("1", &now, "m", None)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let bad = failing_reads(&app, &viewer).await;
    assert!(bad.is_empty(), "{bad:?}");
}

/// Fills a tenant to exactly i64::MAX nano-USD with events at the timestamps `at` gives, then
/// checks the edge: one nano-dollar more is refused, nothing of a refused batch is stored, and
/// every read answers, before and after a restart.
async fn fill_to_the_bound(app: TestApp, slug: &str, at: impl Fn(usize) -> String) -> TestApp {
    // Enterprise, so the test's own pace stays under the rate limit.
    let t = json!({"name": slug, "slug": slug, "plan": "enterprise"});
    assert_eq!(app.post("/api/tenants", ADMIN, t).await.status, 201);
    let key = app.create_key(slug, "member").await;
    let models = ["m0", "m1", "m2"];
    let mut n = 0;
    // 9,223 events of $1,000,000: $9,223,000,000, just under the bound.
    for size in [1000; 9].into_iter().chain([223]) {
        let events = (0..size)
            .map(|i| event("1000000", &at(n + i), models[(n + i) % 3], None))
            .collect();
        let r = ingest(&app, &key, batch(events)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        n += size;
    }
    let rest = "372036.854775807";
    // One dollar too much in the second event: the whole batch is refused, the first event too.
    let over = batch(vec![
        event("1", &at(n), "m0", Some("first")),
        event(rest, &at(n), "m1", None),
    ]);
    ingest(&app, &key, over)
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(all_time(&app, &key).await["events"], 9223);
    let r = ingest(&app, &key, event(rest, &at(n), "m1", None)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let totals = all_time(&app, &key).await;
    assert_eq!(totals["estimated_cost_usd"].to_string(), MAX_USD);
    assert_eq!(totals["billed_cost_usd"].to_string(), MAX_USD);
    ingest(&app, &key, event("0.000000001", &at(n), "m2", None))
        .await
        .assert_error(400, "invalid_request");
    let r = ingest(&app, &key, event("1", &at(n), "m2", Some("first"))).await;
    assert_eq!(
        r.status, 400,
        "the refused batch stored nothing: {}",
        r.body
    );
    // A free event still fits: the money total is full, the token totals are not.
    let r = ingest(&app, &key, event("0", &at(n), "m2", None)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let settings = json!({"limits": {"daily_cost_usd": 1, "monthly_cost_usd": 1}});
    let owner = app.create_key(slug, "owner").await;
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(settings))
            .await
            .status,
        200
    );
    let bad = failing_reads(&app, &key).await;
    assert!(bad.is_empty(), "{bad:?}");
    let by_model = app
        .get(
            "/api/usage/stats?from=2000-01-01T00:00:00Z&group_by=model",
            &key,
        )
        .await;
    let sum: i128 = by_model.body["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let text = g["estimated_cost_usd"].to_string();
            let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
            whole.parse::<i128>().unwrap() * 1_000_000_000
                + format!("{frac:0<9}").parse::<i128>().unwrap()
        })
        .sum();
    assert_eq!(sum, i128::from(i64::MAX), "the groups sum to the bound");
    let app = app.restart().await;
    let bad = failing_reads(&app, &key).await;
    assert!(bad.is_empty(), "after a restart: {bad:?}");
    ingest(&app, &key, event("0.000000001", &at(n), "m2", None))
        .await
        .assert_error(400, "invalid_request");
    app
}

#[tokio::test]
async fn a_day_stops_exactly_at_the_largest_total() {
    let app = crate::helpers::spawn_app().await;
    let now = Utc::now().to_rfc3339();
    fill_to_the_bound(app, "one-day", |_| now.clone()).await;
}

#[tokio::test]
async fn a_month_and_its_days_stop_exactly_at_the_largest_total() {
    let app = crate::helpers::spawn_app().await;
    let now = Utc::now();
    let first = Utc
        .with_ymd_and_hms(now.year(), now.month(), 1, 0, 0, 0)
        .unwrap();
    // Spread over the days of this month so far, so the month total holds it all.
    let days = (now - first).num_days() + 1;
    fill_to_the_bound(app, "one-month", move |i| {
        (first + Duration::days(i as i64 % days) + Duration::seconds(i as i64 % 3600)).to_rfc3339()
    })
    .await;
}

#[tokio::test]
async fn groups_across_months_stop_exactly_at_the_largest_total() {
    let app = crate::helpers::spawn_app().await;
    let now = Utc::now();
    // Twelve months back: the month totals stay small, all time and each model's group hold it.
    fill_to_the_bound(app, "all-time", move |i| {
        (now - Duration::days(30 * (i as i64 % 12))).to_rfc3339()
    })
    .await;
}

/// Token totals can only reach the bound after millions of requests, so the test starts from a
/// database that already holds a total close to it (written as the writer would have).
#[tokio::test]
async fn token_totals_stop_exactly_at_the_largest_total() {
    let app = crate::helpers::spawn_app().await;
    let (dir, config) = app.stop().await;
    let day = Utc::now().timestamp().div_euclid(86_400) - 40;
    let near = i64::MAX - 3_000_000_000_000;
    match &config.database_url {
        None => {
            let db = rusqlite::Connection::open(dir.path().join("tenantry.db")).unwrap();
            for (dim, key) in [("", ""), ("model", "m")] {
                db.execute(
                    "INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens,
                         output_tokens, estimated_nanos, billed_nanos)
                     VALUES ('00000000-0000-0000-0000-000000000000', ?1, ?2, ?3, 1, ?4, 0, 0, 0)",
                    rusqlite::params![day, dim, key, near],
                )
                .unwrap();
            }
        }
        // PostgreSQL's writer checks the bound on the all-time row every replica locks.
        Some(url) => {
            let pg = crate::helpers::pg_connect(url.expose()).await;
            for (dim, key) in [("", ""), ("model", "m")] {
                pg.execute(
                    "INSERT INTO usage_rollups (tenant_id, day, dim, key, events, input_tokens,
                         output_tokens, estimated_nanos, billed_nanos)
                     VALUES ('00000000-0000-0000-0000-000000000000', $1, $2, $3, 1, $4, 0, 0, 0)",
                    &[&day, &dim, &key, &near],
                )
                .await
                .unwrap();
            }
            pg.execute(
                "INSERT INTO usage_totals (tenant_id, events, input_tokens)
                 VALUES ('00000000-0000-0000-0000-000000000000', 1, $1)
                 ON CONFLICT (tenant_id) DO UPDATE SET events = 1, input_tokens = $1",
                &[&near],
            )
            .await
            .unwrap();
        }
    }
    let app = crate::helpers::start(dir, config).await;
    let tokens = |i: u64, o: u64| json!({"model": "m", "input_tokens": i, "output_tokens": o, "cost_usd": 0});
    let t = 1_000_000_000_000u64;
    let r = app.post("/api/usage/events", ADMIN, tokens(t, t)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    // Input and output would each still fit; their sum, the total tokens, would not.
    app.post("/api/usage/events", ADMIN, tokens(t, t))
        .await
        .assert_error(400, "invalid_request");
    let r = app.post("/api/usage/events", ADMIN, tokens(t, 0)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        all_time(&app, ADMIN).await["total_tokens"].as_i64(),
        Some(i64::MAX)
    );
    app.post("/api/usage/events", ADMIN, tokens(0, 1))
        .await
        .assert_error(400, "invalid_request");
    let bad = failing_reads(&app, ADMIN).await;
    assert!(bad.is_empty(), "{bad:?}");
}
