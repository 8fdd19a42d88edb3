//! A used instance to copy: tenants with everything a tenant can own, made through the API of
//! the real server on SQLite.
use super::KEY;
use crate::helpers::{spawn_tuned, TestApp, ADMIN};
use serde_json::{json, Value};

pub async fn used_instance() -> TestApp {
    spawn_tuned(
        &[
            ("ENABLE_MULTI_TENANT", "true"),
            ("ENABLE_BILLING", "true"),
            ("ENABLE_HOSTED_QUEUE", "true"),
            ("ENCRYPTION_KEY", KEY),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
        |c| c.billing_finalize_every = std::time::Duration::from_millis(50),
    )
    .await
}

pub async fn ok(app: &TestApp, method: &str, path: &str, body: Value) -> Value {
    let r = app.call(method, path, Some(ADMIN), Some(body)).await;
    assert!((200..300).contains(&r.status), "{path}: {}", r.body);
    r.body
}

/// Tenants with members, keys, provider keys, settings history, usage in both execution modes
/// (metadata with quotes, newlines and unicode; event ids; a job's usage), jobs, a webhook
/// endpoint with deliveries, events and a finalized statement. Returns the provider keys.
pub async fn populate(app: &TestApp) -> Vec<(String, String)> {
    app.clock.set("2026-09-10T12:00:00Z".parse().unwrap());
    // First, so the events below are delivered to it (and fail: nothing listens there).
    ok(
        app,
        "POST",
        "/api/webhooks",
        json!({"url": "http://127.0.0.1:9/hook", "description": "dead receiver"}),
    )
    .await;
    let mut provider_keys = Vec::new();
    for slug in ["acme", "globex", "default"] {
        if slug != "default" {
            app.create_tenant(slug).await;
        }
        app.put_member(slug, &format!("alice-{slug}"), "owner")
            .await;
        app.put_member(slug, "bob", "viewer").await;
        app.create_key(slug, "member").await;
        app.create_key(slug, "service").await;
        let secret = format!("sk-{slug}-provider-0123456789abcdef");
        ok(
            app,
            "PUT",
            &format!("/api/tenant/{slug}/settings/provider-keys/openai"),
            json!({"api_key": secret}),
        )
        .await;
        let id = ok(app, "GET", &format!("/api/tenants/{slug}"), json!(null)).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        provider_keys.push((id, secret));
        let job = ok(
            app,
            "POST",
            &format!("/api/tenant/{slug}/jobs"),
            json!({"jobs": [{"payload": {"n": 1}, "queue": "q1"},
                            {"payload": {"n": 2, "s": "ünï \"q\"\n"}, "queue": "q2", "priority": 3,
                             "idempotency_key": "once"}]}),
        )
        .await["jobs"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        for (round, mode) in ["hosted", "byo_key"].iter().enumerate() {
            ok(
                app,
                "PATCH",
                &format!("/api/tenant/{slug}/settings"),
                json!({"execution_mode": mode, "markup_percent": 10 + round}),
            )
            .await;
            let events: Vec<Value> = (0..6)
                .map(|i| {
                    let model = ["gpt-4o", "claude-sonnet-4", "unknown-model-x"][i % 3];
                    json!({"event_id": format!("{slug}-{mode}-{i}"),
                           "model": model,
                           "input_tokens": 100 + i, "output_tokens": 7 * i,
                           "cache_read_tokens": i, "cache_write_tokens": i / 2,
                           "reasoning_tokens": i % 2,
                           "timestamp": format!("2026-09-0{}T10:00:00Z", 1 + i),
                           "agent_name": "agent \"one\"", "user_id": format!("u{}", i % 2),
                           "pipeline_stage": if i > 2 { Some("rank") } else { None },
                           "job_id": if i == 0 { Some(job.clone()) } else { None },
                           "metadata": {"quote": "it's \"x\"", "nl": "a\nb", "uni": "日本 ✓ é",
                                        "nested": {"k": [1, 2.5, null]}}})
                })
                .collect();
            ok(
                app,
                "POST",
                &format!("/api/tenant/{slug}/usage/events"),
                json!({"events": events}),
            )
            .await;
        }
    }
    ok(
        app,
        "POST",
        "/api/tenant/acme/usage/events",
        json!({"events": [{"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 2.5}]}),
    )
    .await;
    // Next month: September's statements are final and stored when read.
    app.clock.set("2026-10-05T00:00:00Z".parse().unwrap());
    for slug in ["acme", "globex"] {
        ok(
            app,
            "GET",
            &format!("/api/tenant/{slug}/billing/statements/2026-09"),
            json!(null),
        )
        .await;
    }
    let globex = &provider_keys[1].0;
    ok(
        app,
        "PATCH",
        &format!("/api/tenants/{globex}"),
        json!({"plan": "pro"}),
    )
    .await;
    ok(
        app,
        "POST",
        &format!("/api/tenants/{globex}/deactivate"),
        json!({}),
    )
    .await;
    provider_keys
}
