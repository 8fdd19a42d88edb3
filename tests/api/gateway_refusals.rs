//! What the gateway refuses, each in the provider's own error format and before anything goes
//! upstream: callers, models, keys, limits, concurrency, sizes; and what it does when the
//! provider cannot be reached or does not answer.
use crate::gateway::{byo_tenant, post};
use crate::helpers::{Resp, TestApp, ADMIN};
use crate::upstream::{gateway_app, FakeUpstream};
use serde_json::{json, Value};

fn chat() -> Value {
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
}

/// OpenAI's error format with the contract's code.
fn openai_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let e = &r.body["error"];
    assert_eq!(e["code"], code, "{}", r.body);
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        r.body
    );
    assert!(e["type"].is_string() && e["param"].is_null(), "{}", r.body);
}

/// Anthropic's error format with the contract's code.
fn anthropic_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.body["type"], "error", "{}", r.body);
    assert_eq!(r.body["error"]["type"], code, "{}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{}", r.body);
}

/// The fake provider, a tenantry pointed at it (with `extra` variables), tenant `acme` and its
/// owner and service keys.
async fn acme(extra: &[(&str, &str)]) -> (FakeUpstream, TestApp, String, String) {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, extra).await;
    app.create_tenant("acme").await;
    let owner = app.create_key("acme", "owner").await;
    let key = app.create_key("acme", "service").await;
    (fake, app, owner, key)
}

async fn nothing_went_upstream(fake: &FakeUpstream) {
    assert_eq!(
        fake.requests().await.len(),
        0,
        "a refused call went upstream"
    );
}

#[tokio::test]
async fn callers_without_a_tenant_key_of_the_right_role_are_refused() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    let acme = app.create_tenant("acme").await;
    app.create_tenant("beta").await;
    let viewer = app.create_key("acme", "viewer").await;
    let beta = app.create_key("beta", "service").await;
    let r = app
        .call("POST", "/v1/chat/completions", None, Some(chat()))
        .await;
    openai_error(&r, 401, "unauthorized");
    openai_error(
        &post(&app, "/v1/chat/completions", "tk_not_a_key", chat()).await,
        401,
        "unauthorized",
    );
    openai_error(
        &post(&app, "/v1/chat/completions", &viewer, chat()).await,
        403,
        "forbidden",
    );
    openai_error(
        &post(&app, "/v1/chat/completions", ADMIN, chat()).await,
        403,
        "forbidden",
    );
    openai_error(&app.get("/v1/models", ADMIN).await, 403, "forbidden");
    let claude = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []});
    anthropic_error(
        &post(&app, "/v1/messages", &viewer, claude.clone()).await,
        403,
        "forbidden",
    );
    let r = app
        .client
        .post(format!("{}/v1/messages", app.address))
        .header("x-api-key", "tk_wrong")
        .json(&claude)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Beta's key naming acme's tenant: refused, never acme's provider key.
    let r = app
        .request("POST", "/v1/chat/completions", Some(&beta))
        .header("x-tenant-id", acme["id"].as_str().unwrap())
        .json(&chat())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    nothing_went_upstream(&fake).await;
}

#[tokio::test]
async fn models_are_routed_by_prefix_or_family_and_unknown_or_disallowed_ones_refused() {
    let (fake, app, owner, key) = acme(&[]).await;
    let with = |m: &str| json!({"model": m, "messages": []});
    openai_error(
        &post(&app, "/v1/chat/completions", &key, with("llama3")).await,
        404,
        "model_not_found",
    );
    openai_error(
        &post(&app, "/v1/chat/completions", &key, json!({"messages": []})).await,
        400,
        "invalid_request",
    );
    openai_error(
        &post(&app, "/v1/chat/completions", &key, json!([1])).await,
        400,
        "invalid_request",
    );
    anthropic_error(
        &post(&app, "/v1/messages", &key, with("gpt-4o")).await,
        400,
        "invalid_request",
    );
    let patch = json!({"allowed_models": ["gpt-4o-mini"]});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    openai_error(
        &post(&app, "/v1/chat/completions", &key, with("gpt-4o")).await,
        403,
        "model_not_allowed",
    );
    nothing_went_upstream(&fake).await;
    // A claude- model on an OpenAI path goes to Anthropic's OpenAI-compatible endpoint, with
    // Anthropic's key as a bearer token.
    let patch = json!({"allowed_models": null});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    let r = post(
        &app,
        "/v1/chat/completions",
        &key,
        with("anthropic/claude-haiku-4-5"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = fake.requests().await;
    assert_eq!(seen[0]["path"], "/v1/chat/completions");
    assert_eq!(
        seen[0]["headers"]["authorization"],
        format!("Bearer {}", crate::upstream::HOSTED_ANTHROPIC_KEY)
    );
    assert_eq!(seen[0]["body"]["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn a_missing_or_unreadable_provider_key_is_a_409() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    let (_, byo) = byo_tenant(&app, "acme", "openai", "sk-acme-own-key-1234").await;
    let claude = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []});
    anthropic_error(
        &post(&app, "/v1/messages", &byo, claude).await,
        409,
        "byo_key_missing",
    );
    app.create_tenant("beta").await;
    let hosted = app.create_key("beta", "service").await;
    let gemini = json!({"model": "gemini-2.5-flash", "messages": []});
    openai_error(
        &post(&app, "/v1/chat/completions", &hosted, gemini).await,
        409,
        "hosted_key_missing",
    );
    // Damage acme's stored key: the call is refused and nothing goes upstream.
    match crate::helpers::app_pg(&app).await {
        None => {
            let db = rusqlite::Connection::open(app.dir.path().join("tenantry.db")).unwrap();
            db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            db.execute(
                "UPDATE provider_keys SET ciphertext = substr(ciphertext, 2) WHERE provider = 'openai'",
                [],
            )
            .unwrap();
        }
        Some(pg) => {
            pg.execute(
                "UPDATE provider_keys SET ciphertext = substring(ciphertext from 2)
                  WHERE provider = 'openai'",
                &[],
            )
            .await
            .unwrap();
        }
    }
    openai_error(
        &post(&app, "/v1/chat/completions", &byo, chat()).await,
        409,
        "provider_key_unreadable",
    );
    nothing_went_upstream(&fake).await;
}

#[tokio::test]
async fn enforce_limits_refuses_calls_while_a_limit_is_exceeded_and_soft_limits_only_say_so() {
    let (fake, app, owner, key) = acme(&[]).await;
    let patch = json!({"limits": {"daily_tokens": 10}});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    let r = post(&app, "/v1/chat/completions", &key, chat()).await;
    assert_eq!(
        (r.status, r.header("x-usage-limit-status")),
        (200, Some("ok"))
    );
    // 17 tokens used of 10: exceeded, but soft: the call goes through and says so.
    let r = post(&app, "/v1/chat/completions", &key, chat()).await;
    assert_eq!(
        (r.status, r.header("x-usage-limit-status")),
        (200, Some("exceeded"))
    );
    let patch = json!({"enforce_limits": true});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    openai_error(
        &post(&app, "/v1/chat/completions", &key, chat()).await,
        429,
        "limit_exceeded",
    );
    assert_eq!(
        fake.requests().await.len(),
        2,
        "the refused call never went upstream"
    );
    // Ingest is never refused for a limit.
    let ev = json!({"model": "gpt-4o-mini", "input_tokens": 1, "output_tokens": 1});
    assert_eq!(app.post("/api/usage/events", &key, ev).await.status, 201);
}

#[tokio::test]
async fn the_rate_limit_and_max_concurrent_calls_apply_to_gateway_calls() {
    let (_fake, app, owner, key) = acme(&[]).await;
    let patch = json!({"max_concurrent_calls": 1});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    let slow =
        json!({"model": "gpt-4o-mini", "messages": [], "fake": {"first_byte_delay_ms": 700}});
    let (a, b) = tokio::join!(post(&app, "/v1/chat/completions", &key, slow), async {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        post(&app, "/v1/chat/completions", &key, chat()).await
    });
    assert_eq!(a.status, 200, "{}", a.body);
    openai_error(&b, 429, "too_many_concurrent_calls");
    assert_eq!(
        post(&app, "/v1/chat/completions", &key, chat())
            .await
            .status,
        200,
        "the slot is free again"
    );

    let patch = json!({"rate_limit_per_minute": 1, "max_concurrent_calls": null});
    assert_eq!(
        app.call("PATCH", "/api/settings", Some(&owner), Some(patch))
            .await
            .status,
        200
    );
    // A bucket of one a minute holds a burst of two.
    for _ in 0..2 {
        assert_eq!(
            post(&app, "/v1/chat/completions", &key, chat())
                .await
                .status,
            200
        );
    }
    let third = post(
        &app,
        "/v1/messages",
        &key,
        json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}),
    )
    .await;
    anthropic_error(&third, 429, "rate_limited");
    assert!(third.header("retry-after").is_some(), "Retry-After");
}

async fn app_with(extra: &[(&str, &str)]) -> (FakeUpstream, TestApp, String) {
    let (fake, app, _, key) = acme(extra).await;
    (fake, app, key)
}

#[tokio::test]
async fn bodies_over_the_gateway_bound_are_413_in_the_providers_format() {
    let (fake, app, key) = app_with(&[("TENANTRY_GATEWAY_MAX_BODY", "2MiB")]).await;
    // Larger than /api's 1 MiB, within the gateway's bound: accepted.
    let big = "x".repeat(1_500_000);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": big}]});
    assert_eq!(
        post(&app, "/v1/chat/completions", &key, body).await.status,
        200
    );
    let huge = "x".repeat(2_200_000);
    let body = json!({"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": huge}]});
    anthropic_error(
        &post(&app, "/v1/messages", &key, body).await,
        413,
        "payload_too_large",
    );
    assert_eq!(fake.requests().await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_provider_is_502_and_one_that_never_answers_504() {
    let (fake, app, key) = app_with(&[("TENANTRY_UPSTREAM_TIMEOUT", "1s")]).await;
    let hang = json!({"model": "gpt-4o-mini", "messages": [], "fake": {"hang": true}});
    let started = std::time::Instant::now();
    openai_error(
        &post(&app, "/v1/chat/completions", &key, hang).await,
        504,
        "upstream_timeout",
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(fake);
    // Nothing listens on the fake's port any more.
    openai_error(
        &post(&app, "/v1/chat/completions", &key, chat()).await,
        502,
        "upstream_unavailable",
    );
    let calls = app.get("/api/tenant/acme/gateway/calls", ADMIN).await;
    let errors: Vec<&Value> = calls.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["error"])
        .collect();
    assert_eq!(
        errors,
        [&json!("upstream_unavailable"), &json!("upstream_timeout")],
        "{}",
        calls.body
    );
}

#[tokio::test]
async fn unknown_gateway_paths_and_methods_answer_in_openais_format() {
    let (_fake, app, key) = app_with(&[]).await;
    openai_error(
        &post(&app, "/v1/completions", &key, chat()).await,
        404,
        "not_found",
    );
    let r = app.get("/v1/chat/completions", &key).await;
    assert_eq!(r.status, 405, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "method_not_allowed", "{}", r.body);
}

#[tokio::test]
async fn one_tenants_keys_never_reach_anothers_gateway_calls_or_provider_key() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("tenant-a").await;
    let (_, b_service) = byo_tenant(&app, "tenant-b", "openai", "sk-b-own-key-98765").await;
    let b_id = app.get("/api/tenants/tenant-b", ADMIN).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = post(
        &app,
        "/v1/chat/completions",
        &b_service,
        json!({"model": "gpt-4o", "messages": []}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for role in ["owner", "member", "viewer", "service"] {
        let a = app.create_key("tenant-a", role).await;
        // Naming B by its id, on every gateway path and the calls list: refused.
        let named_b = [
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/embeddings"),
            ("POST", "/v1/responses"),
            ("POST", "/v1/messages"),
            ("GET", "/v1/models"),
            ("GET", "/api/gateway/calls"),
        ];
        for (method, path) in named_b {
            let mut req = app
                .request(method, path, Some(&a))
                .header("X-Tenant-ID", b_id.as_str());
            if method == "POST" {
                req = req.json(&chat());
            }
            assert_eq!(
                req.send().await.unwrap().status(),
                403,
                "{role} {method} {path}"
            );
        }
        app.get("/api/tenant/tenant-b/gateway/calls", &a)
            .await
            .assert_error(403, "forbidden");
        if role != "service" {
            let own = app.get("/api/gateway/calls", &a).await;
            assert_eq!(own.status, 200, "{}", own.body);
            assert_eq!(own.body["items"], json!([]), "{role} saw B's calls");
        }
    }
    // Only B's one call ever went upstream, with B's key.
    let seen = fake.requests().await;
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0]["headers"]["authorization"],
        "Bearer sk-b-own-key-98765"
    );
    let b_calls = app.get("/api/tenant/tenant-b/gateway/calls", ADMIN).await;
    assert_eq!(b_calls.body["items"][0]["model"], "gpt-4o");
}
