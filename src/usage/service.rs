//! The usage area: ingest through the writer, prices and agent preferences. Its reads are in
//! `reads.rs`.
use super::counters::Counters;
use super::event::UsageEvent;
use super::model::ModelName;
use super::priced::Priced;
use super::pricing::{lookup, Price, PricingTable};
use super::store;
use super::writer::{Batch, ClosedBefore, Outcome, Writer};
use crate::auth::{Action, AdminProof};
use crate::clock::Clock;
use crate::config::{Feature, Flags};
use crate::db::Db;
use crate::error::ApiError;
use crate::observe::metrics::Metrics;
use crate::settings::SettingsCache;
use crate::tenancy::{TenantCtx, TenantId};
use crate::time::{to_micros, Micros};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// The usage area: ingest through the one writer, the day/month/all-time windows, the price
/// table and the reads built on the rollups. Its parts are private; handlers call its methods
/// (`st.usage.ingest(...)`), so a call names the area it goes to.
#[derive(Clone)]
pub struct Usage {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    flags: Flags,
    /// Read for the settings an event is priced and recorded under; owned by the settings area.
    pub(super) settings: Arc<SettingsCache>,
    pricing: Arc<PricingTable>,
    pub(super) counters: Arc<Counters>,
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
        closed: ClosedBefore,
    ) -> Result<Usage, String> {
        let counters = Arc::new(Counters::default());
        let writer = match db.pg() {
            Some(pg) => super::pg_writer::start_with(pg.config().clone(), closed)?,
            None => Writer::start(db.dedicated()?, db.dedicated()?, counters.clone(), closed),
        };
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

    pub(super) fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    /// The price table, for the replica listener that reloads it (PostgreSQL).
    pub fn pricing(&self) -> Arc<PricingTable> {
        self.pricing.clone()
    }

    /// Drops a deleted tenant's windows, so a tenant made again with its id starts from zero.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.counters.remove(tenant);
    }

    /// Waits until every event submitted so far is committed (at shutdown).
    pub async fn flush(&self) -> Result<(), ApiError> {
        self.writer.flush().await
    }

    pub(super) fn usage_enabled(&self) -> Result<(), ApiError> {
        self.flags.require(Feature::UsageTracking)
    }

    pub async fn ingest(&self, ctx: &TenantCtx, body: Value) -> Result<Outcome, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Ingest)?;
        let now = self.now();
        let events = UsageEvent::parse_body(body, now)?;
        self.submit(ctx, events, now).await
    }

    /// Records one event the gateway metered, as if posted to `/api/usage/events`: bounded
    /// counts and a parsed model name are the gateway's to ensure.
    pub async fn record(&self, ctx: &TenantCtx, event: UsageEvent) -> Result<Outcome, ApiError> {
        self.usage_enabled()?;
        ctx.require(Action::Ingest)?;
        self.submit(ctx, vec![event], self.now()).await
    }

    /// Whether usage is metered on this instance (`ENABLE_USAGE_TRACKING`).
    pub fn metering(&self) -> bool {
        self.usage_enabled().is_ok()
    }

    async fn submit(
        &self,
        ctx: &TenantCtx,
        events: Vec<UsageEvent>,
        now: Micros,
    ) -> Result<Outcome, ApiError> {
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

    /// The models with a price, for the gateway's model list.
    pub fn priced_models(&self) -> Vec<String> {
        self.pricing.snapshot().keys().cloned().collect()
    }

    pub async fn agent_preferences(
        &self,
        ctx: &TenantCtx,
        agent: String,
    ) -> Result<Value, ApiError> {
        ctx.require(Action::Read)?;
        let tenant = ctx.db_id();
        let body: Option<String> = match self.db.pg() {
            Some(pg) => {
                let c = pg.conn().await?;
                super::pg_reads::agent_preferences(&**c, ctx.id().as_uuid(), &agent).await?
            }
            None => {
                self.db
                    .run(move |c| Ok(store::agent_preferences(c, &tenant, &agent)?))
                    .await?
            }
        };
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
        if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            super::pg_reads::set_agent_preferences(&**c, ctx.id().as_uuid(), &agent, &text, now)
                .await?;
            return Ok(prefs);
        }
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
        if let Some(pg) = self.db.pg() {
            // One price write at a time, so the table in memory ends as the last one stored;
            // other replicas hear of it through the notification committed with it.
            let _one_at_a_time = self.db.pg_write_lock().await;
            let mut c = pg.conn().await?;
            let tx = c.transaction().await?;
            super::pg_reads::set_price_override(&*tx, model.as_str(), price, now).await?;
            crate::db::pg::notify::notify(&*tx, &crate::db::pg::notify::Invalidation::Prices)
                .await?;
            tx.commit().await?;
            pricing.put(model.as_str(), price);
            return Ok((model.into_string(), price));
        }
        self.db
            .run(move |c| {
                let _one_at_a_time = serial.lock().unwrap_or_else(|p| p.into_inner());
                pricing.set(c, model.as_str(), price, now)?;
                Ok((model.into_string(), price))
            })
            .await
    }
}
