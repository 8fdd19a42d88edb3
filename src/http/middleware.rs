//! The envelope every response passes through: `X-Request-Id` (echoed or new), `X-Tenant-ID` of
//! the resolved tenant, framework errors rewritten into the contract's error body, and one log
//! line per request.
use super::extract::{RateInfo, ResolvedTenant};
use super::gateway::Relayed;
use crate::error::ApiError;
use crate::limits::rate::Decision;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, ResponseError};
use std::time::Instant;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TENANT_ID: HeaderName = HeaderName::from_static("x-tenant-id");
const RATE_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const RATE_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Sent on every response, errors and the admin page included.
const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("content-security-policy", "default-src 'self'"),
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
];

fn number(n: u32) -> HeaderValue {
    HeaderValue::from(n)
}

/// A client's request id is echoed when it is short and printable; otherwise a new one is made.
fn request_id(req: &ServiceRequest) -> HeaderValue {
    req.headers()
        .get(REQUEST_ID)
        .filter(|v| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(|c| c.is_ascii_graphic())
        })
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .expect("a uuid is a valid header value")
        })
}

fn is_json(res: &ServiceResponse<impl MessageBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let client = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .and_then(|st| super::extract::client_ip(req.request(), &st.config.trusted_proxies));
    // Handler and extractor errors arrive here as responses; only a failing inner middleware
    // would give `Err`, and there is none inside this one.
    let mut res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let relayed = res.request().extensions().get::<Relayed>().is_some();
    if status.as_u16() >= 400 && !is_json(&res) && !relayed {
        let e = ApiError::from_status(status);
        let normalized = match res.request().path() {
            p if p.starts_with("/v1/") => super::gateway::error_response(p, &e),
            _ => e.error_response(),
        };
        res = ServiceResponse::new(res.request().clone(), normalized);
    }
    let tenant = res.request().extensions().get::<ResolvedTenant>().copied();
    let rate = res.request().extensions().get::<RateInfo>().copied();
    // Matching the pattern again walks the route table; do it once for metrics and the log.
    let route = res.request().match_pattern();
    let method = res.request().method().to_string();
    let headers = res.headers_mut();
    headers.insert(REQUEST_ID, id.clone());
    for (name, value) in SECURITY_HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    if let Some(ResolvedTenant(t)) = tenant {
        if let Ok(v) = HeaderValue::from_str(&t.to_string()) {
            headers.insert(TENANT_ID, v);
        }
    }
    if let Some(RateInfo(d)) = rate {
        let (limit, remaining) = match d {
            Decision::Unlimited => (
                HeaderValue::from_static("unlimited"),
                HeaderValue::from_static("unlimited"),
            ),
            Decision::Allowed { limit, remaining } => (number(limit), number(remaining)),
            Decision::Denied { limit, .. } => (number(limit), number(0)),
        };
        headers.insert(RATE_LIMIT, limit);
        headers.insert(RATE_REMAINING, remaining);
    }
    let status = res.status();
    let elapsed = started.elapsed();
    if let Some(st) = res
        .request()
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
    {
        let tenant_label = tenant.map(|t| t.0.to_string()).unwrap_or_default();
        st.observe
            .metrics()
            .requests
            .with_label_values(&[tenant_label.as_str(), status.as_str()])
            .inc();
        st.observe
            .metrics()
            .duration
            .with_label_values(&[method.as_str(), route.as_deref().unwrap_or("(unmatched)")])
            .observe(elapsed.as_secs_f64());
        if let Some(ResolvedTenant(t)) = tenant {
            let denied = status == actix_web::http::StatusCode::TOO_MANY_REQUESTS;
            st.observe
                .requests()
                .record(t, denied, elapsed.as_micros() as u64);
        }
    }
    tracing::info!(
        request_id = id.to_str().unwrap_or("-"),
        method = %res.request().method(),
        route = route.as_deref().unwrap_or("(unmatched)"),
        status = res.status().as_u16(),
        tenant_id = %tenant.map(|t| t.0.to_string()).unwrap_or_default(),
        client = %client.map(|c| c.to_string()).unwrap_or_default(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    Ok(res)
}
