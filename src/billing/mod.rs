//! Billing (`ENABLE_BILLING`): monthly statements per tenant from the daily rollups, made final
//! and stored after a grace period, the `period_closed` gate on ingest, and the operator's
//! cross-tenant report. No raw usage event is read to answer a billing request.
pub mod finalize;
pub mod finalize_pg;
pub mod period;
mod service_pg;
pub mod statement;
pub mod store;
pub mod store_pg;

use crate::auth::{Action, AdminProof};
use crate::clock::Clock;
use crate::config::{Feature, Flags};
use crate::db::Db;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;
use crate::time::{rfc3339, to_micros, Micros};
use crate::usage::money::Nanousd;
use crate::usage::writer::ClosedBefore;
use period::{Period, Status};
use statement::{amount_due, Report, ReportTotals, Statement, Summary};
use std::sync::Arc;

#[derive(Clone)]
pub struct Billing {
    db: Db,
    clock: Arc<dyn Clock>,
    flags: Flags,
    /// `TENANTRY_BILLING_GRACE`: how long after its month a statement stays a draft.
    grace: Micros,
}

impl Billing {
    pub fn new(db: Db, clock: Arc<dyn Clock>, flags: Flags, grace: Micros) -> Billing {
        Billing {
            db,
            clock,
            flags,
            grace,
        }
    }

    /// The usage writer's gate: with billing on, events before the first period that is not
    /// final are refused (`period_closed`); with it off, none are.
    pub fn ingest_gate(&self) -> ClosedBefore {
        let (clock, grace) = (self.clock.clone(), self.grace);
        let on = self.flags.enabled(Feature::Billing);
        Arc::new(move || on.then(|| period::closed_before(to_micros(clock.now()), grace)))
    }

    /// Starts the thread that stores final statements (billing on only).
    pub fn start_finalizer(
        &self,
        every: std::time::Duration,
        alive: std::sync::Weak<std::fs::File>,
    ) {
        if self.flags.enabled(Feature::Billing) {
            finalize::start(
                self.db.clone(),
                self.clock.clone(),
                self.grace,
                every,
                alive,
            );
        }
    }

    fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    fn require(&self) -> Result<(), ApiError> {
        self.flags.require(Feature::Billing)
    }

    /// The tenant's statement for `period`: stored if final (storing it now if the finalizer
    /// has not yet), else summed from the rollups.
    pub async fn statement(&self, ctx: &TenantCtx, period: Period) -> Result<Statement, ApiError> {
        self.require()?;
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.statement_pg(pg, ctx, period).await;
        }
        let (tenant, grace, clock) = (ctx.db_id(), self.grace, self.clock.clone());
        let status = period.status(self.now(), grace);
        if status != Status::Final {
            let lines = self
                .db
                .run({
                    let tenant = tenant.clone();
                    move |c| Ok(store::live_lines(c, &tenant, period)?)
                })
                .await?;
            return Ok(Statement::new(tenant, period, status, lines, None));
        }
        let t = tenant.clone();
        let stored = self
            .db
            .run(move |c| Ok(store::stored(c, &t, period)?))
            .await?;
        let stored = match stored {
            Some(s) => Some(s),
            None => {
                let t = tenant.clone();
                self.db
                    .write(move |c| {
                        finalize::in_write(c, clock.as_ref(), |c, now| {
                            finalize::finalize(c, &t, period, now)
                        })
                    })
                    .await?
            }
        };
        Ok(final_statement(tenant, period, grace, stored))
    }

    /// The tenant's months with usage, newest first; `cursor` pages by period.
    pub async fn statements(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<String>,
    ) -> Result<Page<Summary>, ApiError> {
        self.require()?;
        ctx.require(Action::Read)?;
        if let Some(pg) = self.db.pg() {
            return self.statements_pg(pg, ctx, page).await;
        }
        let (tenant, grace, now) = (ctx.db_id(), self.grace, self.now());
        let (months, stored) = self
            .db
            .run({
                let t = tenant.clone();
                move |c| Ok((store::months(c, &t)?, store::finalized(c, &t)?))
            })
            .await?;
        let stored = if missing_finals(&months, &stored, now, grace) {
            // Store what the finalizer has not yet, so every `final` listed is the stored one.
            let (t, clock, finals) = (tenant.clone(), self.clock.clone(), months.clone());
            self.db
                .write(move |c| {
                    finalize::in_write(c, clock.as_ref(), |c, now| {
                        for (p, ..) in finals
                            .iter()
                            .filter(|m| m.0.status(now, grace) == Status::Final)
                        {
                            finalize::finalize(c, &t, *p, now)?;
                        }
                        Ok(store::finalized(c, &t)?)
                    })
                })
                .await?
        } else {
            stored
        };
        Ok(summaries(months, &stored, now, grace, page))
    }

    /// Every tenant with usage in `period`, for the operator: from the stored statements once
    /// the period is final, from the rollups before.
    pub async fn report(&self, _: &AdminProof, period: Period) -> Result<Report, ApiError> {
        self.require()?;
        if let Some(pg) = self.db.pg() {
            return self.report_pg(pg, period).await;
        }
        let (grace, clock) = (self.grace, self.clock.clone());
        let status = period.status(self.now(), grace);
        let tenants = if status == Status::Final {
            let db = self.db.clone();
            let finished = self
                .db
                .run(move |c| Ok(store::finalized_through(c)?.is_some_and(|t| period < t)))
                .await?;
            if !finished {
                // The finalizer has not reached this period: store its statements first.
                tokio::task::spawn_blocking(move || {
                    finalize::finalize_period(&db, clock.as_ref(), grace, period)
                })
                .await
                .map_err(ApiError::internal)??;
            }
            self.db
                .run(move |c| Ok(store::final_report(c, period)?))
                .await?
        } else {
            self.db
                .run(move |c| Ok(store::live_report(c, period)?))
                .await?
        };
        Ok(report_of(period, status, tenants))
    }

    /// The current month, for a report asked without `?period=`.
    pub fn current_period(&self) -> Period {
        Period::of(self.now())
    }
}

/// A final statement: the stored one, or, for a month without usage, an empty one final since
/// its grace ended.
fn final_statement(
    tenant: String,
    period: Period,
    grace: Micros,
    stored: Option<(Vec<statement::Line>, Micros)>,
) -> Statement {
    match stored {
        Some((lines, at)) => Statement::new(tenant, period, Status::Final, lines, Some(at)),
        None => Statement::new(
            tenant,
            period,
            Status::Final,
            Vec::new(),
            Some(period.final_at(grace)),
        ),
    }
}

type Months = Vec<(Period, i64, Nanousd)>;
type Stored = Vec<(String, Nanousd, Micros)>;

/// Whether a month with usage is final with no statement stored yet.
fn missing_finals(months: &Months, stored: &Stored, now: Micros, grace: Micros) -> bool {
    months.iter().any(|(p, ..)| {
        p.status(now, grace) == Status::Final && !stored.iter().any(|s| s.0 == p.label())
    })
}

/// The page of a tenant's months, newest first, a stored statement's figures where one is.
fn summaries(
    months: Months,
    stored: &Stored,
    now: Micros,
    grace: Micros,
    page: PageRequest<String>,
) -> Page<Summary> {
    let after = page.after.clone();
    let rows: Vec<Summary> = months
        .into_iter()
        .rev()
        .filter(|(p, ..)| after.as_ref().is_none_or(|a| p.label() < *a))
        .take(page.fetch() as usize)
        .map(|(p, events, billed)| {
            let label = p.label();
            let done = stored.iter().find(|s| s.0 == label);
            Summary {
                status: if done.is_some() {
                    Status::Final
                } else {
                    p.status(now, grace)
                },
                period: label,
                events,
                billed_cost_usd: billed,
                amount_due_usd: done.map_or(amount_due(billed), |s| s.1),
                finalized_at: done.map(|s| rfc3339(s.2)),
            }
        })
        .collect();
    Page::from_rows(rows, page.limit, |s| s.period.clone())
}

/// The operator's report from its tenants' rows: ordered by billed cost, then slug, and added up.
fn report_of(period: Period, status: Status, mut tenants: Vec<statement::ReportRow>) -> Report {
    tenants.sort_by(|a, b| {
        b.billed_cost_usd
            .cmp(&a.billed_cost_usd)
            .then_with(|| a.slug.cmp(&b.slug))
    });
    let mut totals = ReportTotals::default();
    for t in &mut tenants {
        t.status = status;
        totals.tenants += 1;
        totals.events = totals.events.saturating_add(t.events);
        totals.billed_cost_usd = totals.billed_cost_usd.saturating_add(t.billed_cost_usd);
        totals.amount_due_usd = totals.amount_due_usd.saturating_add(t.amount_due_usd);
    }
    Report {
        period: period.label(),
        from: rfc3339(period.from()),
        to: rfc3339(period.to()),
        status,
        tenants,
        totals,
    }
}
