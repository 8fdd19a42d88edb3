//! A job as stored and shown, and a new job as a client sends it, checked field by field.
use crate::error::ApiError;
use crate::time::{parse_rfc3339, rfc3339, Micros};
use crate::usage::rollup::Totals;
use serde::Serialize;
use serde_json::{Map, Value};

pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;
pub const MAX_RESULT_BYTES: usize = 64 * 1024;
pub const MAX_ERROR_CHARS: usize = 4000;
pub const MAX_BATCH: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Queued,
    Running,
    Retrying,
    Succeeded,
    Dead,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::Running => "running",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Result<Status, ApiError> {
        Ok(match s {
            "queued" => Status::Queued,
            "running" => Status::Running,
            "retrying" => Status::Retrying,
            "succeeded" => Status::Succeeded,
            "dead" => Status::Dead,
            "cancelled" => Status::Cancelled,
            _ => {
                return Err(ApiError::InvalidRequest(
                    "status must be one of queued, running, retrying, succeeded, dead, cancelled"
                        .into(),
                ))
            }
        })
    }

    pub const ALL: [Status; 6] = [
        Status::Queued,
        Status::Running,
        Status::Retrying,
        Status::Succeeded,
        Status::Dead,
        Status::Cancelled,
    ];
}

/// A stored job. `payload` and `result` are kept as the JSON text they were stored as.
#[derive(Clone, Debug, Serialize)]
pub struct Job {
    pub id: String,
    pub tenant_id: String,
    pub queue: String,
    pub kind: Option<String>,
    pub payload: Box<serde_json::value::RawValue>,
    pub priority: i64,
    pub status: Status,
    pub attempts: i64,
    pub max_attempts: i64,
    #[serde(serialize_with = "ts")]
    pub run_at: Micros,
    #[serde(serialize_with = "opt_ts")]
    pub lease_expires_at: Option<Micros>,
    pub idempotency_key: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<Box<serde_json::value::RawValue>>,
    #[serde(serialize_with = "ts")]
    pub created_at: Micros,
    #[serde(serialize_with = "ts")]
    pub updated_at: Micros,
    #[serde(skip)]
    pub seq: i64,
    #[serde(skip)]
    pub lease_seconds: i64,
    /// The totals of the usage events that name the job (`job_id`), filled in by reads.
    #[serde(skip)]
    pub usage: Totals,
}

fn ts<S: serde::Serializer>(v: &Micros, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*v))
}

fn opt_ts<S: serde::Serializer>(v: &Option<Micros>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(&rfc3339(*v)),
        None => s.serialize_none(),
    }
}

/// The job `insert` just stored, without reading it back.
pub fn created(
    seq: i64,
    id: String,
    tenant_id: String,
    j: NewJob,
    run_at: Micros,
    now: Micros,
) -> Job {
    Job {
        id,
        tenant_id,
        queue: j.queue,
        kind: j.kind,
        payload: j.payload,
        priority: j.priority,
        status: Status::Queued,
        attempts: 0,
        max_attempts: j.max_attempts,
        run_at,
        lease_expires_at: None,
        idempotency_key: j.idempotency_key,
        last_error: None,
        result: None,
        created_at: now,
        updated_at: now,
        seq,
        lease_seconds: j.lease_seconds,
        usage: Totals::default(),
    }
}

/// A job to enqueue, checked.
#[derive(Clone, Debug)]
pub struct NewJob {
    pub queue: String,
    pub kind: Option<String>,
    pub payload: Box<serde_json::value::RawValue>,
    pub priority: i64,
    pub idempotency_key: Option<String>,
    pub run_at: Option<Micros>,
    pub max_attempts: i64,
    pub lease_seconds: i64,
}

/// A queue name, kind or idempotency key: 1 to 255 characters, no control characters.
pub fn is_name(s: &str) -> bool {
    let n = s.chars().count();
    (1..=255).contains(&n) && !s.chars().any(char::is_control)
}

fn int_in(v: &Value, field: &str, lo: i64, hi: i64) -> Result<i64, String> {
    v.as_i64()
        .filter(|n| (lo..=hi).contains(n))
        .ok_or_else(|| format!("{field} must be a whole number from {lo} to {hi}"))
}

fn name(v: Value, field: &str) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if is_name(&s) => Ok(Some(s)),
        _ => Err(format!(
            "{field} must be 1 to 255 characters without control characters"
        )),
    }
}

impl NewJob {
    pub fn parse(v: Value, now: Micros) -> Result<NewJob, String> {
        let Value::Object(fields) = v else {
            return Err("a job must be a JSON object".into());
        };
        let mut job = NewJob {
            queue: "default".into(),
            kind: None,
            payload: Default::default(),
            priority: 5,
            idempotency_key: None,
            run_at: None,
            max_attempts: 25,
            lease_seconds: 30,
        };
        let mut payload = None;
        for (k, v) in fields {
            match k.as_str() {
                "queue" => job.queue = name(v, "queue")?.unwrap_or_else(|| "default".into()),
                "kind" => job.kind = name(v, "kind")?,
                "payload" => match v {
                    Value::Object(_) => {
                        payload =
                            Some(serde_json::value::to_raw_value(&v).map_err(|e| e.to_string())?)
                    }
                    _ => return Err("payload must be a JSON object".into()),
                },
                "priority" => job.priority = int_in(&v, "priority", 0, 9)?,
                "idempotency_key" => job.idempotency_key = name(v, "idempotency_key")?,
                "run_at" => {
                    job.run_at = match v {
                        Value::Null => None,
                        Value::String(s) => {
                            let t = parse_rfc3339(&s).map_err(|e| format!("run_at: {e}"))?;
                            // A year ahead at most: a typo in the year is caught, not stored.
                            if t > now + 366 * 86_400_000_000 {
                                return Err("run_at must be at most a year ahead".into());
                            }
                            Some(t)
                        }
                        _ => return Err("run_at must be an RFC 3339 timestamp".into()),
                    }
                }
                "max_attempts" => job.max_attempts = int_in(&v, "max_attempts", 1, 100)?,
                "lease_seconds" => job.lease_seconds = int_in(&v, "lease_seconds", 5, 3600)?,
                other => {
                    return Err(format!(
                        "unknown field `{}`",
                        crate::error::clip(other)
                            .chars()
                            .take(64)
                            .collect::<String>()
                    ))
                }
            }
        }
        job.payload = payload.ok_or("payload is required: a JSON object")?;
        if job.payload.get().len() > MAX_PAYLOAD_BYTES {
            return Err("payload may hold at most 256 KiB as compact JSON".into());
        }
        Ok(job)
    }

    /// One job (`{...}`) or a batch (`{"jobs": [...]}` of 1 to 1000); `true` for a batch.
    pub fn parse_body(body: Value, now: Micros) -> Result<(Vec<NewJob>, bool), ApiError> {
        let bad = ApiError::InvalidRequest;
        let Value::Object(mut obj) = body else {
            return Err(bad("the body must be a JSON object".into()));
        };
        let Some(list) = obj.remove("jobs") else {
            return Ok((
                vec![NewJob::parse(Value::Object(obj), now).map_err(bad)?],
                false,
            ));
        };
        if !obj.is_empty() {
            return Err(bad("a batch holds only `jobs`".into()));
        }
        let Value::Array(list) = list else {
            return Err(bad("jobs must be an array".into()));
        };
        if list.is_empty() || list.len() > MAX_BATCH {
            return Err(bad(format!("jobs must hold 1 to {MAX_BATCH} jobs")));
        }
        let jobs = list
            .into_iter()
            .enumerate()
            .map(|(i, v)| NewJob::parse(v, now).map_err(|m| bad(format!("jobs[{i}]: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((jobs, true))
    }
}

/// A JSON object of at most `max` bytes as compact text, for a result.
pub fn object_text(v: Value, field: &str, max: usize) -> Result<String, ApiError> {
    if !matches!(v, Value::Object(_)) {
        return Err(ApiError::InvalidRequest(format!(
            "{field} must be a JSON object"
        )));
    }
    let text = v.to_string();
    if text.len() > max {
        return Err(ApiError::InvalidRequest(format!(
            "{field} may hold at most {} KiB as compact JSON",
            max / 1024
        )));
    }
    Ok(text)
}

/// `attempts^4` seconds plus 0 to 10%, at most a day: the wait before a failed job runs again.
pub fn backoff(attempts: i64) -> Micros {
    let base = (attempts.max(1) as f64).powi(4).min(86_400.0);
    let jittered = base * (1.0 + rand::random_range(0.0..0.1));
    (jittered.min(86_400.0) * 1_000_000.0) as Micros
}

/// Reads a JSON object body's fields into a map, refusing anything else.
pub fn fields(body: Value) -> Result<Map<String, Value>, ApiError> {
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(ApiError::InvalidRequest(
            "the body must be a JSON object".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_takes_the_contracts_defaults_and_bounds() {
        let j = NewJob::parse(json!({"payload": {}}), 0).unwrap();
        assert_eq!(
            (
                j.queue.as_str(),
                j.priority,
                j.max_attempts,
                j.lease_seconds
            ),
            ("default", 5, 25, 30)
        );
        for bad in [
            json!({}),
            json!({"payload": []}),
            json!({"payload": {}, "priority": 10}),
            json!({"payload": {}, "priority": -1}),
            json!({"payload": {}, "max_attempts": 0}),
            json!({"payload": {}, "max_attempts": 101}),
            json!({"payload": {}, "lease_seconds": 4}),
            json!({"payload": {}, "lease_seconds": 3601}),
            json!({"payload": {}, "queue": ""}),
            json!({"payload": {}, "queue": "a\nb"}),
            json!({"payload": {}, "run_at": "tomorrow"}),
            json!({"payload": {}, "run_at": "2999-01-01T00:00:00Z"}),
            json!({"payload": {}, "surprise": 1}),
            json!({"payload": {"x": "y".repeat(MAX_PAYLOAD_BYTES)}}),
        ] {
            assert!(NewJob::parse(bad.clone(), 0).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_is_attempts_to_the_fourth_plus_up_to_ten_percent_capped_at_a_day() {
        for a in 1..=20 {
            let b = backoff(a);
            let base = ((a as f64).powi(4).min(86_400.0) * 1e6) as i64;
            assert!(b >= base && b <= (base as f64 * 1.1) as i64 + 1, "{a}: {b}");
            assert!(b <= 86_400_000_000);
        }
    }
}
