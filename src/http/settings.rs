//! `/api/settings` (read: viewer, write: owner), provider keys, and `/api/credentials`.
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::error::ApiError;
use crate::pagination::{PageQuery, PageRequest};
use crate::settings::cache::Current;
use crate::settings::provider_keys::{parse_api_key, Provider};
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use crate::time::rfc3339;
use actix_web::http::header;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/settings", Mount::Tenant, || {
            web::route().to(get)
        })
        .doc(
            "The tenant's settings; provider keys masked",
            Access::Viewer,
        )
        .ok(200, Some("Settings")),
        Op::new(Method::PATCH, "/settings", Mount::Tenant, || {
            web::route().to(patch)
        })
        .doc(
            "Change the named settings; `null` clears a limit; writes a new version",
            Access::Owner,
        )
        .body("SettingsPatch")
        .ok(200, Some("Settings")),
        Op::new(Method::GET, "/settings/history", Mount::Tenant, || {
            web::route().to(history)
        })
        .doc("Every settings version, newest first", Access::Viewer)
        .query(&["limit", "cursor"])
        .ok(200, Some("HistoryPage")),
        Op::new(Method::POST, "/settings/rollback", Mount::Tenant, || {
            web::route().to(rollback)
        })
        .doc(
            "Write a new version whose content is an old one's",
            Access::Owner,
        )
        .body("Rollback")
        .ok(200, Some("Settings"))
        .errors(&["not_found"]),
        Op::new(
            Method::PUT,
            "/settings/provider-keys/{provider}",
            Mount::Tenant,
            || web::route().to(put_provider_key),
        )
        .doc(
            "Store the tenant's own provider key, encrypted",
            Access::Owner,
        )
        .body("ProviderKeyPut")
        .ok(200, Some("Settings")),
        Op::new(
            Method::DELETE,
            "/settings/provider-keys/{provider}",
            Mount::Tenant,
            || web::route().to(delete_provider_key),
        )
        .doc("Remove the tenant's provider key", Access::Owner)
        .ok(204, None)
        .errors(&["not_found"]),
        Op::new(
            Method::GET,
            "/credentials/{provider}",
            Mount::Tenant,
            || web::route().to(credentials),
        )
        .doc(
            "The provider key to use now: the tenant's own (byo_key) or the instance's (hosted)",
            Access::Service,
        )
        .ok(200, Some("Credential"))
        .errors(&["byo_key_missing", "hosted_key_missing"]),
    ]
}

/// The settings as the contract shows them: content, version, masked provider keys, updated_at.
async fn view(st: &AppState, ctx: &TenantCtx, current: &Current) -> Result<Value, ApiError> {
    let keys = st.settings.masked_provider_keys(ctx).await?;
    let mut updated = current.changed_at;
    let mut provider_keys = Map::new();
    for k in keys {
        updated = updated.max(k.updated_at);
        provider_keys.insert(
            k.provider,
            json!({"masked": k.masked, "updated_at": rfc3339(k.updated_at)}),
        );
    }
    let mut v = json!(current.settings);
    v["version"] = json!(current.version);
    v["provider_keys"] = Value::Object(provider_keys);
    v["updated_at"] = json!(rfc3339(updated));
    Ok(v)
}

async fn current_view(st: &AppState, ctx: &TenantCtx) -> Result<HttpResponse, ApiError> {
    let current = st.settings.read_current(ctx).await?;
    Ok(HttpResponse::Ok().json(view(st, ctx, &current).await?))
}

async fn get(ctx: TenantCtx, st: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    current_view(&st, &ctx).await
}

async fn patch(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let next = st.settings.patch(&ctx, body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(view(&st, &ctx, &next).await?))
}

async fn history(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(q.limit, q.cursor.as_deref())?;
    let page = st.settings.history(&ctx, page).await?;
    Ok(HttpResponse::Ok().json(page.map(|h| {
        json!({"version": h.version, "settings": h.settings, "changed_by": h.changed_by,
               "changed_at": rfc3339(h.changed_at)})
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    version: i64,
}

async fn rollback(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    body: web::Json<RollbackBody>,
) -> Result<HttpResponse, ApiError> {
    let next = st.settings.rollback(&ctx, body.version).await?;
    Ok(HttpResponse::Ok().json(view(&st, &ctx, &next).await?))
}

#[derive(Deserialize)]
struct ProviderPath {
    provider: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderKeyBody {
    api_key: String,
}

async fn put_provider_key(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<ProviderPath>,
    body: web::Json<ProviderKeyBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = Provider::parse(&p.provider)?;
    let key = parse_api_key(body.into_inner().api_key)?;
    st.settings.set_provider_key(&ctx, provider, key).await?;
    current_view(&st, &ctx).await
}

async fn delete_provider_key(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<ProviderPath>,
) -> Result<HttpResponse, ApiError> {
    st.settings
        .remove_provider_key(&ctx, Provider::parse(&p.provider)?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn credentials(
    ctx: TenantCtx,
    st: web::Data<AppState>,
    p: web::Path<ProviderPath>,
) -> Result<HttpResponse, ApiError> {
    let provider = Provider::parse(&p.provider)?;
    let cred = st.settings.credential(&ctx, provider.clone()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "provider": provider.as_str(),
            "api_key": cred.api_key.expose(),
            "source": cred.source.as_str(),
        })))
}
