//! The gateway's settings from the environment: where each provider is, how long a call may
//! take and how large its body may be. URLs are variables so tests and self-hosters can point
//! the gateway at any compatible server (vLLM, Ollama, a company proxy).
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Upstreams {
    /// `TENANTRY_UPSTREAM_OPENAI`, without a trailing slash.
    pub openai: String,
    /// `TENANTRY_UPSTREAM_ANTHROPIC`.
    pub anthropic: String,
    /// `TENANTRY_UPSTREAM_GOOGLE`.
    pub google: String,
    /// `TENANTRY_UPSTREAM_TIMEOUT` (default 600 s): the longest a call may take, start to end.
    pub timeout: Duration,
    /// The time to open a connection to an upstream.
    pub connect_timeout: Duration,
    /// `TENANTRY_GATEWAY_MAX_BODY` (default 32 MiB): prompts with images are large.
    pub max_body: usize,
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams {
            openai: "https://api.openai.com/v1".into(),
            anthropic: "https://api.anthropic.com/v1".into(),
            google: "https://generativelanguage.googleapis.com/v1beta/openai".into(),
            timeout: Duration::from_secs(600),
            connect_timeout: Duration::from_secs(10),
            max_body: 32 << 20,
        }
    }
}

fn url(name: &str, v: String) -> Result<String, String> {
    let v = v.trim().trim_end_matches('/').to_string();
    let host = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(v),
        _ => Err(format!(
            "{name} must be an http:// or https:// URL, e.g. https://api.openai.com/v1"
        )),
    }
}

/// A size like `32MiB`, `512KiB`, `1048576` (bytes): 1 KiB to 1 GiB.
fn parse_size(name: &str, v: &str) -> Result<usize, String> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let bad = || format!("{name} must be a size from 1KiB to 1GiB, e.g. 32MiB");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let bytes = match unit.trim() {
        "" | "B" => Some(n),
        "KiB" | "KB" | "K" => n.checked_mul(1 << 10),
        "MiB" | "MB" | "M" => n.checked_mul(1 << 20),
        "GiB" | "GB" | "G" => n.checked_mul(1 << 30),
        _ => None,
    }
    .filter(|b| (1 << 10..=1 << 30).contains(b))
    .ok_or_else(bad)?;
    Ok(bytes as usize)
}

impl Upstreams {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Upstreams, String> {
        let d = Upstreams::default();
        let var = |name: &str, default: String| match get(name) {
            Some(v) => url(name, v),
            None => Ok(default),
        };
        Ok(Upstreams {
            openai: var("TENANTRY_UPSTREAM_OPENAI", d.openai)?,
            anthropic: var("TENANTRY_UPSTREAM_ANTHROPIC", d.anthropic)?,
            google: var("TENANTRY_UPSTREAM_GOOGLE", d.google)?,
            timeout: match get("TENANTRY_UPSTREAM_TIMEOUT") {
                None => d.timeout,
                Some(v) => {
                    let t = super::parse_duration("TENANTRY_UPSTREAM_TIMEOUT", &v)?;
                    if t.is_zero() || t.as_secs() > 24 * 3600 {
                        return Err(
                            "TENANTRY_UPSTREAM_TIMEOUT must be more than 0 and at most 1d".into(),
                        );
                    }
                    t
                }
            },
            connect_timeout: d.connect_timeout,
            max_body: match get("TENANTRY_GATEWAY_MAX_BODY") {
                None => d.max_body,
                Some(v) => parse_size("TENANTRY_GATEWAY_MAX_BODY", &v)?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(pairs: &[(&str, &str)]) -> Result<Upstreams, String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Upstreams::from_env(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_providers_own_endpoints() {
        let u = from(&[]).unwrap();
        assert_eq!(u.openai, "https://api.openai.com/v1");
        assert_eq!(u.timeout, Duration::from_secs(600));
        assert_eq!(u.max_body, 32 << 20);
    }

    #[test]
    fn urls_lose_their_trailing_slash_and_must_be_http() {
        let u = from(&[("TENANTRY_UPSTREAM_OPENAI", "http://127.0.0.1:9/v1/")]).unwrap();
        assert_eq!(u.openai, "http://127.0.0.1:9/v1");
        for bad in ["ftp://x", "127.0.0.1:9", "http://", "http://a b"] {
            assert!(
                from(&[("TENANTRY_UPSTREAM_ANTHROPIC", bad)]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn sizes_and_timeouts_are_bounded() {
        let u = from(&[
            ("TENANTRY_GATEWAY_MAX_BODY", "2MiB"),
            ("TENANTRY_UPSTREAM_TIMEOUT", "1500ms"),
        ])
        .unwrap();
        assert_eq!(u.max_body, 2 << 20);
        assert_eq!(u.timeout, Duration::from_millis(1500));
        for (k, v) in [
            ("TENANTRY_GATEWAY_MAX_BODY", "12"),
            ("TENANTRY_GATEWAY_MAX_BODY", "2TiB"),
            ("TENANTRY_GATEWAY_MAX_BODY", "lots"),
            ("TENANTRY_UPSTREAM_TIMEOUT", "0"),
            ("TENANTRY_UPSTREAM_TIMEOUT", "2d"),
        ] {
            assert!(from(&[(k, v)]).is_err(), "{k}={v}");
        }
    }
}
