//! Webhook endpoints (per tenant, and per instance for the admin) and the Standard Webhooks
//! deliveries of operational events: `outbox` writes a delivery per matching endpoint in the
//! transaction that records an event, `worker` schedules them (its bookkeeping is `queue`),
//! `send` makes each attempt, `record` writes its outcome and keeps the retry schedule, `sign`
//! signs, `ssrf` refuses private addresses. The SQL is in `store`. On PostgreSQL the outbox is
//! part of `events::pg::RECORD_MANY`, the SQL is in `store_pg`, `service_pg` holds the
//! service's side and `deliverer_pg` replaces `worker` and `queue` (replicas lease deliveries).
pub mod deliverer_pg;
pub mod outbox;
pub mod queue;
pub mod record;
pub mod send;
pub mod service;
pub mod service_pg;
pub mod sign;
pub mod ssrf;
pub mod store;
pub mod store_pg;
pub mod worker;

pub use service::Webhooks;

use crate::error::ApiError;
use crate::tenancy::TenantId;
use crate::time::Micros;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Tenant,
    /// Receives the events of every tenant; made with the admin token.
    Instance,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Instance => "instance",
        }
    }

    pub fn parse(s: &str) -> Result<Scope, ApiError> {
        match s {
            "tenant" => Ok(Scope::Tenant),
            "instance" => Ok(Scope::Instance),
            _ => Err(ApiError::InvalidRequest(
                "scope must be tenant or instance".into(),
            )),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Standard Webhooks: `{"type", "timestamp", "data"}`, signed.
    Standard,
    /// A Slack incoming webhook: `{"text"}`, signed too (Slack ignores the headers).
    Slack,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Standard => "standard",
            Format::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Result<Format, ApiError> {
        match s {
            "standard" => Ok(Format::Standard),
            "slack" => Ok(Format::Slack),
            _ => Err(ApiError::InvalidRequest(
                "format must be standard or slack".into(),
            )),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    /// The owner; the default tenant for an instance endpoint.
    pub tenant_id: TenantId,
    pub scope: Scope,
    pub url: String,
    /// `None`: every event.
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub format: Format,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub created_at: Micros,
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Micros>,
    pub created_at: Micros,
    pub(crate) seq: i64,
}

/// An enabled endpoint as the outbox matches events against it.
#[derive(Clone, Debug)]
pub struct Sub {
    pub id: String,
    pub owner: TenantId,
    pub event_types: Option<Vec<String>>,
}

impl Sub {
    pub fn wants(&self, event_type: &str) -> bool {
        matches(self.event_types.as_deref(), event_type)
    }
}

/// Whether an event type passes a filter: exact names, `prefix.*` wildcards; `None` passes all.
pub fn matches(filter: Option<&[String]>, event_type: &str) -> bool {
    let Some(filter) = filter else { return true };
    filter.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => p == event_type,
    })
}

/// Checks an `event_types` filter: up to 64 names of `a-z 0-9 _ .`, each optionally ending
/// `.*`.
pub fn parse_event_types(v: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    let bad = || {
        ApiError::InvalidRequest(
            "event_types must be up to 64 event types (a-z, 0-9, _ and .), each optionally \
             ending in .* (e.g. limit.*), or null for every event"
                .into(),
        )
    };
    if v.len() > 64 {
        return Err(bad());
    }
    for t in &v {
        let name = t.strip_suffix(".*").unwrap_or(t);
        let ok = (1..=100).contains(&name.len())
            && !name.starts_with('.')
            && !name.ends_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.');
        if !ok {
            return Err(bad());
        }
    }
    Ok(Some(v))
}

/// Checks a URL's form: `http` or `https` with a host, at most 2048 characters. Where the
/// host points is `ssrf`'s business.
pub fn parse_url(s: &str) -> Result<reqwest::Url, ApiError> {
    let bad = |why: &str| ApiError::InvalidRequest(format!("url {why}"));
    if s.len() > 2048 {
        return Err(bad("must be at most 2048 characters"));
    }
    let url = reqwest::Url::parse(s).map_err(|_| bad("is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("may not hold credentials"));
    }
    Ok(url)
}

pub fn parse_description(d: Option<String>) -> Result<Option<String>, ApiError> {
    match d {
        Some(d) if d.chars().count() > 500 || d.chars().any(char::is_control) => Err(
            ApiError::InvalidRequest("description must be at most 500 characters".into()),
        ),
        d => Ok(d),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn filters_match_exact_names_and_prefix_wildcards() {
        assert!(matches(None, "key.created"));
        let filter = f(&["limit.*", "key.created"]);
        assert!(matches(Some(&filter), "limit.warning"));
        assert!(matches(Some(&filter), "key.created"));
        assert!(!matches(Some(&filter), "key.revoked"));
        assert!(!matches(Some(&filter), "limits.warning"));
        assert!(!matches(Some(&[]), "key.created"));
    }

    #[test]
    fn event_type_filters_are_checked() {
        assert!(parse_event_types(Some(f(&["limit.*", "a_b.c"]))).is_ok());
        for bad in ["", "*", "Limit.*", "a..*", "a b", ".x"] {
            assert!(parse_event_types(Some(f(&[bad]))).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        assert!(parse_url("https://example.com/hook").is_ok());
        for bad in [
            "ftp://x.com",
            "not a url",
            "http://u:p@x.com/",
            "file:///etc/passwd",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
