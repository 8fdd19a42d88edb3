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
