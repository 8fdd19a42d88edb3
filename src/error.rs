//! The one error type of the domain, with the contract's stable codes. It knows nothing of HTTP:
//! `http/error.rs` is the one place that maps it to statuses and the `{"error", "message"}` body.

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
    /// A worker's lease token does not hold the job's live lease.
    #[error("{0}")]
    LeaseLost(String),
    /// An event timestamped in a billing period whose statement is final.
    #[error("{0}")]
    PeriodClosed(String),
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
    #[error("{0}")]
    ModelNotFound(String),
    #[error("{0}")]
    ModelNotAllowed(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    TooManyConcurrentCalls(String),
    #[error("{0}")]
    UpstreamUnavailable(String),
    #[error("{0}")]
    UpstreamTimeout(String),
    /// A gateway body over `TENANTRY_GATEWAY_MAX_BODY` (the 1 MiB rule is for `/api/...`).
    #[error("request body is larger than {0} bytes (TENANTRY_GATEWAY_MAX_BODY)")]
    GatewayBodyTooLarge(usize),
    /// A SQLite-only entry point (`Db::run`, `write`, `conn`) reached on PostgreSQL: every area
    /// has a PostgreSQL path, so this is a bug, answered plainly instead of a panic.
    #[error("this operation has no PostgreSQL path; please report it")]
    NotOnPostgres,
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
            ApiError::PeriodClosed(_) => "period_closed",
            ApiError::LeaseLost(_) => "lease_lost",
            ApiError::ByoKeyMissing(_) => "byo_key_missing",
            ApiError::HostedKeyMissing(_) => "hosted_key_missing",
            ApiError::ProviderKeyUnreadable(_) => "provider_key_unreadable",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::NotReady => "not_ready",
            ApiError::ModelNotFound(_) => "model_not_found",
            ApiError::ModelNotAllowed(_) => "model_not_allowed",
            ApiError::LimitExceeded(_) => "limit_exceeded",
            ApiError::TooManyConcurrentCalls(_) => "too_many_concurrent_calls",
            ApiError::UpstreamUnavailable(_) => "upstream_unavailable",
            ApiError::UpstreamTimeout(_) => "upstream_timeout",
            ApiError::GatewayBodyTooLarge(_) => "payload_too_large",
            ApiError::NotOnPostgres => "not_implemented",
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
            ApiError::PeriodClosed(s()),
            ApiError::LeaseLost(s()),
            ApiError::ByoKeyMissing(s()),
            ApiError::HostedKeyMissing(s()),
            ApiError::ProviderKeyUnreadable(s()),
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::RateLimited(1),
            ApiError::UnsupportedMediaType(s()),
            ApiError::NotReady,
            ApiError::ModelNotFound(s()),
            ApiError::ModelNotAllowed(s()),
            ApiError::LimitExceeded(s()),
            ApiError::TooManyConcurrentCalls(s()),
            ApiError::UpstreamUnavailable(s()),
            ApiError::UpstreamTimeout(s()),
            ApiError::GatewayBodyTooLarge(0),
            ApiError::NotOnPostgres,
            ApiError::Internal(s()),
        ]
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::internal(format!("sqlite: {e}"))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    /// Text PostgreSQL cannot store or compare (a NUL character; SQLite takes it) is the
    /// caller's input, wherever it reached a statement: a 400, never a 500.
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        match e.code() {
            Some(c)
                if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
                    || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
            {
                ApiError::InvalidRequest("text may not contain a NUL character".into())
            }
            // The connection went away (PostgreSQL restarting, failing over, unreachable): the
            // answer `/ready` gives too, so a load balancer and a client retry elsewhere.
            None if e.is_closed() => {
                tracing::warn!(error = %crate::db::pg::describe(&e), "PostgreSQL connection lost");
                ApiError::NotReady
            }
            _ => ApiError::internal(format!("postgres: {}", crate::db::pg::describe(&e))),
        }
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
