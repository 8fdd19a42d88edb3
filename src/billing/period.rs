//! Billing periods: UTC calendar months, named `YYYY-MM`, and the rule that moves a statement from
//! `open` (the month runs) to `draft` (the grace period after it) to `final`.
use crate::error::ApiError;
use crate::time::Micros;
use crate::usage::rollup::{day_of, month_label, month_span, DAY_MICROS};
use chrono::NaiveDate;
use serde::Serialize;

/// A UTC month, held as its first day (days since the epoch, as the rollups count them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    first_day: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Draft,
    Final,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Draft => "draft",
            Status::Final => "final",
        }
    }
}

impl Period {
    /// `YYYY-MM`, exactly (four-digit year from 1970, two-digit month).
    pub fn parse(text: &str) -> Result<Period, ApiError> {
        let bad = || {
            ApiError::InvalidRequest(format!(
                "period must be a month as YYYY-MM (such as 2026-11), not `{}`",
                crate::error::clip(text)
                    .chars()
                    .take(32)
                    .collect::<String>()
            ))
        };
        let b = text.as_bytes();
        if b.len() != 7 || b[4] != b'-' || !text.chars().all(|c| c.is_ascii_digit() || c == '-') {
            return Err(bad());
        }
        let year: i32 = text[..4].parse().map_err(|_| bad())?;
        let month: u32 = text[5..].parse().map_err(|_| bad())?;
        if year < 1970 {
            return Err(bad());
        }
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(Period {
            first_day: first.signed_duration_since(NaiveDate::default()).num_days(),
        })
    }

    pub fn of_day(day: i64) -> Period {
        Period {
            first_day: month_span(day).0,
        }
    }

    pub fn of(ts: Micros) -> Period {
        Period::of_day(day_of(ts))
    }

    /// The rollup days it covers: `[first, next)`.
    pub fn days(self) -> (i64, i64) {
        month_span(self.first_day)
    }

    pub fn next(self) -> Period {
        Period {
            first_day: self.days().1,
        }
    }

    pub fn label(self) -> String {
        month_label(self.first_day)
    }

    /// Its first instant.
    pub fn from(self) -> Micros {
        self.first_day * DAY_MICROS
    }

    /// The first instant after it.
    pub fn to(self) -> Micros {
        self.days().1 * DAY_MICROS
    }

    /// When its statement becomes final: its end plus the grace period.
    pub fn final_at(self, grace: Micros) -> Micros {
        self.to().saturating_add(grace)
    }

    pub fn status(self, now: Micros, grace: Micros) -> Status {
        if now < self.to() {
            Status::Open
        } else if now < self.final_at(grace) {
            Status::Draft
        } else {
            Status::Final
        }
    }
}

/// Events timestamped before this instant fall in a final period: the first instant of the
/// month holding `now - grace`, the earliest month whose statement is not yet final.
pub fn closed_before(now: Micros, grace: Micros) -> Micros {
    Period::of(now.saturating_sub(grace)).from()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn at(s: &str) -> Micros {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn periods_parse_as_utc_months_and_nothing_else() {
        let p = Period::parse("2026-11").unwrap();
        assert_eq!(p.label(), "2026-11");
        assert_eq!(p.from(), at("2026-11-01T00:00:00Z"));
        assert_eq!(p.to(), at("2026-12-01T00:00:00Z"));
        assert_eq!(Period::parse("2026-12").unwrap().next().label(), "2027-01");
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "1969-12",
            "+202-11",
            "2026-1a",
            "２０２６-11",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_statement_is_open_then_draft_through_the_grace_then_final() {
        let p = Period::parse("2026-10").unwrap();
        let grace = 24 * 3600 * 1_000_000;
        assert_eq!(
            p.status(at("2026-10-31T23:59:59.999999Z"), grace),
            Status::Open
        );
        assert_eq!(p.status(at("2026-11-01T00:00:00Z"), grace), Status::Draft);
        assert_eq!(
            p.status(at("2026-11-01T23:59:59.999999Z"), grace),
            Status::Draft
        );
        assert_eq!(p.status(at("2026-11-02T00:00:00Z"), grace), Status::Final);
        // The ingest boundary agrees with the statuses at every one of those instants.
        assert_eq!(
            closed_before(at("2026-11-01T23:59:59.999999Z"), grace),
            p.from()
        );
        assert_eq!(closed_before(at("2026-11-02T00:00:00Z"), grace), p.to());
        assert_eq!(Period::of(at("2026-10-31T23:59:59.999999Z")), p);
        assert_eq!(Period::of(at("2026-11-01T00:00:00Z")), p.next());
    }
}
