//! A fake LLM provider for tests and benchmarks: a test/bench fixture, not part of the product.
//! It speaks the OpenAI (chat completions, embeddings, responses, models) and Anthropic
//! (messages) wire formats, plain and streamed, under `/v1/...` and `/...` alike, so the
//! gateway and the SDKs can be exercised without a real provider.
//!
//! Behaviour is steered per request by an optional top-level `"fake": {...}` object in the body
//! (token counts, chunk count and pacing, error status, mid-stream abort, hang, fixed id).
//! Every request is recorded (last 1000): `GET /_fake/requests` lists them, `DELETE` clears.
//!
//! Speed matters more than elegance here (the gateway benchmark pushes thousands of calls per
//! second through it): answers are written straight into one `String`, nothing is logged per
//! request, and an unpaced stream goes out as a single body chunk.
use actix_web::http::{Method, StatusCode};
use actix_web::rt::time::{sleep, Sleep};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use futures_core::Stream;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const KEPT_REQUESTS: usize = 1000;
const RECORDED_HEADERS: [&str; 8] = [
    "authorization",
    "x-api-key",
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "openai-organization",
    "openai-project",
    "content-type",
];
const WORDS: [&str; 6] = ["Hello", " from", " the", " fake", " upstream", "."];

#[derive(clap::Parser)]
#[command(
    name = "fake-upstream",
    about = "Fake OpenAI/Anthropic provider for tests"
)]
struct Cli {
    /// Port on 127.0.0.1; 0 picks a free one (printed on stdout).
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

struct Recorded {
    method: Method,
    path: String,
    headers: [Option<String>; RECORDED_HEADERS.len()],
    body: Value,
}

struct State {
    recorded: Mutex<VecDeque<Recorded>>,
    /// Ids are `<prefix><boot>x<counter>`: unique within a run and, through the boot time,
    /// across runs that share one database.
    boot: u64,
    counter: AtomicU64,
}

impl State {
    fn next_id(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{:x}x{n}", self.boot)
    }
}

/// The `"fake"` object of a request, with the defaults applied.
struct Fake {
    prompt: u64,
    completion: u64,
    cached: u64,
    reasoning: u64,
    cache_read: u64,
    cache_write: u64,
    chunks: usize,
    chunk_delay: Duration,
    first_byte_delay: Duration,
    status: Option<u16>,
    die_after_chunks: Option<usize>,
    no_usage: bool,
    hang: bool,
    id: Option<String>,
}

impl Fake {
    fn from_body(body: &Value) -> Self {
        let f = body.get("fake");
        let num = |k: &str| f.and_then(|f| f.get(k)).and_then(Value::as_u64);
        let flag = |k: &str| f.and_then(|f| f.get(k)).and_then(Value::as_bool) == Some(true);
        Fake {
            prompt: num("prompt_tokens").unwrap_or(12),
            completion: num("completion_tokens").unwrap_or(5),
            cached: num("cached_tokens").unwrap_or(0),
            reasoning: num("reasoning_tokens").unwrap_or(0),
            cache_read: num("cache_read").unwrap_or(0),
            cache_write: num("cache_write").unwrap_or(0),
            chunks: num("chunks").map_or(3, |n| n as usize),
            chunk_delay: Duration::from_millis(num("chunk_delay_ms").unwrap_or(0)),
            first_byte_delay: Duration::from_millis(num("first_byte_delay_ms").unwrap_or(0)),
            status: num("status").and_then(|s| u16::try_from(s).ok()),
            die_after_chunks: num("die_after_chunks").map(|n| n as usize),
            no_usage: flag("no_usage"),
            hang: flag("hang"),
            id: f
                .and_then(|f| f.get("id"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Route {
    Chat,
    Embeddings,
    Responses,
    Messages,
    Models,
    Requests,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let path = path.trim_end_matches('/');
    if path == "/_fake/requests" {
        return Route::Requests;
    }
    // Suffix matching serves `/v1/...`, `/...` and prefixes like `/v1beta/openai/...` alike.
    match (method, path.rsplit('/').next().unwrap_or("")) {
        (&Method::POST, "completions") if path.ends_with("/chat/completions") => Route::Chat,
        (&Method::POST, "embeddings") => Route::Embeddings,
        (&Method::POST, "responses") => Route::Responses,
        (&Method::POST, "messages") => Route::Messages,
        (&Method::GET, "models") => Route::Models,
        _ => Route::NotFound,
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let route = route(req.method(), req.path());
    if route == Route::Requests {
        return requests(&req, &state);
    }
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => {
                let raw = Value::String(String::from_utf8_lossy(&body).into_owned());
                record(&state, &req, raw);
                return error(route, 400, &format!("body is not JSON: {e}"));
            }
        }
    };
    let fake = Fake::from_body(&body);
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model");
    let mut model_json = String::with_capacity(model.len() + 2);
    push_json_str(&mut model_json, model);
    let stream = body.get("stream").and_then(Value::as_bool) == Some(true);
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let base64 = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    record(&state, &req, body);

    if fake.hang {
        std::future::pending::<()>().await;
    }
    if !fake.first_byte_delay.is_zero() {
        sleep(fake.first_byte_delay).await;
    }
    if let Some(status) = fake.status {
        return error(route, status, "fake error requested by the test");
    }
    let ctx = Ctx {
        fake: &fake,
        model: &model_json,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        state: &state,
    };
    match (route, stream) {
        (Route::Chat, false) => json_answer(chat(&ctx)),
        (Route::Chat, true) => sse_answer(&fake, chat_stream(&ctx, include_usage)),
        (Route::Embeddings, _) => json_answer(embeddings(&ctx, base64)),
        (Route::Responses, false) => json_answer(responses(&ctx)),
        (Route::Responses, true) => sse_answer(&fake, responses_stream(&ctx)),
        (Route::Messages, false) => json_answer(messages(&ctx)),
        (Route::Messages, true) => sse_answer(&fake, messages_stream(&ctx)),
        (Route::Models, _) => json_answer(models(ctx.created)),
        _ => error(route, 404, "no such path on the fake upstream"),
    }
}

fn record(state: &State, req: &HttpRequest, body: Value) {
    let headers = RECORDED_HEADERS.map(|name| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let entry = Recorded {
        method: req.method().clone(),
        path: req.path().to_owned(),
        headers,
        body,
    };
    let mut recorded = state.recorded.lock().expect("recorder lock poisoned");
    if recorded.len() == KEPT_REQUESTS {
        recorded.pop_front();
    }
    recorded.push_back(entry);
}

fn requests(req: &HttpRequest, state: &State) -> HttpResponse {
    let mut recorded = state.recorded.lock().expect("recorder lock poisoned");
    if req.method() == Method::DELETE {
        recorded.clear();
        return HttpResponse::NoContent().finish();
    }
    let list: Vec<Value> = recorded
        .iter()
        .map(|r| {
            let headers: serde_json::Map<String, Value> = RECORDED_HEADERS
                .iter()
                .zip(&r.headers)
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        v.clone().map_or(Value::Null, Value::String),
                    )
                })
                .collect();
            json!({"method": r.method.as_str(), "path": r.path, "headers": headers, "body": r.body})
        })
        .collect();
    HttpResponse::Ok().json(list)
}

fn error(route: Route, status: u16, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = if route == Route::Messages {
        let kind = match status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        json!({"type": "error", "error": {"type": kind, "message": message}})
    } else {
        let (kind, code) = match status.as_u16() {
            400 => ("invalid_request_error", "invalid_request"),
            401 => ("invalid_request_error", "invalid_api_key"),
            403 => (
                "invalid_request_error",
                "unsupported_country_region_territory",
            ),
            404 => ("invalid_request_error", "model_not_found"),
            429 => ("requests", "rate_limit_exceeded"),
            _ => ("server_error", "server_error"),
        };
        json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
    };
    let mut answer = HttpResponse::build(status);
    if status == StatusCode::TOO_MANY_REQUESTS {
        answer.insert_header(("retry-after", "1"));
    }
    answer.json(body)
}

fn json_answer(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// What every answer builder needs; `model` is already a JSON string literal.
struct Ctx<'a> {
    fake: &'a Fake,
    model: &'a str,
    created: u64,
    state: &'a State,
}

impl Ctx<'_> {
    fn id(&self, prefix: &str) -> String {
        let mut out = String::with_capacity(40);
        match &self.fake.id {
            Some(id) => push_json_str(&mut out, id),
            None => push_json_str(&mut out, &self.state.next_id(prefix)),
        }
        out
    }
    fn full_text(&self) -> String {
        (0..self.fake.chunks.max(1)).map(word).collect()
    }
}

fn word(i: usize) -> &'static str {
    WORDS[i % WORDS.len()]
}

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn openai_usage(out: &mut String, f: &Fake) {
    let _ = write!(
        out,
        r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":{},"audio_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":{},"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}}"#,
        f.prompt,
        f.completion,
        f.prompt + f.completion,
        f.cached,
        f.reasoning
    );
}

fn chat(c: &Ctx) -> String {
    let mut out = String::with_capacity(640);
    let _ = write!(
        out,
        r#"{{"id":{},"object":"chat.completion","created":{},"model":{},"choices":[{{"index":0,"message":{{"role":"assistant","content":"#,
        c.id("chatcmpl-"),
        c.created,
        c.model
    );
    push_json_str(&mut out, &c.full_text());
    out.push_str(r#","refusal":null},"logprobs":null,"finish_reason":"stop"}]"#);
    if !c.fake.no_usage {
        out.push_str(r#","usage":"#);
        openai_usage(&mut out, c.fake);
    }
    out.push_str(r#","system_fingerprint":"fp_fake"}"#);
    out
}

/// A stream in three parts: what precedes the content, one unit per content chunk, and what
/// follows it. Pacing and aborts act between units.
struct Units {
    head: String,
    chunks: Vec<String>,
    tail: String,
}

fn chat_stream(c: &Ctx, include_usage: bool) -> Units {
    let id = c.id("chatcmpl-");
    // Real OpenAI puts `"usage":null` on every chunk once usage was asked for.
    let usage_null = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let chunk = |delta: &str, finish: &str| {
        format!(
            "data: {{\"id\":{id},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_fake\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}]{usage_null}}}\n\n",
            c.created, c.model
        )
    };
    let head = chunk(
        r#"{"role":"assistant","content":"","refusal":null}"#,
        "null",
    );
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut delta = String::from(r#"{"content":"#);
            push_json_str(&mut delta, word(i));
            delta.push('}');
            chunk(&delta, "null")
        })
        .collect();
    let mut tail = chunk("{}", r#""stop""#);
    if include_usage && !c.fake.no_usage {
        let _ = write!(
            tail,
            "data: {{\"id\":{id},\"object\":\"chat.completion.chunk\",\"created\":{},\"model\":{},\"system_fingerprint\":\"fp_fake\",\"choices\":[],\"usage\":",
            c.created, c.model
        );
        openai_usage(&mut tail, c.fake);
        tail.push_str("}\n\n");
    }
    tail.push_str("data: [DONE]\n\n");
    Units { head, chunks, tail }
}

fn embeddings(c: &Ctx, base64: bool) -> String {
    const VECTOR: [f32; 8] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];
    let mut out = String::with_capacity(320);
    out.push_str(r#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"#);
    if base64 {
        let bytes: Vec<u8> = VECTOR.iter().flat_map(|f| f.to_le_bytes()).collect();
        push_json_str(
            &mut out,
            &base64::engine::general_purpose::STANDARD.encode(bytes),
        );
    } else {
        out.push_str("[0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8]");
    }
    let _ = write!(out, r#"}}],"model":{}"#, c.model);
    if !c.fake.no_usage {
        let _ = write!(
            out,
            r#","usage":{{"prompt_tokens":{p},"total_tokens":{p}}}"#,
            p = c.fake.prompt
        );
    }
    out.push('}');
    out
}

fn response_usage(out: &mut String, f: &Fake) {
    let _ = write!(
        out,
        r#"{{"input_tokens":{},"input_tokens_details":{{"cached_tokens":{},"cache_write_tokens":{}}},"output_tokens":{},"output_tokens_details":{{"reasoning_tokens":{}}},"total_tokens":{}}}"#,
        f.prompt,
        f.cached,
        f.cache_write,
        f.completion,
        f.reasoning,
        f.prompt + f.completion
    );
}

/// The message item of a Responses answer; `text` None renders it in progress and empty.
fn response_message(out: &mut String, msg_id: &str, text: Option<&str>) {
    let status = if text.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    let _ = write!(
        out,
        r#"{{"id":{msg_id},"type":"message","status":"{status}","role":"assistant","content":["#
    );
    if let Some(text) = text {
        out.push_str(r#"{"type":"output_text","annotations":[],"logprobs":[],"text":"#);
        push_json_str(out, text);
        out.push('}');
    }
    out.push_str("]}");
}

/// The Responses API `response` object, in progress (no output, no usage) or completed.
fn response_object(c: &Ctx, id: &str, msg_id: &str, text: Option<&str>) -> String {
    let mut out = String::with_capacity(1024);
    let status = if text.is_some() {
        "completed"
    } else {
        "in_progress"
    };
    let _ = write!(
        out,
        r#"{{"id":{id},"object":"response","created_at":{},"status":"{status}","background":false,"error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":null,"model":{},"output":["#,
        c.created, c.model
    );
    if text.is_some() {
        response_message(&mut out, msg_id, text);
    }
    out.push_str(r#"],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":true,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":"#);
    if text.is_some() && !c.fake.no_usage {
        response_usage(&mut out, c.fake);
    } else {
        out.push_str("null");
    }
    out.push_str(r#","user":null,"metadata":{}}"#);
    out
}

fn responses(c: &Ctx) -> String {
    let (id, msg_id) = (c.id("resp_"), c.id("msg_"));
    response_object(c, &id, &msg_id, Some(&c.full_text()))
}

fn responses_stream(c: &Ctx) -> Units {
    let (id, msg_id) = (c.id("resp_"), c.id("msg_"));
    let mut seq = 0u64;
    let mut event = |name: &str, fields: &str| {
        let e = format!(
            "event: {name}\ndata: {{\"type\":\"{name}\",\"sequence_number\":{seq},{fields}}}\n\n"
        );
        seq += 1;
        e
    };
    let pending = response_object(c, &id, &msg_id, None);
    let mut item = String::new();
    response_message(&mut item, &msg_id, None);
    let place = format!(r#""item_id":{msg_id},"output_index":0,"content_index":0"#);
    let mut head = event("response.created", &format!(r#""response":{pending}"#));
    head += &event("response.in_progress", &format!(r#""response":{pending}"#));
    head += &event(
        "response.output_item.added",
        &format!(r#""output_index":0,"item":{item}"#),
    );
    head += &event(
        "response.content_part.added",
        &format!(
            r#"{place},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":""}}"#
        ),
    );
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut delta = String::new();
            push_json_str(&mut delta, word(i));
            event(
                "response.output_text.delta",
                &format!(r#"{place},"delta":{delta},"logprobs":[]"#),
            )
        })
        .collect();
    let raw_text: String = (0..c.fake.chunks).map(word).collect();
    let mut text = String::new();
    push_json_str(&mut text, &raw_text);
    let mut done_item = String::new();
    response_message(&mut done_item, &msg_id, Some(&raw_text));
    let mut tail = event(
        "response.output_text.done",
        &format!(r#"{place},"text":{text},"logprobs":[]"#),
    );
    tail += &event(
        "response.content_part.done",
        &format!(
            r#"{place},"part":{{"type":"output_text","annotations":[],"logprobs":[],"text":{text}}}"#
        ),
    );
    tail += &event(
        "response.output_item.done",
        &format!(r#""output_index":0,"item":{done_item}"#),
    );
    let completed = response_object(c, &id, &msg_id, Some(&raw_text));
    tail += &event("response.completed", &format!(r#""response":{completed}"#));
    Units { head, chunks, tail }
}

fn anthropic_usage(out: &mut String, f: &Fake, output: u64) {
    let _ = write!(
        out,
        r#"{{"input_tokens":{},"cache_creation_input_tokens":{},"cache_read_input_tokens":{},"output_tokens":{output}}}"#,
        f.prompt, f.cache_write, f.cache_read
    );
}

fn messages(c: &Ctx) -> String {
    let mut out = String::with_capacity(480);
    let _ = write!(
        out,
        r#"{{"id":{},"type":"message","role":"assistant","model":{},"content":[{{"type":"text","text":"#,
        c.id("msg_"),
        c.model
    );
    push_json_str(&mut out, &c.full_text());
    out.push_str(r#"}],"stop_reason":"end_turn","stop_sequence":null"#);
    if !c.fake.no_usage {
        out.push_str(r#","usage":"#);
        anthropic_usage(&mut out, c.fake, c.fake.completion);
    }
    out.push('}');
    out
}

fn messages_stream(c: &Ctx) -> Units {
    let event = |name: &str, data: &str| format!("event: {name}\ndata: {data}\n\n");
    let mut start = format!(
        r#"{{"type":"message_start","message":{{"id":{},"type":"message","role":"assistant","model":{},"content":[],"stop_reason":null,"stop_sequence":null"#,
        c.id("msg_"),
        c.model
    );
    if !c.fake.no_usage {
        start.push_str(r#","usage":"#);
        anthropic_usage(&mut start, c.fake, 1);
    }
    start.push_str("}}");
    let mut head = event("message_start", &start);
    head += &event(
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
    );
    head += &event("ping", r#"{"type": "ping"}"#);
    let chunks = (0..c.fake.chunks)
        .map(|i| {
            let mut text = String::new();
            push_json_str(&mut text, word(i));
            event(
                "content_block_delta",
                &format!(r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":{text}}}}}"#),
            )
        })
        .collect();
    let mut tail = event(
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    );
    let mut delta = String::from(
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null}"#,
    );
    if !c.fake.no_usage {
        let _ = write!(
            delta,
            r#","usage":{{"output_tokens":{}}}"#,
            c.fake.completion
        );
    }
    delta.push('}');
    tail += &event("message_delta", &delta);
    tail += &event("message_stop", r#"{"type":"message_stop"}"#);
    Units { head, chunks, tail }
}

fn models(created: u64) -> String {
    let mut out = String::from(r#"{"object":"list","data":["#);
    for (i, (id, owner)) in [
        ("gpt-4o-mini", "openai"),
        ("gpt-4o", "openai"),
        ("text-embedding-3-small", "openai"),
    ]
    .iter()
    .enumerate()
    {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            r#"{sep}{{"id":"{id}","object":"model","created":{created},"owned_by":"{owner}"}}"#
        );
    }
    out.push_str("]}");
    out
}

fn sse_answer(fake: &Fake, units: Units) -> HttpResponse {
    let paced = !fake.chunk_delay.is_zero() || fake.die_after_chunks.is_some();
    let parts: Vec<web::Bytes> = if paced {
        let mut parts = Vec::with_capacity(units.chunks.len() + 2);
        parts.push(units.head.into());
        parts.extend(units.chunks.into_iter().map(web::Bytes::from));
        parts.push(units.tail.into());
        parts
    } else {
        // Unpaced: one write, the cheapest thing for the benchmark; the events are the same.
        let mut all = units.head;
        units.chunks.iter().for_each(|c| all.push_str(c));
        all.push_str(&units.tail);
        vec![all.into()]
    };
    let body = SseBody {
        parts: parts.into(),
        delay: fake.chunk_delay,
        // The head counts as one part, so dying after n chunks means after n + 1 parts.
        die_after: fake.die_after_chunks.map(|n| n + 1),
        sent: 0,
        grace_taken: false,
        sleep: None,
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .streaming(body)
}

/// The streamed body: waits `delay` between parts, and fails after `die_after` parts so that
/// actix drops the connection without the chunked encoding's terminator: a real abort.
struct SseBody {
    parts: VecDeque<web::Bytes>,
    delay: Duration,
    die_after: Option<usize>,
    sent: usize,
    grace_taken: bool,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Stream for SseBody {
    type Item = Result<web::Bytes, std::io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(s) = this.sleep.as_mut() {
                if s.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            if this.die_after == Some(this.sent) {
                if this.grace_taken {
                    return Poll::Ready(Some(Err(std::io::Error::other("fake: die_after_chunks"))));
                }
                // Give the parts already written a moment to leave before the abort.
                this.grace_taken = true;
                this.sleep = Some(Box::pin(sleep(Duration::from_millis(50))));
                continue;
            }
            let Some(part) = this.parts.pop_front() else {
                return Poll::Ready(None);
            };
            this.sent += 1;
            if !this.delay.is_zero() && !this.parts.is_empty() {
                this.sleep = Some(Box::pin(sleep(this.delay)));
            }
            return Poll::Ready(Some(Ok(part)));
        }
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let cli = <Cli as clap::Parser>::parse();
    let listener = std::net::TcpListener::bind(("127.0.0.1", cli.port))?;
    let port = listener.local_addr()?.port();
    let state = web::Data::new(State {
        recorded: Mutex::new(VecDeque::with_capacity(KEPT_REQUESTS)),
        boot: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
        counter: AtomicU64::new(0),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Gateway bodies may be up to 32 MiB; the fake must not be the one refusing them.
            .app_data(web::PayloadConfig::new(64 << 20))
            .default_service(web::to(handle))
    })
    .workers(cli.workers.max(1))
    .listen(listener)?
    .run();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://127.0.0.1:{port}")?;
    stdout.flush()?;
    server.await
}
