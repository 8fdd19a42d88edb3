//! The JSON shapes of usage answers (totals, limits status, stats, summary, agents, recorded
//! events, prices), built from the usage and limits types at the edge.
use crate::limits::{Check, Level, Status};
use crate::time::rfc3339;
use crate::usage::money::Nanousd;
use crate::usage::pricing::Price;
use crate::usage::reads::{Stats, StoredEvent, Summary};
use crate::usage::rollup::{Totals, DAY_MICROS};
use serde::Serialize;
use serde_json::{Number, Value};

/// The contract's totals object.
#[derive(Serialize)]
pub struct TotalsView {
    events: i64,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    estimated_cost_usd: Nanousd,
    billed_cost_usd: Nanousd,
}

impl From<&Totals> for TotalsView {
    fn from(t: &Totals) -> Self {
        TotalsView {
            events: t.events,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            total_tokens: t.tokens(),
            cache_read_tokens: t.cache_read_tokens,
            cache_write_tokens: t.cache_write_tokens,
            reasoning_tokens: t.reasoning_tokens,
            estimated_cost_usd: t.estimated,
            billed_cost_usd: t.billed,
        }
    }
}

/// A limit's amount: money for cost limits, a count for token limits.
#[derive(Serialize)]
#[serde(untagged)]
enum Amount {
    Money(Nanousd),
    Count(i64),
}

impl Amount {
    fn of(check: &Check, v: i64) -> Amount {
        if check.money {
            Amount::Money(Nanousd::from_nanos(v))
        } else {
            Amount::Count(v)
        }
    }
}

#[derive(Serialize)]
struct CheckView {
    limit: &'static str,
    used: Amount,
    max: Amount,
    percent: Number,
    status: &'static str,
}

/// The contract's limits status object.
#[derive(Serialize)]
pub struct LimitsView {
    status: &'static str,
    checks: Vec<CheckView>,
    warnings: Vec<String>,
    errors: Vec<String>,
}

impl From<&Status> for LimitsView {
    fn from(s: &Status) -> Self {
        let pick = |l: Level| -> Vec<String> {
            s.checks
                .iter()
                .filter(|c| c.level == l)
                .map(Check::describe)
                .collect()
        };
        LimitsView {
            status: s.level.as_str(),
            checks: s
                .checks
                .iter()
                .map(|c| CheckView {
                    limit: c.limit,
                    used: Amount::of(c, c.used),
                    max: Amount::of(c, c.max),
                    percent: c.percent(),
                    status: c.level.as_str(),
                })
                .collect(),
            warnings: pick(Level::Warning),
            errors: pick(Level::Exceeded),
        }
    }
}

#[derive(Serialize)]
struct GroupView {
    key: Option<String>,
    #[serde(flatten)]
    totals: TotalsView,
}

#[derive(Serialize)]
pub struct StatsView {
    from: String,
    to: String,
    totals: TotalsView,
    groups: Vec<GroupView>,
}

impl From<Stats> for StatsView {
    fn from(s: Stats) -> Self {
        StatsView {
            from: rfc3339(s.days.from * DAY_MICROS),
            to: rfc3339(s.days.to * DAY_MICROS),
            totals: (&s.totals).into(),
            groups: s
                .groups
                .into_iter()
                .map(|g| GroupView {
                    key: g.key,
                    totals: (&g.totals).into(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct TopModel {
    model: String,
    #[serde(flatten)]
    totals: TotalsView,
}

#[derive(Serialize)]
struct TopAgent {
    agent_name: String,
    #[serde(flatten)]
    totals: TotalsView,
}

#[derive(Serialize)]
pub struct SummaryView {
    today: TotalsView,
    month: TotalsView,
    limits: LimitsView,
    top_models: Vec<TopModel>,
    top_agents: Vec<TopAgent>,
}

impl From<Summary> for SummaryView {
    fn from(s: Summary) -> Self {
        SummaryView {
            today: (&s.today).into(),
            month: (&s.month).into(),
            limits: (&s.limits).into(),
            top_models: s
                .top_models
                .into_iter()
                .map(|(model, t)| TopModel {
                    model,
                    totals: (&t).into(),
                })
                .collect(),
            top_agents: s
                .top_agents
                .into_iter()
                .map(|(agent_name, t)| TopAgent {
                    agent_name,
                    totals: (&t).into(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct AgentView {
    agent_name: String,
    events: i64,
    total_tokens: i64,
    estimated_cost_usd: Nanousd,
}

#[derive(Serialize)]
pub struct AgentsView {
    agents: Vec<AgentView>,
    most_used_agent: Option<String>,
}

impl From<Vec<(String, Totals)>> for AgentsView {
    /// From the agents, most used first.
    fn from(rows: Vec<(String, Totals)>) -> Self {
        AgentsView {
            most_used_agent: rows.first().map(|r| r.0.clone()),
            agents: rows
                .into_iter()
                .map(|(agent_name, t)| AgentView {
                    agent_name,
                    events: t.events,
                    total_tokens: t.tokens(),
                    estimated_cost_usd: t.estimated,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
pub struct StoredEventView {
    id: String,
    tenant_id: String,
    event_id: Option<String>,
    timestamp: String,
    model: String,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    reasoning_tokens: i64,
    estimated_cost_usd: Nanousd,
    billed_cost_usd: Nanousd,
    input_usd_per_million: Option<Nanousd>,
    output_usd_per_million: Option<Nanousd>,
    cache_read_usd_per_million: Option<Nanousd>,
    cache_write_usd_per_million: Option<Nanousd>,
    cost_source: String,
    execution_mode: String,
    pipeline_stage: Option<String>,
    agent_name: Option<String>,
    job_id: Option<String>,
    user_id: Option<String>,
    duration_ms: Option<i64>,
    metadata: Option<Value>,
    created_at: String,
}

impl From<StoredEvent> for StoredEventView {
    fn from(e: StoredEvent) -> Self {
        StoredEventView {
            id: e.id,
            tenant_id: e.tenant_id,
            event_id: e.event_id,
            timestamp: rfc3339(e.ts),
            model: e.model,
            input_tokens: e.input_tokens,
            output_tokens: e.output_tokens,
            total_tokens: e.input_tokens.saturating_add(e.output_tokens),
            cache_read_tokens: e.cache_read_tokens,
            cache_write_tokens: e.cache_write_tokens,
            reasoning_tokens: e.reasoning_tokens,
            estimated_cost_usd: e.estimated,
            billed_cost_usd: e.billed,
            input_usd_per_million: e.input_price,
            output_usd_per_million: e.output_price,
            cache_read_usd_per_million: e.cache_read_price,
            cache_write_usd_per_million: e.cache_write_price,
            cost_source: e.cost_source,
            execution_mode: e.execution_mode,
            pipeline_stage: e.pipeline_stage,
            agent_name: e.agent_name,
            job_id: e.job_id,
            user_id: e.user_id,
            duration_ms: e.duration_ms,
            metadata: e.metadata,
            created_at: rfc3339(e.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct PriceView {
    model: String,
    input_usd_per_million: Nanousd,
    output_usd_per_million: Nanousd,
    /// `null`: the input price applies.
    cache_read_usd_per_million: Option<Nanousd>,
    cache_write_usd_per_million: Option<Nanousd>,
}

impl From<(String, Price)> for PriceView {
    fn from((model, p): (String, Price)) -> Self {
        PriceView {
            model,
            input_usd_per_million: p.input_per_million,
            output_usd_per_million: p.output_per_million,
            cache_read_usd_per_million: p.cache_read_per_million,
            cache_write_usd_per_million: p.cache_write_per_million,
        }
    }
}

#[derive(Serialize)]
pub struct PriceListView {
    items: Vec<PriceView>,
}

impl From<Vec<(String, Price)>> for PriceListView {
    fn from(items: Vec<(String, Price)>) -> Self {
        PriceListView {
            items: items.into_iter().map(PriceView::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Limits, Settings};

    #[test]
    fn limits_render_as_the_contracts_object() {
        let settings = Settings {
            limits: Limits {
                daily_cost_usd: Some(Nanousd::from_nanos(3_000_000_000)),
                ..Limits::default()
            },
            warn_at_percent: 80,
            ..Settings::default()
        };
        let spent = Totals {
            estimated: Nanousd::from_nanos(2_550_000_000),
            ..Totals::default()
        };
        let s = crate::limits::evaluate(&settings, &spent, &Totals::default());
        let v = serde_json::to_value(LimitsView::from(&s)).unwrap();
        assert_eq!(v["checks"][0]["percent"].to_string(), "85");
        assert_eq!(v["checks"][0]["used"].to_string(), "2.55");
        assert_eq!(v["checks"][0]["max"].to_string(), "3");
        assert_eq!(v["checks"][0]["limit"], "daily_cost_usd");
        assert_eq!(v["checks"][0]["status"], "warning");
        assert_eq!(v["status"], "warning");
        assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
        assert_eq!(v["errors"].as_array().unwrap().len(), 0);
    }

    #[test]
    fn totals_carry_their_sum_of_tokens() {
        let t = Totals {
            events: 2,
            input_tokens: 5,
            output_tokens: 7,
            ..Totals::default()
        };
        let v = serde_json::to_value(TotalsView::from(&t)).unwrap();
        assert_eq!(v["total_tokens"], 12);
        assert_eq!(v["estimated_cost_usd"].to_string(), "0");
    }
}
