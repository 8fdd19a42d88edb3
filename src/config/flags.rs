//! The feature flags: the line between the open-source single-tenant edition and a hosted
//! multi-tenant service. Each flag is read in exactly one place (`Flags::from_env`), and
//! `Flags::require` is the one guard every feature goes through.
use std::collections::HashMap;

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

    pub(super) fn from_env(env: &HashMap<String, String>) -> Result<Self, String> {
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
