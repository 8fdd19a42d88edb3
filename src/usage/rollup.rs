//! Totals and the calendar of the daily rollups: UTC day and month arithmetic. The rollup rows
//! themselves are read and written in `store`; stats and limits read them, never raw events.
use super::money::Nanousd;
use crate::settings::ExecutionMode;
use crate::time::Micros;
use chrono::{Datelike, NaiveDate};

pub const DAY_MICROS: i64 = 86_400_000_000;
/// The rollup dimensions besides the total (`""`); each holds one row per value, `""` for none.
pub const DIMS: [&str; 4] = ["model", "pipeline_stage", "agent_name", "user_id"];
/// Billing's dimensions: one per execution mode, keyed by model, so a statement's lines (model
/// by execution mode) come from the rollups.
pub const MODE_DIMS: [(&str, ExecutionMode); 2] = [
    ("model.hosted", ExecutionMode::Hosted),
    ("model.byo_key", ExecutionMode::ByoKey),
];

/// A job's totals: keyed by `job_id`, on day 0 whatever the events' days (a job's usage is
/// read whole, by its id: one row, however many events and days). Events without a job add none.
pub const JOB_DIM: &str = "job_id";

/// The billing dimension of events recorded in `mode`.
pub fn mode_dim(mode: ExecutionMode) -> &'static str {
    match mode {
        ExecutionMode::Hosted => MODE_DIMS[0].0,
        ExecutionMode::ByoKey => MODE_DIMS[1].0,
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub events: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Parts of `input_tokens` and `output_tokens`, not added to them again.
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated: Nanousd,
    pub billed: Nanousd,
}

impl Totals {
    /// Adds `o`, saturating. Every total the writer keeps is bounded by the tenant's all-time
    /// total, which `checked_add` guards before anything is stored, so saturation never shows.
    pub fn add(&mut self, o: &Totals) {
        self.events = self.events.saturating_add(o.events);
        self.input_tokens = self.input_tokens.saturating_add(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(o.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(o.reasoning_tokens);
        self.estimated = self.estimated.saturating_add(o.estimated);
        self.billed = self.billed.saturating_add(o.billed);
    }

    /// The sum, or `None` when any of its figures (the total tokens included) would not fit in
    /// an SQLite integer: the bound every stored and summed total must stay under.
    pub fn checked_add(&self, o: &Totals) -> Option<Totals> {
        let t = Totals {
            events: self.events.checked_add(o.events)?,
            input_tokens: self.input_tokens.checked_add(o.input_tokens)?,
            output_tokens: self.output_tokens.checked_add(o.output_tokens)?,
            cache_read_tokens: self.cache_read_tokens.checked_add(o.cache_read_tokens)?,
            cache_write_tokens: self.cache_write_tokens.checked_add(o.cache_write_tokens)?,
            reasoning_tokens: self.reasoning_tokens.checked_add(o.reasoning_tokens)?,
            estimated: self.estimated.checked_add(o.estimated)?,
            billed: self.billed.checked_add(o.billed)?,
        };
        t.input_tokens.checked_add(t.output_tokens)?;
        Some(t)
    }

    /// Takes out what `add` put in (a duplicate's share of a request's deltas). Saturating like
    /// `add`; the writer's deltas fit (`Job::bound`), so neither ever saturates there.
    pub fn sub(&mut self, o: &Totals) {
        self.events = self.events.saturating_sub(o.events);
        self.input_tokens = self.input_tokens.saturating_sub(o.input_tokens);
        self.output_tokens = self.output_tokens.saturating_sub(o.output_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_sub(o.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_sub(o.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_sub(o.reasoning_tokens);
        self.estimated = self.estimated.saturating_sub(o.estimated);
        self.billed = self.billed.saturating_sub(o.billed);
    }

    pub fn tokens(&self) -> i64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

pub fn day_of(ts: Micros) -> i64 {
    ts.div_euclid(DAY_MICROS)
}

pub fn date_of_day(day: i64) -> NaiveDate {
    chrono::DateTime::from_timestamp(day * 86_400, 0)
        .unwrap_or_default()
        .date_naive()
}

fn day_of_date(d: NaiveDate) -> i64 {
    d.signed_duration_since(NaiveDate::default()).num_days()
}

/// The first day of the month holding `day`, and the first day of the next month.
pub fn month_span(day: i64) -> (i64, i64) {
    let d = date_of_day(day);
    let first = d.with_day(1).unwrap_or(d);
    let next = if first.month() == 12 {
        NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .unwrap_or(first);
    (day_of_date(first), day_of_date(next))
}

pub fn month_label(day: i64) -> String {
    date_of_day(day).format("%Y-%m").to_string()
}

pub fn day_label(day: i64) -> String {
    date_of_day(day).format("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_months_are_utc_calendar_ones() {
        let ts = crate::time::parse_rfc3339("2026-11-23T23:59:59Z").unwrap();
        let day = day_of(ts);
        assert_eq!(day_label(day), "2026-11-23");
        assert_eq!(day_of(ts + 1_000_000), day + 1);
        assert_eq!(day_of(-1), -1, "before the epoch rounds down");
        let (first, next) = month_span(day);
        assert_eq!(
            (day_label(first), day_label(next)),
            ("2026-11-01".into(), "2026-12-01".into())
        );
        let dec = day_of(crate::time::parse_rfc3339("2026-12-31T12:00:00Z").unwrap());
        assert_eq!(day_label(month_span(dec).1), "2027-01-01");
        assert_eq!(month_label(dec), "2026-12");
    }
}
