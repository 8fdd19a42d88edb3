//! A usage event priced at ingest, on the request's own thread: its id, day, cost and where the
//! cost came from, and a request's rollup deltas summed before they reach the writer.
use super::event::UsageEvent;
use super::money::Nanousd;
use super::pricing::Price;
use super::rollup::{day_of, mode_dim, Totals, DIMS, JOB_DIM};
use crate::settings::{ExecutionMode, Settings};
use std::collections::HashMap;
use uuid::Uuid;

/// Where an event's cost came from; stored with it as `cost_source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CostSource {
    /// The client sent `cost_usd`.
    Client,
    /// The pricing table's price for the model.
    Pricing,
    /// No price for the model: the event costs 0 and a `pricing.unknown_model` event says so.
    UnknownModel,
}

impl CostSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CostSource::Client => "client",
            CostSource::Pricing => "pricing",
            CostSource::UnknownModel => "unknown_model",
        }
    }
}

/// An event with its id, day and cost worked out at ingest, on the request's own thread.
#[derive(Clone, Debug)]
pub struct Priced {
    pub id: String,
    pub day: i64,
    pub event: UsageEvent,
    pub estimated: Nanousd,
    pub billed: Nanousd,
    /// The prices charged, when the cost came from the table.
    pub price: Option<Price>,
    pub source: CostSource,
    /// The execution mode of the settings it was priced under (and is recorded with).
    pub mode: ExecutionMode,
}

impl Priced {
    /// Prices an event; refuses one whose cost, marked up, would not fit in nano-USD.
    pub fn new(
        event: UsageEvent,
        settings: &Settings,
        price: Option<Price>,
    ) -> Result<Priced, String> {
        let too_large = || {
            "its cost is larger than can be recorded (the price times the tokens exceeds \
             about 9.2 billion USD)"
                .to_string()
        };
        // Parsed events were checked already; an event built in code (the gateway) is here.
        event.check_counts()?;
        let (estimated, price, source) = match (event.cost, price) {
            (Some(c), _) => (c, None, CostSource::Client),
            (None, Some(p)) => (
                super::pricing::cost(event.tokens(), p).ok_or_else(too_large)?,
                Some(p),
                CostSource::Pricing,
            ),
            (None, None) => (Nanousd::ZERO, None, CostSource::UnknownModel),
        };
        let billed = match settings.execution_mode {
            ExecutionMode::Hosted => settings
                .markup_percent
                .apply(estimated)
                .ok_or_else(too_large)?,
            ExecutionMode::ByoKey => Nanousd::ZERO,
        };
        Ok(Priced {
            id: Uuid::new_v4().to_string(),
            day: day_of(event.ts),
            event,
            estimated,
            billed,
            price,
            source,
            mode: settings.execution_mode,
        })
    }

    /// The rollup rows this event adds to, as (day, dimension, key): the total, one per
    /// dimension, its execution mode's model row, and its job's all-time row if it names one.
    pub fn rollup_rows(&self) -> impl Iterator<Item = (i64, &'static str, &str)> {
        let e = &self.event;
        let d = self.day;
        [
            (d, "", ""),
            (d, mode_dim(self.mode), e.model.as_str()),
            (d, DIMS[0], e.model.as_str()),
            (d, DIMS[1], e.pipeline_stage.as_deref().unwrap_or("")),
            (d, DIMS[2], e.agent_name.as_deref().unwrap_or("")),
            (d, DIMS[3], e.user_id.as_deref().unwrap_or("")),
            (0, JOB_DIM, e.job_id.as_deref().unwrap_or("")),
        ]
        .into_iter()
        .filter(|(_, dim, key)| *dim != JOB_DIM || !key.is_empty())
    }

    pub fn totals(&self) -> Totals {
        Totals {
            events: 1,
            input_tokens: self.event.input_tokens as i64,
            output_tokens: self.event.output_tokens as i64,
            cache_read_tokens: self.event.cache_read_tokens as i64,
            cache_write_tokens: self.event.cache_write_tokens as i64,
            reasoning_tokens: self.event.reasoning_tokens as i64,
            estimated: self.estimated,
            billed: self.billed,
        }
    }
}

/// A job's rollup deltas by (day, dimension), then key, assuming every event is accepted. Two
/// levels so that adding an event to an existing row looks the key up by `&str`, without
/// allocating a String per event and dimension.
pub type Rollups = HashMap<(i64, &'static str), HashMap<String, Totals>>;

/// Sums a request's events by rollup row, before it reaches the writer.
pub fn aggregate(events: &[Priced]) -> Rollups {
    let mut r = Rollups::new();
    for p in events {
        let t = p.totals();
        for (day, dim, key) in p.rollup_rows() {
            let keys = r.entry((day, dim)).or_default();
            match keys.get_mut(key) {
                Some(acc) => acc.add(&t),
                None => {
                    keys.insert(key.to_string(), t);
                }
            }
        }
    }
    r
}
