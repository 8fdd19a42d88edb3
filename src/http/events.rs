//! `GET /api/events`: the tenant's operational events, newest first (viewer); `POST /api/events`:
//! an application records one of its own (member or service).
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::error::ApiError;
use crate::events::{EventFilter, Severity};
use crate::pagination::PageRequest;
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::time::parse_rfc3339;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn ops() -> Vec<Op> {
    vec![Op::new(Method::GET, "/events", Mount::Tenant, || {
        web::route().to(list)
    })
    .doc(
        "The tenant's operational events, newest first",
        Access::Viewer,
    )
    .query(&["category", "severity", "from", "to", "limit", "cursor"])
    .ok(200, Some("EventPage")),
    Op::new(Method::POST, "/events", Mount::Tenant, || {
        web::route().to(post)
    })
    .doc(
        "Record an application's operational event (not in tenantry's own categories security and billing)",
        Access::MemberOrService,
    )
    .body("EventPost")
    .ok(201, Some("Event"))]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    category: Option<String>,
    severity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

pub fn time_param(v: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    v.map(|s| parse_rfc3339(s).map_err(|e| ApiError::InvalidRequest(format!("{name}: {e}"))))
        .transpose()
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = q.into_inner();
    let filter = EventFilter {
        category: q.category,
        severity: q.severity.as_deref().map(Severity::parse).transpose()?,
        from: time_param(q.from.as_deref(), "from")?,
        to: time_param(q.to.as_deref(), "to")?,
    };
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    Ok(HttpResponse::Ok().json(st.events.list(&ctx, filter, page).await?))
}

async fn post(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let event = st.events.post(&ctx, st.now(), body.into_inner()).await?;
    Ok(HttpResponse::Created().json(event))
}
