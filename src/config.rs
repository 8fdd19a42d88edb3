//! Configuration from the environment, validated once at start. The feature flags live here:
//! each flag is read in exactly one place (`Flags::from_env`).
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Flags {
    pub multi_tenant: bool,
    pub usage_tracking: bool,
    pub hosted_queue: bool,
    pub billing: bool,
}

impl Default for Flags {
    /// The OSS single-tenant defaults.
    fn default() -> Self {
        Flags {
            multi_tenant: false,
            usage_tracking: true,
            hosted_queue: false,
            billing: false,
        }
    }
}

/// The features a flag turns on; `Flags::require` is their one guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feature {
    MultiTenant,
    UsageTracking,
    HostedQueue,
    Billing,
}

impl Feature {
    pub fn env_var(self) -> &'static str {
        match self {
            Feature::MultiTenant => "ENABLE_MULTI_TENANT",
            Feature::UsageTracking => "ENABLE_USAGE_TRACKING",
            Feature::HostedQueue => "ENABLE_HOSTED_QUEUE",
            Feature::Billing => "ENABLE_BILLING",
        }
    }
}

impl Flags {
    pub fn enabled(&self, f: Feature) -> bool {
        match f {
            Feature::MultiTenant => self.multi_tenant,
            Feature::UsageTracking => self.usage_tracking,
            Feature::HostedQueue => self.hosted_queue,
            Feature::Billing => self.billing,
        }
    }

    /// 403 `feature_disabled` unless the feature is on: the one guard for every flag.
    pub fn require(&self, f: Feature) -> Result<(), crate::error::ApiError> {
        if self.enabled(f) {
            Ok(())
        } else {
            Err(crate::error::ApiError::FeatureDisabled(format!(
                "this feature is disabled on this instance (set {}=true to enable it)",
                f.env_var()
            )))
        }
    }

    pub fn edition(&self) -> &'static str {
        if self.multi_tenant || self.hosted_queue || self.billing {
            "hosted"
        } else {
            "oss"
        }
    }

    fn from_env(env: &HashMap<String, String>) -> Result<Self, String> {
        let d = Flags::default();
        Ok(Flags {
            multi_tenant: flag(env, "ENABLE_MULTI_TENANT", d.multi_tenant)?,
            usage_tracking: flag(env, "ENABLE_USAGE_TRACKING", d.usage_tracking)?,
            hosted_queue: flag(env, "ENABLE_HOSTED_QUEUE", d.hosted_queue)?,
            billing: flag(env, "ENABLE_BILLING", d.billing)?,
        })
    }
}

fn flag(env: &HashMap<String, String>, name: &str, default: bool) -> Result<bool, String> {
    match env.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => match v.as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(format!("{name} must be true or false, not `{v}`")),
        },
    }
}

/// `90`, `90s`, `15m`, `6h`, `1d`; at least a minute.
fn parse_interval(v: &str) -> Result<std::time::Duration, String> {
    let v = v.trim();
    let (num, unit) = v.split_at(v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("TENANTRY_BACKUP_INTERVAL `{v}` is not like 6h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("TENANTRY_BACKUP_INTERVAL `{v}` is not like 6h")),
    };
    if secs < 60 {
        return Err("TENANTRY_BACKUP_INTERVAL must be at least a minute".into());
    }
    Ok(std::time::Duration::from_secs(secs))
}

const PROVIDER_KEY_PREFIX: &str = "TENANTRY_PROVIDER_KEY_";

/// A secret from the environment: never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub bind: String,
    pub data_dir: PathBuf,
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
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
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
            admin_token,
            flags: Flags::from_env(env)?,
            encryption_key: get("ENCRYPTION_KEY").map(Secret::new),
            encryption_key_old: get("ENCRYPTION_KEY_OLD").map(Secret::new),
            provider_keys: env
                .iter()
                .filter(|(k, v)| k.starts_with(PROVIDER_KEY_PREFIX) && !v.trim().is_empty())
                .map(|(k, v)| (k.clone(), Secret::new(v.trim())))
                .collect(),
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
            workers: 0,
            without_middleware: false,
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
