//! A fake LLM provider for tests and benchmarks: a test/bench fixture, not part of the product.
//! It speaks the OpenAI (chat completions, embeddings, responses, models) and Anthropic
//! (messages) wire formats, plain and streamed, under `/v1/...` and `/...` alike, so the
//! gateway and the SDKs can be exercised without a real provider.
//!
//! Behaviour is steered per request by an optional top-level `"fake": {...}` object in the body
//! (SDKs send it with `extra_body`), every field optional:
//! - usage: `prompt_tokens` (12), `completion_tokens` (5), `cached_tokens`, `reasoning_tokens`,
//!   `cache_read`, `cache_write` (0); Anthropic's `input_tokens` is `prompt_tokens`, uncached.
//! - streams: `chunks` (3), `chunk_delay_ms` (0), `die_after_chunks` (close the connection
//!   mid-body after the head and that many chunks); any answer: `first_byte_delay_ms` (0).
//! - `status`: answer that status with the provider's error body (429 adds `retry-after: 1`);
//!   `no_usage`: no usage anywhere; `hang`: never answer; `id`: this response id, not a new one.
//!
//! Every request is recorded (last 1000): `GET /_fake/requests` lists them, `DELETE` clears.
//!
//! Speed matters more than elegance here (the gateway benchmark pushes thousands of calls per
//! second through it): answers are written straight into one `String`, nothing is logged per
//! request, and an unpaced stream goes out as a single body chunk.
// The binary's root sits in src/bin/, so its modules are named by path.
#[path = "fake_upstream/anthropic.rs"]
mod anthropic;
#[path = "fake_upstream/openai.rs"]
mod openai;
#[path = "fake_upstream/sse.rs"]
mod sse;
#[cfg(test)]
#[path = "fake_upstream/tests.rs"]
mod tests;

use actix_web::http::{Method, StatusCode};
use actix_web::rt::time::sleep;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use anthropic::{messages, messages_stream};
use openai::{chat, chat_stream, embeddings, models, responses, responses_stream};
use serde_json::{json, Value};
use sse::sse_answer;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
