//! Streamed gateway calls: relayed chunk by chunk as they arrive, metered from the usage at the
//! end of the stream, including when the client goes away or the provider breaks off.
use crate::gateway::{events, post};
use crate::helpers::{TestApp, ADMIN};
use crate::upstream::{gateway_app, FakeUpstream};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Sends a streamed call and reads its SSE events as they arrive: each event's data with the
/// time it was complete. Stops after `keep` events (dropping the connection) when given.
async fn stream(
    app: &TestApp,
    path: &str,
    key: &str,
    body: Value,
    keep: Option<usize>,
) -> (u16, Vec<(Instant, String)>) {
    let mut r = app
        .request("POST", path, Some(key))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let (mut buf, mut out) = (String::new(), Vec::new());
    loop {
        let chunk = match r.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) | Err(_) => break,
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            out.push((Instant::now(), data.join("\n")));
            if keep.is_some_and(|k| out.len() >= k) {
                return (status, out);
            }
        }
    }
    (status, out)
}

#[tokio::test]
async fn chunks_are_relayed_as_they_arrive_not_buffered() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [],
        "fake": {"chunks": 4, "chunk_delay_ms": 200}});
    let (status, got) = stream(&app, "/v1/chat/completions", &key, body, None).await;
    assert_eq!(status, 200);
    let content: Vec<&(Instant, String)> = got
        .iter()
        .filter(|(_, d)| d.contains("\"content\""))
        .collect();
    assert!(content.len() >= 4, "{got:?}");
    // The provider sends a chunk every 200 ms; each must reach the client before the next is
    // sent, so arrivals are spread out as the sends were.
    for pair in content.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_millis(120),
            "chunks arrived {gap:?} apart: buffered"
        );
    }
}

#[tokio::test]
async fn a_streamed_chat_is_metered_and_the_usage_chunk_is_withheld_unless_asked_for() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let fake_usage = json!({"prompt_tokens": 70, "completion_tokens": 20, "cached_tokens": 30});
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [], "fake": fake_usage});
    let (_, got) = stream(&app, "/v1/chat/completions", &key, body, None).await;
    let sent = &fake.requests().await[0]["body"];
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "tenantry asked for usage"
    );
    assert!(
        !got.iter().any(|(_, d)| d.contains("prompt_tokens")),
        "withheld: {got:?}"
    );
    assert_eq!(got.last().unwrap().1, "[DONE]");
    let id = serde_json::from_str::<Value>(&got[0].1).unwrap()["id"].clone();
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(e["event_id"], id);
    assert_eq!(
        (
            &e["input_tokens"],
            &e["output_tokens"],
            &e["cache_read_tokens"]
        ),
        (&json!(70), &json!(20), &json!(30))
    );
    assert_eq!(
        e["metadata"]["gateway"],
        json!({"path": "/v1/chat/completions", "stream": true, "status": 200})
    );

    // A client that asked for usage gets it, and the body goes up as it sent it.
    let body = json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [], "fake": fake_usage});
    let (_, got) = stream(&app, "/v1/chat/completions", &key, body, None).await;
    assert!(
        got.iter().any(|(_, d)| d.contains("\"prompt_tokens\":70")),
        "{got:?}"
    );
    assert_eq!(events(&app, "acme", 2).await.len(), 2);
}

#[tokio::test]
async fn streamed_messages_and_responses_take_usage_from_their_last_events() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "member").await;
    let body = json!({"model": "claude-haiku-4-5", "stream": true, "max_tokens": 9, "messages": [],
        "fake": {"prompt_tokens": 11, "cache_read": 5, "completion_tokens": 33}});
    let (status, got) = stream(&app, "/v1/messages", &key, body, None).await;
    assert_eq!(status, 200);
    assert!(
        got.iter().any(|(_, d)| d.contains("message_stop")),
        "relayed whole: {got:?}"
    );
    let body = json!({"model": "gpt-4o", "stream": true, "input": "hi",
        "fake": {"prompt_tokens": 40, "completion_tokens": 12, "reasoning_tokens": 6}});
    stream(&app, "/v1/responses", &key, body, None).await;
    let ev = events(&app, "acme", 2).await;
    let msg = ev
        .iter()
        .find(|e| e["model"] == "claude-haiku-4-5")
        .unwrap();
    assert_eq!(
        (
            &msg["input_tokens"],
            &msg["cache_read_tokens"],
            &msg["output_tokens"]
        ),
        (&json!(16), &json!(5), &json!(33))
    );
    let resp = ev.iter().find(|e| e["model"] == "gpt-4o").unwrap();
    assert!(
        resp["event_id"].as_str().unwrap().starts_with("resp_"),
        "{resp}"
    );
    assert_eq!(
        (&resp["output_tokens"], &resp["reasoning_tokens"]),
        (&json!(12), &json!(6))
    );
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_still_metered() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [],
        "fake": {"chunks": 6, "chunk_delay_ms": 150, "prompt_tokens": 500, "completion_tokens": 60}});
    let (_, got) = stream(&app, "/v1/chat/completions", &key, body, Some(2)).await;
    assert_eq!(got.len(), 2, "the client left after two events");
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(
        (&e["input_tokens"], &e["output_tokens"]),
        (&json!(500), &json!(60))
    );
    assert_eq!(e["metadata"]["gateway"]["client_disconnected"], true, "{e}");
    assert!(e["metadata"]["gateway"].get("usage_missing").is_none());
}

#[tokio::test]
async fn a_stream_without_usage_is_recorded_with_zero_tokens_and_a_warning() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "claude-haiku-4-5", "stream": true, "max_tokens": 5, "messages": [], "fake": {"no_usage": true}});
    let (status, _) = stream(&app, "/v1/messages", &key, body, None).await;
    assert_eq!(status, 200);
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(
        (&e["input_tokens"], &e["output_tokens"]),
        (&json!(0), &json!(0))
    );
    assert_eq!(e["metadata"]["gateway"]["usage_missing"], true, "{e}");
    let ops = app
        .get("/api/tenant/acme/events?category=ai.operations", ADMIN)
        .await;
    let w = &ops.body["items"][0];
    assert_eq!(
        (&w["event_type"], &w["severity"]),
        (&json!("gateway.usage_missing"), &json!("warning")),
        "{}",
        ops.body
    );
}

#[tokio::test]
async fn a_provider_that_dies_mid_stream_cuts_the_clients_stream_and_is_recorded() {
    let fake = FakeUpstream::start();
    let app = gateway_app(&fake, &[]).await;
    app.create_tenant("acme").await;
    let key = app.create_key("acme", "service").await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [], "fake": {"die_after_chunks": 2}});
    let mut r = app
        .request("POST", "/v1/chat/completions", Some(&key))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut broke = false;
    loop {
        match r.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(
        broke,
        "the client must see a broken stream, not a clean end"
    );
    let e = &events(&app, "acme", 1).await[0];
    assert_eq!(e["metadata"]["gateway"]["usage_missing"], true, "{e}");
    assert!(
        e["metadata"]["gateway"]["upstream_error"].is_string(),
        "{e}"
    );
    // The call is over: its concurrency slot is free again.
    let r = post(
        &app,
        "/v1/chat/completions",
        &key,
        json!({"model": "gpt-4o-mini", "messages": []}),
    )
    .await;
    assert_eq!(r.status, 200);
}
