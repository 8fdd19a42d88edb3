//! The webhooks area: endpoint operations for owners (and the admin, for instance endpoints),
//! their secrets, test sends, the delivery log and manual retries.
use super::outbox::{self, EventRow, Outbox, Snapshot};
use super::service_pg as pg;
use super::store;
use super::{sign, ssrf, Delivery, Endpoint, Format, Scope};
use crate::auth::{Action, Caller};
use crate::clock::Clock;
use crate::crypto::{self, MasterKey};
use crate::db::Db;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::{TenantCtx, DEFAULT_TENANT_ID};
use crate::time::{to_micros, Micros};
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

/// How long a rotated-out secret still signs.
pub const ROTATION_OVERLAP: Micros = 24 * 3600 * 1_000_000;

/// What sealing binds a secret to besides its tenant: the endpoint, so a sealed secret copied
/// to another endpoint's row does not open.
pub fn binding(endpoint: &str) -> String {
    format!("webhook:{endpoint}")
}

pub struct NewEndpoint {
    pub url: String,
    pub event_types: Option<Vec<String>>,
    pub description: Option<String>,
    pub format: Format,
    pub scope: Scope,
}

/// A PATCH: each field present replaces the stored one.
#[derive(Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub event_types: Option<Option<Vec<String>>>,
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
}

#[derive(Clone)]
pub struct Webhooks {
    pub(super) db: Db,
    clock: Arc<dyn Clock>,
    key: Arc<MasterKey>,
    allow_private: bool,
    outbox: Arc<Outbox>,
}

impl Webhooks {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        key: Arc<MasterKey>,
        allow_private: bool,
    ) -> Result<Webhooks, String> {
        // On PostgreSQL the outbox matches endpoints in SQL: no snapshot to keep.
        let outbox = match db.pg() {
            Some(_) => Arc::default(),
            None => {
                let c = db.conn().map_err(|e| e.to_string())?;
                outbox::register(&c).map_err(|e| format!("loading webhooks: {e}"))?
            }
        };
        Ok(Webhooks {
            db,
            clock,
            key,
            allow_private,
            outbox,
        })
    }

    pub(super) fn now(&self) -> Micros {
        to_micros(self.clock.now())
    }

    pub fn outbox(&self) -> Arc<Outbox> {
        self.outbox.clone()
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    async fn check_url(&self, url: &str) -> Result<String, ApiError> {
        let parsed = super::parse_url(url)?;
        ssrf::check_url(&parsed, self.allow_private)
            .await
            .map_err(|e| ApiError::InvalidRequest(format!("url: {e}")))?;
        Ok(parsed.to_string())
    }

    /// Runs an endpoint write, then reloads the outbox's snapshot before the next write.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let outbox = self.outbox.clone();
        self.db
            .write(move |c| {
                let tx = c.transaction()?;
                let out = f(&tx)?;
                tx.commit()?;
                outbox.replace(Snapshot::load(c)?);
                Ok(out)
            })
            .await
    }

    /// Creates an endpoint; returns it and its secret, which is never shown again.
    pub async fn create(
        &self,
        ctx: &TenantCtx,
        new: NewEndpoint,
    ) -> Result<(Endpoint, String), ApiError> {
        ctx.require(Action::Manage)?;
        let owner = match new.scope {
            Scope::Tenant => ctx.id(),
            Scope::Instance if is_admin(ctx) => DEFAULT_TENANT_ID,
            Scope::Instance => {
                return Err(ApiError::Forbidden(
                    "an instance endpoint needs the admin token".into(),
                ))
            }
        };
        let url = self.check_url(&new.url).await?;
        let e = Endpoint {
            id: uuid::Uuid::new_v4().to_string(),
            tenant_id: owner,
            scope: new.scope,
            url,
            event_types: new.event_types,
            description: new.description,
            format: new.format,
            enabled: true,
            disabled_reason: None,
            created_at: self.now(),
        };
        let secret = sign::new_secret();
        let sealed = crypto::seal(&self.key, &secret, owner.as_uuid(), &binding(&e.id))
            .map_err(ApiError::internal)?;
        if let Some(pg) = self.db.pg() {
            pg::insert_endpoint(pg, &e, &sealed).await?;
            return Ok((e, secret));
        }
        let row = e.clone();
        self.write(move |c| Ok(store::insert_endpoint(c, &row, &sealed)?))
            .await?;
        Ok((e, secret))
    }

    /// The caller's endpoints (the admin's list holds the instance's too), oldest first.
    pub async fn list(
        &self,
        ctx: &TenantCtx,
        page: PageRequest<(Micros, String)>,
    ) -> Result<Page<Endpoint>, ApiError> {
        ctx.require(Action::Manage)?;
        let (tenant, admin) = (ctx.id(), is_admin(ctx));
        if let Some(pg) = self.db.pg() {
            return pg::list_endpoints(pg, tenant, admin, page).await;
        }
        self.db
            .run(move |c| {
                let rows =
                    store::list_endpoints(c, tenant, admin, page.after.as_ref(), page.fetch())?;
                Ok(Page::from_rows(rows, page.limit, |e| {
                    (e.created_at, e.id.clone())
                }))
            })
            .await
    }

    /// An endpoint the caller may see; any other id is not found.
    pub async fn get(&self, ctx: &TenantCtx, id: &str) -> Result<Endpoint, ApiError> {
        ctx.require(Action::Manage)?;
        let e = match self.db.pg() {
            Some(pg) => pg::get_endpoint(pg, id).await?,
            None => {
                let id = id.to_string();
                self.db
                    .run(move |c| Ok(store::get_endpoint(c, &id)?))
                    .await?
            }
        };
        e.filter(|e| visible(ctx, e))
            .ok_or_else(|| ApiError::NotFound("no such webhook endpoint".into()))
    }

    pub async fn update(
        &self,
        ctx: &TenantCtx,
        id: &str,
        patch: EndpointPatch,
    ) -> Result<Endpoint, ApiError> {
        let mut e = self.get(ctx, id).await?;
        if let Some(url) = patch.url {
            e.url = self.check_url(&url).await?;
        }
        if let Some(t) = patch.event_types {
            e.event_types = t;
        }
        if let Some(d) = patch.description {
            e.description = d;
        }
        if let Some(on) = patch.enabled {
            e.enabled = on;
            e.disabled_reason = if on {
                None
            } else {
                Some(e.disabled_reason.unwrap_or_else(|| "manual".into()))
            };
        }
        let (row, now) = (e.clone(), self.now());
        if let Some(pg) = self.db.pg() {
            pg::update_endpoint(pg, &row, now).await?;
            return Ok(e);
        }
        self.write(move |c| Ok(store::update_endpoint(c, &row, now)?))
            .await?;
        Ok(e)
    }

    pub async fn delete(&self, ctx: &TenantCtx, id: &str) -> Result<(), ApiError> {
        let e = self.get(ctx, id).await?;
        if let Some(pg) = self.db.pg() {
            return pg::delete_endpoint(pg, &e).await;
        }
        self.write(move |c| Ok(store::delete_endpoint(c, &e.id).map(drop)?))
            .await
    }

    /// A new secret; the old one keeps signing for `ROTATION_OVERLAP`.
    pub async fn rotate(&self, ctx: &TenantCtx, id: &str) -> Result<String, ApiError> {
        let e = self.get(ctx, id).await?;
        let secret = sign::new_secret();
        let sealed = crypto::seal(&self.key, &secret, e.tenant_id.as_uuid(), &binding(&e.id))
            .map_err(ApiError::internal)?;
        let now = self.now();
        if let Some(pg) = self.db.pg() {
            pg::rotate_secret(pg, &e, &sealed, now).await?;
            return Ok(secret);
        }
        self.write(move |c| {
            Ok(store::rotate_secret(
                c,
                &e.id,
                &sealed,
                now + ROTATION_OVERLAP,
                now,
            )?)
        })
        .await?;
        Ok(secret)
    }

    /// Queues a `webhook.test` event for this endpoint only (it is not an operational event
    /// of the tenant, so no other endpoint receives it and the event list does not show it).
    pub async fn test(&self, ctx: &TenantCtx, id: &str) -> Result<String, ApiError> {
        let e = self.get(ctx, id).await?;
        let (now, actor, tenant) = (self.now(), ctx.caller().describe(), ctx.id());
        let outbox = self.outbox.clone();
        let event_id = uuid::Uuid::new_v4().to_string();
        let out = event_id.clone();
        let data = json!({"endpoint_id": e.id, "actor": actor});
        if let Some(pg) = self.db.pg() {
            pg::test(pg, &e, &test_event(&event_id, tenant, &data, now)).await?;
            return Ok(out);
        }
        self.db
            .run(move |c| {
                let row = test_event(&event_id, tenant, &data, now);
                outbox::deliver_to(c, &e.id, e.tenant_id, &row, &row.render().to_string())?;
                outbox.resume(&e.id);
                Ok(())
            })
            .await?;
        Ok(out)
    }

    pub async fn deliveries(
        &self,
        ctx: &TenantCtx,
        id: &str,
        status: Option<String>,
        page: PageRequest<i64>,
    ) -> Result<Page<Delivery>, ApiError> {
        if let Some(s) = &status {
            if !matches!(s.as_str(), "pending" | "succeeded" | "failed" | "exhausted") {
                return Err(ApiError::InvalidRequest(
                    "status must be pending, succeeded, failed or exhausted".into(),
                ));
            }
        }
        let e = self.get(ctx, id).await?;
        if let Some(pg) = self.db.pg() {
            return pg::list_deliveries(pg, &e, status.as_deref(), page).await;
        }
        self.db
            .run(move |c| {
                let rows =
                    store::list_deliveries(c, &e.id, status.as_deref(), page.after, page.fetch())?;
                Ok(Page::from_rows(rows, page.limit, |d| d.seq))
            })
            .await
    }

    /// Makes a delivery due now, whatever its status.
    pub async fn retry(&self, ctx: &TenantCtx, id: &str, delivery: &str) -> Result<(), ApiError> {
        let e = self.get(ctx, id).await?;
        if let Some(pg) = self.db.pg() {
            return pg::retry(pg, &e, delivery, self.now()).await;
        }
        let (delivery, now, outbox) = (delivery.to_string(), self.now(), self.outbox.clone());
        self.db
            .run(move |c| {
                if !store::retry_delivery(c, &e.id, &delivery, now)? {
                    return Err(ApiError::NotFound("no such delivery".into()));
                }
                outbox.resume(&e.id);
                Ok(())
            })
            .await
    }
}

/// The `webhook.test` event a test send delivers.
fn test_event<'a>(
    id: &'a str,
    tenant: crate::tenancy::TenantId,
    data: &'a serde_json::Value,
    now: Micros,
) -> EventRow<'a> {
    EventRow {
        id,
        tenant_id: tenant,
        category: "api.lifecycle",
        event_type: "webhook.test",
        severity: "info",
        message: "a test event sent on request",
        data,
        created_at: now,
    }
}

fn is_admin(ctx: &TenantCtx) -> bool {
    matches!(ctx.caller(), Caller::Admin(_))
}

/// A tenant sees its own endpoints; only the admin sees the instance's.
fn visible(ctx: &TenantCtx, e: &Endpoint) -> bool {
    match e.scope {
        Scope::Tenant => e.tenant_id == ctx.id(),
        Scope::Instance => is_admin(ctx),
    }
}
