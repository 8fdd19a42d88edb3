//! `Billing`'s PostgreSQL paths (issue 19): the same answers as the SQLite paths in `mod.rs`,
//! built by the same functions there, from `store_pg`; a final statement not yet stored is
//! stored first under the tenant's usage lock (`finalize_pg`).
use super::period::{Period, Status};
use super::statement::{Report, Statement, Summary};
use super::{final_statement, finalize_pg, missing_finals, report_of, store_pg, summaries};
use super::{Billing, Feature};
use crate::db::pg::Pg;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;

impl Billing {
    /// Starts the finalizer on PostgreSQL (billing on only): it sweeps on `pool` while this
    /// replica leads (docs/SCALE_OUT.md §5.3).
    pub fn start_finalizer_pg(
        &self,
        pool: Pg,
        every: std::time::Duration,
        alive: std::sync::Weak<std::fs::File>,
    ) {
        if self.flags.enabled(Feature::Billing) {
            finalize_pg::start(
                self.db.clone(),
                pool,
                self.clock.clone(),
                self.grace,
                every,
                alive,
            );
        }
    }

    pub(super) async fn statement_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        period: Period,
    ) -> Result<Statement, ApiError> {
        let (id, grace) = (ctx.id().as_uuid(), self.grace);
        let status = period.status(self.now(), grace);
        let mut c = pg.conn().await?;
        // Stored is final, even when this replica's clock lags the one that stored it.
        let stored = store_pg::stored(&**c, id, period).await?;
        if status != Status::Final && stored.is_none() {
            let lines = store_pg::live_lines(&**c, id, period).await?;
            return Ok(Statement::new(ctx.db_id(), period, status, lines, None));
        }
        let stored = match stored {
            Some(s) => Some(s),
            None => {
                let tx = c.transaction().await?;
                let now = finalize_pg::lock(&*tx, self.clock.as_ref(), id).await?;
                let stored = finalize_pg::finalize(&*tx, id, period, now).await?;
                tx.commit().await?;
                stored
            }
        };
        Ok(final_statement(ctx.db_id(), period, grace, stored))
    }

    pub(super) async fn statements_pg(
        &self,
        pg: &Pg,
        ctx: &TenantCtx,
        page: PageRequest<String>,
    ) -> Result<Page<Summary>, ApiError> {
        let (id, grace, now) = (ctx.id().as_uuid(), self.grace, self.now());
        let mut c = pg.conn().await?;
        let months = store_pg::months(&**c, id).await?;
        let mut stored = store_pg::finalized(&**c, id).await?;
        if missing_finals(&months, &stored, now, grace) {
            // Store what the finalizer has not yet, so every `final` listed is the stored one.
            let tx = c.transaction().await?;
            let now = finalize_pg::lock(&*tx, self.clock.as_ref(), id).await?;
            for (p, ..) in months
                .iter()
                .filter(|m| m.0.status(now, grace) == Status::Final)
            {
                finalize_pg::finalize(&*tx, id, *p, now).await?;
            }
            stored = store_pg::finalized(&*tx, id).await?;
            tx.commit().await?;
        }
        Ok(summaries(months, &stored, now, grace, page))
    }

    pub(super) async fn report_pg(&self, pg: &Pg, period: Period) -> Result<Report, ApiError> {
        let grace = self.grace;
        let status = period.status(self.now(), grace);
        let c = pg.conn().await?;
        let tenants = if status == Status::Final {
            let finished = store_pg::finalized_through(&**c)
                .await?
                .is_some_and(|t| period < t);
            if !finished {
                // The finalizer has not reached this period: store its statements first.
                finalize_pg::finalize_period(pg, self.clock.as_ref(), grace, period).await?;
            }
            store_pg::final_report(&**c, period).await?
        } else {
            store_pg::live_report(&**c, period).await?
        };
        Ok(report_of(period, status, tenants))
    }
}
