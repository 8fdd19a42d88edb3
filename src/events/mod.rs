//! Structured operational events of a tenant (lifecycle, security, billing, system), recorded in
//! the same transaction as the change they describe, and listed newest first. Never a secret in
//! `data`: callers pass ids, names and roles, not keys. The SQL is in `store`.
use crate::db::Db;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantCtx;
use crate::tenancy::TenantId;
use crate::time::Micros;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Severity, ApiError> {
        Ok(match s {
            "debug" => Severity::Debug,
            "info" => Severity::Info,
            "warning" => Severity::Warning,
            "error" => Severity::Error,
            "critical" => Severity::Critical,
            _ => {
                return Err(ApiError::InvalidRequest(
                    "severity must be debug, info, warning, error or critical".into(),
                ))
            }
        })
    }
}

/// What happened; each kind has one category and one severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    TenantCreated,
    TenantUpdated,
    TenantDeactivated,
    TenantReactivated,
    KeyCreated,
    KeyRevoked,
    MemberChanged,
    SettingsChanged,
    SettingsRolledBack,
    ProviderKeySet,
    ProviderKeyRemoved,
    ProviderKeyUnreadable,
    /// Usage of a model without a price: its events cost 0.
    PricingUnknownModel,
    LimitWarning,
    LimitExceeded,
    /// A gateway stream ended without the provider's usage: recorded with zero tokens.
    GatewayUsageMissing,
    /// A webhook endpoint was disabled by its deliveries (410 Gone, or failing for 5 days).
    WebhookDisabled,
    /// A billing period's statement was stored as final.
    StatementFinalized,
    /// A queue job spent its attempts (or its worker said not to retry it).
    JobDead,
    /// A tenant inactive past `TENANTRY_PURGE_INACTIVE_DAYS` was deleted with all it owned.
    /// Recorded on the default tenant (the instance's own), since the purged one's events go
    /// with it.
    TenantPurged,
}

impl Kind {
    pub fn event_type(self) -> &'static str {
        match self {
            Kind::TenantCreated => "tenant.created",
            Kind::TenantUpdated => "tenant.updated",
            Kind::TenantDeactivated => "tenant.deactivated",
            Kind::TenantReactivated => "tenant.reactivated",
            Kind::KeyCreated => "key.created",
            Kind::KeyRevoked => "key.revoked",
            Kind::MemberChanged => "member.changed",
            Kind::SettingsChanged => "settings.changed",
            Kind::SettingsRolledBack => "settings.rolled_back",
            Kind::ProviderKeySet => "provider_key.set",
            Kind::ProviderKeyRemoved => "provider_key.removed",
            Kind::ProviderKeyUnreadable => "provider_key.unreadable",
            Kind::PricingUnknownModel => "pricing.unknown_model",
            Kind::LimitWarning => "limit.warning",
            Kind::LimitExceeded => "limit.exceeded",
            Kind::GatewayUsageMissing => "gateway.usage_missing",
            Kind::WebhookDisabled => "webhook.disabled",
            Kind::StatementFinalized => "statement.finalized",
            Kind::JobDead => "job.dead",
            Kind::TenantPurged => "tenant.purged",
        }
    }

    pub fn category(self) -> &'static str {
        match self {
            Kind::TenantCreated
            | Kind::TenantUpdated
            | Kind::TenantDeactivated
            | Kind::TenantReactivated
            | Kind::SettingsChanged
            | Kind::SettingsRolledBack
            | Kind::WebhookDisabled => "api.lifecycle",
            Kind::KeyCreated
            | Kind::KeyRevoked
            | Kind::MemberChanged
            | Kind::ProviderKeySet
            | Kind::ProviderKeyRemoved
            | Kind::ProviderKeyUnreadable => "security",
            Kind::PricingUnknownModel
            | Kind::LimitWarning
            | Kind::LimitExceeded
            | Kind::StatementFinalized => "billing",
            Kind::GatewayUsageMissing | Kind::JobDead => "ai.operations",
            Kind::TenantPurged => "system",
        }
    }

    pub fn severity(self) -> Severity {
        match self {
            // A stored secret that no longer opens was tampered with or moved: an operator
            // must look at it, and every call that needs it fails until then.
            Kind::ProviderKeyUnreadable => Severity::Critical,
            Kind::TenantDeactivated
            | Kind::KeyRevoked
            | Kind::ProviderKeyRemoved
            | Kind::PricingUnknownModel
            | Kind::LimitWarning
            | Kind::GatewayUsageMissing
            | Kind::WebhookDisabled
            | Kind::TenantPurged => Severity::Warning,
            Kind::LimitExceeded | Kind::JobDead => Severity::Error,
            _ => Severity::Info,
        }
    }
}

/// Who said what happened: tenantry itself (a `Kind`, whose category, type and severity are
/// fixed), or an application through `POST /api/events` (checked by `AppEvent::parse`).
#[derive(Clone, Debug)]
pub enum Origin {
    Tenantry(Kind),
    Application {
        category: AppCategory,
        event_type: String,
        severity: Severity,
    },
}

/// One event to write.
pub struct NewEvent {
    /// Chosen before the INSERT, so the caller knows the event it wrote.
    pub id: Uuid,
    pub origin: Origin,
    pub tenant_id: TenantId,
    pub message: String,
    pub data: Value,
    /// When set, a second event with the same key for the tenant is silently not written.
    pub once_key: Option<String>,
}

impl NewEvent {
    pub fn of(kind: Kind, tenant_id: TenantId, message: String, data: Value) -> NewEvent {
        NewEvent {
            id: Uuid::new_v4(),
            origin: Origin::Tenantry(kind),
            tenant_id,
            message,
            data,
            once_key: None,
        }
    }

    /// Written once per tenant and key, however often or concurrently it is recorded.
    pub fn once(mut self, key: String) -> NewEvent {
        self.once_key = Some(key);
        self
    }

    pub fn category(&self) -> &str {
        match &self.origin {
            Origin::Tenantry(kind) => kind.category(),
            Origin::Application { category, .. } => category.as_str(),
        }
    }

    pub fn event_type(&self) -> &str {
        match &self.origin {
            Origin::Tenantry(kind) => kind.event_type(),
            Origin::Application { event_type, .. } => event_type,
        }
    }

    pub fn severity(&self) -> Severity {
        match &self.origin {
            Origin::Tenantry(kind) => kind.severity(),
            Origin::Application { severity, .. } => *severity,
        }
    }
}

mod app;
pub mod pg;
pub mod retention;
mod store;
pub use app::{AppCategory, AppEvent};
pub use store::record;

#[derive(Debug, Serialize)]
pub struct Event {
    pub id: String,
    pub tenant_id: String,
    pub category: String,
    pub event_type: String,
    pub severity: String,
    pub message: String,
    pub data: Value,
    pub created_at: String,
    /// `(created_at, seq)`, the keyset the list pages by.
    #[serde(skip)]
    pub(crate) key: (Micros, i64),
}

#[derive(Default)]
pub struct EventFilter {
    pub category: Option<String>,
    pub severity: Option<Severity>,
    pub from: Option<Micros>,
    pub to: Option<Micros>,
}

/// Records one event in a transaction of its own, on either store, with its webhook deliveries.
pub async fn record_alone(db: &Db, now: Micros, event: NewEvent) -> Result<(), ApiError> {
    if let Some(pg) = db.pg() {
        let c = pg.conn().await?;
        pg::record_many(&**c, &[(now, event)]).await?;
        return Ok(());
    }
    db.write(move |c| {
        store::record(c, now, event)?;
        Ok(())
    })
    .await
}

/// The events area: lists a tenant's events. Events are written by the other areas inside
/// their own transactions, with `record`.
#[derive(Clone)]
pub struct Events {
    db: Db,
}

impl Events {
    pub fn new(db: Db) -> Events {
        Events { db }
    }

    /// Records one event in a transaction of its own, for an area with nothing else to write.
    pub async fn record(&self, now: Micros, event: NewEvent) -> Result<(), ApiError> {
        record_alone(&self.db, now, event).await
    }

    /// Records an application's event for the caller's tenant (member or service) and returns
    /// it as the list shows it.
    pub async fn post(&self, ctx: &TenantCtx, now: Micros, body: Value) -> Result<Event, ApiError> {
        ctx.require(crate::auth::Action::Ingest)?;
        let event = AppEvent::from_body(body)?.parse(ctx.id())?;
        if let Some(pg) = self.db.pg() {
            let mut c = pg.conn().await?;
            let tx = c.transaction().await?;
            let id = event.id;
            pg::record_many(&*tx, &[(now, event)]).await?;
            let stored = pg::get(&*tx, ctx.id(), id).await?;
            tx.commit().await?;
            return stored.ok_or_else(|| ApiError::internal("a recorded event is missing"));
        }
        let (tenant, id) = (ctx.db_id(), event.id.to_string());
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                store::record(&tx, now, event)?;
                let stored = store::get(&tx, &tenant, &id)?;
                tx.commit()?;
                Ok(stored)
            })
            .await
    }

    /// The tenant's events, newest first.
    pub async fn list(
        &self,
        ctx: &TenantCtx,
        filter: EventFilter,
        page: PageRequest<(Micros, i64)>,
    ) -> Result<Page<Event>, ApiError> {
        ctx.require(crate::auth::Action::Read)?;
        if let Some(pg) = self.db.pg() {
            let c = pg.conn().await?;
            let rows = pg::list(&**c, ctx.id(), &filter, &page).await?;
            return Ok(Page::from_rows(rows, page.limit, |e| e.key));
        }
        let ctx = ctx.clone();
        self.db
            .run(move |c| {
                let rows = store::list(c, &ctx.db_id(), &filter, &page)?;
                Ok(Page::from_rows(rows, page.limit, |e| e.key))
            })
            .await
    }
}
