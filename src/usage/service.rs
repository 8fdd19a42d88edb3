//! The usage operations on a tenant: ingest through the writer, and reads that answer from the
//! rollups and the in-memory windows (never by scanning raw events), plus the events list,
//! agent preferences and pricing.
use super::counters::Counters;
use super::event::UsageEvent;
use super::model::ModelName;
use super::priced::Priced;
use super::pricing::PricingTable;
use super::pricing::{lookup, Price};
use super::rollup::{self, day_of, Totals};
use super::store;
use super::writer::Writer;
use super::writer::{Batch, Outcome};
use crate::auth::Action;
use crate::auth::AdminProof;
use crate::clock::Clock;
use crate::config::Feature;
use crate::config::Flags;
use crate::db::Db;
use crate::error::ApiError;
use crate::limits;
use crate::observe::metrics::Metrics;
use crate::pagination::{Page, PageRequest};
use crate::settings::SettingsCache;
use crate::tenancy::TenantCtx;
use crate::tenancy::TenantId;
use crate::time::{to_micros, Micros};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// How `/api/usage/stats` groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Day,
    Month,
    Dim(&'static str),
}

impl GroupBy {
    pub fn parse(s: &str) -> Result<GroupBy, ApiError> {
        Ok(match s {
            "day" => GroupBy::Day,
            "month" => GroupBy::Month,
            "model" => GroupBy::Dim("model"),
            "pipeline_stage" => GroupBy::Dim("pipeline_stage"),
            "agent_name" => GroupBy::Dim("agent_name"),
            "user_id" => GroupBy::Dim("user_id"),
            _ => {
                return Err(ApiError::InvalidRequest(
                    "group_by must be day, month, model, pipeline_stage, agent_name or user_id"
                        .into(),
                ))
            }
        })
    }
}

/// A whole-day window `[from, to)` in days since the epoch.
#[derive(Clone, Copy, Debug)]
pub struct Days {
    pub from: i64,
    pub to: i64,
}

impl Days {
    /// Stats cover whole UTC days: `from` rounds down to its day, `to` up to the next midnight
    /// (a `to` at midnight is exclusive). Without `from`, the current month; without `to`, today.
    pub fn parse(from: Option<Micros>, to: Option<Micros>, now: Micros) -> Result<Days, ApiError> {
        let today = day_of(now);
        let from = from
            .map(day_of)
            .unwrap_or_else(|| rollup::month_span(today).0);
        let to = to.map(|t| day_of(t - 1) + 1).unwrap_or(today + 1);
        if to < from {
            return Err(ApiError::InvalidRequest("`to` is before `from`".into()));
        }
        if to - from > 366 * 100 {
            return Err(ApiError::InvalidRequest(
                "the window may span at most 100 years".into(),
            ));
        }
        Ok(Days { from, to })
    }
}

/// Totals over whole days, and their groups when asked for.
pub struct Stats {
    pub days: Days,
    pub totals: Totals,
    pub groups: Vec<Group>,
}

/// One group of a stats answer: a day, a month, or a dimension's value (`None`: events
/// without one).
pub struct Group {
    pub key: Option<String>,
    pub totals: Totals,
}

pub struct Summary {
    pub today: Totals,
    pub month: Totals,
    pub limits: limits::Status,
    /// At most five of each, by cost this month.
    pub top_models: Vec<(String, Totals)>,
    pub top_agents: Vec<(String, Totals)>,
}

pub use super::store::StoredEvent;

pub struct UsageFilter {
    pub from: Option<Micros>,
    pub to: Option<Micros>,
    pub model: Option<String>,
    pub pipeline_stage: Option<String>,
    pub agent_name: Option<String>,
    pub user_id: Option<String>,
    pub job_id: Option<String>,
}

/// The usage area: ingest through the one writer, the day/month/all-time windows, the price
/// table and the reads built on the rollups. Its parts are private; handlers call its methods
/// (`st.usage.ingest(...)`), so a call names the area it goes to.
#[derive(Clone)]
pub struct Usage {
    db: Db,
    clock: Arc<dyn Clock>,
    flags: Flags,
    /// Read for the settings an event is priced and recorded under; owned by the settings area.
    settings: Arc<SettingsCache>,
    pricing: Arc<PricingTable>,
    counters: Arc<Counters>,
    writer: Writer,
    metrics: Arc<Metrics>,
    /// Serialises price changes, so the table in memory ends as the last write to the store.
    price_writes: Arc<Mutex<()>>,
}

impl Usage {
    /// Starts the writer (and beside it the WAL checkpointer) on connections of their own.
    pub fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        flags: Flags,
        settings: Arc<SettingsCache>,
        pricing: PricingTable,
        metrics: Arc<Metrics>,
    ) -> Result<Usage, String> {
        let counters = Arc::new(Counters::default());
        let writer = Writer::start(db.dedicated()?, db.dedicated()?, counters.clone());
        Ok(Usage {
            db,
            clock,
            flags,
            settings,
            pricing: Arc::new(pricing),
            counters,
            writer,
            metrics,
            price_writes: Arc::default(),
        })
    }

    fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// Drops a deleted tenant's windows, so a tenant made again with its id starts from zero.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.counters.remove(tenant);
    }

    /// Waits until every event submitted so far is committed (at shutdown).
    pub async fn flush(&self) -> Result<(), ApiError> {
        self.writer.flush().await
    }

    fn usage_enabled(&self) -> Result<(), ApiError> {
        self.flags.require(Feature::UsageTracking)
    }

    pub async fn ingest(&self, ctx: &TenantCtx, body: Value) -> Result<Outcome, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Ingest)?;
        let now = self.now();
        let events = UsageEvent::parse_body(body, now)?;
        // The cached settings, shared: the events are priced and recorded under one version.
        let current = self.settings.get(ctx.id());
        let prices = self.pricing.snapshot();
        let batch = events.len() > 1;
        let priced = events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let price = lookup(&prices, e.model.as_str()).map(|(_, p)| p);
                Priced::new(e, &current.settings, price).map_err(|m| {
                    ApiError::InvalidRequest(if batch {
                        format!("events[{i}]: {m}")
                    } else {
                        m
                    })
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = Batch {
            tenant: ctx.id(),
            settings: current,
            events: priced,
            now,
        };
        let outcome = self.writer.submit(batch).await?;
        let (tenant, added) = (ctx.id().to_string(), &outcome.added);
        let m = &self.metrics;
        m.tokens
            .with_label_values(&[tenant.as_str(), "input"])
            .inc_by(added.input_tokens as u64);
        m.tokens
            .with_label_values(&[tenant.as_str(), "output"])
            .inc_by(added.output_tokens as u64);
        // Metrics are floating point by nature; the exact figures are in /api/usage/stats.
        m.cost_usd
            .with_label_values(&[tenant.as_str()])
            .inc_by(added.estimated.nanos() as f64 / 1e9);
        Ok(outcome)
    }

    /// The tenant's limits status now, from the in-memory windows.
    pub async fn limits_status(&self, ctx: &TenantCtx) -> Result<limits::Status, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        let (tenant, day, counters) = (ctx.id(), day_of(self.now()), self.counters.clone());
        let settings = self.settings.get(tenant);
        // Current windows are in memory; only a tenant not seen today costs a rollup read.
        let w = match counters.get(tenant, day) {
            Some(w) => w,
            None => {
                self.db
                    .run(move |c| Ok(counters.windows(c, tenant, day)?))
                    .await?
            }
        };
        Ok(limits::evaluate(
            &settings.settings,
            &w.today,
            &w.this_month,
        ))
    }

    pub async fn stats(
        &self,
        ctx: &TenantCtx,
        days: Days,
        group: Option<GroupBy>,
    ) -> Result<Stats, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let totals = store::total(c, &tenant, days.from, days.to)?;
                let groups: Vec<Group> = match group {
                    None => Vec::new(),
                    Some(GroupBy::Day) => store::groups(c, &tenant, "", days.from, days.to)?
                        .into_iter()
                        .map(|(d, t)| Group {
                            key: Some(rollup::day_label(d.parse().unwrap_or(0))),
                            totals: t,
                        })
                        .collect(),
                    Some(GroupBy::Month) => {
                        let mut months: Vec<Group> = Vec::new();
                        for (d, t) in store::groups(c, &tenant, "", days.from, days.to)? {
                            let label = rollup::month_label(d.parse().unwrap_or(0));
                            match months.last_mut() {
                                Some(g) if g.key.as_deref() == Some(label.as_str()) => {
                                    g.totals.add(&t)
                                }
                                _ => months.push(Group {
                                    key: Some(label),
                                    totals: t,
                                }),
                            }
                        }
                        months
                    }
                    Some(GroupBy::Dim(dim)) => store::groups(c, &tenant, dim, days.from, days.to)?
                        .into_iter()
                        .map(|(k, t)| Group {
                            key: Some(k).filter(|k| !k.is_empty()),
                            totals: t,
                        })
                        .collect(),
                };
                Ok(Stats {
                    days,
                    totals,
                    groups,
                })
            })
            .await
    }

    pub async fn summary(&self, ctx: &TenantCtx) -> Result<Summary, ApiError> {
        let limits = self.limits_status(ctx).await?;
        let (tenant, today) = (ctx.db_id(), day_of(self.now()));
        let (first, next) = rollup::month_span(today);
        let (day_totals, month_totals, models, agents) = self
            .db
            .run(move |c| {
                Ok((
                    store::total(c, &tenant, today, today + 1)?,
                    store::total(c, &tenant, first, next)?,
                    store::groups(c, &tenant, "model", first, next)?,
                    store::groups(c, &tenant, "agent_name", first, next)?,
                ))
            })
            .await?;
        let top = |rows: Vec<(String, Totals)>| -> Vec<(String, Totals)> {
            rows.into_iter()
                .filter(|(k, _)| !k.is_empty())
                .take(5)
                .collect()
        };
        Ok(Summary {
            today: day_totals,
            month: month_totals,
            limits,
            top_models: top(models),
            top_agents: top(agents),
        })
    }

    /// Every agent's usage over all time, most used (by events) first.
    pub async fn agents(&self, ctx: &TenantCtx) -> Result<Vec<(String, Totals)>, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        let mut rows = self
            .db
            .run(move |c| Ok(store::groups(c, &tenant, "agent_name", i64::MIN, i64::MAX)?))
            .await?;
        rows.retain(|(k, _)| !k.is_empty());
        rows.sort_by(|a, b| b.1.events.cmp(&a.1.events).then_with(|| a.0.cmp(&b.0)));
        Ok(rows)
    }

    pub async fn list_events(
        &self,
        ctx: &TenantCtx,
        f: UsageFilter,
        page: PageRequest<(Micros, i64)>,
    ) -> Result<Page<StoredEvent>, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        self.db
            .run(move |c| {
                let rows = store::list_events(c, &tenant, &f, &page)?;
                Ok(Page::from_rows(rows, page.limit, |r| r.0).map(|r| r.1))
            })
            .await
    }

    pub async fn agent_preferences(
        &self,
        ctx: &TenantCtx,
        agent: String,
    ) -> Result<Value, ApiError> {
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        let body: Option<String> = self
            .db
            .run(move |c| Ok(store::agent_preferences(c, &tenant, &agent)?))
            .await?;
        Ok(body
            .and_then(|b| serde_json::from_str(&b).ok())
            .unwrap_or_else(|| json!({})))
    }

    pub async fn set_agent_preferences(
        &self,
        ctx: &TenantCtx,
        agent: String,
        prefs: Value,
    ) -> Result<Value, ApiError> {
        ctx.require(Action::SetPreferences)?;
        if !prefs.is_object() {
            return Err(ApiError::InvalidRequest(
                "preferences must be a JSON object".into(),
            ));
        }
        let text = prefs.to_string();
        if text.len() > 64 * 1024 {
            return Err(ApiError::InvalidRequest(
                "preferences may hold at most 64 KiB".into(),
            ));
        }
        let (tenant, now) = (ctx.db_id(), self.now());
        self.db
            .run(move |c| {
                Ok(store::set_agent_preferences(
                    c, &tenant, &agent, &text, now,
                )?)
            })
            .await?;
        Ok(prefs)
    }

    /// The effective prices, by model name.
    pub fn price_list(&self) -> Vec<(String, Price)> {
        let table = self.pricing.snapshot();
        let mut items: Vec<(String, Price)> = table.iter().map(|(m, p)| (m.clone(), *p)).collect();
        items.sort_by(|a, b| a.0.cmp(&b.0));
        items
    }

    /// An operator's price for a model, for events ingested from now on.
    pub async fn set_price(
        &self,
        _: &AdminProof,
        model: ModelName,
        price: Price,
    ) -> Result<(String, Price), ApiError> {
        let (pricing, serial, now) = (self.pricing.clone(), self.price_writes.clone(), self.now());
        self.db
            .run(move |c| {
                let _one_at_a_time = serial.lock().unwrap_or_else(|p| p.into_inner());
                pricing.set(c, model.as_str(), price, now)?;
                Ok((model.into_string(), price))
            })
            .await
    }
}
