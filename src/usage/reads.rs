//! The usage reads: limits, stats, summary, agents and the events list. They answer from the
//! rollups and the in-memory windows, never by scanning raw events (the events list pages
//! through its index).
use super::rollup::{self, day_of, Totals};
use super::service::Usage;
use super::store;
use crate::auth::Action;
use crate::error::ApiError;
use crate::limits;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;
use crate::time::Micros;

pub use super::store::StoredEvent;

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

pub struct UsageFilter {
    pub from: Option<Micros>,
    pub to: Option<Micros>,
    pub model: Option<String>,
    pub pipeline_stage: Option<String>,
    pub agent_name: Option<String>,
    pub user_id: Option<String>,
    pub job_id: Option<String>,
}

impl Usage {
    /// The tenant's limits status now, from the in-memory windows.
    pub async fn limits_status(&self, ctx: &TenantCtx) -> Result<limits::Status, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Read)?;
        self.limits_now(ctx).await
    }

    /// The tenant's limits now, for a call the gateway is about to make on its behalf (its
    /// caller may ingest without being allowed to read).
    pub async fn limits_now(&self, ctx: &TenantCtx) -> Result<limits::Status, ApiError> {
        let (tenant, day, counters) = (ctx.id(), day_of(self.now()), self.counters.clone());
        let settings = self.settings.get(tenant);
        if let Some(pg) = self.db.pg() {
            // Other replicas add usage too: the windows are read from the rollups (at most 31
            // rows), so an acknowledged event counts on every replica's next read.
            let c = pg.conn().await?;
            let statement = c
                .prepare_cached(&super::pg_store::day_and_month_sql())
                .await?;
            let (today, this_month) = super::pg_store::day_and_month(
                &**c,
                &statement,
                &[tenant.as_uuid()],
                day,
                rollup::month_span(day),
            )
            .await?
            .remove(&tenant.as_uuid())
            .unwrap_or_default();
            return Ok(limits::evaluate(&settings.settings, &today, &this_month));
        }
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
        // The rollup dimension the grouping reads ("" for days and months).
        let dim = match group {
            None => None,
            Some(GroupBy::Day | GroupBy::Month) => Some(""),
            Some(GroupBy::Dim(dim)) => Some(dim),
        };
        let (totals, rows) = match self.db.pg() {
            Some(pg) => {
                let c = pg.conn().await?;
                let id = ctx.id().as_uuid();
                let totals = super::pg_reads::total(&**c, id, days.from, days.to).await?;
                let rows = match dim {
                    Some(dim) => super::pg_reads::groups(&**c, id, dim, days.from, days.to).await?,
                    None => Vec::new(),
                };
                (totals, rows)
            }
            None => {
                self.db
                    .run(move |c| {
                        let totals = store::total(c, &tenant, days.from, days.to)?;
                        let rows = match dim {
                            Some(dim) => store::groups(c, &tenant, dim, days.from, days.to)?,
                            None => Vec::new(),
                        };
                        Ok((totals, rows))
                    })
                    .await?
            }
        };
        Ok(Stats {
            days,
            totals,
            groups: shape(group, rows),
        })
    }

    pub async fn summary(&self, ctx: &TenantCtx) -> Result<Summary, ApiError> {
        let limits = self.limits_status(ctx).await?;
        let (tenant, today) = (ctx.db_id(), day_of(self.now()));
        let (first, next) = rollup::month_span(today);
        let (day_totals, month_totals, models, agents) = if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            let id = ctx.id().as_uuid();
            (
                super::pg_reads::total(&**c, id, today, today + 1).await?,
                super::pg_reads::total(&**c, id, first, next).await?,
                super::pg_reads::groups(&**c, id, "model", first, next).await?,
                super::pg_reads::groups(&**c, id, "agent_name", first, next).await?,
            )
        } else {
            self.db
                .run(move |c| {
                    Ok((
                        store::total(c, &tenant, today, today + 1)?,
                        store::total(c, &tenant, first, next)?,
                        store::groups(c, &tenant, "model", first, next)?,
                        store::groups(c, &tenant, "agent_name", first, next)?,
                    ))
                })
                .await?
        };
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
        let mut rows = match self.db.pg() {
            Some(pg) => {
                let c = pg.conn().await?;
                super::pg_reads::groups(&**c, ctx.id().as_uuid(), "agent_name", i64::MIN, i64::MAX)
                    .await?
            }
            None => {
                self.db
                    .run(move |c| Ok(store::groups(c, &tenant, "agent_name", i64::MIN, i64::MAX)?))
                    .await?
            }
        };
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
        if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            let rows = super::pg_reads::list_events(&**c, ctx.id().as_uuid(), &f, &page).await?;
            return Ok(Page::from_rows(rows, page.limit, |r| r.0).map(|r| r.1));
        }
        self.db
            .run(move |c| {
                let rows = store::list_events(c, &tenant, &f, &page)?;
                Ok(Page::from_rows(rows, page.limit, |r| r.0).map(|r| r.1))
            })
            .await
    }
}

/// The groups of a stats answer from the rollup rows of its dimension.
fn shape(group: Option<GroupBy>, rows: Vec<(String, Totals)>) -> Vec<Group> {
    match group {
        None => Vec::new(),
        Some(GroupBy::Day) => rows
            .into_iter()
            .map(|(d, t)| Group {
                key: Some(rollup::day_label(d.parse().unwrap_or(0))),
                totals: t,
            })
            .collect(),
        Some(GroupBy::Month) => {
            let mut months: Vec<Group> = Vec::new();
            for (d, t) in rows {
                let label = rollup::month_label(d.parse().unwrap_or(0));
                match months.last_mut() {
                    Some(g) if g.key.as_deref() == Some(label.as_str()) => g.totals.add(&t),
                    _ => months.push(Group {
                        key: Some(label),
                        totals: t,
                    }),
                }
            }
            months
        }
        Some(GroupBy::Dim(_)) => rows
            .into_iter()
            .map(|(k, t)| Group {
                key: Some(k).filter(|k| !k.is_empty()),
                totals: t,
            })
            .collect(),
    }
}
