//! Tenant settings: the model, its validation, partial updates (`null` clears), templates, and
//! (in submodules) the versioned store with rollback, the in-memory cache and provider keys.
pub mod cache;
mod patch;
pub mod provider_keys;
pub mod service;
pub mod store;
pub mod store_pg;

pub use cache::SettingsCache;
pub use service::TenantSettings;

use crate::tenancy::Plan;
use crate::usage::money::{MarkupPercent, Nanousd};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Calls run on the instance's provider keys; usage is billed with the markup.
    #[default]
    Hosted,
    /// Calls run on the tenant's own provider key; nothing is billed.
    ByoKey,
}

impl ExecutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionMode::Hosted => "hosted",
            ExecutionMode::ByoKey => "byo_key",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub daily_cost_usd: Option<Nanousd>,
    pub monthly_cost_usd: Option<Nanousd>,
    pub daily_tokens: Option<u64>,
    pub monthly_tokens: Option<u64>,
}

/// The versioned content of a tenant's settings (provider keys live apart: they are secrets and
/// have no history). Stored as JSON; fields missing from a stored body take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub execution_mode: ExecutionMode,
    pub default_model: Option<String>,
    pub allowed_models: Option<Vec<String>>,
    pub limits: Limits,
    pub warn_at_percent: u8,
    pub markup_percent: MarkupPercent,
    /// Requests a minute for this tenant; `None` for its plan's rate.
    pub rate_limit_per_minute: Option<u32>,
    /// The application's own per-tenant settings, opaque to tenantry: versioned and rolled
    /// back with the rest, replaced whole by a PATCH.
    pub custom: Map<String, Value>,
    /// When true the gateway refuses calls while a limit is exceeded; ingest never is.
    pub enforce_limits: bool,
    /// In-flight gateway calls; `None` for the plan's number.
    pub max_concurrent_calls: Option<u32>,
    /// Running queue jobs; `None` for the plan's number.
    pub max_running_jobs: Option<u32>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            execution_mode: ExecutionMode::Hosted,
            default_model: Some("gpt-4o-mini".into()),
            allowed_models: None,
            limits: Limits::default(),
            warn_at_percent: 80,
            markup_percent: MarkupPercent::ZERO,
            rate_limit_per_minute: None,
            custom: Map::new(),
            enforce_limits: false,
            max_concurrent_calls: None,
            max_running_jobs: None,
        }
    }
}

/// `custom` is at most this many bytes as compact JSON (what is stored).
pub const MAX_CUSTOM_BYTES: usize = 64 * 1024;

impl Settings {
    /// In-flight gateway calls allowed: the setting, else the plan's.
    pub fn concurrent_calls(&self, plan: Plan) -> u32 {
        self.max_concurrent_calls.unwrap_or(match plan {
            Plan::Basic => 4,
            Plan::Pro => 32,
            Plan::Enterprise => 256,
        })
    }

    /// Running queue jobs allowed: the setting, else the plan's.
    pub fn running_jobs(&self, plan: Plan) -> u32 {
        self.max_running_jobs.unwrap_or(match plan {
            Plan::Basic => 2,
            Plan::Pro => 10,
            Plan::Enterprise => 50,
        })
    }

    /// A template's settings and plan; `None` for an unknown name.
    pub fn template(name: &str) -> Option<(Settings, Plan)> {
        let usd = |whole: i64| Some(Nanousd::from_nanos(whole * 1_000_000_000));
        Some(match name {
            "trial" => (
                Settings {
                    allowed_models: Some(vec![
                        "gpt-4o-mini".into(),
                        "claude-haiku-4-5".into(),
                        "gemini-2.5-flash".into(),
                    ]),
                    limits: Limits {
                        daily_cost_usd: usd(1),
                        monthly_cost_usd: usd(10),
                        daily_tokens: Some(200_000),
                        monthly_tokens: Some(2_000_000),
                    },
                    ..Settings::default()
                },
                Plan::Basic,
            ),
            "startup" => (
                Settings {
                    limits: Limits {
                        daily_cost_usd: usd(25),
                        monthly_cost_usd: usd(500),
                        daily_tokens: None,
                        monthly_tokens: Some(50_000_000),
                    },
                    markup_percent: MarkupPercent::from_whole(20),
                    ..Settings::default()
                },
                Plan::Pro,
            ),
            "enterprise" => (
                Settings {
                    execution_mode: ExecutionMode::ByoKey,
                    default_model: Some("gpt-4o".into()),
                    limits: Limits {
                        monthly_cost_usd: usd(10_000),
                        ..Limits::default()
                    },
                    warn_at_percent: 90,
                    ..Settings::default()
                },
                Plan::Enterprise,
            ),
            _ => return None,
        })
    }
}
