//! The one error type of the API, and the one place that maps it to the contract's status codes
//! and `{"error", "message"}` body. Framework failures (bad JSON, unknown routes, wrong methods,
//! oversized bodies) are funnelled here too, so no handler builds error JSON itself.
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("X-Tenant-ID must be a UUID")]
    InvalidTenantId,
    #[error("missing, unknown, expired or revoked token")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    FeatureDisabled(String),
    #[error("the tenant does not exist or is not active")]
    TenantUnavailable,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    ByoKeyMissing(String),
    #[error("{0}")]
    HostedKeyMissing(String),
    #[error("{0}")]
    ProviderKeyUnreadable(String),
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    #[error("the request body did not arrive within TENANTRY_BODY_TIMEOUT")]
    RequestTimeout,
    #[error("too many requests; retry after {0} seconds")]
    RateLimited(u64),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the database is not answering")]
    NotReady,
    /// The detail is logged, never sent: it may name internals.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::InvalidTenantId => "invalid_tenant_id",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::FeatureDisabled(_) => "feature_disabled",
            ApiError::TenantUnavailable => "tenant_unavailable",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::ByoKeyMissing(_) => "byo_key_missing",
            ApiError::HostedKeyMissing(_) => "hosted_key_missing",
            ApiError::ProviderKeyUnreadable(_) => "provider_key_unreadable",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotReady => "not_ready",
            ApiError::Internal(_) => "internal",
        }
    }

    /// One error of every kind, for documentation: codes and statuses come from the same
    /// mapping the responses use.
    pub fn every_kind() -> Vec<ApiError> {
        let s = String::new;
        vec![
            ApiError::InvalidRequest(s()),
            ApiError::InvalidTenantId,
            ApiError::Unauthorized,
            ApiError::Forbidden(s()),
            ApiError::FeatureDisabled(s()),
            ApiError::TenantUnavailable,
            ApiError::NotFound(s()),
            ApiError::MethodNotAllowed(s()),
            ApiError::Conflict(s()),
            ApiError::ByoKeyMissing(s()),
            ApiError::HostedKeyMissing(s()),
            ApiError::ProviderKeyUnreadable(s()),
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::RateLimited(1),
            ApiError::UnsupportedMediaType(s()),
            ApiError::NotReady,
            ApiError::Internal(s()),
        ]
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }

    /// The answer for a framework-produced error response that carries no body of ours.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            400 => ApiError::InvalidRequest("the request is malformed".into()),
            401 => ApiError::Unauthorized,
            403 => ApiError::Forbidden("not allowed".into()),
            404 => ApiError::NotFound("no such route".into()),
            405 => ApiError::MethodNotAllowed("this method is not allowed on this path".into()),
            408 => ApiError::RequestTimeout,
            413 => ApiError::PayloadTooLarge,
            429 => ApiError::RateLimited(1),
            415 => ApiError::UnsupportedMediaType("the body must be application/json".into()),
            503 => ApiError::NotReady,
            s if (400..500).contains(&s) => {
                ApiError::InvalidRequest("the request is malformed".into())
            }
            _ => ApiError::Internal(format!("framework status {status}")),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) | ApiError::InvalidTenantId => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::FeatureDisabled(_) | ApiError::TenantUnavailable => {
                StatusCode::FORBIDDEN
            }
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_)
            | ApiError::ByoKeyMissing(_)
            | ApiError::HostedKeyMissing(_)
            | ApiError::ProviderKeyUnreadable(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(%detail, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if matches!(self, ApiError::RequestTimeout) {
            // The rest of the body may still be on its way; the connection cannot be reused.
            res.force_close();
        }
        if let ApiError::RateLimited(secs) = self {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(ErrorBody {
            error: self.code(),
            message: self.to_string(),
        })
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("sqlite: {e}"))
    }
}

impl From<r2d2::Error> for ApiError {
    fn from(e: r2d2::Error) -> Self {
        ApiError::internal(format!("pool: {e}"))
    }
}

/// Shortens user input quoted back in a message, so a huge or hostile value is not echoed whole.
pub fn clip(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(64).collect();
    if s.chars().count() > 64 {
        format!("{clean}…")
    } else {
        clean
    }
}

/// serde_json's messages quote string values they reject (`invalid type: string "…"`); that
/// value may be a secret sent in the wrong field, so quoted strings are dropped from the message.
pub fn redact_serde_message(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("string \"") {
        out.push_str(&rest[..i + "string".len()]);
        let after = &rest[i + "string \"".len()..];
        match after.find('"') {
            Some(j) => rest = &after[j + 1..],
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_quoted_values() {
        let m = "invalid type: string \"sk-secret\", expected u32 at line 1 column 20";
        let r = redact_serde_message(m);
        assert!(!r.contains("sk-secret"));
        assert!(r.contains("expected u32"));
    }

    #[test]
    fn unknown_field_messages_keep_the_field_name() {
        let m = "unknown field `nmae`, expected `name` or `slug`";
        assert_eq!(redact_serde_message(m), m);
    }

    #[test]
    fn clip_drops_control_characters_and_long_tails() {
        assert_eq!(clip("a\u{0}b"), "ab");
        assert!(clip(&"x".repeat(500)).chars().count() <= 65);
    }
}
