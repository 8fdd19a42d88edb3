//! One gateway call, up to the upstream's answer: the checks that come before anything goes
//! upstream (model, limits, concurrency, key), the body as the provider gets it, and the
//! answer, whole or handed to the relay.
use super::meter::{self, StreamMeter};
use super::relay::{Finished, Relay};
use super::route::{self, Api, Route};
use super::{Answer, AnswerBody, CallRequest, Gateway};
use crate::auth::Action;
use crate::error::{clip, ApiError};
use crate::limits::Level;
use crate::settings::provider_keys::Provider as KeyProvider;
use crate::tenancy::TenantCtx;
use crate::usage::model::ModelName;
use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;
use std::time::Instant;

/// The largest whole answer the gateway reads (a stream is relayed, never held).
const MAX_ANSWER: usize = 64 << 20;
/// Answer headers that belong to one connection, not to the answer.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "set-cookie",
];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(msg.into())
}

/// The upstream's answer headers to pass back. Its request id is kept under another name:
/// `X-Request-Id` is tenantry's own.
fn relayed_headers(h: &HeaderMap) -> Vec<(String, Bytes)> {
    h.iter()
        .filter(|(k, _)| !HOP_BY_HOP.contains(&k.as_str()))
        .map(|(k, v)| {
            let name = match k.as_str() {
                "x-request-id" | "request-id" => "x-upstream-request-id".to_string(),
                other => other.to_string(),
            };
            (name, Bytes::copy_from_slice(v.as_bytes()))
        })
        .collect()
}

pub(super) fn upstream_error(e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::UpstreamTimeout(
            "the provider did not answer within TENANTRY_UPSTREAM_TIMEOUT".into(),
        )
    } else {
        // Without the URL: it names the operator's upstream, not the caller's business.
        let mut cause: &dyn std::error::Error = e;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ApiError::UpstreamUnavailable(format!("the provider cannot be reached: {cause}"))
    }
}

/// Reads a whole answer, refusing one larger than `MAX_ANSWER`.
async fn whole(mut resp: reqwest::Response) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| upstream_error(&e))? {
        if buf.len() + chunk.len() > MAX_ANSWER {
            return Err(ApiError::UpstreamUnavailable(
                "the provider's answer is larger than 64 MiB".into(),
            ));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The body's model and stream flag, read before anything else is checked.
fn parse_body(body: &[u8]) -> Result<(serde_json::Map<String, Value>, String, bool), ApiError> {
    let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad("the body must be a JSON object"));
    };
    // By the rule of an event's model: the call is metered under this name.
    let model = match obj.get("model") {
        Some(Value::String(m)) => ModelName::parse(m.clone()).map_err(bad)?.into_string(),
        None => return Err(bad("model is required")),
        Some(_) => return Err(bad("model must be a string")),
    };
    let stream = obj.get("stream") == Some(&Value::Bool(true));
    Ok((obj, model, stream))
}

impl Gateway {
    pub async fn call(&self, ctx: &TenantCtx, req: CallRequest) -> Result<Answer, ApiError> {
        ctx.require(Action::Ingest)?;
        if ctx.caller().is_admin() {
            return Err(ApiError::Forbidden(
                "the gateway takes a tenant key: a call belongs to one tenant".into(),
            ));
        }
        let (started, at) = (Instant::now(), self.now());
        let api = req.api;
        let (mut body, model, stream) = parse_body(&req.body)?;
        req.labels.check()?;
        let route = route::route(api, &model, &self.upstreams)?;
        let current = self.settings.current(ctx.id());
        let s = &current.settings;
        if let Some(allowed) = &s.allowed_models {
            if !allowed.contains(&route.model) && !allowed.contains(&model) {
                return Err(ApiError::ModelNotAllowed(format!(
                    "the model `{}` is not in this tenant's allowed_models",
                    clip(&model)
                )));
            }
        }
        let level = match self.usage.metering() {
            true => self.usage.limits_now(ctx).await?.level,
            false => Level::Ok,
        };
        if s.enforce_limits && level == Level::Exceeded {
            return Err(ApiError::LimitExceeded(
                "a usage limit of this tenant is exceeded and enforce_limits is on".into(),
            ));
        }
        let max = s.concurrent_calls(ctx.tenant().plan);
        let permit = self.inflight.acquire(ctx.id(), max).ok_or_else(|| {
            ApiError::TooManyConcurrentCalls(format!(
                "this tenant already has {max} calls in flight (max_concurrent_calls)"
            ))
        })?;
        let key = KeyProvider::parse(route.provider.as_str())?;
        let key = self.settings.key_for_call(ctx, key).await?;

        // The body goes upstream unchanged but for the prefix and, on a streamed chat, the
        // usage tenantry needs to meter it.
        let mut changed = route.prefixed;
        if route.prefixed {
            body.insert("model".into(), Value::String(route.model.clone()));
        }
        let mut withhold_usage = false;
        if stream && api == Api::ChatCompletions {
            let opts = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Default::default()));
            match opts {
                Value::Object(o) if o.get("include_usage") == Some(&Value::Bool(true)) => {}
                Value::Object(o) => {
                    o.insert("include_usage".into(), Value::Bool(true));
                    (withhold_usage, changed) = (true, true);
                }
                _ => return Err(bad("stream_options must be an object")),
            }
        }
        let out = match changed {
            true => Bytes::from(serde_json::to_vec(&body).map_err(ApiError::internal)?),
            false => req.body,
        };

        let mut rb = self
            .client()?
            .post(&route.url)
            .timeout(self.upstreams.timeout)
            .header("content-type", "application/json")
            .body(out);
        // Anthropic's own API takes the key as `x-api-key`; every OpenAI-compatible one
        // (Anthropic's and Google's included) as a bearer token.
        let (name, value) = match api.is_anthropic() {
            true => ("x-api-key", key.expose().to_string()),
            false => ("authorization", format!("Bearer {}", key.expose())),
        };
        let mut secret = HeaderValue::from_str(&value)
            .map_err(|_| ApiError::Conflict("the provider key is not a valid header".into()))?;
        secret.set_sensitive(true);
        rb = rb.header(name, secret);
        if api.is_anthropic() && !req.headers.iter().any(|(h, _)| *h == "anthropic-version") {
            rb = rb.header("anthropic-version", "2023-06-01");
        }
        for (h, v) in &req.headers {
            rb = rb.header(*h, v.as_str());
        }
        let fin = Finished {
            ctx: ctx.clone(),
            at,
            started,
            api,
            route: Route {
                url: String::new(),
                ..route
            },
            stream,
            status: 0,
            labels: req.labels,
            client_disconnected: false,
            upstream_error: None,
        };
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                let err = upstream_error(&e);
                self.remember_failure(&fin, Some(&err));
                return Err(err);
            }
        };
        let status = resp.status().as_u16();
        let headers = relayed_headers(resp.headers());
        let limit_status = level.as_str();
        let fin = Finished { status, ..fin };
        if !(200..300).contains(&status) {
            // Relayed as it came and not metered: the provider did not do the work.
            let body = whole(resp).await?;
            self.remember_failure(&fin, None);
            return Ok(Answer {
                status,
                headers,
                limit_status,
                body: AnswerBody::Whole { body, cost: None },
            });
        }
        let sse = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if sse {
            let meter = StreamMeter::new(api, withhold_usage);
            let relay = Relay::start(self.clone(), resp, meter, fin, permit);
            return Ok(Answer {
                status,
                headers,
                limit_status,
                body: AnswerBody::Stream(relay),
            });
        }
        let body = match whole(resp).await {
            Ok(b) => b,
            Err(e) => {
                self.remember_failure(&fin, Some(&e));
                return Err(e);
            }
        };
        let metered = meter::answer(api, &body);
        let cost = self.finish(fin, metered).await;
        drop(permit);
        Ok(Answer {
            status,
            headers,
            limit_status,
            body: AnswerBody::Whole { body, cost },
        })
    }
}
