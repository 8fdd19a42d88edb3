//! `/v1/...`: the gateway's HTTP edge. Reads the body (up to `TENANTRY_GATEWAY_MAX_BODY`), the
//! pass-through and label headers, hands the call to the gateway area and renders its answer,
//! whole or streamed. Every error here is in the provider's own format, so the SDKs raise
//! their usual exceptions: OpenAI's on the OpenAI paths, Anthropic's on `/v1/messages`.
use super::extract::{state, tenant_ctx};
use super::routes::{Mount, Op};
use super::usage::LIMIT_STATUS;
use crate::auth::{Access, Caller};
use crate::error::ApiError;
use crate::gateway::{Answer, AnswerBody, Api, CallRequest, Labels};
use crate::tenancy::TenantCtx;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use serde_json::json;

const COST: HeaderName = HeaderName::from_static("x-tenantry-cost-usd");
/// The provider's own request headers, passed through unchanged.
const PASS_THROUGH: [&str; 5] = [
    "anthropic-version",
    "anthropic-beta",
    "openai-beta",
    "openai-organization",
    "openai-project",
];

/// Marks an answer relayed from the provider: the envelope leaves its body as it came.
#[derive(Clone, Copy)]
pub struct Relayed;

pub fn ops() -> Vec<Op> {
    let call = |m, p, f: fn() -> actix_web::Route, what| {
        Op::new(m, p, Mount::Gateway, f)
            .doc(what, Access::Gateway)
            .body("GatewayRequest")
            .ok(200, Some("GatewayAnswer"))
            .errors(&[
                "model_not_found",
                "model_not_allowed",
                "limit_exceeded",
                "too_many_concurrent_calls",
                "byo_key_missing",
                "hosted_key_missing",
                "provider_key_unreadable",
                "upstream_unavailable",
                "upstream_timeout",
            ])
    };
    vec![
        call(
            Method::POST,
            "/v1/chat/completions",
            || web::route().to(chat),
            "OpenAI chat completions, plain or streamed, metered",
        ),
        call(
            Method::POST,
            "/v1/embeddings",
            || web::route().to(embeddings),
            "OpenAI embeddings, metered",
        ),
        call(
            Method::POST,
            "/v1/responses",
            || web::route().to(responses),
            "OpenAI Responses, plain or streamed, metered",
        ),
        call(
            Method::POST,
            "/v1/messages",
            || web::route().to(messages),
            "Anthropic messages, plain or streamed, metered",
        ),
        Op::new(Method::GET, "/v1/models", Mount::Gateway, || {
            web::route().to(models)
        })
        .doc(
            "The models this tenant may call through the gateway",
            Access::Gateway,
        )
        .ok(200, Some("ModelList")),
        Op::new(Method::GET, "/gateway/calls", Mount::Tenant, || {
            web::route().to(calls)
        })
        .doc(
            "The tenant's recent gateway calls (this process, newest first) and calls in flight",
            Access::Viewer,
        )
        .ok(200, Some("GatewayCalls")),
    ]
}

/// OpenAI's error `type` for a status.
fn openai_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An error in the format of the API at `path`.
pub fn error_response(path: &str, e: &ApiError) -> HttpResponse {
    let mut res = e.error_response();
    let status = res.status();
    let body = if path.starts_with("/v1/messages") {
        json!({"type": "error", "error": {"type": e.code(), "message": e.to_string()}})
    } else {
        json!({"error": {"message": e.to_string(), "type": openai_type(status), "code": e.code(), "param": null}})
    };
    let mut out = HttpResponse::build(status);
    for (k, v) in res.headers_mut().drain() {
        if let Some(k) = k {
            if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
                out.insert_header((k, v));
            }
        }
    }
    out.json(body)
}

/// The gateway's access check, before any body is read: a tenant key in `Authorization:
/// Bearer` or `x-api-key`; the admin token is refused (a call belongs to one tenant).
pub fn check(req: &HttpRequest) -> Result<(), ApiError> {
    let st = state(req)?;
    if req.extensions().get::<Caller>().is_none()
        && req.headers().get(header::AUTHORIZATION).is_none()
    {
        if let Some(key) = req.headers().get("x-api-key") {
            let key = key.to_str().map_err(|_| ApiError::Unauthorized)?;
            let caller = super::extract::authenticate(req, st, Some(&format!("Bearer {key}")))?;
            req.extensions_mut().insert(caller);
        }
    }
    if let Caller::Admin(_) = super::extract::caller(req)? {
        return Err(ApiError::Forbidden(
            "the gateway takes a tenant key: a call belongs to one tenant, its key's".into(),
        ));
    }
    tenant_ctx(req)?.require(crate::auth::Action::Ingest)
}

fn header_text(req: &HttpRequest, name: &str) -> Result<Option<String>, ApiError> {
    match req.headers().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.to_string()))
            .map_err(|_| ApiError::InvalidRequest(format!("{name} must be printable text"))),
    }
}

async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    max: usize,
) -> Result<web::Bytes, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::GatewayBodyTooLarge(max));
    }
    let mut payload = payload;
    let mut buf = web::BytesMut::new();
    loop {
        let next = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut payload), cx)
        })
        .await;
        match next {
            None => return Ok(buf.freeze()),
            Some(Ok(chunk)) if buf.len() + chunk.len() > max => {
                return Err(ApiError::GatewayBodyTooLarge(max))
            }
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            Some(Err(e)) if super::body_timeout::timed_out(&e) => {
                return Err(ApiError::RequestTimeout)
            }
            Some(Err(e)) => {
                return Err(ApiError::InvalidRequest(format!(
                    "could not read the body: {e}"
                )))
            }
        }
    }
}

async fn call(api: Api, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    match try_call(api, &req, payload).await {
        Ok(answer) => render(&req, answer),
        Err(e) => error_response(req.path(), &e),
    }
}

async fn try_call(api: Api, req: &HttpRequest, payload: web::Payload) -> Result<Answer, ApiError> {
    let st = state(req)?;
    let ctx: TenantCtx = tenant_ctx(req)?;
    let body = read_body(req, payload, st.config.upstreams.max_body).await?;
    let mut headers = Vec::new();
    for name in PASS_THROUGH {
        if let Some(v) = header_text(req, name)? {
            headers.push((name, v));
        }
    }
    let labels = Labels {
        user: header_text(req, "x-tenantry-user")?,
        agent: header_text(req, "x-tenantry-agent")?,
        stage: header_text(req, "x-tenantry-stage")?,
        job: header_text(req, "x-tenantry-job")?,
    };
    st.gateway
        .call(
            &ctx,
            CallRequest {
                api,
                body,
                headers,
                labels,
            },
        )
        .await
}

fn render(req: &HttpRequest, answer: Answer) -> HttpResponse {
    req.extensions_mut().insert(Relayed);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut res = HttpResponse::build(status);
    for (k, v) in &answer.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v),
        ) {
            res.append_header((k, v));
        }
    }
    res.insert_header((LIMIT_STATUS, answer.limit_status));
    match answer.body {
        AnswerBody::Whole { body, cost } => {
            if let Some(c) = cost {
                res.insert_header((COST, c.to_json_number().to_string()));
            }
            res.body(body)
        }
        AnswerBody::Stream(relay) => res.streaming(relay),
    }
}

async fn chat(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    call(Api::ChatCompletions, req, payload).await
}

async fn embeddings(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    call(Api::Embeddings, req, payload).await
}

async fn responses(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    call(Api::Responses, req, payload).await
}

async fn messages(req: HttpRequest, payload: web::Payload) -> HttpResponse {
    call(Api::Messages, req, payload).await
}

async fn models(req: HttpRequest) -> HttpResponse {
    let listed = async {
        let ctx = tenant_ctx(&req)?;
        state(&req)?.gateway.models(&ctx).await
    };
    match listed.await {
        Ok(models) => {
            let data: Vec<_> = models
                .into_iter()
                .map(|m| json!({"id": m.id, "object": "model", "owned_by": m.owned_by}))
                .collect();
            HttpResponse::Ok().json(json!({"object": "list", "data": data}))
        }
        Err(e) => error_response(req.path(), &e),
    }
}

async fn calls(
    st: web::Data<crate::state::AppState>,
    ctx: TenantCtx,
) -> Result<HttpResponse, ApiError> {
    let calls = st.gateway.recent_calls(&ctx)?;
    let in_flight = st.gateway.in_flight(&ctx)?;
    let items: Vec<_> = calls
        .into_iter()
        .map(|c| {
            json!({
                "at": crate::time::rfc3339(c.at),
                "path": c.path,
                "model": c.model,
                "provider": c.provider,
                "stream": c.stream,
                "status": c.status,
                "error": c.error,
                "input_tokens": c.input_tokens,
                "output_tokens": c.output_tokens,
                "billed_cost_usd": c.cost.map(|c| c.to_json_number()),
                "duration_ms": c.duration_ms,
                "client_disconnected": c.client_disconnected,
                "usage_missing": c.usage_missing,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({"in_flight": in_flight, "items": items})))
}
