//! Configuration from the environment, validated once at start: every variable the binary reads,
//! each refused with a one-line reason when its value is unknown. The feature flags are in `flags`.
use std::collections::HashMap;
use std::path::PathBuf;

mod flags;
mod upstreams;
pub use flags::{Feature, Flags};
pub use upstreams::Upstreams;

/// A duration like `90`, `90s`, `500ms`, `15m`, `6h`, `1d` (plain numbers are seconds).
fn parse_duration(name: &str, v: &str) -> Result<std::time::Duration, String> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let bad = || {
        format!(
            "{name} `{}` is not a duration like 30s or 6h",
            crate::error::clip(v)
        )
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }
    .ok_or_else(bad)?;
    Ok(std::time::Duration::from_millis(millis))
}

/// `TENANTRY_BACKUP_INTERVAL`: at least a minute.
fn parse_interval(v: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration("TENANTRY_BACKUP_INTERVAL", v)?;
    if d.as_secs() < 60 {
        return Err("TENANTRY_BACKUP_INTERVAL must be at least a minute".into());
    }
    Ok(d)
}

/// `TENANTRY_BODY_TIMEOUT`: more than zero, at most an hour (a longer one protects nothing).
fn parse_body_timeout(v: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration("TENANTRY_BODY_TIMEOUT", v)?;
    if d.is_zero() || d.as_secs() > 3600 {
        return Err("TENANTRY_BODY_TIMEOUT must be more than 0 and at most 1h".into());
    }
    Ok(d)
}

/// How log lines are written: `text` (the default) or `json`, one object per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub fn parse(v: Option<&str>) -> Result<Self, String> {
        match v.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => Err(format!(
                "TENANTRY_LOG_FORMAT must be text or json, not `{}`",
                crate::error::clip(other)
            )),
        }
    }
}

/// `TENANTRY_LOG`: a level (`info`) or `tracing` filter directives (`warn,tenantry=debug`).
fn log_filter(v: Option<String>) -> Result<String, String> {
    let v = v
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "info".into());
    tracing_subscriber::EnvFilter::try_new(&v).map_err(|e| {
        format!(
            "TENANTRY_LOG `{}` is not a log level or filter ({e}); try info or warn,tenantry=debug",
            crate::error::clip(&v)
        )
    })?;
    Ok(v)
}

/// `ENCRYPTION_KEY_OLD` is not held to it: rotating away from a short key is how one is fixed.
const MIN_ENCRYPTION_KEY: usize = 16;

const PROVIDER_KEY_PREFIX: &str = "TENANTRY_PROVIDER_KEY_";

/// A configured secret (admin token, encryption keys, instance provider keys): the one secret
/// type, redacted when printed and wiped on drop.
pub use crate::crypto::SecretString as Secret;

/// `TENANTRY_PROVIDER_KEY_<PROVIDER>`: the provider part as `Provider::env_var` spells it
/// (upper case, digits, `_`), so a misspelt variable is refused rather than never read.
fn provider_keys(env: &HashMap<String, String>) -> Result<HashMap<String, Secret>, String> {
    let mut keys = HashMap::new();
    for (k, v) in env {
        let Some(provider) = k.strip_prefix(PROVIDER_KEY_PREFIX) else {
            continue;
        };
        let well_formed = (1..=32).contains(&provider.len())
            && provider
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !well_formed {
            return Err(format!(
                "{} is not a provider key variable: the provider part must be 1 to 32 of A-Z, 0-9 and _ (TENANTRY_PROVIDER_KEY_OPENAI)",
                crate::error::clip(k)
            ));
        }
        if !v.trim().is_empty() {
            keys.insert(k.clone(), Secret::new(v.trim()));
        }
    }
    Ok(keys)
}

/// A hundred years: a longer retention is a typo, and keeping forever is spelled 0.
const MAX_RETENTION_DAYS: u32 = 36_500;

/// A number of days from 0 (which means `zero`, as "keep forever") to `MAX_RETENTION_DAYS`.
fn days(
    get: &dyn Fn(&str) -> Option<String>,
    name: &str,
    default: u32,
    zero: &str,
) -> Result<u32, String> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| *n <= MAX_RETENTION_DAYS)
            .ok_or(format!(
                "{name} must be a whole number of days from 0 ({zero}) to {MAX_RETENTION_DAYS}"
            )),
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
    /// `TENANTRY_DATABASE_URL`: a PostgreSQL database instead of the SQLite file in the data
    /// dir (issue 19, being built). A secret: it may hold a password.
    pub database_url: Option<Secret>,
    pub admin_token: Option<Secret>,
    pub flags: Flags,
    /// `ENCRYPTION_KEY`; when unset, a generated key file in the data dir is used.
    pub encryption_key: Option<Secret>,
    /// `ENCRYPTION_KEY_OLD`, read only by `rotate-encryption-key`.
    pub encryption_key_old: Option<Secret>,
    /// The instance's provider keys, by variable name (`TENANTRY_PROVIDER_KEY_OPENAI`).
    pub provider_keys: HashMap<String, Secret>,
    /// scrypt parameters for a newly installed key (tests lower them; stored with the salt).
    pub kdf: crate::crypto::KdfParams,
    /// `TENANTRY_SYNC=full`: fsync every commit (survives power loss); `normal` (the default)
    /// survives a process crash.
    pub sync_full: bool,
    /// `TENANTRY_BACKUP_INTERVAL` (seconds, or with s, m, h, d): scheduled backups into
    /// `backups/` of the data dir; `TENANTRY_BACKUP_KEEP` of them are kept (default 7).
    pub backup_interval: Option<std::time::Duration>,
    pub backup_keep: usize,
    /// `TENANTRY_BODY_TIMEOUT` (default 30 s): a request body must have fully arrived by then.
    pub body_timeout: std::time::Duration,
    /// `TENANTRY_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` names the client.
    pub trusted_proxies: crate::proxies::TrustedProxies,
    /// `TENANTRY_LOG` (default `info`), already checked to parse.
    pub log_filter: String,
    /// `TENANTRY_LOG_FORMAT`.
    pub log_format: LogFormat,
    /// The gateway's upstreams, timeout and body bound.
    pub upstreams: Upstreams,
    /// `TENANTRY_EVENTS_RETENTION_DAYS` (default 90; 0 keeps them forever): operational events
    /// older than that are deleted.
    pub events_retention_days: u32,
    /// How often the events sweeper runs (hourly). Never read from the environment: tests
    /// shorten it.
    pub events_sweep_every: std::time::Duration,
    /// `TENANTRY_USAGE_RETENTION_DAYS` (default 0: keep forever): raw usage events of days
    /// more than that before today are deleted; the rollups stay.
    pub usage_retention_days: u32,
    /// `TENANTRY_PURGE_INACTIVE_DAYS` (default 0: never): tenants inactive for longer than that
    /// are deleted with everything they own.
    pub purge_inactive_days: u32,
    /// How often usage retention and the inactive-tenant purge run (hourly). Never read from
    /// the environment: tests shorten it.
    pub retention_sweep_every: std::time::Duration,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// `TENANTRY_WEBHOOK_ALLOW_PRIVATE=true`: webhooks may point at loopback and private
    /// addresses (a receiver on the same host or network); refused otherwise (SSRF).
    pub webhook_allow_private: bool,
    /// `TENANTRY_WEBHOOK_TIMEOUT` (default 15 s): a delivery not answered by then has failed.
    pub webhook_timeout: std::time::Duration,
    /// `TENANTRY_BILLING_GRACE` (default 24 h, at most 31 d): how long after its month a
    /// statement stays a draft that late events may still change.
    pub billing_grace: std::time::Duration,
    /// How often the billing finalizer looks for statements to store (a minute). Never read from
    /// the environment: tests shorten it.
    pub billing_finalize_every: std::time::Duration,
    /// Serve without the response middleware (ids, headers, metrics, logs): for the benchmark
    /// that measures what the middleware costs. Never read from the environment.
    pub without_middleware: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, String> {
        Self::from_map(&std::env::vars().collect())
    }

    pub fn from_map(env: &HashMap<String, String>) -> Result<Self, String> {
        let get = |k: &str| env.get(k).filter(|v| !v.trim().is_empty()).cloned();
        let admin_token = match get("TENANTRY_ADMIN_TOKEN") {
            Some(t) if t.len() < 16 => {
                return Err("TENANTRY_ADMIN_TOKEN must be at least 16 characters".into())
            }
            // Tokens starting `tk_` are tenant keys; an admin token must never look like one.
            Some(t) if t.starts_with("tk_") => {
                return Err(
                    "TENANTRY_ADMIN_TOKEN may not start with tk_ (the tenant key prefix)".into(),
                )
            }
            Some(t) => Some(Secret::new(t)),
            None => None,
        };
        Ok(Config {
            bind: get("TENANTRY_BIND").unwrap_or_else(|| "127.0.0.1:8080".into()),
            data_dir: PathBuf::from(get("TENANTRY_DATA_DIR").unwrap_or_else(|| "./data".into())),
            database_url: match get("TENANTRY_DATABASE_URL") {
                None => None,
                Some(url) => {
                    crate::db::pg::parse_url(url.trim())?;
                    Some(Secret::new(url.trim().to_string()))
                }
            },
            admin_token,
            flags: Flags::from_env(env)?,
            encryption_key: match get("ENCRYPTION_KEY") {
                // A short key is guessable offline from a stolen database; refuse it.
                Some(k) if k.chars().count() < MIN_ENCRYPTION_KEY => {
                    return Err(format!(
                        "ENCRYPTION_KEY must be at least {MIN_ENCRYPTION_KEY} characters (a long random secret)"
                    ))
                }
                k => k.map(Secret::new),
            },
            encryption_key_old: get("ENCRYPTION_KEY_OLD").map(Secret::new),
            provider_keys: provider_keys(env)?,
            kdf: crate::crypto::KdfParams::default(),
            sync_full: match get("TENANTRY_SYNC")
                .map(|v| v.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("normal") => false,
                Some("full") => true,
                Some(other) => {
                    return Err(format!(
                        "TENANTRY_SYNC must be normal or full, not `{other}`"
                    ))
                }
            },
            backup_interval: match get("TENANTRY_BACKUP_INTERVAL") {
                None => None,
                Some(v) => Some(parse_interval(&v)?),
            },
            backup_keep: match get("TENANTRY_BACKUP_KEEP") {
                None => 7,
                Some(v) => v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or("TENANTRY_BACKUP_KEEP must be a whole number of at least 1")?,
            },
            body_timeout: match get("TENANTRY_BODY_TIMEOUT") {
                None => std::time::Duration::from_secs(30),
                Some(v) => parse_body_timeout(&v)?,
            },
            trusted_proxies: crate::proxies::TrustedProxies::parse(
                get("TENANTRY_TRUSTED_PROXIES").as_deref().unwrap_or(""),
            )
            .map_err(|e| format!("TENANTRY_TRUSTED_PROXIES: {e}"))?,
            log_filter: log_filter(get("TENANTRY_LOG"))?,
            log_format: LogFormat::parse(get("TENANTRY_LOG_FORMAT").as_deref())?,
            upstreams: Upstreams::from_env(get)?,
            events_retention_days: days(&get, "TENANTRY_EVENTS_RETENTION_DAYS", 90, "keep forever")?,
            events_sweep_every: std::time::Duration::from_secs(3600),
            usage_retention_days: days(&get, "TENANTRY_USAGE_RETENTION_DAYS", 0, "keep forever")?,
            purge_inactive_days: days(&get, "TENANTRY_PURGE_INACTIVE_DAYS", 0, "never purge")?,
            retention_sweep_every: std::time::Duration::from_secs(3600),
            workers: 0,
            without_middleware: false,
            webhook_allow_private: match get("TENANTRY_WEBHOOK_ALLOW_PRIVATE")
                .map(|v| v.to_ascii_lowercase())
                .as_deref()
            {
                None | Some("false") => false,
                Some("true") => true,
                Some(_) => return Err("TENANTRY_WEBHOOK_ALLOW_PRIVATE must be true or false".into()),
            },
            webhook_timeout: match get("TENANTRY_WEBHOOK_TIMEOUT") {
                None => std::time::Duration::from_secs(15),
                Some(v) => {
                    let d = parse_duration("TENANTRY_WEBHOOK_TIMEOUT", &v)?;
                    if d.is_zero() || d.as_secs() > 60 {
                        return Err("TENANTRY_WEBHOOK_TIMEOUT must be more than 0 and at most 60s".into());
                    }
                    d
                }
            },
            billing_grace: match get("TENANTRY_BILLING_GRACE") {
                None => std::time::Duration::from_secs(86_400),
                Some(v) => {
                    let d = parse_duration("TENANTRY_BILLING_GRACE", &v)?;
                    if d.as_secs() > 31 * 86_400 {
                        return Err("TENANTRY_BILLING_GRACE must be at most 31d".into());
                    }
                    d
                }
            },
            billing_finalize_every: std::time::Duration::from_secs(60),
        })
    }

    /// The instance's own key for a provider, from `TENANTRY_PROVIDER_KEY_<PROVIDER>`.
    pub fn provider_key(&self, env_var: &str) -> Option<&Secret> {
        self.provider_keys.get(env_var)
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("tenantry.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_oss_single_tenant_edition() {
        let c = Config::from_map(&env(&[])).unwrap();
        assert_eq!(c.bind, "127.0.0.1:8080");
        assert!(!c.flags.multi_tenant && c.flags.usage_tracking);
        assert_eq!(c.flags.edition(), "oss");
    }

    #[test]
    fn flags_accept_common_spellings_and_refuse_others() {
        let c = Config::from_map(&env(&[("ENABLE_MULTI_TENANT", "TRUE")])).unwrap();
        assert!(c.flags.multi_tenant);
        assert_eq!(c.flags.edition(), "hosted");
        let e = Config::from_map(&env(&[("ENABLE_BILLING", "maybe")])).unwrap_err();
        assert!(e.contains("ENABLE_BILLING"));
    }

    #[test]
    fn backup_intervals_parse() {
        assert_eq!(parse_interval("6h").unwrap().as_secs(), 21_600);
        assert_eq!(parse_interval("90").unwrap().as_secs(), 90);
        assert!(parse_interval("10s").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn unknown_values_are_refused_naming_the_variable() {
        for (var, value) in [
            ("TENANTRY_LOG_FORMAT", "xml"),
            ("TENANTRY_LOG", "nonsense==="),
            ("ENCRYPTION_KEY", "x"),
            ("ENCRYPTION_KEY", "fifteen-chars-x"),
            ("TENANTRY_BODY_TIMEOUT", "0s"),
            ("TENANTRY_BODY_TIMEOUT", "soon"),
            ("TENANTRY_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("TENANTRY_PROVIDER_KEY_openai", "sk-abc"),
            ("TENANTRY_SYNC", "sometimes"),
            ("TENANTRY_EVENTS_RETENTION_DAYS", "-1"),
            ("TENANTRY_EVENTS_RETENTION_DAYS", "36501"),
            ("TENANTRY_EVENTS_RETENTION_DAYS", "90d"),
            ("TENANTRY_USAGE_RETENTION_DAYS", "-3"),
            ("TENANTRY_USAGE_RETENTION_DAYS", "a year"),
            ("TENANTRY_PURGE_INACTIVE_DAYS", "36501"),
        ] {
            let e = Config::from_map(&env(&[(var, value)])).unwrap_err();
            assert!(e.contains(var), "{var}={value}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn known_values_are_accepted() {
        let c = Config::from_map(&env(&[
            ("TENANTRY_LOG_FORMAT", "JSON"),
            ("TENANTRY_LOG", "warn,tenantry=debug"),
            ("ENCRYPTION_KEY", "sixteen-chars-xx"),
            ("ENCRYPTION_KEY_OLD", "short"),
            ("TENANTRY_BODY_TIMEOUT", "500ms"),
            ("TENANTRY_TRUSTED_PROXIES", "10.0.0.1, 192.168.0.0/16,::1"),
            ("TENANTRY_PROVIDER_KEY_AZURE_OPENAI", "sk-abc"),
        ]))
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.body_timeout, std::time::Duration::from_millis(500));
        assert_eq!(
            Config::from_map(&env(&[])).unwrap().body_timeout.as_secs(),
            30
        );
    }

    #[test]
    fn usage_events_and_inactive_tenants_are_kept_unless_told_otherwise() {
        let c = Config::from_map(&env(&[])).unwrap();
        assert_eq!((c.usage_retention_days, c.purge_inactive_days), (0, 0));
        let c = Config::from_map(&env(&[
            ("TENANTRY_USAGE_RETENTION_DAYS", "400"),
            ("TENANTRY_PURGE_INACTIVE_DAYS", " 30 "),
        ]))
        .unwrap();
        assert_eq!((c.usage_retention_days, c.purge_inactive_days), (400, 30));
    }

    #[test]
    fn events_are_kept_ninety_days_unless_told_otherwise() {
        let days = |v: &[(&str, &str)]| Config::from_map(&env(v)).unwrap().events_retention_days;
        assert_eq!(days(&[]), 90);
        assert_eq!(days(&[("TENANTRY_EVENTS_RETENTION_DAYS", "0")]), 0);
        assert_eq!(
            days(&[("TENANTRY_EVENTS_RETENTION_DAYS", " 36500 ")]),
            36_500
        );
    }

    #[test]
    fn short_admin_tokens_are_refused() {
        assert!(Config::from_map(&env(&[("TENANTRY_ADMIN_TOKEN", "short")])).is_err());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c =
            Config::from_map(&env(&[("TENANTRY_ADMIN_TOKEN", "canary-0123456789abcdef")])).unwrap();
        assert!(!format!("{c:?}").contains("canary"));
    }
}
