//! The gateway (contract v2 "Gateway"): calls relayed to a fake provider with the tenant's
//! key, metered from the provider's own usage, errors in the provider's format.
use crate::helpers::{Resp, TestApp, ADMIN};
use crate::upstream::{gateway_app, FakeUpstream, HOSTED_OPENAI_KEY};
use serde_json::{json, Value};

/// A POST to a gateway path with `key` as the SDKs send it (Bearer).
pub async fn post(app: &TestApp, path: &str, key: &str, body: Value) -> Resp {
    app.call("POST", path, Some(key), Some(body)).await
}

/// The tenant's recorded usage events, newest first, once there are at least `n` (a streamed
/// call is recorded when its stream has ended, just after the client saw the end).
pub async fn events(app: &TestApp, slug: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let r = app
            .get(&format!("/api/tenant/{slug}/usage/events"), ADMIN)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body["items"].as_array().cloned().unwrap_or_default();
        if items.len() >= n {
            return items;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} usage events after 5 s");
}

#[tokio::test]
async fn a_plain_chat_call_goes_upstream_with_the_instances_key_and_is_metered_exactly() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
        "fake": {"prompt_tokens": 1000, "completion_tokens": 200, "cached_tokens": 400, "reasoning_tokens": 50}});
    let r = post(&app, "/v1/chat/completions", &key, body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["usage"]["prompt_tokens"], 1000,
        "the answer comes back unchanged"
    );
    // gpt-4o-mini: 0.15 input, 0.075 cached input, 0.60 output per million.
    // 600 * 0.15 + 400 * 0.075 + 200 * 0.60 = 240 micro-USD.
    assert_eq!(r.header("x-tenantry-cost-usd"), Some("0.00024"));
    assert_eq!(r.header("x-usage-limit-status"), Some("ok"));
    let seen = fake.requests().await;
    let last = seen.last().unwrap();
    assert_eq!(
        last["headers"]["authorization"],
        format!("Bearer {HOSTED_OPENAI_KEY}")
    );
    assert_eq!(last["body"]["model"], "gpt-4o-mini");
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(e["event_id"], id.as_str());
    assert_eq!(e["model"], "gpt-4o-mini");
    assert_eq!(
        (
            &e["input_tokens"],
            &e["output_tokens"],
            &e["cache_read_tokens"],
            &e["reasoning_tokens"]
        ),
        (&json!(1000), &json!(200), &json!(400), &json!(50))
    );
    assert_eq!(e["estimated_cost_usd"].to_string(), "0.00024");
    assert_eq!(
        e["metadata"]["gateway"],
        json!({"path": "/v1/chat/completions", "stream": false, "status": 200})
    );
}

/// Puts tenant `slug` in byo_key mode with its own `provider` key; gives an owner and a
/// service key.
pub async fn byo_tenant(
    app: &TestApp,
    slug: &str,
    provider: &str,
    secret: &str,
) -> (String, String) {
    app.create_tenant(slug).await;
    let owner = app.create_key(slug, "owner").await;
    let r = app
        .call(
            "PATCH",
            "/api/settings",
            Some(&owner),
            Some(json!({"execution_mode": "byo_key"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = app
        .put(
            &format!("/api/settings/provider-keys/{provider}"),
            &owner,
            json!({"api_key": secret}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (owner, app.create_key(slug, "service").await)
}

#[tokio::test]
async fn each_tenant_calls_with_its_own_provider_key_which_never_comes_back() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    let (_, a) = byo_tenant(&app, "acme", "openai", "sk-acme-own-key-1234").await;
    let (_, b) = byo_tenant(&app, "beta", "openai", "sk-beta-own-key-5678").await;
    let chat = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]});
    let ra = post(&app, "/v1/chat/completions", &a, chat.clone()).await;
    let rb = post(&app, "/v1/chat/completions", &b, chat).await;
    assert_eq!(
        (ra.status, rb.status),
        (200, 200),
        "{} {}",
        ra.body,
        rb.body
    );
    let seen = fake.requests().await;
    let auth: Vec<&str> = seen
        .iter()
        .map(|r| r["headers"]["authorization"].as_str().unwrap())
        .collect();
    assert_eq!(
        auth,
        ["Bearer sk-acme-own-key-1234", "Bearer sk-beta-own-key-5678"]
    );
    for r in [&ra, &rb] {
        let text = format!("{:?} {}", r.headers, r.body);
        assert!(
            !text.contains("own-key") && !text.contains("sk-hosted"),
            "a key came back: {text}"
        );
    }
    for (key, other) in [(&a, &b), (&b, &a)] {
        assert!(
            !seen.iter().any(|r| r.to_string().contains(key.as_str())),
            "a tenant key went upstream"
        );
        let _ = other;
    }
    // byo_key bills nothing; each tenant sees only its own call.
    assert_eq!(ra.header("x-tenantry-cost-usd"), Some("0"));
    let (ea, eb) = (events(&app, "acme", 1).await, events(&app, "beta", 1).await);
    assert_eq!((ea.len(), eb.len()), (1, 1));
    assert_eq!(ea[0]["event_id"], ra.body["id"]);
    assert_eq!(eb[0]["event_id"], rb.body["id"]);
}

#[tokio::test]
async fn anthropic_messages_meter_every_prompt_token_and_take_x_api_key() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
        "fake": {"prompt_tokens": 100, "cache_read": 1000, "cache_write": 200, "completion_tokens": 40}});
    let r = app
        .client
        .post(format!("{}/v1/messages", app.address))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cost = r.headers()["x-tenantry-cost-usd"]
        .to_str()
        .unwrap()
        .to_string();
    let answer: Value = r.json().await.unwrap();
    let seen = fake.requests().await;
    let last = seen.last().unwrap();
    assert_eq!(
        last["headers"]["x-api-key"],
        crate::upstream::HOSTED_ANTHROPIC_KEY
    );
    assert!(last["headers"]["authorization"].is_null(), "{last}");
    assert_eq!(last["headers"]["anthropic-version"], "2023-06-01");
    assert_eq!(
        last["headers"]["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(e["event_id"], answer["id"]);
    assert_eq!(
        (
            &e["input_tokens"],
            &e["cache_read_tokens"],
            &e["cache_write_tokens"],
            &e["output_tokens"]
        ),
        (&json!(1300), &json!(1000), &json!(200), &json!(40))
    );
    // claude-haiku-4-5: input 1, cache read 0.1, cache write 1.25, output 5 per million:
    // 100 + 100 + 250 + 200 = 650 micro-USD.
    assert_eq!(cost, "0.00065");
    assert_eq!(e["estimated_cost_usd"].to_string(), "0.00065");
}

#[tokio::test]
async fn embeddings_and_responses_are_metered_with_their_own_usage_formats() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let r = post(
        &app,
        "/v1/embeddings",
        &key,
        json!({"model": "text-embedding-3-small", "input": "hello", "fake": {"prompt_tokens": 8}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r2 = post(&app, "/v1/responses", &key, json!({"model": "openai/gpt-4o-mini", "input": "hi",
        "fake": {"prompt_tokens": 30, "cached_tokens": 10, "completion_tokens": 9, "reasoning_tokens": 4}})).await;
    assert_eq!(r2.status, 200, "{}", r2.body);
    assert_eq!(
        fake.requests().await.last().unwrap()["body"]["model"],
        "gpt-4o-mini",
        "prefix stripped"
    );
    let ev = events(&app, "acme", 2).await;
    let (resp, emb) = (&ev[0], &ev[1]);
    assert!(
        emb["event_id"].as_str().unwrap().starts_with("gw-"),
        "{emb}"
    );
    assert_eq!(
        (&emb["input_tokens"], &emb["output_tokens"]),
        (&json!(8), &json!(0))
    );
    assert_eq!(resp["event_id"], r2.body["id"]);
    assert_eq!(
        resp["model"], "gpt-4o-mini",
        "the model as named, prefix stripped"
    );
    assert_eq!(
        (
            &resp["input_tokens"],
            &resp["cache_read_tokens"],
            &resp["output_tokens"],
            &resp["reasoning_tokens"]
        ),
        (&json!(30), &json!(10), &json!(9), &json!(4))
    );
}

#[tokio::test]
async fn a_retried_record_with_the_same_upstream_id_is_counted_once() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "gpt-4o-mini", "messages": [], "fake": {"id": "chatcmpl-same"}});
    for _ in 0..2 {
        assert_eq!(
            post(&app, "/v1/chat/completions", &key, body.clone())
                .await
                .status,
            200
        );
    }
    let stats = app.get("/api/tenant/acme/usage/stats", ADMIN).await;
    assert_eq!(stats.body["totals"]["events"], 1, "{}", stats.body);
}

#[tokio::test]
async fn labels_come_from_the_x_tenantry_headers_and_bad_ones_are_refused() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let r = app
        .request("POST", "/v1/chat/completions", Some(&key))
        .header("x-tenantry-user", "u-42")
        .header("x-tenantry-agent", "planner")
        .header("x-tenantry-stage", "draft")
        .header("x-tenantry-job", "job-7")
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(
        (
            &e["user_id"],
            &e["agent_name"],
            &e["pipeline_stage"],
            &e["job_id"]
        ),
        (
            &json!("u-42"),
            &json!("planner"),
            &json!("draft"),
            &json!("job-7")
        )
    );
    assert!(e["duration_ms"].as_u64().is_some());
    let long = "x".repeat(256);
    let r = app
        .request("POST", "/v1/chat/completions", Some(&key))
        .header("x-tenantry-agent", long)
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(
        fake.requests().await.len(),
        1,
        "the refused call never went upstream"
    );
}

#[tokio::test]
async fn upstream_errors_are_relayed_as_they_came_and_not_metered() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    for status in [429, 500] {
        let r = post(
            &app,
            "/v1/chat/completions",
            &key,
            json!({"model": "gpt-4o-mini", "messages": [], "fake": {"status": status}}),
        )
        .await;
        assert_eq!(r.status, status, "{}", r.body);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("fake"),
            "the provider's own body: {}",
            r.body
        );
        if status == 429 {
            assert_eq!(
                r.header("retry-after"),
                Some("1"),
                "the provider's headers come back"
            );
        }
    }
    let r = post(&app, "/v1/messages", &key,
        json!({"model": "claude-haiku-4-5", "messages": [], "max_tokens": 5, "stream": true, "fake": {"status": 529}})).await;
    assert_eq!(r.status, 529);
    assert_eq!(r.body["type"], "error");
    let stats = app.get("/api/tenant/acme/usage/stats", ADMIN).await;
    assert_eq!(stats.body["totals"]["events"], 0, "{}", stats.body);
}

#[tokio::test]
async fn models_lists_allowed_models_or_priced_models_of_keyed_providers() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    let r = app.get("/v1/models", &key).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["object"], "list");
    let data = r.body["data"].as_array().unwrap();
    let owned = |id: &str| {
        data.iter()
            .find(|m| m["id"] == id)
            .map(|m| m["owned_by"].clone())
    };
    assert_eq!(owned("gpt-4o-mini"), Some(json!("openai")));
    assert_eq!(owned("claude-haiku-4-5"), Some(json!("anthropic")));
    assert_eq!(
        owned("gemini-2.5-flash"),
        None,
        "no Google key on this instance"
    );
    assert!(data.iter().all(|m| m["object"] == "model"));
    // byo_key with only an Anthropic key: only Anthropic's models.
    let (owner, byo) = byo_tenant(&app, "beta", "anthropic", "sk-ant-beta-own-1234").await;
    let r = app.get("/v1/models", &byo).await;
    assert!(
        r.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["owned_by"] == "anthropic"),
        "{}",
        r.body
    );
    let patch = json!({"allowed_models": ["claude-haiku-4-5", "gpt-4o"], "default_model": null});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    let r = app.get("/v1/models", &byo).await;
    let ids: Vec<&str> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["claude-haiku-4-5", "gpt-4o"]);
}

#[tokio::test]
async fn x_api_key_works_on_openai_paths_and_openais_own_headers_pass_through() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let r = app
        .client
        .post(format!("{}/v1/chat/completions", app.address))
        .header("x-api-key", &key)
        .header("openai-organization", "org-acme")
        .header("openai-project", "proj_42")
        .header("openai-beta", "assistants=v2")
        .json(&json!({"model": "gpt-4o-mini", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .get(format!("{}/v1/models", app.address))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = fake.requests().await;
    let h = &seen[0]["headers"];
    assert_eq!(h["openai-organization"], "org-acme");
    assert_eq!(h["openai-project"], "proj_42");
    assert_eq!(h["openai-beta"], "assistants=v2");
    assert_eq!(h["authorization"], format!("Bearer {HOSTED_OPENAI_KEY}"));
    assert!(h["x-api-key"].is_null(), "the tenant key stays here: {h}");
}
