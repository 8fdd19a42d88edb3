//! `/api/usage/...`: exact costs, idempotent ingest, stats, pagination, roles and isolation.
use crate::helpers::{spawn_app, spawn_with, TestApp, ADMIN};
use serde_json::{json, Value};

fn ev(model: &str, input: u64, output: u64) -> Value {
    json!({"model": model, "input_tokens": input, "output_tokens": output})
}

/// Sends raw JSON text, so numbers reach the server exactly as written.
async fn ingest_raw(app: &TestApp, token: &str, body: String) -> crate::helpers::Resp {
    app.send(
        app.request("POST", "/api/usage/events", Some(token))
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

#[tokio::test]
async fn a_million_micro_dollar_events_sum_to_exactly_one_dollar() {
    let app = spawn_app().await;
    let event = r#"{"model":"m","input_tokens":1,"output_tokens":0,"cost_usd":0.000001}"#;
    let batch = format!("{{\"events\":[{}]}}", vec![event; 1000].join(","));
    for _ in 0..1000 {
        let r = ingest_raw(&app, ADMIN, batch.clone()).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let stats = app.get("/api/usage/stats", ADMIN).await;
    assert_eq!(stats.body["totals"]["events"], 1_000_000);
    assert_eq!(stats.body["totals"]["estimated_cost_usd"].to_string(), "1");
}

#[tokio::test]
async fn table_prices_are_exact_to_the_nano_dollar_and_recorded_with_the_event() {
    let app = spawn_app().await;
    let r = app
        .put(
            "/api/pricing/tiny-model",
            ADMIN,
            json!({"input_usd_per_million": 0.15, "output_usd_per_million": 0.6}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post("/api/usage/events", ADMIN, ev("tiny-model", 1, 0))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "0.00000015"
    );
    // A later price change does not touch what was recorded.
    app.put(
        "/api/pricing/tiny-model",
        ADMIN,
        json!({"input_usd_per_million": 100, "output_usd_per_million": 100}),
    )
    .await;
    let r = app
        .post("/api/usage/events", ADMIN, ev("tiny-model", 1, 0))
        .await;
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "0.0001"
    );
    let events = app.get("/api/usage/events", ADMIN).await.body["items"].clone();
    assert_eq!(events[1]["estimated_cost_usd"].to_string(), "0.00000015");
    assert_eq!(events[1]["input_usd_per_million"].to_string(), "0.15");
    assert_eq!(events[0]["input_usd_per_million"].to_string(), "100");
    let list = app.get("/api/pricing", ADMIN).await;
    let tiny = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == "tiny-model")
        .cloned()
        .unwrap();
    assert_eq!(tiny["input_usd_per_million"].to_string(), "100");
    assert!(list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["model"] == "claude-sonnet-4-5"));
}

#[tokio::test]
async fn builtin_prices_cover_dated_variants_and_unknown_models_cost_zero_once_noted() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            ev("gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000),
        )
        .await;
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "0.75"
    );
    for _ in 0..3 {
        let r = app
            .post("/api/usage/events", ADMIN, ev("my-private-llm", 500, 500))
            .await;
        assert_eq!(
            (
                r.status,
                r.body["events"][0]["estimated_cost_usd"].to_string()
            ),
            (201, "0".to_string())
        );
    }
    let notes = app.walk("/api/events?category=billing", ADMIN, 50).await;
    let unknown: Vec<_> = notes
        .iter()
        .filter(|e| e["event_type"] == "pricing.unknown_model")
        .collect();
    assert_eq!(unknown.len(), 1, "once per model");
    assert_eq!(unknown[0]["data"]["model"], "my-private-llm");
    assert_eq!(
        app.get("/api/usage/stats", ADMIN).await.body["totals"]["events"],
        4
    );
}

/// These were metered at $0 as unknown models; each now costs its list price.
#[tokio::test]
async fn embedding_models_and_claude_3_sonnet_are_priced() {
    let app = spawn_app().await;
    for (model, input, output, usd) in [
        ("text-embedding-3-small", 1_000_000, 0, "0.02"),
        ("text-embedding-3-large", 1_000_000, 0, "0.13"),
        ("text-embedding-ada-002", 1_000_000, 0, "0.1"),
        ("text-embedding-004", 1_000_000, 0, "0.1"),
        ("gemini-embedding-001", 1_000_000, 0, "0.15"),
        ("claude-3-sonnet-20240229", 1_000_000, 1_000_000, "18"),
    ] {
        let r = app
            .post("/api/usage/events", ADMIN, ev(model, input, output))
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(
            r.body["events"][0]["estimated_cost_usd"].to_string(),
            usd,
            "{model}"
        );
    }
    let notes = app.walk("/api/events?category=billing", ADMIN, 50).await;
    assert!(
        notes
            .iter()
            .all(|e| e["event_type"] != "pricing.unknown_model"),
        "{notes:?}"
    );
}

#[tokio::test]
async fn markup_bills_hosted_mode_and_byo_key_bills_nothing() {
    let app = spawn_app().await;
    let raw = |mode: &str| format!(r#"{{"execution_mode":"{mode}","markup_percent":25}}"#);
    for mode in ["hosted", "byo_key"] {
        let r = app
            .send(
                app.request("PATCH", "/api/settings", Some(ADMIN))
                    .header("content-type", "application/json")
                    .body(raw(mode)),
            )
            .await;
        assert_eq!(r.status, 200);
        let r = ingest_raw(
            &app,
            ADMIN,
            r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":0.004}"#.into(),
        )
        .await;
        let e = &r.body["events"][0];
        assert_eq!(e["estimated_cost_usd"].to_string(), "0.004");
        let billed = if mode == "hosted" { "0.005" } else { "0" };
        assert_eq!(e["billed_cost_usd"].to_string(), billed, "{mode}");
    }
    let events = app.get("/api/usage/events", ADMIN).await.body["items"].clone();
    assert_eq!(
        (
            events[0]["execution_mode"].as_str(),
            events[1]["execution_mode"].as_str()
        ),
        (Some("byo_key"), Some("hosted"))
    );
    assert_eq!(
        events[0]["cost_source"], "client",
        "client cost_usd overrides the table"
    );
    let totals = app.get("/api/usage/stats", ADMIN).await.body["totals"].clone();
    assert_eq!(
        (
            totals["estimated_cost_usd"].to_string(),
            totals["billed_cost_usd"].to_string()
        ),
        ("0.008".into(), "0.005".into())
    );
}

#[tokio::test]
async fn invalid_events_are_refused_whole_with_the_bad_index() {
    let app = spawn_app().await;
    let good = ev("m", 1, 1);
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"events": [good, good, {"model": "m", "input_tokens": -1, "output_tokens": 1}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert!(
        r.body["message"].as_str().unwrap().contains("events[2]"),
        "{}",
        r.body
    );
    let many: Vec<Value> = (0..1001).map(|_| good.clone()).collect();
    app.post("/api/usage/events", ADMIN, json!({"events": many}))
        .await
        .assert_error(400, "invalid_request");
    for body in [
        r#"{"model":"m","input_tokens":1e400,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":1e999}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":"NaN"}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":NaN}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"cost_usd":-0.5}"#,
        r#"{"model":"m","input_tokens":99999999999999999999,"output_tokens":1}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"timestamp":"2026-13-01T00:00:00Z"}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"timestamp":"2999-01-01T00:00:00Z"}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"timestamp":12345}"#,
        r#"{"model":"m","input_tokens":1,"output_tokens":1,"surprise":true}"#,
        r#"{"events":[],"extra":1}"#,
        r#"{"events":{}}"#,
    ] {
        ingest_raw(&app, ADMIN, body.into())
            .await
            .assert_error(400, "invalid_request");
    }
    assert_eq!(
        app.get("/api/usage/stats", ADMIN).await.body["totals"]["events"],
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn duplicate_event_ids_are_not_counted_twice() {
    let app = spawn_app().await;
    let e = |id: &str| json!({"event_id": id, "model": "m", "input_tokens": 10, "output_tokens": 0, "cost_usd": 0.01});
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"events": [e("a"), e("b"), e("a")]}),
        )
        .await;
    assert_eq!(
        (r.body["accepted"].as_i64(), r.body["duplicates"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(
        r.body["events"][2]["id"], r.body["events"][0]["id"],
        "a duplicate answers with the original"
    );
    let r = app.post("/api/usage/events", ADMIN, e("b")).await;
    assert_eq!(
        (
            r.status,
            r.body["accepted"].as_i64(),
            r.body["duplicates"].as_i64()
        ),
        (201, Some(0), Some(1))
    );
    let totals = app.get("/api/usage/stats", ADMIN).await.body["totals"].clone();
    assert_eq!(
        (
            totals["events"].as_i64(),
            totals["estimated_cost_usd"].to_string()
        ),
        (Some(2), "0.02".into())
    );
}

#[tokio::test]
async fn the_same_event_id_sent_concurrently_is_counted_once() {
    let app = spawn_app().await;
    let body = json!({"events": [{"event_id": "same", "model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 1}]});
    let sends = (0..16).map(|_| app.post("/api/usage/events", ADMIN, body.clone()));
    let answers = futures_util::future::join_all(sends).await;
    let accepted: i64 = answers
        .iter()
        .map(|r| r.body["accepted"].as_i64().unwrap())
        .sum();
    assert_eq!(accepted, 1);
    assert!(answers.iter().all(|r| r.status == 201));
    assert_eq!(
        app.get("/api/usage/stats", ADMIN).await.body["totals"]["events"],
        1
    );
}

#[tokio::test]
async fn every_group_by_sums_to_the_totals() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for i in 0..60u64 {
        let model = ["gpt-4o", "gpt-4o-mini", "claude-sonnet-4"][(i % 3) as usize];
        let mut e = json!({"model": model,
                           "input_tokens": 100 + i, "output_tokens": i,
                           "timestamp": format!("2026-0{}-1{}T12:00:00Z", 1 + i % 3, i % 10)});
        if i % 2 == 0 {
            e["agent_name"] = json!(format!("agent-{}", i % 4));
        }
        if i % 5 != 0 {
            e["pipeline_stage"] = json!("extract");
        }
        if i % 7 != 0 {
            e["user_id"] = json!(format!("u{}", i % 6));
        }
        events.push(e);
    }
    app.post("/api/usage/events", ADMIN, json!({"events": events}))
        .await;
    let window = "from=2026-01-01T00:00:00Z&to=2026-04-01T00:00:00Z";
    let totals = app
        .get(&format!("/api/usage/stats?{window}"), ADMIN)
        .await
        .body["totals"]
        .clone();
    assert_eq!(totals["events"], 60);
    for g in [
        "day",
        "month",
        "model",
        "pipeline_stage",
        "agent_name",
        "user_id",
    ] {
        let r = app
            .get(&format!("/api/usage/stats?{window}&group_by={g}"), ADMIN)
            .await;
        assert_eq!(r.status, 200);
        let groups = r.body["groups"].as_array().unwrap();
        for field in ["events", "input_tokens", "output_tokens", "total_tokens"] {
            let sum: i64 = groups.iter().map(|x| x[field].as_i64().unwrap()).sum();
            assert_eq!(sum, totals[field].as_i64().unwrap(), "{g} {field}");
        }
        let cost: f64 = groups
            .iter()
            .map(|x| x["estimated_cost_usd"].to_string().parse::<f64>().unwrap())
            .sum();
        let total: f64 = totals["estimated_cost_usd"].to_string().parse().unwrap();
        assert!((cost - total).abs() < 1e-9, "{g}");
    }
    let months = app
        .get(&format!("/api/usage/stats?{window}&group_by=month"), ADMIN)
        .await
        .body["groups"]
        .clone();
    let keys: Vec<_> = months
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, vec!["2026-01", "2026-02", "2026-03"]);
    let feb = app
        .get(
            "/api/usage/stats?from=2026-02-01T00:00:00Z&to=2026-03-01T00:00:00Z",
            ADMIN,
        )
        .await;
    assert_eq!(feb.body["totals"]["events"], 20);
    assert_eq!(
        (feb.body["from"].as_str(), feb.body["to"].as_str()),
        (Some("2026-02-01T00:00:00Z"), Some("2026-03-01T00:00:00Z"))
    );
    app.get("/api/usage/stats?group_by=week", ADMIN)
        .await
        .assert_error(400, "invalid_request");
    app.get(
        "/api/usage/stats?from=2026-03-01T00:00:00Z&to=2026-02-01T00:00:00Z",
        ADMIN,
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn the_events_list_filters_and_pages_through_every_event_once() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for i in 0..45 {
        events.push(json!({"event_id": format!("e{i}"), "model": if i % 3 == 0 { "a" } else { "b" },
                           "input_tokens": 1, "output_tokens": 1, "job_id": format!("job-{}", i % 5),
                           "timestamp": format!("2026-11-0{}T00:00:{:02}Z", 1 + i % 9, i)}));
    }
    app.post("/api/usage/events", ADMIN, json!({"events": events}))
        .await;
    let all = app.walk("/api/usage/events", ADMIN, 7).await;
    assert_eq!(all.len(), 45);
    let mut ids: Vec<_> = all
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let times: Vec<_> = all
        .iter()
        .map(|e| e["timestamp"].as_str().unwrap().to_string())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 45, "each event once");
    assert_eq!(
        app.walk("/api/usage/events?model=a", ADMIN, 4).await.len(),
        15
    );
    assert_eq!(
        app.walk("/api/usage/events?job_id=job-2", ADMIN, 4)
            .await
            .len(),
        9
    );
    let early = app
        .walk(
            "/api/usage/events?from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z",
            ADMIN,
            10,
        )
        .await;
    assert_eq!(early.len(), 10);
    assert!(all
        .iter()
        .all(|e| e["tenant_id"] == "00000000-0000-0000-0000-000000000000"));
}

#[tokio::test]
async fn roles_decide_who_ingests_and_who_reads() {
    let app = spawn_app().await;
    app.create_tenant("acme").await;
    let viewer = app.create_key("acme", "viewer").await;
    let member = app.create_key("acme", "member").await;
    let service = app.create_key("acme", "service").await;
    assert_eq!(
        app.post("/api/usage/events", &member, ev("m", 1, 1))
            .await
            .status,
        201
    );
    assert_eq!(
        app.post("/api/usage/events", &service, ev("m", 1, 1))
            .await
            .status,
        201
    );
    app.post("/api/usage/events", &viewer, ev("m", 1, 1))
        .await
        .assert_error(403, "forbidden");
    for path in [
        "/api/usage/stats",
        "/api/usage/limits",
        "/api/usage/summary",
        "/api/usage/events",
        "/api/agents/usage",
    ] {
        assert_eq!(app.get(path, &viewer).await.status, 200, "{path}");
        app.get(path, &service).await.assert_error(403, "forbidden");
    }
    app.put("/api/agents/a1/preferences", &viewer, json!({"x": 1}))
        .await
        .assert_error(403, "forbidden");
    let r = app
        .put(
            "/api/agents/a1/preferences",
            &member,
            json!({"tone": "formal", "n": 3}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        app.get("/api/agents/a1/preferences", &viewer).await.body,
        json!({"tone": "formal", "n": 3})
    );
    assert_eq!(
        app.get("/api/agents/a2/preferences", &viewer).await.body,
        json!({})
    );
    app.put("/api/agents/a1/preferences", &member, json!([1]))
        .await
        .assert_error(400, "invalid_request");
    let big = json!({"blob": "x".repeat(70 * 1024)});
    app.put("/api/agents/a1/preferences", &member, big)
        .await
        .assert_error(400, "invalid_request");
    app.put(
        "/api/pricing/m",
        &member,
        json!({"input_usd_per_million": 1, "output_usd_per_million": 1}),
    )
    .await
    .assert_error(403, "forbidden");
    assert_eq!(app.get("/api/pricing", &viewer).await.status, 200);
}

#[tokio::test]
async fn agents_usage_ranks_agents_by_events() {
    let app = spawn_app().await;
    let mut events = Vec::new();
    for (agent, n) in [("fda_expert", 3), ("writer", 5), ("checker", 1)] {
        for _ in 0..n {
            events.push(json!({"model": "m", "input_tokens": 10, "output_tokens": 5, "agent_name": agent, "cost_usd": 0.001}));
        }
    }
    events.push(ev("m", 1, 1));
    app.post("/api/usage/events", ADMIN, json!({"events": events}))
        .await;
    let r = app.get("/api/agents/usage", ADMIN).await;
    assert_eq!(r.body["most_used_agent"], "writer");
    let agents = r.body["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 3);
    assert_eq!(
        agents[0],
        json!({"agent_name": "writer", "events": 5, "total_tokens": 75, "estimated_cost_usd": 0.005})
    );
    let empty = spawn_app().await;
    assert!(empty.get("/api/agents/usage", ADMIN).await.body["most_used_agent"].is_null());
}

#[tokio::test]
async fn one_tenants_usage_never_shows_in_anothers() {
    let app = spawn_app().await;
    app.create_tenant("tenant-a").await;
    let b = app.create_tenant("tenant-b").await;
    let a_key = app.create_key("tenant-a", "member").await;
    let b_key = app.create_key("tenant-b", "owner").await;
    let e = json!({"event_id": "shared-id", "model": "m", "input_tokens": 7, "output_tokens": 0, "agent_name": "spy", "cost_usd": 1});
    assert_eq!(
        app.post("/api/usage/events", &a_key, e.clone()).await.body["accepted"],
        1
    );
    assert_eq!(
        app.post("/api/usage/events", &b_key, e.clone()).await.body["accepted"],
        1,
        "event ids are per tenant"
    );
    app.post(
        "/api/usage/events",
        &b_key,
        json!({"model": "m", "input_tokens": 1, "output_tokens": 0}),
    )
    .await;
    app.call(
        "PATCH",
        "/api/settings",
        Some(&b_key),
        Some(json!({"limits": {"daily_tokens": 100}})),
    )
    .await;
    let r = app
        .send(
            app.request("POST", "/api/usage/events", Some(&a_key))
                .header("X-Tenant-ID", b["id"].as_str().unwrap())
                .json(&e),
        )
        .await;
    r.assert_error(403, "forbidden");
    let stats = app.get("/api/usage/stats", &b_key).await;
    assert_eq!(stats.body["totals"]["events"], 2);
    assert_eq!(stats.body["totals"]["input_tokens"], 8);
    let limits = app.get("/api/usage/limits", &b_key).await;
    assert_eq!(limits.body["checks"][0]["used"], 8);
    let events = app.walk("/api/usage/events", &b_key, 10).await;
    assert!(events.iter().all(|x| x["tenant_id"] == b["id"]));
    assert_eq!(
        app.get("/api/agents/usage", &b_key).await.body["agents"][0]["events"],
        1
    );
    let a_admin = app.get("/api/tenant/tenant-a/usage/stats", ADMIN).await;
    assert_eq!(a_admin.body["totals"]["events"], 1);
}

#[tokio::test]
async fn usage_tracking_disabled_is_403_feature_disabled() {
    let app = spawn_with(&[("ENABLE_USAGE_TRACKING", "false")]).await;
    app.post("/api/usage/events", ADMIN, ev("m", 1, 1))
        .await
        .assert_error(403, "feature_disabled");
    app.get("/api/usage/stats", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
    app.get("/api/usage/limits", ADMIN)
        .await
        .assert_error(403, "feature_disabled");
}
