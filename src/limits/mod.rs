//! Soft usage limits: the status of each limit a tenant has set (ok, warning at
//! `warn_at_percent`, exceeded at 100%) over its UTC day and month. Pure: the caller supplies
//! the window totals. Limits never refuse an event; crossings are recorded as events.
pub mod rate;
pub mod shared;

use crate::settings::Settings;
use crate::usage::money::Nanousd;
use crate::usage::rollup::Totals;
use serde_json::{json, Number, Value};
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Exceeded,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Exceeded => "exceeded",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Day,
    Month,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub limit: &'static str,
    pub window: Window,
    /// Cost limits count nano-USD of estimated cost; token limits count input plus output tokens.
    pub money: bool,
    pub used: i64,
    pub max: i64,
    /// Hundredths of a percent, rounded down.
    pub percent_x100: i64,
    pub level: Level,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub level: Level,
    pub checks: Vec<Check>,
}

fn check(limit: &'static str, window: Window, money: bool, used: i64, max: i64, warn: u8) -> Check {
    let (used128, max128) = (i128::from(used), i128::from(max));
    let percent_x100 = if max == 0 {
        if used > 0 {
            10_000
        } else {
            0
        }
    } else {
        (used128 * 10_000 / max128).min(i128::from(i64::MAX)) as i64
    };
    let level = if (max == 0 && used > 0) || (max > 0 && used128 >= max128) {
        Level::Exceeded
    } else if max > 0 && used128 * 100 >= max128 * i128::from(warn) {
        Level::Warning
    } else {
        Level::Ok
    };
    Check {
        limit,
        window,
        money,
        used,
        max,
        percent_x100,
        level,
    }
}

/// The status of every limit that is set, from the day's and the month's totals.
pub fn evaluate(s: &Settings, today: &Totals, month: &Totals) -> Status {
    let l = &s.limits;
    let w = s.warn_at_percent;
    let mut checks = Vec::new();
    if let Some(max) = l.daily_cost_usd {
        checks.push(check(
            "daily_cost_usd",
            Window::Day,
            true,
            today.estimated.nanos(),
            max.nanos(),
            w,
        ));
    }
    if let Some(max) = l.monthly_cost_usd {
        checks.push(check(
            "monthly_cost_usd",
            Window::Month,
            true,
            month.estimated.nanos(),
            max.nanos(),
            w,
        ));
    }
    let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    if let Some(max) = l.daily_tokens {
        checks.push(check(
            "daily_tokens",
            Window::Day,
            false,
            today.tokens(),
            tokens(max),
            w,
        ));
    }
    if let Some(max) = l.monthly_tokens {
        checks.push(check(
            "monthly_tokens",
            Window::Month,
            false,
            month.tokens(),
            tokens(max),
            w,
        ));
    }
    let level = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    Status { level, checks }
}

fn amount(money: bool, v: i64) -> Value {
    if money {
        json!(Nanousd::from_nanos(v))
    } else {
        json!(v)
    }
}

impl Check {
    pub fn percent(&self) -> Number {
        let text = format!("{}.{:02}", self.percent_x100 / 100, self.percent_x100 % 100);
        let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
        Number::from_str(&text).expect("a decimal is a JSON number")
    }

    /// The `data` of the crossing events recorded for this check (free JSON, as event data is;
    /// the HTTP answers render checks in http/usage_views.rs).
    pub fn event_data(&self, window: &str) -> Value {
        json!({
            "window": window,
            "limit": self.limit,
            "used": amount(self.money, self.used),
            "max": amount(self.money, self.max),
            "percent": self.percent(),
            "status": self.level.as_str(),
        })
    }

    /// The message of the event recorded when this check passes its warning mark; the check may
    /// already be past 100%, but this event is about the warning mark, so it never says exceeded.
    pub fn describe_warning_mark(&self) -> String {
        let show = |v| amount(self.money, v).to_string();
        format!(
            "{} passed its warning mark: {}% of {} used",
            self.limit,
            self.percent(),
            show(self.max)
        )
    }

    pub fn describe(&self) -> String {
        let show = |v| amount(self.money, v).to_string();
        match self.level {
            Level::Exceeded => format!(
                "{} exceeded: {} of {}",
                self.limit,
                show(self.used),
                show(self.max)
            ),
            _ => format!(
                "{} at {}% of {}",
                self.limit,
                self.percent(),
                show(self.max)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Limits;

    fn settings(daily_cost: i64, warn: u8) -> Settings {
        Settings {
            limits: Limits {
                daily_cost_usd: Some(Nanousd::from_nanos(daily_cost)),
                ..Limits::default()
            },
            warn_at_percent: warn,
            ..Settings::default()
        }
    }

    fn spent(n: i64) -> Totals {
        Totals {
            estimated: Nanousd::from_nanos(n),
            ..Totals::default()
        }
    }

    fn level(used: i64) -> Level {
        evaluate(&settings(1000, 80), &spent(used), &Totals::default()).level
    }

    #[test]
    fn below_at_warn_at_limit_and_above() {
        assert_eq!(level(0), Level::Ok);
        assert_eq!(level(799), Level::Ok);
        assert_eq!(level(800), Level::Warning);
        assert_eq!(level(999), Level::Warning);
        assert_eq!(level(1000), Level::Exceeded);
        assert_eq!(level(5000), Level::Exceeded);
    }

    #[test]
    fn only_set_limits_are_checked() {
        let s = evaluate(&Settings::default(), &spent(1), &spent(1));
        assert_eq!((s.level, s.checks.len()), (Level::Ok, 0));
        let mut both = settings(1000, 80);
        both.limits.monthly_tokens = Some(10);
        let month = Totals {
            input_tokens: 6,
            output_tokens: 4,
            ..Totals::default()
        };
        let s = evaluate(&both, &spent(10), &month);
        assert_eq!(s.checks.len(), 2);
        assert_eq!(s.checks[1].level, Level::Exceeded);
        assert_eq!(s.level, Level::Exceeded, "the worst check decides");
    }

    #[test]
    fn percent_is_exact_to_hundredths() {
        let s = evaluate(
            &settings(3_000_000_000, 80),
            &spent(2_550_000_000),
            &Totals::default(),
        );
        assert_eq!(s.checks[0].percent().to_string(), "85");
        assert_eq!(s.level, Level::Warning);
        let s = evaluate(&settings(3, 80), &spent(1), &Totals::default());
        assert_eq!(s.checks[0].percent().to_string(), "33.33");
    }

    #[test]
    fn the_warning_mark_message_never_says_exceeded() {
        let s = evaluate(&settings(1000, 80), &spent(1500), &Totals::default());
        let c = &s.checks[0];
        assert_eq!(c.level, Level::Exceeded);
        let m = c.describe_warning_mark();
        assert!(!m.contains("exceeded"), "{m}");
        assert!(m.contains("warning mark") && m.contains("150%"), "{m}");
    }

    #[test]
    fn a_zero_limit_is_exceeded_by_any_use() {
        assert_eq!(
            evaluate(&settings(0, 80), &spent(0), &Totals::default()).level,
            Level::Ok
        );
        assert_eq!(
            evaluate(&settings(0, 80), &spent(1), &Totals::default()).level,
            Level::Exceeded
        );
    }
}
