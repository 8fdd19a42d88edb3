//! The fake's own promises, checked without a socket: routing, the shape and numbers of its
//! answers, and the mid-stream abort.
use super::sse::SseBody;
use super::*;
use futures_core::Stream;
use std::pin::Pin;

fn state() -> State {
    State {
        recorded: Mutex::new(VecDeque::new()),
        boot: 1,
        counter: AtomicU64::new(0),
    }
}

fn with_ctx<T>(body: Value, f: impl FnOnce(&Ctx) -> T) -> T {
    let (state, fake) = (state(), Fake::from_body(&body));
    f(&Ctx {
        fake: &fake,
        model: r#""gpt-4o""#,
        created: 1,
        state: &state,
    })
}

/// The JSON of every `data:` line of an SSE text, `[DONE]` left out.
fn data_lines(units: &super::sse::Units) -> Vec<Value> {
    let all = format!("{}{}{}", units.head, units.chunks.concat(), units.tail);
    all.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("every data line is JSON"))
        .collect()
}

#[test]
fn paths_with_and_without_v1_reach_the_same_endpoint() {
    for path in [
        "/v1/chat/completions",
        "/chat/completions",
        "/v1beta/openai/chat/completions/",
    ] {
        assert!(route(&Method::POST, path) == Route::Chat, "{path}");
    }
    assert!(route(&Method::POST, "/messages") == Route::Messages);
    assert!(route(&Method::GET, "/v1/models") == Route::Models);
    assert!(route(&Method::GET, "/v1/chat/completions") == Route::NotFound);
    assert!(route(&Method::DELETE, "/_fake/requests") == Route::Requests);
}

#[test]
fn chat_answer_reports_the_requested_usage() {
    let body = json!({"fake": {"prompt_tokens": 9, "completion_tokens": 4, "cached_tokens": 2, "reasoning_tokens": 1}});
    let answer: Value = serde_json::from_str(&with_ctx(body, chat)).expect("JSON");
    assert_eq!(answer["usage"]["total_tokens"], 13);
    assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 2);
    assert_eq!(
        answer["usage"]["completion_tokens_details"]["reasoning_tokens"],
        1
    );
}

#[test]
fn chat_stream_has_a_usage_chunk_only_when_include_usage_is_asked() {
    let with = with_ctx(json!({}), |c| data_lines(&chat_stream(c, true)));
    let without = with_ctx(json!({}), |c| data_lines(&chat_stream(c, false)));
    let usage_chunks = |events: &[Value]| events.iter().filter(|e| e["usage"].is_object()).count();
    assert_eq!(usage_chunks(&with), 1);
    assert_eq!(with.last().expect("chunks")["choices"], json!([]));
    assert_eq!(usage_chunks(&without), 0);
    // head, three content chunks, the finish chunk
    assert_eq!(without.len(), 5);
}

#[test]
fn anthropic_stream_puts_the_output_total_in_message_delta_only() {
    let body = json!({"fake": {"completion_tokens": 30, "cache_read": 6, "chunks": 2}});
    let events = with_ctx(body, |c| data_lines(&messages_stream(c)));
    assert_eq!(events[0]["message"]["usage"]["output_tokens"], 1);
    assert_eq!(events[0]["message"]["usage"]["cache_read_input_tokens"], 6);
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .expect("message_delta");
    assert_eq!(delta["usage"]["output_tokens"], 30);
}

#[test]
fn responses_stream_numbers_its_events_and_ends_with_usage() {
    let events = with_ctx(json!({"fake": {"id": "resp_fixed"}}), |c| {
        data_lines(&responses_stream(c))
    });
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i);
    }
    let last = events.last().expect("events");
    assert_eq!(last["type"], "response.completed");
    assert_eq!(last["response"]["id"], "resp_fixed");
    assert_eq!(last["response"]["usage"]["output_tokens"], 5);
}

#[actix_web::test]
async fn die_after_chunks_fails_the_body_after_the_head_and_that_many_chunks() {
    let units = with_ctx(json!({"stream": true, "fake": {"chunks": 5}}), |c| {
        chat_stream(c, true)
    });
    let fake = Fake::from_body(&json!({"fake": {"die_after_chunks": 2}}));
    let mut body = SseBody::new(&fake, units);
    let mut parts = 0;
    loop {
        match std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await {
            Some(Ok(_)) => parts += 1,
            Some(Err(_)) => break,
            None => panic!("the body ended cleanly instead of failing"),
        }
    }
    assert_eq!(parts, 3);
}
