//! The HTTP surface: one file per route area, each with `configure`; this file wires them and
//! the framework's extractor errors into the contract's error format.
pub mod access;
pub mod admin_page;
pub mod billing;
pub mod body_timeout;
pub mod error;
pub mod events;
pub mod extract;
pub mod features;
pub mod gateway;
pub mod health;
pub mod keys;
pub mod members;
pub mod middleware;
pub mod openapi;
pub mod ops;
pub mod pricing;
pub mod queue;
pub mod routes;
pub mod settings;
pub mod tenants;
pub mod usage;
pub mod usage_views;
pub mod views;
pub mod webhooks;

use crate::error::{redact_serde_message, ApiError};
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{web, HttpRequest};

pub const MAX_BODY: usize = 1 << 20;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(MAX_BODY)
        .error_handler(|e, _req: &HttpRequest| json_error(e).into())
}

fn json_error(e: JsonPayloadError) -> ApiError {
    match e {
        JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
            ApiError::PayloadTooLarge
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("the body must be application/json".into())
        }
        JsonPayloadError::Payload(ref p) if body_timeout::timed_out(p) => ApiError::RequestTimeout,
        JsonPayloadError::Deserialize(e) => ApiError::InvalidRequest(format!(
            "invalid JSON body: {}",
            redact_serde_message(&e.to_string())
        )),
        other => ApiError::InvalidRequest(format!("could not read the body: {other}")),
    }
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| {
        let msg = match e {
            QueryPayloadError::Deserialize(e) => redact_serde_message(&e.to_string()),
            other => other.to_string(),
        };
        ApiError::InvalidRequest(format!("invalid query string: {msg}")).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|e: PathError, _| {
        ApiError::NotFound(format!(
            "no such resource: {}",
            redact_serde_message(&e.to_string())
        ))
        .into()
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    routes::configure(cfg);
}

pub async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    let e = ApiError::NotFound("no such route".into());
    match req.path() {
        p if p.starts_with("/v1/") => gateway::error_response(p, &e),
        _ => actix_web::ResponseError::error_response(&e),
    }
}
