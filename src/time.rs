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

/// As `rfc3339`, appended to `out` without going through chrono's formatter (the CSV export
/// writes two per event): the same text, fractions of 0, 3 or 6 digits as `AutoSi` gives them.
pub fn write_rfc3339(us: Micros, out: &mut Vec<u8>) {
    use chrono::{Datelike, Timelike};
    let t = DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default();
    if !(0..=9999).contains(&t.year()) {
        out.extend_from_slice(rfc3339(us).as_bytes());
        return;
    }
    // `YYYY-MM-DDTHH:MM:SS.ffffff`, then cut to the fraction's length and closed with `Z`.
    let mut b = *b"0000-00-00T00:00:00.000000";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for d in b[at..at + width].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, t.year() as u32);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, t.second());
    let len = match us.rem_euclid(1_000_000) {
        0 => 19,
        m if m % 1000 == 0 => {
            put(20, 3, (m / 1000) as u32);
            23
        }
        m => {
            put(20, 6, m as u32);
            26
        }
    };
    out.extend_from_slice(&b[..len]);
    out.push(b'Z');
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
    fn write_rfc3339_writes_what_rfc3339_writes() {
        for us in [
            0,
            1,
            999,
            1_000,
            1_500_000,
            1_000_000,
            -1,
            -1_000_000,
            1_798_761_599_999_999,
            1_764_460_800_123_000,
            253_402_300_799_999_999,
            253_402_300_800_000_000,
            -62_167_219_200_000_001,
        ] {
            let mut out = Vec::new();
            write_rfc3339(us, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), rfc3339(us), "{us}");
        }
    }

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
