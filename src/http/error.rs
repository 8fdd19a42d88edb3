//! The one place that maps the domain's `ApiError` to an HTTP status, headers and the contract's
//! `{"error", "message"}` body. Framework failures (bad JSON, unknown routes, wrong methods,
//! oversized bodies) are funnelled here too, so no handler builds error JSON itself.
use crate::error::ApiError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

impl ApiError {
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
            ApiError::Forbidden(_)
            | ApiError::FeatureDisabled(_)
            | ApiError::TenantUnavailable
            | ApiError::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) | ApiError::ModelNotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_)
            | ApiError::PeriodClosed(_)
            | ApiError::LeaseLost(_)
            | ApiError::ByoKeyMissing(_)
            | ApiError::HostedKeyMissing(_)
            | ApiError::ProviderKeyUnreadable(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge | ApiError::GatewayBodyTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_)
            | ApiError::LimitExceeded(_)
            | ApiError::TooManyConcurrentCalls(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamUnavailable(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::NotReady => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::NotOnPostgres => StatusCode::NOT_IMPLEMENTED,
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
