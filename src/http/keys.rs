//! `/api/keys`: a tenant's API keys (owner).
use super::routes::{Mount, Op};
use super::views::KeyView;
use crate::auth::keys::NewKey;
use crate::auth::Access;
use crate::error::ApiError;
use crate::pagination::{PageQuery, PageRequest};
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::POST, "/keys", Mount::Tenant, || {
            web::route().to(create)
        })
        .doc(
            "Create an API key; the key is shown in this response only",
            Access::Owner,
        )
        .body("KeyCreate")
        .ok(201, Some("KeyCreated")),
        Op::new(Method::GET, "/keys", Mount::Tenant, || {
            web::route().to(list)
        })
        .doc(
            "The tenant's keys, without the keys themselves",
            Access::Owner,
        )
        .query(&["limit", "cursor"])
        .ok(200, Some("KeyPage")),
        Op::new(Method::DELETE, "/keys/{id}", Mount::Tenant, || {
            web::route().to(revoke)
        })
        .doc(
            "Revoke a key: refused from the next request on",
            Access::Owner,
        )
        .ok(204, None)
        .errors(&["not_found"]),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    role: String,
    user_id: Option<String>,
    expires_at: Option<String>,
}

async fn create(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.into_inner();
    let new = NewKey::parse(
        &b.name,
        &b.role,
        b.user_id.as_deref(),
        b.expires_at.as_deref(),
    )?;
    let created = st.keys.create(&ctx, new).await?;
    let mut view = KeyView::from(created.key);
    view.key = Some(created.secret);
    Ok(HttpResponse::Created().json(view))
}

async fn list(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.keys.list(&ctx, page).await?;
    Ok(HttpResponse::Ok().json(page.map(KeyView::from)))
}

#[derive(Deserialize)]
struct KeyPath {
    id: String,
}

async fn revoke(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<KeyPath>,
) -> Result<HttpResponse, ApiError> {
    st.keys.revoke(&ctx, &p.id).await?;
    Ok(HttpResponse::NoContent().finish())
}
