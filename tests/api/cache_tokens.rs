//! Cache and reasoning tokens (contract v2): the cost formula with and without cache prices,
//! the counts' validation, their totals in every read, and `tenantry pricing import`.
use crate::helpers::{cli, on_postgres, output_text, spawn_app, start, Resp, TestApp, ADMIN};
use serde_json::{json, Value};
use std::path::Path;

/// Sends raw JSON text, so numbers reach the server exactly as written.
async fn send_raw(app: &TestApp, method: &str, path: &str, body: &str) -> Resp {
    app.send(
        app.request(method, path, Some(ADMIN))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

async fn price_of(app: &TestApp, model: &str) -> Value {
    let list = app.get("/api/pricing", ADMIN).await;
    assert_eq!(list.status, 200, "{}", list.body);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["model"] == model)
        .cloned()
        .unwrap_or_else(|| panic!("no price for {model}: {}", list.body))
}

/// 1,000,003 prompt tokens of which 333,333 read from and 7 written to the cache, 11 output
/// tokens of which 5 reasoning.
fn cached_event(model: &str) -> Value {
    json!({"model": model, "input_tokens": 1_000_003, "cache_read_tokens": 333_333,
           "cache_write_tokens": 7, "output_tokens": 11, "reasoning_tokens": 5})
}

#[tokio::test]
async fn cached_tokens_are_priced_by_the_contracts_formula_to_the_nano_dollar() {
    let app = spawn_app().await;
    let r = send_raw(
        &app,
        "PUT",
        "/api/pricing/cachey",
        r#"{"input_usd_per_million": 2.5, "output_usd_per_million": 10,
            "cache_read_usd_per_million": 1.25, "cache_write_usd_per_million": 3.125e0}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["cache_read_usd_per_million"].to_string(), "1.25");
    assert_eq!(r.body["cache_write_usd_per_million"].to_string(), "3.125");
    let p = price_of(&app, "cachey").await;
    assert_eq!(p["cache_read_usd_per_million"].to_string(), "1.25");
    assert_eq!(p["cache_write_usd_per_million"].to_string(), "3.125");

    let r = app
        .post("/api/usage/events", ADMIN, cached_event("cachey"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // (1,000,003 - 333,333 - 7) × 2.5 + 333,333 × 1.25 + 7 × 3.125 + 11 × 10, per million:
    // 1.6666575 + 0.41666625 + 0.000021875 + 0.00011 USD.
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "2.083455625"
    );
    let listed = app.get("/api/usage/events", ADMIN).await;
    let e = &listed.body["items"][0];
    assert_eq!(
        (
            &e["input_tokens"],
            &e["cache_read_tokens"],
            &e["cache_write_tokens"],
            &e["output_tokens"],
            &e["reasoning_tokens"]
        ),
        (
            &json!(1_000_003),
            &json!(333_333),
            &json!(7),
            &json!(11),
            &json!(5)
        )
    );
    assert_eq!(e["cache_read_usd_per_million"].to_string(), "1.25");
    assert_eq!(e["cache_write_usd_per_million"].to_string(), "3.125");
    assert_eq!(e["estimated_cost_usd"].to_string(), "2.083455625");

    // The exact sum is rounded once: three half-nano terms make 1.5 nano-USD, which rounds to
    // 2 (half to even); rounding each term would have made 0.
    let r = app
        .put(
            "/api/pricing/half-nano",
            ADMIN,
            json!({"input_usd_per_million": 0.0005, "output_usd_per_million": 0,
                   "cache_read_usd_per_million": 0.0005, "cache_write_usd_per_million": 0.0005}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            json!({"model": "half-nano", "input_tokens": 3, "cache_read_tokens": 1,
                   "cache_write_tokens": 1, "output_tokens": 0}),
        )
        .await;
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "0.000000002"
    );
}

#[tokio::test]
async fn null_cache_prices_charge_cached_tokens_the_input_price() {
    let app = spawn_app().await;
    for body in [
        r#"{"input_usd_per_million": 2.5, "output_usd_per_million": 10,
            "cache_read_usd_per_million": null, "cache_write_usd_per_million": null}"#,
        r#"{"input_usd_per_million": 2.5, "output_usd_per_million": 10}"#,
    ] {
        let r = send_raw(&app, "PUT", "/api/pricing/plain", body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let p = price_of(&app, "plain").await;
        assert_eq!(p["cache_read_usd_per_million"], Value::Null, "{p}");
        assert_eq!(p["cache_write_usd_per_million"], Value::Null, "{p}");
        let r = app
            .post("/api/usage/events", ADMIN, cached_event("plain"))
            .await;
        // 1,000,003 × 2.5 + 11 × 10 per million: as if nothing were cached.
        assert_eq!(
            r.body["events"][0]["estimated_cost_usd"].to_string(),
            "2.5001175",
            "{body}"
        );
    }
    // The event records the price it was charged for its cached tokens: the input price.
    let e = &app.get("/api/usage/events", ADMIN).await.body["items"][0];
    assert_eq!(e["cache_read_usd_per_million"].to_string(), "2.5");
    assert_eq!(e["cache_write_usd_per_million"].to_string(), "2.5");
    // A price with cache prices, then one without: the second PUT clears them.
    let bad = app
        .put(
            "/api/pricing/plain",
            ADMIN,
            json!({"input_usd_per_million": 1, "output_usd_per_million": 1,
                   "cache_read_usd_per_million": -1}),
        )
        .await;
    bad.assert_error(400, "invalid_request");
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("cache_read_usd_per_million"),
        "{}",
        bad.body
    );
    let over = app
        .put(
            "/api/pricing/plain",
            ADMIN,
            json!({"input_usd_per_million": 1, "output_usd_per_million": 1,
                   "cache_write_usd_per_million": 1000000.000000001}),
        )
        .await;
    over.assert_error(400, "invalid_request");
    assert_eq!(
        price_of(&app, "plain").await["input_usd_per_million"].to_string(),
        "2.5",
        "a refused PUT changes nothing"
    );
}

#[tokio::test]
async fn cache_and_reasoning_counts_outside_their_totals_are_refused() {
    let app = spawn_app().await;
    let good = json!({"model": "m", "input_tokens": 10, "output_tokens": 4});
    let with = |extra: Value| {
        let mut e = good.clone();
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    for (extra, field) in [
        (
            json!({"cache_read_tokens": 6, "cache_write_tokens": 5}),
            "cache_read_tokens + cache_write_tokens",
        ),
        (json!({"cache_read_tokens": 11}), "cache_read_tokens"),
        (json!({"cache_write_tokens": 11}), "cache_write_tokens"),
        (json!({"reasoning_tokens": 5}), "reasoning_tokens"),
        (json!({"cache_write_tokens": -1}), "cache_write_tokens"),
        (
            json!({"reasoning_tokens": 1_000_000_000_001u64}),
            "reasoning_tokens",
        ),
    ] {
        let r = app
            .post("/api/usage/events", ADMIN, with(extra.clone()))
            .await;
        r.assert_error(400, "invalid_request");
        let m = r.body["message"].as_str().unwrap();
        assert!(m.contains(field), "{extra}: {m}");
        let r = app
            .post(
                "/api/usage/events",
                ADMIN,
                json!({"events": [good, with(extra.clone())]}),
            )
            .await;
        r.assert_error(400, "invalid_request");
        let m = r.body["message"].as_str().unwrap();
        assert!(m.starts_with("events[1]: ") && m.contains(field), "{m}");
    }
    // The bounds themselves are accepted.
    let r = app
        .post(
            "/api/usage/events",
            ADMIN,
            with(json!({"cache_read_tokens": 6, "cache_write_tokens": 4, "reasoning_tokens": 4})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stats = app.get("/api/usage/stats", ADMIN).await;
    assert_eq!(
        stats.body["totals"]["events"], 1,
        "refused requests stored nothing"
    );
}

#[tokio::test]
async fn stats_summary_and_groups_carry_cache_and_reasoning_tokens_across_a_restart() {
    let app = spawn_app().await;
    let events = json!({"events": [
        {"model": "m-a", "agent_name": "x", "input_tokens": 100, "cache_read_tokens": 40,
         "cache_write_tokens": 10, "output_tokens": 20, "reasoning_tokens": 5},
        {"model": "m-b", "agent_name": "y", "input_tokens": 50, "cache_write_tokens": 50,
         "output_tokens": 10, "reasoning_tokens": 10},
        {"model": "m-a", "agent_name": "x", "input_tokens": 10, "cache_read_tokens": 10,
         "output_tokens": 0},
    ]});
    let r = app.post("/api/usage/events", ADMIN, events).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let counts = |t: &Value| {
        (
            t["input_tokens"].as_i64().unwrap(),
            t["cache_read_tokens"].as_i64().unwrap(),
            t["cache_write_tokens"].as_i64().unwrap(),
            t["output_tokens"].as_i64().unwrap(),
            t["reasoning_tokens"].as_i64().unwrap(),
        )
    };
    let reads = [
        "/api/usage/stats",
        "/api/usage/stats?group_by=model",
        "/api/usage/stats?group_by=day",
        "/api/usage/stats?group_by=month",
        "/api/usage/stats?group_by=agent_name",
        "/api/usage/summary",
    ];
    let mut before = Vec::new();
    for path in reads {
        let r = app.get(path, ADMIN).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        before.push(r.body);
    }
    let total = (160, 50, 60, 30, 15);
    assert_eq!(counts(&before[0]["totals"]), total);
    let by_model = &before[1]["groups"];
    let group = |key: &str| {
        by_model
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["key"] == key)
            .cloned()
            .unwrap()
    };
    assert_eq!(counts(&group("m-a")), (110, 50, 10, 20, 5));
    assert_eq!(counts(&group("m-b")), (50, 0, 50, 10, 10));
    assert_eq!(counts(&before[2]["groups"][0]), total);
    assert_eq!(counts(&before[3]["groups"][0]), total);
    let summary = &before[5];
    assert_eq!(counts(&summary["today"]), total);
    assert_eq!(counts(&summary["month"]), total);
    let top = |list: &str, name_field: &str, name: &str| {
        summary[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g[name_field] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        counts(&top("top_models", "model", "m-b")),
        (50, 0, 50, 10, 10)
    );
    assert_eq!(
        counts(&top("top_agents", "agent_name", "x")),
        (110, 50, 10, 20, 5)
    );

    let app = app.restart().await;
    for (path, want) in reads.iter().zip(&before) {
        let r = app.get(path, ADMIN).await;
        assert_eq!(&r.body, want, "{path} after a restart");
    }
    let listed = app.get("/api/usage/events", ADMIN).await;
    let sum: i64 = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cache_write_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(sum, 60);
}

/// A LiteLLM `model_prices_and_context_window.json` in miniature, numbers in the forms the
/// real file uses (exponents, upper-case E, `0.0`).
const LITELLM: &str = r#"{
    "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
                    "litellm_provider": "one of https://docs.litellm.ai/docs/providers", "mode": "chat"},
    "acme-chat": {"max_tokens": 8192, "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1E-5,
                  "cache_read_input_token_cost": 1.25e-6, "cache_creation_input_token_cost": 3.125E-06,
                  "litellm_provider": "acme", "mode": "chat", "supports_prompt_caching": true},
    "acme/embed-1": {"input_cost_per_token": 2e-08, "output_cost_per_token": 0.0,
                     "litellm_provider": "acme", "mode": "embedding"},
    "acme-image": {"input_cost_per_pixel": 1.9e-08, "output_cost_per_pixel": 0.0,
                   "litellm_provider": "acme", "mode": "image_generation"},
    "acme-free": {"litellm_provider": "acme", "mode": "chat"},
    "acme chat": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "mode": "chat"},
    "acme-tiny": {"input_cost_per_token": 3e-16, "output_cost_per_token": 1e-06, "mode": "chat"}
}"#;

fn import(dir: &Path, file: &Path) -> std::process::Output {
    cli(dir)
        .args(["pricing", "import"])
        .arg(file)
        .output()
        .unwrap()
}

#[tokio::test]
async fn pricing_import_serves_litellm_prices_exactly_and_charges_them() {
    let app = spawn_app().await;
    let file = app.dir.path().join("prices.json");
    std::fs::write(&file, LITELLM).unwrap();
    // On SQLite the import needs the server stopped; on PostgreSQL it goes in while replicas
    // serve, and they reload their prices.
    let (app, out) = match app.config.database_url.clone() {
        None => {
            let out = import(app.dir.path(), &file);
            assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
            assert!(
                output_text(&out).contains("stop it first"),
                "{}",
                output_text(&out)
            );
            let (dir, config) = app.stop().await;
            let out = import(dir.path(), &file);
            (start(dir, config).await, out)
        }
        Some(url) => {
            let out = cli(app.dir.path())
                .env("TENANTRY_DATABASE_URL", url.expose())
                .args(["pricing", "import"])
                .arg(&file)
                .output()
                .unwrap();
            (app, out)
        }
    };
    assert!(out.status.success(), "{}", output_text(&out));
    let line = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("imported 2 prices, skipped 4 ("), "{line}");
    let when = match on_postgres() {
        false => "the server uses them from its next start",
        true => "running replicas use them within a second",
    };
    for reason in [
        "mode other than chat/completion/responses/embedding: 1",
        "not a valid model name (1 to 200 characters, no spaces): 1",
        "no input_cost_per_token or output_cost_per_token: 1",
        "a cost finer than 1e-15 USD per token: 1",
        when,
    ] {
        assert!(line.contains(reason), "`{reason}` not in: {line}");
    }
    // Within the contract's second on PostgreSQL (at once on SQLite, read at start).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let listed = |b: &Value| {
        b["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|p| p["model"] == "acme-chat"))
    };
    while !listed(&app.get("/api/pricing", ADMIN).await.body)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let chat = price_of(&app, "acme-chat").await;
    assert_eq!(
        chat,
        json!({"model": "acme-chat", "input_usd_per_million": 2.5, "output_usd_per_million": 10,
               "cache_read_usd_per_million": 1.25, "cache_write_usd_per_million": 3.125})
    );
    let embed = price_of(&app, "acme/embed-1").await;
    assert_eq!(embed["input_usd_per_million"].to_string(), "0.02");
    assert_eq!(embed["output_usd_per_million"].to_string(), "0");
    assert_eq!(embed["cache_read_usd_per_million"], Value::Null);
    let listed: Vec<Value> = app.get("/api/pricing", ADMIN).await.body["items"]
        .as_array()
        .unwrap()
        .clone();
    for skipped in [
        "sample_spec",
        "acme-image",
        "acme-free",
        "acme chat",
        "acme-tiny",
    ] {
        assert!(
            listed.iter().all(|p| p["model"] != skipped),
            "{skipped} was imported"
        );
    }
    let r = app
        .post("/api/usage/events", ADMIN, cached_event("acme-chat"))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(
        r.body["events"][0]["estimated_cost_usd"].to_string(),
        "2.083455625"
    );
}

#[tokio::test]
async fn a_broken_price_file_writes_nothing() {
    let app = spawn_app().await;
    let before = app.get("/api/pricing", ADMIN).await.body;
    let (dir, config) = app.stop().await;
    // Good rows first, then the file breaks off: refused whole, not imported up to the break.
    let cut = &LITELLM[..LITELLM.find("\"acme-image\"").unwrap()];
    for (name, text) in [
        ("cut.json", cut.to_string()),
        (
            "list.json",
            "[{\"input_cost_per_token\": 1e-06}]".to_string(),
        ),
        ("empty.json", String::new()),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let out = import(dir.path(), &file);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", output_text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
    }
    let missing = import(dir.path(), &dir.path().join("nowhere.json"));
    assert_eq!(missing.status.code(), Some(1));
    let app = start(dir, config).await;
    assert_eq!(app.get("/api/pricing", ADMIN).await.body, before);
}
