//! One delivery attempt: open the endpoint's secrets, check where it points, sign the body and
//! POST it; the outcome says what the receiver answered and how long it asked us to wait.
use super::service::binding;
use super::store::Due;
use super::{sign, ssrf};
use crate::clock::Clock;
use crate::crypto::{self, MasterKey};
use crate::time::{to_micros, Micros};
use serde_json::{json, Value};

const SECOND: Micros = 1_000_000;
/// The longest `Retry-After` honoured.
pub const MAX_RETRY_AFTER: Micros = 86400 * SECOND;

pub struct Outcome {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: Option<Micros>,
}

impl Outcome {
    fn failed(error: String) -> Outcome {
        Outcome {
            status: None,
            error: Some(error),
            retry_after: None,
        }
    }
}

/// The HTTP client every attempt goes through: the webhook timeout, no redirects, and a
/// resolver that refuses private addresses unless they are allowed.
pub fn client(
    timeout: std::time::Duration,
    allow_private: bool,
) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(std::sync::Arc::new(ssrf::Resolver { allow_private }))
        .user_agent(concat!("tenantry-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhook client: {e}"))
}

/// What an attempt needs besides the delivery.
pub struct Sender<'a> {
    pub client: &'a reqwest::Client,
    pub clock: &'a dyn Clock,
    pub key: &'a MasterKey,
    pub allow_private: bool,
}

impl Sender<'_> {
    /// The secrets that sign now: the current one, and the previous one during its overlap.
    fn secrets(&self, d: &Due) -> Result<Vec<String>, String> {
        let (current, previous, until) = &d.secrets;
        let bind = binding(&d.endpoint_id);
        let open = |s: &[u8]| {
            crypto::open(self.key, s, d.owner.as_uuid(), &bind)
                .map(|s| s.expose().to_string())
                .map_err(|e| format!("the endpoint's secret does not open: {e}"))
        };
        let mut out = vec![open(current)?];
        if let (Some(p), Some(until)) = (previous, until) {
            if *until > to_micros(self.clock.now()) {
                out.push(open(p)?);
            }
        }
        Ok(out)
    }

    pub async fn attempt(&self, d: &Due) -> Outcome {
        let secrets = match self.secrets(d) {
            Ok(s) => s,
            Err(e) => return Outcome::failed(e),
        };
        let url = match reqwest::Url::parse(&d.url) {
            Ok(u) => u,
            Err(e) => return Outcome::failed(e.to_string()),
        };
        // IP literals never reach the resolver, so they are checked here; names are checked
        // by the resolver on every connection (a pooled one was checked when it was opened).
        if let Err(e) = ssrf::check_address(&url, self.allow_private) {
            return Outcome::failed(format!("refused: {e}"));
        }
        let body = body(d);
        // The wall clock, not the app's `Clock`: receivers compare it with their own clock
        // (the official libraries refuse a timestamp five minutes off).
        let ts = chrono::Utc::now().timestamp();
        let refs: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let signature = sign::signature(&refs, &d.event_id, ts, body.as_bytes());
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.event_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome {
                status: Some(r.status().as_u16()),
                error: None,
                retry_after: None,
            },
            Ok(r) => {
                let code = r.status().as_u16();
                let now = to_micros(self.clock.now());
                let retry_after = match code {
                    429 | 503 => r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry_after(v, now)),
                    _ => None,
                };
                Outcome {
                    status: Some(code),
                    error: Some(format!("the receiver answered {code}")),
                    retry_after,
                }
            }
            Err(e) if e.is_timeout() => {
                Outcome::failed("the receiver did not answer in time".into())
            }
            // Without the URL: a Slack URL's path is a credential, and the log has its own copy.
            Err(e) => Outcome::failed(crate::error::clip(&error_chain(&e.without_url()))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// How long a `Retry-After` value asks to wait from `now`, at most `MAX_RETRY_AFTER`: delay
/// seconds, or an HTTP date (RFC 9110: IMF-fixdate, and the obsolete RFC 850 and asctime forms
/// it requires recipients to accept), read against the app's clock. A date in the past asks
/// for no wait; anything else unreadable is ignored.
pub fn retry_after(value: &str, now: Micros) -> Option<Micros> {
    let value = value.trim();
    let wait = match value.parse::<i64>() {
        Ok(secs) => secs.max(0).saturating_mul(SECOND),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            let since_epoch = at.duration_since(std::time::UNIX_EPOCH).ok()?;
            let at = Micros::try_from(since_epoch.as_micros()).ok()?;
            (at - now).max(0)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The request body: Standard Webhooks' `{"type", "timestamp", "data"}`, or Slack's `{"text"}`.
/// The standard body is put together around the stored payload, which is the event's JSON as
/// the outbox rendered it, instead of parsing and printing it again for every attempt.
fn body(d: &Due) -> String {
    if d.format == "slack" {
        let event: Value = serde_json::from_str(&d.payload).unwrap_or(Value::Null);
        let s = |k: &str| event[k].as_str().unwrap_or_default().to_string();
        return json!({"text": format!("{} {}: {}", s("severity"), d.event_type, s("message"))})
            .to_string();
    }
    format!(
        r#"{{"type":{},"timestamp":"{}","data":{}}}"#,
        Value::from(d.event_type.as_str()),
        crate::time::rfc3339(d.created_at),
        d.payload
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_an_http_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's example, in its three forms.
        let at = 784111777 * SECOND;
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                retry_after(date, at - 90 * SECOND),
                Some(90 * SECOND),
                "{date}"
            );
        }
        assert_eq!(retry_after(" 120 ", 0), Some(120 * SECOND));
        assert_eq!(retry_after("-5", 0), Some(0));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + SECOND),
            Some(0)
        );
        assert_eq!(retry_after("99999999", 0), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", 0), None);
    }

    #[test]
    fn the_standard_body_wraps_the_stored_event() {
        let d = Due {
            id: "d".into(),
            endpoint_id: "e".into(),
            owner: crate::tenancy::DEFAULT_TENANT_ID,
            event_id: "ev".into(),
            event_type: "limit.\"x\"".into(),
            payload: r#"{"id":"ev","message":"m"}"#.into(),
            attempts: 0,
            url: "http://x/".into(),
            format: "standard".into(),
            created_at: 0,
            secrets: (Vec::new(), None, None),
        };
        let v: Value = serde_json::from_str(&body(&d)).unwrap();
        assert_eq!(
            v,
            json!({"type": "limit.\"x\"", "timestamp": crate::time::rfc3339(0),
                   "data": {"id": "ev", "message": "m"}})
        );
    }
}
