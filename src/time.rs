//! Timestamps are stored as integer microseconds since the Unix epoch (UTC) and shown as RFC 3339.
use chrono::{DateTime, SecondsFormat, Utc};

pub type Micros = i64;

pub fn to_micros(t: DateTime<Utc>) -> Micros {
    t.timestamp_micros()
}

pub fn rfc3339(us: Micros) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses an RFC 3339 timestamp with an explicit offset, normalised to UTC.
pub fn parse_rfc3339(s: &str) -> Result<Micros, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
        .map_err(|_| format!("`{}` is not an RFC 3339 timestamp", crate::error::clip(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_rfc3339() {
        let us = parse_rfc3339("2026-11-22T16:00:00Z").unwrap();
        assert_eq!(rfc3339(us), "2026-11-22T16:00:00Z");
        let us = parse_rfc3339("2026-11-22T17:00:00.5+01:00").unwrap();
        assert_eq!(rfc3339(us), "2026-11-22T16:00:00.500Z");
    }

    #[test]
    fn rejects_timestamps_without_offset() {
        assert!(parse_rfc3339("2026-11-22 16:00:00").is_err());
        assert!(parse_rfc3339("yesterday").is_err());
    }
}
