//! `/api/tenants`: the admin's tenant management.
use super::extract::AdminCaller;
use super::routes::{Mount, Op};
use super::views::TenantView;
use crate::auth::Access;
use crate::error::ApiError;
use crate::pagination::PageRequest;
use crate::state::AppState;
use crate::tenancy::tenants::{NewTenant, TenantPatch};
use crate::tenancy::Status;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::POST, "/tenants", Mount::Api, || {
            web::route().to(create)
        })
        .doc(
            "Create a tenant, optionally from a template with initial settings",
            Access::Admin,
        )
        .body("TenantCreate")
        .ok(201, Some("Tenant"))
        .errors(&["conflict", "feature_disabled"]),
        Op::new(Method::GET, "/tenants", Mount::Api, || {
            web::route().to(list)
        })
        .doc("List tenants", Access::Admin)
        .query(&["status", "limit", "cursor"])
        .ok(200, Some("TenantPage")),
        Op::new(Method::GET, "/tenants/{id}", Mount::Api, || {
            web::route().to(get)
        })
        .doc("A tenant by id or slug", Access::Admin)
        .ok(200, Some("Tenant"))
        .errors(&["not_found"]),
        Op::new(Method::PATCH, "/tenants/{id}", Mount::Api, || {
            web::route().to(update)
        })
        .doc("Rename a tenant, change its slug or plan", Access::Admin)
        .body("TenantPatch")
        .ok(200, Some("Tenant"))
        .errors(&["not_found", "conflict"]),
        Op::new(Method::DELETE, "/tenants/{id}", Mount::Api, || {
            web::route().to(delete)
        })
        .doc(
            "Hard delete of an inactive tenant and all it owns",
            Access::Admin,
        )
        .query(&["confirm"])
        .ok(204, None)
        .errors(&["not_found", "conflict"]),
        Op::new(Method::POST, "/tenants/{id}/deactivate", Mount::Api, || {
            web::route().to(deactivate)
        })
        .doc(
            "Soft delete: every request for the tenant is refused from now on",
            Access::Admin,
        )
        .ok(200, Some("Tenant"))
        .errors(&["not_found", "conflict"]),
        Op::new(Method::POST, "/tenants/{id}/reactivate", Mount::Api, || {
            web::route().to(reactivate)
        })
        .doc("Serve a deactivated tenant again", Access::Admin)
        .ok(200, Some("Tenant"))
        .errors(&["not_found"]),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    slug: Option<String>,
    plan: Option<String>,
    template: Option<String>,
    settings: Option<serde_json::Value>,
}

async fn create(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewTenant::parse(
        &b.name,
        b.slug.as_deref(),
        b.plan.as_deref(),
        b.template.as_deref(),
        b.settings.as_ref(),
    )?;
    let t = st.tenancy.create(&admin, new).await?;
    Ok(HttpResponse::Created().json(TenantView::from(&t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(Status::parse)
        .transpose()
        .map_err(ApiError::InvalidRequest)?;
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.tenancy.list(&admin, status, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|t| TenantView::from(&t))))
}

#[derive(Deserialize)]
struct IdPath {
    id: String,
}

async fn get(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let t = st.tenancy.find(&admin, &p.id).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(t.as_ref())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    name: Option<String>,
    slug: Option<String>,
    plan: Option<String>,
}

async fn update(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
    body: web::Json<PatchBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let patch = TenantPatch::parse(b.name.as_deref(), b.slug.as_deref(), b.plan.as_deref())?;
    let t = st.tenancy.update(&admin, &p.id, patch).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(&t)))
}

async fn deactivate(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let t = st
        .tenancy
        .set_status(&admin, &p.id, Status::Inactive)
        .await?;
    Ok(HttpResponse::Ok().json(TenantView::from(&t)))
}

async fn reactivate(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
) -> Result<HttpResponse, ApiError> {
    let t = st.tenancy.set_status(&admin, &p.id, Status::Active).await?;
    Ok(HttpResponse::Ok().json(TenantView::from(&t)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteQuery {
    confirm: Option<String>,
}

async fn delete(
    AdminCaller(admin): AdminCaller,
    st: web::Data<AppState>,
    p: web::Path<IdPath>,
    q: web::Query<DeleteQuery>,
) -> Result<HttpResponse, ApiError> {
    st.tenancy
        .delete(&admin, &p.id, q.confirm.as_deref())
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
