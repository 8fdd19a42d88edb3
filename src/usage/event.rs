//! A usage event as sent, validated once at the edge. A batch is all-or-nothing: the first bad
//! event rejects the request, naming its index.
use super::model::ModelName;
use super::money::Nanousd;
use crate::error::ApiError;
use crate::time::{parse_rfc3339, Micros};
use serde_json::Value;

pub const MAX_BATCH: usize = 1000;
const MAX_TOKENS: u64 = 1_000_000_000_000;
/// The contract's bound on a cost sent with an event: a million USD.
const MAX_COST: Nanousd = Nanousd::from_nanos(1_000_000 * super::money::NANOS_PER_USD);
const MAX_METADATA: usize = 16 * 1024;
/// Clocks drift; an event may carry a time up to a day ahead of ours, not more.
const MAX_FUTURE: Micros = 24 * 3600 * 1_000_000;

#[derive(Clone, Debug)]
pub struct UsageEvent {
    pub event_id: Option<String>,
    pub ts: Micros,
    pub model: ModelName,
    /// Every prompt token, cached or not (OpenAI's convention).
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Of `input_tokens`, those read from and those written to the provider's prompt cache.
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Of `output_tokens`, those spent on reasoning.
    pub reasoning_tokens: u64,
    pub cost: Option<Nanousd>,
    pub pipeline_stage: Option<String>,
    pub agent_name: Option<String>,
    pub job_id: Option<String>,
    pub user_id: Option<String>,
    pub duration_ms: Option<u64>,
    pub metadata: Option<String>,
}

/// Whether `s` may be a label (`event_id`, `agent_name`, ...): 1 to 255 printable characters.
/// The gateway takes its labels from headers by the same rule.
pub fn is_label(s: &str) -> bool {
    let n = s.chars().count();
    (1..=255).contains(&n) && !s.chars().any(char::is_control)
}

/// A label, checked by `is_label`. Takes the value so the string is moved, not copied.
fn label(v: Value, field: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            if !is_label(&s) {
                Err(format!("{field} must be 1 to 255 printable characters"))
            } else {
                Ok(Some(s))
            }
        }
        _ => Err(format!("{field} must be a string")),
    }
}

fn count(v: &Value, field: &str, max: u64) -> Result<u64, String> {
    match v.as_u64() {
        Some(n) if n <= max => Ok(n),
        _ => Err(format!("{field} must be a whole number from 0 to {max}")),
    }
}

impl UsageEvent {
    pub fn parse(v: Value, now: Micros) -> Result<UsageEvent, String> {
        let Value::Object(obj) = v else {
            return Err("an event must be a JSON object".into());
        };
        let mut e = UsageEvent {
            event_id: None,
            ts: now,
            // Replaced by the required `model` field below; an event without one is refused.
            model: ModelName::missing(),
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            cost: None,
            pipeline_stage: None,
            agent_name: None,
            job_id: None,
            user_id: None,
            duration_ms: None,
            metadata: None,
        };
        let (mut has_model, mut has_in, mut has_out) = (false, false, false);
        for (k, v) in obj {
            let k = k.as_str();
            match k {
                "event_id" => e.event_id = label(v, k)?,
                "timestamp" => {
                    let s = v.as_str().ok_or("timestamp must be an RFC 3339 string")?;
                    e.ts = parse_rfc3339(s)?;
                    if e.ts < 0 || e.ts > now + MAX_FUTURE {
                        return Err("timestamp must be after 1970 and at most a day ahead".into());
                    }
                }
                "model" => {
                    let m = label(v, k)?.ok_or("model is required")?;
                    if m.chars().any(char::is_whitespace) {
                        return Err("model may not contain spaces".into());
                    }
                    e.model = ModelName::parse(m)?;
                    has_model = true;
                }
                "input_tokens" => {
                    e.input_tokens = count(&v, k, MAX_TOKENS)?;
                    has_in = true;
                }
                "output_tokens" => {
                    e.output_tokens = count(&v, k, MAX_TOKENS)?;
                    has_out = true;
                }
                "cache_read_tokens" => e.cache_read_tokens = count(&v, k, MAX_TOKENS)?,
                "cache_write_tokens" => e.cache_write_tokens = count(&v, k, MAX_TOKENS)?,
                "reasoning_tokens" => e.reasoning_tokens = count(&v, k, MAX_TOKENS)?,
                "cost_usd" => {
                    e.cost = match v {
                        Value::Null => None,
                        Value::Number(n) => Some(
                            Nanousd::from_json_number_up_to(&n, MAX_COST)
                                .map_err(|err| format!("cost_usd {err} (at most 1000000)"))?,
                        ),
                        _ => return Err("cost_usd must be a number".into()),
                    }
                }
                "pipeline_stage" => e.pipeline_stage = label(v, k)?,
                "agent_name" => e.agent_name = label(v, k)?,
                "job_id" => e.job_id = label(v, k)?,
                "user_id" => e.user_id = label(v, k)?,
                "duration_ms" => {
                    e.duration_ms = match v {
                        Value::Null => None,
                        v => Some(count(&v, k, 10_000_000_000)?),
                    }
                }
                "metadata" => {
                    e.metadata = match v {
                        Value::Null => None,
                        Value::Object(_) => {
                            let text = v.to_string();
                            if text.len() > MAX_METADATA {
                                return Err(format!(
                                    "metadata may hold at most {MAX_METADATA} bytes"
                                ));
                            }
                            Some(text)
                        }
                        _ => return Err("metadata must be an object".into()),
                    }
                }
                other => return Err(format!("unknown field `{}`", crate::error::clip(other))),
            }
        }
        match (has_model, has_in, has_out) {
            (false, _, _) => Err("model is required".into()),
            (_, false, _) => Err("input_tokens is required".into()),
            (_, _, false) => Err("output_tokens is required".into()),
            _ => e.check_counts().map(|()| e),
        }
    }

    /// The counts the cost formula reads.
    pub fn tokens(&self) -> super::pricing::Tokens {
        super::pricing::Tokens {
            input: self.input_tokens,
            cache_read: self.cache_read_tokens,
            cache_write: self.cache_write_tokens,
            output: self.output_tokens,
        }
    }

    /// The token counts' bounds and how they nest: the cached tokens are part of the input,
    /// the reasoning tokens part of the output. `parse` checks this; so does pricing, for an
    /// event built in code rather than parsed.
    pub fn check_counts(&self) -> Result<(), String> {
        for (field, n) in [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
            ("reasoning_tokens", self.reasoning_tokens),
        ] {
            if n > MAX_TOKENS {
                return Err(format!(
                    "{field} must be a whole number from 0 to {MAX_TOKENS}"
                ));
            }
        }
        // Each is at most 10^12, so the sum cannot overflow.
        if self.cache_read_tokens + self.cache_write_tokens > self.input_tokens {
            return Err(format!(
                "cache_read_tokens + cache_write_tokens ({} + {}) must be at most input_tokens ({}): \
                 input_tokens counts every prompt token, cached or not",
                self.cache_read_tokens, self.cache_write_tokens, self.input_tokens
            ));
        }
        if self.reasoning_tokens > self.output_tokens {
            return Err(format!(
                "reasoning_tokens ({}) must be at most output_tokens ({})",
                self.reasoning_tokens, self.output_tokens
            ));
        }
        Ok(())
    }

    /// One event, or `{"events": [...]}` of 1 to 1000.
    pub fn parse_body(body: Value, now: Micros) -> Result<Vec<UsageEvent>, ApiError> {
        let bad = ApiError::InvalidRequest;
        let Value::Object(mut obj) = body else {
            return Err(bad(
                "the body must be an event or {\"events\": [...]}".into()
            ));
        };
        let Some(list) = obj.remove("events") else {
            return UsageEvent::parse(Value::Object(obj), now)
                .map(|e| vec![e])
                .map_err(bad);
        };
        if !obj.is_empty() {
            return Err(bad("a batch body holds only `events`".into()));
        }
        let Value::Array(list) = list else {
            return Err(bad("events must be a list".into()));
        };
        if list.is_empty() || list.len() > MAX_BATCH {
            return Err(bad(format!(
                "a batch holds 1 to {MAX_BATCH} events, not {}",
                list.len()
            )));
        }
        list.into_iter()
            .enumerate()
            .map(|(i, v)| UsageEvent::parse(v, now).map_err(|e| bad(format!("events[{i}]: {e}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Micros = 1_790_000_000_000_000;

    fn one(v: Value) -> Result<UsageEvent, String> {
        UsageEvent::parse(v, NOW)
    }

    #[test]
    fn a_minimal_event_gets_defaults() {
        let e = one(json!({"model": "gpt-4o", "input_tokens": 10, "output_tokens": 2})).unwrap();
        assert_eq!((e.ts, e.cost, e.event_id), (NOW, None, None));
    }

    #[test]
    fn the_bounds_themselves_are_accepted() {
        let e = one(json!({"model": "m", "input_tokens": 1_000_000_000_000u64,
                           "output_tokens": 1_000_000_000_000u64, "cost_usd": 1000000}))
        .unwrap();
        assert_eq!(e.cost, Some(MAX_COST));
        assert_eq!(e.input_tokens, MAX_TOKENS);
    }

    #[test]
    fn bad_events_are_named() {
        for v in [
            json!({"input_tokens": 1, "output_tokens": 1}),
            json!({"model": "m", "output_tokens": 1}),
            json!({"model": "m", "input_tokens": -1, "output_tokens": 1}),
            json!({"model": "m", "input_tokens": 1.5, "output_tokens": 1}),
            json!({"model": "m", "input_tokens": 1e20, "output_tokens": 1}),
            json!({"model": "m", "input_tokens": "1", "output_tokens": 1}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": -0.1}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 1e300}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 1000000.000000001}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "cost_usd": 1000000000}),
            json!({"model": "m", "input_tokens": 1_000_000_000_001u64, "output_tokens": 1}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "timestamp": "now"}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "timestamp": "2999-01-01T00:00:00Z"}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "event_id": ""}),
            json!({"model": "a b", "input_tokens": 1, "output_tokens": 1}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "metadata": [1]}),
            json!({"model": "m", "input_tokens": 1, "output_tokens": 1, "colour": "red"}),
        ] {
            assert!(one(v.clone()).is_err(), "{v}");
        }
    }

    #[test]
    fn cache_and_reasoning_tokens_default_to_zero_and_nest_in_their_totals() {
        let e = one(json!({"model": "m", "input_tokens": 10, "output_tokens": 2})).unwrap();
        assert_eq!(
            (
                e.cache_read_tokens,
                e.cache_write_tokens,
                e.reasoning_tokens
            ),
            (0, 0, 0)
        );
        let e = one(json!({"model": "m", "input_tokens": 10, "output_tokens": 2,
                           "cache_read_tokens": 6, "cache_write_tokens": 4, "reasoning_tokens": 2}))
        .unwrap();
        assert_eq!(
            (
                e.cache_read_tokens,
                e.cache_write_tokens,
                e.reasoning_tokens
            ),
            (6, 4, 2)
        );
        for (v, field) in [
            (
                json!({"cache_read_tokens": 7, "cache_write_tokens": 4}),
                "cache_read_tokens + cache_write_tokens",
            ),
            (
                json!({"cache_read_tokens": 11}),
                "cache_read_tokens + cache_write_tokens",
            ),
            (json!({"reasoning_tokens": 3}), "reasoning_tokens"),
            (json!({"cache_read_tokens": -1}), "cache_read_tokens"),
            (json!({"cache_write_tokens": 1.5}), "cache_write_tokens"),
            (
                json!({"reasoning_tokens": 1_000_000_000_001u64}),
                "reasoning_tokens",
            ),
            (json!({"cache_read_tokens": "1"}), "cache_read_tokens"),
        ] {
            let mut body = json!({"model": "m", "input_tokens": 10, "output_tokens": 2});
            for (k, x) in v.as_object().unwrap() {
                body[k] = x.clone();
            }
            let err = one(body).unwrap_err();
            assert!(err.starts_with(field), "{v}: {err}");
        }
    }

    #[test]
    fn a_batch_names_the_bad_index_and_keeps_its_bounds() {
        let good = json!({"model": "m", "input_tokens": 1, "output_tokens": 1});
        let body = json!({"events": [good, good, {"model": "m"}]});
        let err = UsageEvent::parse_body(body, NOW).unwrap_err().to_string();
        assert!(err.starts_with("events[2]"), "{err}");
        assert!(UsageEvent::parse_body(json!({"events": []}), NOW).is_err());
        let many: Vec<Value> = (0..1001).map(|_| good.clone()).collect();
        assert!(UsageEvent::parse_body(json!({"events": many}), NOW).is_err());
        let ok: Vec<Value> = (0..1000).map(|_| good.clone()).collect();
        assert_eq!(
            UsageEvent::parse_body(json!({"events": ok}), NOW)
                .unwrap()
                .len(),
            1000
        );
    }
}
