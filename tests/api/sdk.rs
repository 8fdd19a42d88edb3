//! The official SDKs as clients (issue 15): Python's `openai` and `anthropic` packages, with
//! only `base_url` and `api_key` changed, drive the gateway plain and streamed
//! (tests/sdk/gateway_sdk.py); then the usage tenantry recorded is read back through its API
//! and checked call by call, tokens and cost to the nano-dollar. CI installs the packages;
//! elsewhere the test says what is missing and passes only when not under CI.
use crate::gateway::events;
use crate::helpers::{output_text, skip_without, TestApp, ADMIN};
use crate::upstream::{gateway_app, FakeUpstream, HOSTED_ANTHROPIC_KEY, HOSTED_OPENAI_KEY};
use serde_json::{json, Value};
use std::path::Path;

mod scenario;

use scenario::{expected_nanos, fake_usage, scaled, Call, CALLS, MESSAGES, PRICES};

const HOSTED_GOOGLE_KEY: &str = "google-hosted-0123456789";

/// Whether the SDKs can be imported; outside CI, says how to get them when not.
fn without_sdks() -> bool {
    let present = std::process::Command::new("python3")
        .args(["-c", "import openai, anthropic"])
        .output()
        .is_ok_and(|o| o.status.success());
    let install = "python3 -m pip install 'openai>=3,<4' 'anthropic>=2,<3'";
    skip_without(present, "python3 with openai and anthropic", install)
}

/// Runs tests/sdk/gateway_sdk.py with `args`; its JSON summary.
async fn run_script(args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk/gateway_sdk.py");
    let out = tokio::process::Command::new("python3")
        .arg(&script)
        .args(args)
        // Only what the script passes may configure the SDKs.
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .env_remove("ANTHROPIC_BASE_URL")
        .output()
        .await
        .unwrap();
    let log = output_text(&out);
    assert!(out.status.success(), "gateway_sdk.py failed:\n{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("no JSON summary ({e}):\n{log}"))
}

/// The hand-typed prices are the ones the instance reports.
async fn assert_prices(app: &TestApp, key: &str) {
    let r = app.get("/api/pricing", key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let micro = |v: &Value| (!v.is_null()).then(|| scaled(v, 6));
    for &(model, input, output, read, write) in PRICES {
        let row = items
            .iter()
            .find(|i| i["model"] == model)
            .unwrap_or_else(|| panic!("{model} is not priced"));
        let seen = [
            "input_usd_per_million",
            "output_usd_per_million",
            "cache_read_usd_per_million",
            "cache_write_usd_per_million",
        ]
        .map(|k| micro(&row[k]));
        assert_eq!(seen, [Some(input), Some(output), read, write], "{row}");
    }
}

/// `e` is what tenantry must record for `call`; its cost in nano-USD.
fn assert_event(e: &Value, &(name, model, priced_as, path, stream, tokens): &Call) -> i128 {
    let cost = expected_nanos(tokens, priced_as);
    let seen = [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    ]
    .map(|k| e[k].as_u64().unwrap());
    let billed = scaled(&e["estimated_cost_usd"], 9);
    assert_eq!(
        (e["model"].as_str(), seen, billed),
        (Some(model), tokens, cost),
        "{name}: {e}"
    );
    let mut gateway = json!({"path": path, "stream": stream, "status": 200});
    if name == "chat_abandoned" {
        gateway["client_disconnected"] = json!(true);
    }
    assert_eq!(e["metadata"]["gateway"], gateway, "{name}");
    cost
}

/// Upstream saw the instance's keys, each provider's own way, and never a tenant key.
fn assert_upstream_keys(seen: &[Value], tenant_keys: [&str; 2]) {
    for req in seen {
        let h = &req["headers"];
        let model = req["body"]["model"].as_str().unwrap_or_default();
        let (header, key) = if req["path"] == MESSAGES {
            assert!(h["authorization"].is_null(), "{req}");
            (&h["x-api-key"], HOSTED_ANTHROPIC_KEY.to_string())
        } else if model.starts_with("gemini-") {
            (&h["authorization"], format!("Bearer {HOSTED_GOOGLE_KEY}"))
        } else {
            (&h["authorization"], format!("Bearer {HOSTED_OPENAI_KEY}"))
        };
        assert_eq!(header.as_str(), Some(key.as_str()), "{req}");
        let text = req.to_string();
        assert!(tenant_keys.iter().all(|k| !text.contains(k)), "{req}");
    }
}

/// A stream the provider broke off before its final usage: zero tokens (not the counts of
/// message_start), flagged, and a warning event that says so.
async fn assert_cut_stream(app: &TestApp, recorded: &[Value]) {
    let e = recorded
        .iter()
        .find(|e| e["event_id"] == "msg_sdk_cut")
        .expect("the cut stream is recorded");
    let seen = ["input_tokens", "output_tokens", "estimated_cost_usd"].map(|k| e[k].to_string());
    assert_eq!(seen, ["0", "0", "0"], "{e}");
    let gw = &e["metadata"]["gateway"];
    assert_eq!(
        (&gw["usage_missing"], &gw["stream"]),
        (&json!(true), &json!(true)),
        "{e}"
    );
    assert!(gw["upstream_error"].is_string(), "{e}");
    let r = app
        .get("/api/tenant/acme/events?severity=warning", ADMIN)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let items = r.body["items"].as_array().unwrap();
    let warning = items
        .iter()
        .find(|w| w["event_type"] == "gateway.usage_missing")
        .unwrap_or_else(|| panic!("no gateway.usage_missing warning: {}", r.body));
    assert_eq!(warning["data"]["event_id"], "msg_sdk_cut", "{warning}");
    assert!(
        warning["message"].as_str().unwrap().contains("zero tokens"),
        "{warning}"
    );
}

#[tokio::test]
async fn the_official_openai_and_anthropic_sdks_call_the_gateway_and_every_call_is_metered_exactly()
{
    if without_sdks() {
        return;
    }
    let fake = FakeUpstream::start();
    let google = [("TENANTRY_PROVIDER_KEY_GOOGLE", HOSTED_GOOGLE_KEY)];
    let app = gateway_app(&fake, &google).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let viewer = app.create_key("acme", "viewer").await;
    assert_prices(&app, &key).await;

    let mut scenario: serde_json::Map<String, Value> = CALLS
        .iter()
        .map(|&(name, _, _, path, _, tokens)| (name.to_string(), fake_usage(path, tokens)))
        .collect();
    // Broken off after message_start, which already counts 800 input tokens.
    let cut = json!({"prompt_tokens": 800, "completion_tokens": 40, "die_after_chunks": 1,
                     "id": "msg_sdk_cut"});
    scenario.insert("messages_cut".into(), cut);
    let scenario = Value::Object(scenario).to_string();
    let summary = run_script(&[&app.address, &key, &viewer, &scenario]).await;
    eprintln!(
        "SDKs: openai {}, anthropic {}",
        summary["openai"], summary["anthropic"]
    );

    // Only the calls the provider answered are metered: not the refused ones, not the
    // relayed 429.
    let recorded = events(&app, "acme", CALLS.len() + 1).await;
    assert_eq!(recorded.len(), CALLS.len() + 1, "{recorded:#?}");
    assert_cut_stream(&app, &recorded).await;
    let mut total = 0;
    for call in CALLS {
        let e = if call.0 == "embeddings" {
            // No id in an embeddings answer: tenantry generates one.
            let e = recorded.iter().find(|e| e["model"] == call.1).unwrap();
            assert!(e["event_id"].as_str().unwrap().starts_with("gw-"), "{e}");
            e
        } else {
            let id = &summary["ids"][call.0];
            let found = recorded.iter().find(|e| &e["event_id"] == id);
            found.unwrap_or_else(|| panic!("{}: no event with the SDK's id {id}", call.0))
        };
        total += assert_event(e, call);
    }
    assert_eq!(total, 16_329_602, "the sum of the hand computations");
    let header: Value = summary["costs"]["chat"]
        .as_str()
        .and_then(|h| serde_json::from_str(h).ok())
        .expect("the SDK saw X-Tenantry-Cost-Usd");
    assert_eq!(scaled(&header, 9), expected_nanos(CALLS[0].5, CALLS[0].2));
    let gemini = recorded
        .iter()
        .find(|e| e["model"] == "gemini-1.5-flash-8b")
        .unwrap();
    assert_eq!(gemini["estimated_cost_usd"].to_string(), "0.000000262");
    assert_eq!(
        (&gemini["user_id"], &gemini["agent_name"]),
        (&json!("alice"), &json!("sdk-agent")),
        "the label headers the SDK sent"
    );

    // The tenant's dashboard (a viewer key) sees the same totals.
    let r = app.get("/api/usage/stats", &viewer).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = &r.body["totals"];
    let sums: Vec<u64> = (0..5).map(|i| CALLS.iter().map(|c| c.5[i]).sum()).collect();
    let keys = [
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
    ];
    let seen: Vec<u64> = keys
        .iter()
        .chain(&["reasoning_tokens"])
        .map(|k| t[k].as_u64().unwrap())
        .collect();
    assert_eq!((&t["events"], seen), (&json!(CALLS.len() + 1), sums), "{t}");
    assert_eq!(scaled(&t["estimated_cost_usd"], 9), total, "{t}");

    let seen = fake.requests().await;
    assert_eq!(
        seen.len(),
        CALLS.len() + 2,
        "the metered calls, the cut one and the 429"
    );
    assert_upstream_keys(&seen, [&key, &viewer]);
    let upstream = |name: &str| {
        let &(_, _, _, path, _, tokens) = CALLS.iter().find(|c| c.0 == name).unwrap();
        let fake = fake_usage(path, tokens);
        seen.iter().find(|r| r["body"]["fake"] == fake).unwrap()
    };
    assert_eq!(
        upstream("chat_stream")["body"]["stream_options"],
        json!({"include_usage": true}),
        "tenantry asks for the usage the client did not"
    );
    assert_eq!(upstream("gemini")["body"]["model"], "gemini-1.5-flash-8b");
}

#[tokio::test]
async fn in_byo_key_mode_the_sdks_calls_go_upstream_with_the_tenants_own_keys_billed_at_zero() {
    if without_sdks() {
        return;
    }
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let byo = json!({"execution_mode": "byo_key"});
    let r = app
        .call("PATCH", "/api/tenant/acme/settings", Some(ADMIN), Some(byo))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let own = [
        ("openai", "sk-acme-own-openai-0123"),
        ("anthropic", "sk-ant-acme-own-0123"),
    ];
    for (provider, secret) in own {
        let path = format!("/api/tenant/acme/settings/provider-keys/{provider}");
        let r = app.put(&path, ADMIN, json!({"api_key": secret})).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let key = app.create_key("acme", "member").await;
    let summary = run_script(&["--plain", &app.address, &key]).await;

    let recorded = events(&app, "acme", 2).await;
    for name in ["chat", "messages"] {
        let e = recorded
            .iter()
            .find(|e| e["event_id"] == summary["ids"][name])
            .unwrap_or_else(|| panic!("{name}: no event for {}", summary["ids"][name]));
        assert_eq!(e["execution_mode"], "byo_key", "{e}");
        assert_ne!(e["estimated_cost_usd"].to_string(), "0", "{e}");
        assert_eq!(e["billed_cost_usd"].to_string(), "0", "{name}: {e}");
    }
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {}", own[0].1)
    );
    assert_eq!(seen[1]["headers"]["x-api-key"], own[1].1);
    assert!(
        !seen.iter().any(|r| r.to_string().contains(&key)),
        "{seen:#?}"
    );
}
