//! The webhooks area's writes and reads on PostgreSQL (issue 19), which `service` calls after
//! the checks both stores share. No snapshot to reload after an endpoint write: on PostgreSQL
//! the outbox matches endpoints in SQL (`events::pg::RECORD_MANY`), and the deliverer reads an
//! endpoint's URL and secrets when it leases a delivery.
use super::deliverer_pg;
use super::outbox::EventRow;
use super::service::ROTATION_OVERLAP;
use super::store::NewDelivery;
use super::store_pg::{self, id};
use super::{Delivery, Endpoint};
use crate::db::pg::Pg;
use crate::error::ApiError;
use crate::pagination::{Page, PageRequest};
use crate::tenancy::TenantId;
use crate::time::Micros;
use uuid::Uuid;

/// An endpoint's id as stored (a UUID: the service made it).
fn uuid_of(e: &Endpoint) -> Result<Uuid, ApiError> {
    id(&e.id).ok_or_else(|| ApiError::NotFound("no such webhook endpoint".into()))
}

pub async fn insert_endpoint(pg: &Pg, e: &Endpoint, sealed: &[u8]) -> Result<(), ApiError> {
    let c = pg.conn().await?;
    store_pg::insert_endpoint(&**c, e, uuid_of(e)?, sealed).await?;
    Ok(())
}

pub async fn list_endpoints(
    pg: &Pg,
    tenant: TenantId,
    admin: bool,
    page: PageRequest<(Micros, String)>,
) -> Result<Page<Endpoint>, ApiError> {
    let c = pg.conn().await?;
    let rows =
        store_pg::list_endpoints(&**c, tenant, admin, page.after.as_ref(), page.fetch()).await?;
    Ok(Page::from_rows(rows, page.limit, |e| {
        (e.created_at, e.id.clone())
    }))
}

/// An endpoint by the id a request named; an id that is no UUID names none.
pub async fn get_endpoint(pg: &Pg, endpoint: &str) -> Result<Option<Endpoint>, ApiError> {
    let Some(endpoint) = id(endpoint) else {
        return Ok(None);
    };
    let c = pg.conn().await?;
    Ok(store_pg::get_endpoint(&**c, endpoint).await?)
}

pub async fn update_endpoint(pg: &Pg, e: &Endpoint, now: Micros) -> Result<(), ApiError> {
    let c = pg.conn().await?;
    store_pg::update_endpoint(&**c, e, uuid_of(e)?, now).await?;
    // Re-enabled: its deliveries still due go out now.
    deliverer_pg::ring();
    Ok(())
}

pub async fn delete_endpoint(pg: &Pg, e: &Endpoint) -> Result<(), ApiError> {
    let c = pg.conn().await?;
    store_pg::delete_endpoint(&**c, uuid_of(e)?).await?;
    Ok(())
}

pub async fn rotate_secret(
    pg: &Pg,
    e: &Endpoint,
    sealed: &[u8],
    now: Micros,
) -> Result<(), ApiError> {
    let c = pg.conn().await?;
    store_pg::rotate_secret(&**c, uuid_of(e)?, sealed, now + ROTATION_OVERLAP, now).await?;
    Ok(())
}

/// Writes the test event's one delivery, due now, and rings the deliverer.
pub async fn test(pg: &Pg, e: &Endpoint, event: &EventRow<'_>) -> Result<(), ApiError> {
    let payload = event.render().to_string();
    let d = NewDelivery {
        endpoint_id: &e.id,
        owner: e.tenant_id,
        event_tenant: event.tenant_id,
        event_id: event.id,
        event_type: event.event_type,
        payload: &payload,
        at: event.created_at,
    };
    let c = pg.conn().await?;
    store_pg::insert_delivery(&**c, &d, uuid_of(e)?).await?;
    deliverer_pg::ring();
    Ok(())
}

pub async fn list_deliveries(
    pg: &Pg,
    e: &Endpoint,
    status: Option<&str>,
    page: PageRequest<i64>,
) -> Result<Page<Delivery>, ApiError> {
    let c = pg.conn().await?;
    let rows =
        store_pg::list_deliveries(&**c, uuid_of(e)?, status, page.after, page.fetch()).await?;
    Ok(Page::from_rows(rows, page.limit, |d| d.seq))
}

/// Makes a delivery due now, whatever its status, and rings the deliverer.
pub async fn retry(pg: &Pg, e: &Endpoint, delivery: &str, now: Micros) -> Result<(), ApiError> {
    let missing = || ApiError::NotFound("no such delivery".into());
    let delivery = id(delivery).ok_or_else(missing)?;
    let c = pg.conn().await?;
    if !store_pg::retry_delivery(&**c, uuid_of(e)?, delivery, now).await? {
        return Err(missing());
    }
    deliverer_pg::ring();
    Ok(())
}
