//! A tenant's statement for one period: lines by model and execution mode with exact costs, the
//! totals, and the amount due in whole cents.
use super::period::{Period, Status};
use crate::time::{rfc3339, Micros};
use crate::usage::money::{div_round_half_even, Nanousd};
use crate::usage::rollup::Totals;
use serde::Serialize;

const NANOS_PER_CENT: i128 = 10_000_000;

/// `billed` rounded half to even to whole cents, the amount an invoice can ask for. Per
/// statement, not per line: rounding each line would make the total depend on how many lines
/// there are.
pub fn amount_due(billed: Nanousd) -> Nanousd {
    let cents = div_round_half_even(i128::from(billed.nanos()), NANOS_PER_CENT);
    Nanousd::from_nanos((cents * NANOS_PER_CENT) as i64)
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Line {
    pub model: String,
    pub execution_mode: &'static str,
    pub events: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated_cost_usd: Nanousd,
    pub billed_cost_usd: Nanousd,
}

impl Line {
    pub fn new(model: String, execution_mode: &'static str, t: &Totals) -> Line {
        Line {
            model,
            execution_mode,
            events: t.events,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            estimated_cost_usd: t.estimated,
            billed_cost_usd: t.billed,
        }
    }

    pub fn totals(&self) -> Totals {
        Totals {
            events: self.events,
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_tokens: self.cache_read_tokens,
            cache_write_tokens: self.cache_write_tokens,
            reasoning_tokens: self.reasoning_tokens,
            estimated: self.estimated_cost_usd,
            billed: self.billed_cost_usd,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Statement {
    pub tenant_id: String,
    pub period: String,
    pub from: String,
    pub to: String,
    pub status: Status,
    pub currency: &'static str,
    pub lines: Vec<Line>,
    pub events: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub estimated_cost_usd: Nanousd,
    pub billed_cost_usd: Nanousd,
    pub amount_due_usd: Nanousd,
    /// When it was stored as final; `null` while open or draft. A final month without usage
    /// has nothing stored: the instant it became final.
    pub finalized_at: Option<String>,
}

impl Statement {
    /// Orders the lines (billed cost descending, then model, then mode) and sums them.
    pub fn new(
        tenant_id: String,
        period: Period,
        status: Status,
        mut lines: Vec<Line>,
        finalized_at: Option<Micros>,
    ) -> Statement {
        lines.sort_by(|a, b| {
            b.billed_cost_usd
                .cmp(&a.billed_cost_usd)
                .then_with(|| a.model.cmp(&b.model))
                .then_with(|| a.execution_mode.cmp(b.execution_mode))
        });
        let mut t = Totals::default();
        for l in &lines {
            t.add(&l.totals());
        }
        Statement {
            tenant_id,
            period: period.label(),
            from: rfc3339(period.from()),
            to: rfc3339(period.to()),
            status,
            currency: "USD",
            lines,
            events: t.events,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            estimated_cost_usd: t.estimated,
            billed_cost_usd: t.billed,
            amount_due_usd: amount_due(t.billed),
            finalized_at: finalized_at.map(rfc3339),
        }
    }
}

/// One month in the list of a tenant's statements.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub period: String,
    pub status: Status,
    pub events: i64,
    pub billed_cost_usd: Nanousd,
    pub amount_due_usd: Nanousd,
    pub finalized_at: Option<String>,
}

/// One tenant's row in the operator's report.
#[derive(Clone, Debug, Serialize)]
pub struct ReportRow {
    pub tenant_id: String,
    pub slug: String,
    pub name: String,
    pub plan: String,
    pub events: i64,
    pub billed_cost_usd: Nanousd,
    pub amount_due_usd: Nanousd,
    pub status: Status,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ReportTotals {
    pub tenants: usize,
    pub events: i64,
    pub billed_cost_usd: Nanousd,
    /// The sum of the tenants' amounts due (each rounded on its own statement).
    pub amount_due_usd: Nanousd,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub period: String,
    pub from: String,
    pub to: String,
    pub status: Status,
    pub tenants: Vec<ReportRow>,
    pub totals: ReportTotals,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Nanousd {
        Nanousd::from_usd_decimal(text).unwrap()
    }

    #[test]
    fn amount_due_rounds_half_a_cent_to_the_even_cent_both_ways() {
        assert_eq!(amount_due(usd("0.005")), usd("0"));
        assert_eq!(amount_due(usd("0.015")), usd("0.02"));
        assert_eq!(amount_due(usd("0.025")), usd("0.02"));
        assert_eq!(amount_due(usd("12.345")), usd("12.34"));
        assert_eq!(amount_due(usd("12.355")), usd("12.36"));
        assert_eq!(amount_due(usd("12.345000001")), usd("12.35"));
        assert_eq!(amount_due(usd("12.354999999")), usd("12.35"));
        assert_eq!(amount_due(usd("0.000000001")), usd("0"));
        assert_eq!(
            amount_due(Nanousd::from_nanos(i64::MAX)).nanos() % 10_000_000,
            0
        );
    }

    #[test]
    fn lines_are_ordered_by_billed_cost_then_model_and_summed() {
        let t = |billed: &str| Totals {
            events: 1,
            input_tokens: 10,
            billed: usd(billed),
            estimated: usd(billed),
            ..Totals::default()
        };
        let lines = vec![
            Line::new("b".into(), "hosted", &t("1")),
            Line::new("a".into(), "byo_key", &t("0")),
            Line::new("a".into(), "hosted", &t("1")),
            Line::new("c".into(), "hosted", &t("2.5")),
        ];
        let s = Statement::new(
            "t".into(),
            Period::parse("2026-11").unwrap(),
            Status::Open,
            lines,
            None,
        );
        let order: Vec<_> = s
            .lines
            .iter()
            .map(|l| (l.model.as_str(), l.execution_mode))
            .collect();
        assert_eq!(
            order,
            [
                ("c", "hosted"),
                ("a", "hosted"),
                ("b", "hosted"),
                ("a", "byo_key")
            ]
        );
        assert_eq!((s.events, s.input_tokens), (4, 40));
        assert_eq!(s.billed_cost_usd, usd("4.5"));
        assert_eq!(s.amount_due_usd, usd("4.5"));
    }
}
