//! Partial updates of settings (`PATCH /api/settings`): only the named fields change, `null`
//! clears what may be empty, and every value is bounded and checked before anything is stored.
use super::{ExecutionMode, Limits, Settings, MAX_CUSTOM_BYTES};
use crate::error::ApiError;
use crate::usage::model::ModelName;
use crate::usage::money::{MarkupPercent, Nanousd};
use serde_json::{Map, Value};

const MAX_MODELS: usize = 500;
const MAX_TOKENS_LIMIT: u64 = 1_000_000_000_000_000;

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::InvalidRequest(msg.into())
}

/// A model name as prices take it (`ModelName::parse_priced`): settings name models to price.
fn model_name(v: &Value, field: &str) -> Result<String, ApiError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(format!("{field} must be a string")))?;
    ModelName::parse_priced(s.to_string())
        .map(ModelName::into_string)
        .map_err(|_| {
            bad(format!(
                "{field} must be a model name of 1 to 200 characters without spaces"
            ))
        })
}

fn money_limit(v: &Value, field: &str) -> Result<Option<Nanousd>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => Nanousd::from_json_number(n)
            .map(Some)
            .map_err(|e| bad(format!("limits.{field}: {e}"))),
        _ => Err(bad(format!("limits.{field} must be a number or null"))),
    }
}

fn token_limit(v: &Value, field: &str) -> Result<Option<u64>, ApiError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => match n.as_u64() {
            Some(t) if t <= MAX_TOKENS_LIMIT => Ok(Some(t)),
            _ => Err(bad(format!(
                "limits.{field} must be a whole number from 0 to {MAX_TOKENS_LIMIT}, or null"
            ))),
        },
        _ => Err(bad(format!(
            "limits.{field} must be a whole number or null"
        ))),
    }
}

/// A per-tenant concurrency bound: 1 to 100,000, or `null` for the plan's.
fn bounded_count(v: &Value, field: &str) -> Result<Option<u32>, ApiError> {
    match v {
        Value::Null => Ok(None),
        v => match v.as_u64() {
            Some(n @ 1..=100_000) => Ok(Some(n as u32)),
            _ => Err(bad(format!(
                "{field} must be a whole number from 1 to 100000, or null"
            ))),
        },
    }
}

impl Settings {
    /// Applies a partial update: only the named fields change; `null` clears what may be empty.
    pub fn patched(&self, patch: &Value) -> Result<Settings, ApiError> {
        let patch = patch
            .as_object()
            .ok_or_else(|| bad("the body must be a JSON object"))?;
        let mut s = self.clone();
        for (field, v) in patch {
            match field.as_str() {
                "execution_mode" => {
                    s.execution_mode = match v.as_str() {
                        Some("hosted") => ExecutionMode::Hosted,
                        Some("byo_key") => ExecutionMode::ByoKey,
                        _ => return Err(bad("execution_mode must be hosted or byo_key")),
                    }
                }
                "default_model" => {
                    s.default_model = match v {
                        Value::Null => None,
                        v => Some(model_name(v, "default_model")?),
                    }
                }
                "allowed_models" => s.allowed_models = allowed_models(v)?,
                "limits" => s.limits = patched_limits(&s.limits, v)?,
                "warn_at_percent" => {
                    s.warn_at_percent = match v.as_u64() {
                        Some(p @ 1..=100) => p as u8,
                        _ => {
                            return Err(bad("warn_at_percent must be a whole number from 1 to 100"))
                        }
                    }
                }
                "markup_percent" => {
                    s.markup_percent = match v {
                        Value::Number(n) => MarkupPercent::from_json_number(n)
                            .map_err(|e| bad(format!("markup_percent: {e}")))?,
                        _ => return Err(bad("markup_percent must be a number from 0 to 1000")),
                    }
                }
                "rate_limit_per_minute" => {
                    s.rate_limit_per_minute = match v {
                        Value::Null => None,
                        v => match v.as_u64() {
                            Some(n @ 1..=1_000_000) => Some(n as u32),
                            _ => {
                                return Err(bad(
                                    "rate_limit_per_minute must be a whole number from 1 to 1000000, or null",
                                ))
                            }
                        },
                    }
                }
                "custom" => s.custom = custom(v)?,
                "enforce_limits" => {
                    s.enforce_limits = v
                        .as_bool()
                        .ok_or_else(|| bad("enforce_limits must be true or false"))?
                }
                "max_concurrent_calls" => s.max_concurrent_calls = bounded_count(v, field)?,
                "max_running_jobs" => s.max_running_jobs = bounded_count(v, field)?,
                "version" | "provider_keys" | "updated_at" => {
                    return Err(bad(format!("{field} cannot be changed with PATCH")))
                }
                other => {
                    return Err(bad(format!(
                        "unknown field `{}`",
                        crate::error::clip(other)
                    )))
                }
            }
        }
        s.validate()?;
        Ok(s)
    }

    /// Rules that span fields.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let (Some(d), Some(allowed)) = (&self.default_model, &self.allowed_models) {
            if !allowed.contains(d) {
                return Err(bad(format!(
                    "default_model `{}` is not in allowed_models",
                    crate::error::clip(d)
                )));
            }
        }
        Ok(())
    }
}

fn allowed_models(v: &Value) -> Result<Option<Vec<String>>, ApiError> {
    let list = match v {
        Value::Null => return Ok(None),
        Value::Array(a) => a,
        _ => return Err(bad("allowed_models must be a list of model names or null")),
    };
    if list.len() > MAX_MODELS {
        return Err(bad(format!(
            "allowed_models holds at most {MAX_MODELS} models"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for m in list {
        let name = model_name(m, "allowed_models[]")?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(Some(out))
}

fn custom(v: &Value) -> Result<Map<String, Value>, ApiError> {
    let obj = v
        .as_object()
        .ok_or_else(|| bad("custom must be a JSON object"))?;
    let size = serde_json::to_vec(obj).map_err(ApiError::internal)?.len();
    if size > MAX_CUSTOM_BYTES {
        return Err(bad(format!(
            "custom is {size} bytes as JSON; at most {MAX_CUSTOM_BYTES} are allowed"
        )));
    }
    Ok(obj.clone())
}

fn patched_limits(current: &Limits, v: &Value) -> Result<Limits, ApiError> {
    let obj: &Map<String, Value> = v
        .as_object()
        .ok_or_else(|| bad("limits must be an object"))?;
    let mut l = current.clone();
    for (field, v) in obj {
        match field.as_str() {
            "daily_cost_usd" => l.daily_cost_usd = money_limit(v, field)?,
            "monthly_cost_usd" => l.monthly_cost_usd = money_limit(v, field)?,
            "daily_tokens" => l.daily_tokens = token_limit(v, field)?,
            "monthly_tokens" => l.monthly_tokens = token_limit(v, field)?,
            other => {
                return Err(bad(format!(
                    "unknown field `limits.{}`",
                    crate::error::clip(other)
                )))
            }
        }
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::Plan;
    use serde_json::json;

    fn patch(v: Value) -> Result<Settings, ApiError> {
        Settings::default().patched(&v)
    }

    #[test]
    fn partial_patch_changes_only_what_it_names() {
        let s = patch(json!({"limits": {"daily_cost_usd": 5.5}})).unwrap();
        assert_eq!(
            s.limits.daily_cost_usd,
            Some(Nanousd::from_nanos(5_500_000_000))
        );
        assert_eq!(s.limits.monthly_cost_usd, None);
        assert_eq!(s.execution_mode, ExecutionMode::Hosted);
        let t = s
            .patched(&json!({"limits": {"monthly_tokens": 100}}))
            .unwrap();
        assert_eq!(
            t.limits.daily_cost_usd,
            Some(Nanousd::from_nanos(5_500_000_000)),
            "kept"
        );
        assert_eq!(t.limits.monthly_tokens, Some(100));
    }

    #[test]
    fn null_clears_a_limit() {
        let s = patch(json!({"limits": {"daily_tokens": 10}})).unwrap();
        let s = s
            .patched(&json!({"limits": {"daily_tokens": null}}))
            .unwrap();
        assert_eq!(s.limits.daily_tokens, None);
    }

    #[test]
    fn invalid_values_are_refused() {
        for v in [
            json!({"execution_mode": "local"}),
            json!({"execution_mode": null}),
            json!({"limits": {"daily_cost_usd": -1}}),
            json!({"limits": {"daily_cost_usd": "5"}}),
            json!({"limits": {"daily_cost_usd": 1e300}}),
            json!({"limits": {"daily_tokens": -5}}),
            json!({"limits": {"daily_tokens": 1.5}}),
            json!({"limits": {"hourly_tokens": 5}}),
            json!({"warn_at_percent": 0}),
            json!({"warn_at_percent": 101}),
            json!({"warn_at_percent": 50.5}),
            json!({"markup_percent": -1}),
            json!({"markup_percent": 1000.5}),
            json!({"allowed_models": ["a b"]}),
            json!({"allowed_models": "gpt-4o"}),
            json!({"version": 7}),
            json!({"provider_keys": {}}),
            json!({"surprise": 1}),
            json!([1, 2]),
        ] {
            assert!(patch(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn custom_is_replaced_whole_and_bounded() {
        let s = patch(json!({"custom": {"a": 1, "b": {"c": [true]}}})).unwrap();
        let s = s.patched(&json!({"custom": {"d": null}})).unwrap();
        assert_eq!(Value::Object(s.custom.clone()), json!({"d": null}));
        for v in [json!(null), json!([1]), json!("x"), json!(3)] {
            assert!(patch(json!({"custom": v})).is_err(), "{v}");
        }
        // {"k":"..."} is 8 bytes around the string.
        let at = |n: usize| json!({"custom": {"k": "x".repeat(n - 8)}});
        assert!(patch(at(MAX_CUSTOM_BYTES)).is_ok());
        assert!(patch(at(MAX_CUSTOM_BYTES + 1)).is_err());
    }

    #[test]
    fn default_model_must_be_allowed() {
        assert!(patch(json!({"allowed_models": ["claude-sonnet-4"]})).is_err());
        let s = patch(
            json!({"allowed_models": ["claude-sonnet-4"], "default_model": "claude-sonnet-4"}),
        )
        .unwrap();
        assert_eq!(
            s.allowed_models.as_deref(),
            Some(&["claude-sonnet-4".to_string()][..])
        );
        assert!(patch(json!({"allowed_models": null, "default_model": "anything"})).is_ok());
    }

    #[test]
    fn boundaries_are_accepted() {
        assert!(patch(json!({"warn_at_percent": 1})).is_ok());
        assert!(patch(json!({"warn_at_percent": 100})).is_ok());
        assert!(patch(json!({"markup_percent": 0})).is_ok());
        assert!(patch(json!({"markup_percent": 1000})).is_ok());
        assert!(patch(json!({"limits": {"daily_cost_usd": 0}})).is_ok());
    }

    #[test]
    fn templates_are_valid_and_plan_appropriate() {
        for (name, plan) in [
            ("trial", Plan::Basic),
            ("startup", Plan::Pro),
            ("enterprise", Plan::Enterprise),
        ] {
            let (s, p) = Settings::template(name).unwrap();
            s.validate().unwrap();
            assert_eq!(p, plan);
        }
        assert!(Settings::template("free").is_none());
    }

    #[test]
    fn stored_bodies_round_trip_exactly() {
        let s = patch(json!({"limits": {"daily_cost_usd": 0.000000001}, "markup_percent": 12.5}))
            .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains("\"daily_cost_usd\":0.000000001"), "{text}");
        let back: Settings = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let empty: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, Settings::default());
    }
}
