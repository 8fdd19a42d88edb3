//! Events an application posts (`POST /api/events`): checked once here, then recorded like
//! tenantry's own. `security` and `billing` stay tenantry's, so an application cannot forge an
//! alert an operator trusts (a revoked key, a limit crossed).
use super::{NewEvent, Origin, Severity};
use crate::error::ApiError;
use crate::tenancy::TenantId;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

/// The categories an application may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppCategory {
    UserInteraction,
    AiOperations,
    DataSync,
    System,
}

impl AppCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            AppCategory::UserInteraction => "user.interaction",
            AppCategory::AiOperations => "ai.operations",
            AppCategory::DataSync => "data.sync",
            AppCategory::System => "system",
        }
    }

    pub fn parse(s: &str) -> Result<AppCategory, ApiError> {
        Ok(match s {
            "user.interaction" => AppCategory::UserInteraction,
            "ai.operations" => AppCategory::AiOperations,
            "data.sync" => AppCategory::DataSync,
            "system" => AppCategory::System,
            "security" | "billing" => {
                return Err(invalid(format!(
                    "category `{s}` is recorded by tenantry only; use user.interaction, \
                     ai.operations, data.sync or system"
                )))
            }
            _ => {
                return Err(invalid(
                    "category must be user.interaction, ai.operations, data.sync or system".into(),
                ))
            }
        })
    }
}

pub const MAX_EVENT_TYPE: usize = 100;
/// A message is a line for a person (a list row, a chat alert); details belong in `data`.
pub const MAX_MESSAGE: usize = 1000;
/// `data` as compact JSON, in bytes.
pub const MAX_DATA: usize = 16 * 1024;

/// The body of `POST /api/events`, as sent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppEvent {
    category: String,
    event_type: String,
    severity: String,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

fn invalid(message: String) -> ApiError {
    ApiError::InvalidRequest(message)
}

impl AppEvent {
    /// Reads the body's fields (each a string; `data` any JSON; nothing else).
    pub fn from_body(body: Value) -> Result<AppEvent, ApiError> {
        serde_json::from_value(body).map_err(|e| {
            invalid(format!(
                "invalid event: {}",
                crate::error::redact_serde_message(&e.to_string())
            ))
        })
    }

    /// Checks every field; the event to record for `tenant`, or 400 naming the first bad one.
    pub fn parse(self, tenant: TenantId) -> Result<NewEvent, ApiError> {
        let category = AppCategory::parse(&self.category)?;
        let t = &self.event_type;
        let allowed = |ch: char| matches!(ch, 'a'..='z' | '0'..='9' | '_' | '.');
        if t.is_empty() || t.len() > MAX_EVENT_TYPE || !t.chars().all(allowed) {
            return Err(invalid(format!(
                "event_type must be 1 to {MAX_EVENT_TYPE} characters of a-z, 0-9, _ and ."
            )));
        }
        let severity = Severity::parse(&self.severity)?;
        let m = &self.message;
        if m.trim().is_empty() || m.chars().count() > MAX_MESSAGE || m.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "message must be 1 to {MAX_MESSAGE} printable characters (no control characters; \
                 put details in data)"
            )));
        }
        let data = match self.data {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(v @ Value::Object(_)) if v.to_string().len() <= MAX_DATA => v,
            Some(Value::Object(_)) => {
                return Err(invalid(format!(
                    "data must be at most {MAX_DATA} bytes as compact JSON"
                )))
            }
            Some(_) => return Err(invalid("data must be a JSON object".into())),
        };
        Ok(NewEvent {
            id: Uuid::new_v4(),
            origin: Origin::Application {
                category,
                event_type: self.event_type,
                severity,
            },
            tenant_id: tenant,
            message: self.message,
            data,
            once_key: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewEvent, ApiError> {
        AppEvent::from_body(v)?.parse(crate::tenancy::DEFAULT_TENANT_ID)
    }

    fn base() -> Value {
        json!({"category": "data.sync", "event_type": "crm.import_done", "severity": "info",
               "message": "imported 12 contacts"})
    }

    #[test]
    fn a_valid_event_keeps_its_fields_and_data_defaults_to_an_empty_object() {
        let e = parse(base()).unwrap();
        assert_eq!(
            (e.category(), e.event_type(), e.severity()),
            ("data.sync", "crm.import_done", Severity::Info)
        );
        assert_eq!(e.data, json!({}));
        assert!(e.once_key.is_none());
    }

    #[test]
    fn each_bad_field_is_refused() {
        let long_type = "a".repeat(MAX_EVENT_TYPE + 1);
        let long_message = "m".repeat(MAX_MESSAGE + 1);
        let big = json!({"blob": "x".repeat(MAX_DATA)});
        for (field, value) in [
            ("category", json!("security")),
            ("category", json!("billing")),
            ("category", json!("api.lifecycle")),
            ("event_type", json!("")),
            ("event_type", json!("Crm.Import")),
            ("event_type", json!("crm-import")),
            ("event_type", json!(long_type)),
            ("severity", json!("fatal")),
            ("message", json!("")),
            ("message", json!("   ")),
            ("message", json!("two\nlines")),
            ("message", json!(long_message)),
            ("data", json!([1, 2])),
            ("data", json!("text")),
            ("data", big),
            ("category", json!(5)),
            ("unknown", json!("x")),
        ] {
            let mut v = base();
            v[field] = value;
            assert!(parse(v).is_err(), "{field} accepted");
        }
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let mut v = base();
        v["event_type"] = json!("a".repeat(MAX_EVENT_TYPE));
        v["message"] = json!("é".repeat(MAX_MESSAGE));
        // {"b":"..."} is 8 bytes around the string.
        v["data"] = json!({"b": "x".repeat(MAX_DATA - 8)});
        assert!(parse(v).is_ok());
    }
}
