//! `/api/members`: a tenant's members (read: viewer, write: owner).
use super::routes::{Mount, Op};
use super::views::MemberView;
use crate::auth::Access;
use crate::auth::Role;
use crate::error::ApiError;
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;
use crate::tenancy::members::UserId;
use crate::tenancy::TenantCtx;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/members", Mount::Tenant, || {
            web::route().to(list)
        })
        .doc("The tenant's members", Access::Viewer)
        .query(&["limit", "cursor"])
        .ok(200, Some("MemberPage")),
        Op::new(Method::PUT, "/members/{user_id}", Mount::Tenant, || {
            web::route().to(put)
        })
        .doc("Add a member or change its role", Access::Owner)
        .body("MemberPut")
        .ok(200, Some("Member"))
        .errors(&["conflict"]),
        Op::new(Method::DELETE, "/members/{user_id}", Mount::Tenant, || {
            web::route().to(remove)
        })
        .doc("Remove a member (never the last owner)", Access::Owner)
        .ok(204, None)
        .errors(&["not_found", "conflict"]),
    ]
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.tenancy.members(&ctx, page).await?;
    Ok(HttpResponse::Ok().json(page.map(MemberView::from)))
}

#[derive(Deserialize)]
struct UserPath {
    user_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutBody {
    role: String,
}

async fn put(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<UserPath>,
    body: web::Json<PutBody>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&p.user_id)?;
    let role = Role::parse_member_role(&body.role).map_err(ApiError::InvalidRequest)?;
    let m = st.tenancy.put_member(&ctx, user, role).await?;
    Ok(HttpResponse::Ok().json(MemberView::from(m)))
}

async fn remove(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = UserId::parse(&p.user_id)?;
    st.tenancy.remove_member(&ctx, user).await?;
    Ok(HttpResponse::NoContent().finish())
}
