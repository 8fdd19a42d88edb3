//! `/api/webhooks`: a tenant's webhook endpoints, their secrets, test sends, delivery log and
//! retries (owner; the admin token also sees and makes instance endpoints).
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::error::ApiError;
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::time::rfc3339;
use crate::webhooks::service::{EndpointPatch, NewEndpoint};
use crate::webhooks::{self, Delivery, Endpoint, Format, Scope};
use actix_web::http::{header, Method};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::POST, "/webhooks", Mount::Tenant, || {
            web::route().to(create)
        })
        .doc(
            "Create a webhook endpoint; its secret is shown in this response only",
            Access::Owner,
        )
        .body("WebhookCreate")
        .ok(201, Some("WebhookCreated")),
        Op::new(Method::GET, "/webhooks", Mount::Tenant, || {
            web::route().to(list)
        })
        .doc(
            "The tenant's webhook endpoints, without secrets",
            Access::Owner,
        )
        .query(&["limit", "cursor"])
        .ok(200, Some("WebhookPage")),
        Op::new(Method::GET, "/webhooks/{id}", Mount::Tenant, || {
            web::route().to(get)
        })
        .doc("One webhook endpoint, without its secret", Access::Owner)
        .ok(200, Some("Webhook"))
        .errors(&["not_found"]),
        Op::new(Method::PATCH, "/webhooks/{id}", Mount::Tenant, || {
            web::route().to(patch)
        })
        .doc(
            "Change an endpoint's url, event types, description or enabled",
            Access::Owner,
        )
        .body("WebhookPatch")
        .ok(200, Some("Webhook"))
        .errors(&["not_found"]),
        Op::new(Method::DELETE, "/webhooks/{id}", Mount::Tenant, || {
            web::route().to(delete)
        })
        .doc("Delete an endpoint and its deliveries", Access::Owner)
        .ok(204, None)
        .errors(&["not_found"]),
        Op::new(
            Method::POST,
            "/webhooks/{id}/rotate-secret",
            Mount::Tenant,
            || web::route().to(rotate),
        )
        .doc(
            "A new secret; the old one keeps signing for 24 hours",
            Access::Owner,
        )
        .ok(200, Some("WebhookSecret"))
        .errors(&["not_found"]),
        Op::new(Method::POST, "/webhooks/{id}/test", Mount::Tenant, || {
            web::route().to(test)
        })
        .doc(
            "Deliver a webhook.test event to this endpoint",
            Access::Owner,
        )
        .ok(202, Some("WebhookTest"))
        .errors(&["not_found"]),
        Op::new(
            Method::GET,
            "/webhooks/{id}/deliveries",
            Mount::Tenant,
            || web::route().to(deliveries),
        )
        .doc("An endpoint's deliveries, newest first", Access::Owner)
        .query(&["status", "limit", "cursor"])
        .ok(200, Some("WebhookDeliveryPage"))
        .errors(&["not_found"]),
        Op::new(
            Method::POST,
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            Mount::Tenant,
            || web::route().to(retry),
        )
        .doc("Send a delivery again now", Access::Owner)
        .ok(202, None)
        .errors(&["not_found"]),
    ]
}

/// An endpoint as the contract shows it; never its secret.
fn view(e: &Endpoint) -> Value {
    json!({
        "id": e.id,
        "scope": e.scope.as_str(),
        "url": e.url,
        "event_types": e.event_types,
        "description": e.description,
        "format": e.format.as_str(),
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "created_at": rfc3339(e.created_at),
    })
}

fn delivery_view(d: Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "last_status": d.last_status,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at.map(rfc3339),
        "created_at": rfc3339(d.created_at),
    })
}

/// A field that may be absent (keep), `null` (clear) or a value.
fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    format: Option<String>,
    scope: Option<String>,
}

async fn create(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewEndpoint {
        url: b.url,
        event_types: webhooks::parse_event_types(b.event_types)?,
        description: webhooks::parse_description(b.description)?,
        format: b
            .format
            .as_deref()
            .map_or(Ok(Format::Standard), Format::parse)?,
        scope: b.scope.as_deref().map_or(Ok(Scope::Tenant), Scope::parse)?,
    };
    let (e, secret) = st.webhooks.create(&ctx, new).await?;
    let mut v = view(&e);
    v["secret"] = json!(secret);
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v))
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.webhooks.list(&ctx, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|e| view(&e))))
}

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

async fn get(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(view(&st.webhooks.get(&ctx, &p.id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    enabled: Option<bool>,
}

async fn patch(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
    body: web::Json<PatchBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let patch = EndpointPatch {
        url: b.url,
        event_types: b.event_types.map(webhooks::parse_event_types).transpose()?,
        description: b.description.map(webhooks::parse_description).transpose()?,
        enabled: b.enabled,
    };
    let e = st.webhooks.update(&ctx, &p.id, patch).await?;
    Ok(HttpResponse::Ok().json(view(&e)))
}

async fn delete(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    st.webhooks.delete(&ctx, &p.id).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn rotate(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let secret = st.webhooks.rotate(&ctx, &p.id).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({"secret": secret})))
}

async fn test(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let event_id = st.webhooks.test(&ctx, &p.id).await?;
    Ok(HttpResponse::Accepted().json(json!({"event_id": event_id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn deliveries(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
    q: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.webhooks.deliveries(&ctx, &p.id, q.status, page).await?;
    Ok(HttpResponse::Ok().json(page.map(delivery_view)))
}

#[derive(Deserialize)]
struct DeliveryPath {
    id: String,
    delivery_id: String,
}

async fn retry(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<DeliveryPath>,
) -> Result<HttpResponse, ApiError> {
    st.webhooks.retry(&ctx, &p.id, &p.delivery_id).await?;
    Ok(HttpResponse::Accepted().finish())
}
