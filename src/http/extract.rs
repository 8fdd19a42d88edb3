//! Extractors that turn a request into who is calling (`Caller`, `AdminCaller`) and which tenant
//! it acts on (`TenantCtx`). Putting them first in a handler's arguments makes 401 and tenant
//! errors come before body errors.
use crate::auth::key_cache::{CachedKey, KeyCache, KEY_PREFIX};
use crate::auth::{AdminProof, Caller};
use crate::config::Feature;
use crate::error::ApiError;
use crate::limits::rate::{plan_rate, Decision};
use crate::proxies::TrustedProxies;
use crate::state::AppState;
use crate::tenancy::resolve::{resolve, Naming, Tenants};
use crate::tenancy::{Tenant, TenantCtx, TenantId};
use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use std::future::{ready, Ready};
use std::net::IpAddr;
use std::sync::Arc;

/// The rate-limit decision of a tenant-scoped request, for its `X-RateLimit-*` headers.
#[derive(Clone, Copy)]
pub struct RateInfo(pub Decision);

/// The admin is never limited; a tenant key is, by its tenant's `rate_limit_per_minute` or,
/// in multi-tenant mode, by its plan. Single-tenant mode limits nothing unless told to.
fn rate_per_minute(st: &AppState, ctx: &TenantCtx) -> Option<u32> {
    if ctx.caller().is_admin() {
        return None;
    }
    let per_minute = st.settings.current(ctx.id()).settings.rate_limit_per_minute;
    match (per_minute, st.config.flags.enabled(Feature::MultiTenant)) {
        (Some(n), _) => Some(n),
        (None, true) => Some(plan_rate(ctx.tenant().plan)),
        (None, false) => None,
    }
}

/// The in-memory decision; on PostgreSQL `Unlimited` for now, the shared bucket being charged
/// next, asynchronously, by `charge_shared_rate`.
fn rate_decision(st: &AppState, ctx: &TenantCtx) -> Decision {
    match rate_per_minute(st, ctx) {
        Some(_) if st.shared_rate.is_some() => Decision::Unlimited,
        Some(n) => st.rate.check(ctx.id(), n),
        None => Decision::Unlimited,
    }
}

/// On PostgreSQL, charges the resolved tenant's request to the bucket every replica shares
/// (`limits::shared`, docs/SCALE_OUT.md §4.3): its decision replaces the placeholder
/// `tenant_ctx` left, and a denial is the 429. Run right after the access check.
pub(super) async fn charge_shared_rate(req: &HttpRequest) -> Result<(), ApiError> {
    let st = state(req)?;
    let Some(shared) = &st.shared_rate else {
        return Ok(());
    };
    let Some(ctx) = req.extensions().get::<TenantCtx>().cloned() else {
        return Ok(());
    };
    let Some(per_minute) = rate_per_minute(st, &ctx) else {
        return Ok(());
    };
    let decision = shared.check(ctx.id(), per_minute).await;
    req.extensions_mut().insert(RateInfo(decision));
    refuse_if_denied(st, &ctx, decision)
}

/// The 429 for a denied decision, counted in the tenant's metrics.
fn refuse_if_denied(st: &AppState, ctx: &TenantCtx, decision: Decision) -> Result<(), ApiError> {
    if let Decision::Denied {
        retry_after_secs, ..
    } = decision
    {
        st.observe
            .metrics()
            .rate_limited
            .with_label_values(&[&ctx.id().to_string()])
            .inc();
        return Err(ApiError::RateLimited(retry_after_secs));
    }
    Ok(())
}

/// The tenant a request was resolved to, for the response's `X-Tenant-ID`.
#[derive(Clone, Copy)]
pub struct ResolvedTenant(pub crate::tenancy::TenantId);

pub fn state(req: &HttpRequest) -> Result<&AppState, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .map(|d| d.get_ref())
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// The client's address: the peer, or, for a peer in `TENANTRY_TRUSTED_PROXIES`, the one its
/// `X-Forwarded-For` names. The admin-token throttle and the request log both use it.
pub fn client_ip(req: &HttpRequest, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if proxies.is_empty() {
        return Some(peer);
    }
    let forwarded: Vec<&str> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .collect();
    Some(proxies.client(peer, &forwarded))
}

/// What a PostgreSQL replica read from the store for this request because its caches did not
/// hold it: a key or tenant another replica created a moment ago (docs/SCALE_OUT.md §4.1,
/// "misses read through"). Used for this request only; the caches are the listener's to fill.
#[derive(Clone, Default)]
struct ReadThrough {
    key: Option<CachedKey>,
    tenants: Vec<Arc<Tenant>>,
}

/// The `tk_` key a request carries (`Authorization: Bearer`, or the gateway's `x-api-key`).
fn tenant_key(req: &HttpRequest) -> Option<&str> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        });
    let api_key = || req.headers().get("x-api-key").and_then(|v| v.to_str().ok());
    bearer
        .or_else(api_key)
        .map(str::trim)
        .filter(|t| t.starts_with(KEY_PREFIX))
}

/// On PostgreSQL, before access is checked: reads from the store the key and the tenants the
/// request names that the caches do not hold. Nothing on SQLite, whose caches hold everything.
pub(super) async fn read_through(req: &HttpRequest) {
    let Ok(st) = state(req) else { return };
    if st.db.pg().is_none() || req.extensions().get::<ReadThrough>().is_some() {
        return;
    }
    let mut read = ReadThrough::default();
    let mut key_tenant = None;
    if let Some(token) = tenant_key(req) {
        read.key = st.keys.read_through(token).await;
        key_tenant = match (&read.key, st.keys.authenticate(token, st.now())) {
            (Some(k), _) => Some(k.tenant_id),
            (None, Ok(Caller::Key(k))) => Some(k.tenant_id),
            _ => None,
        };
    }
    let header = req
        .headers()
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| TenantId::parse(v.trim()));
    let cache = st.tenancy.cache();
    for id in [header, key_tenant].into_iter().flatten() {
        if cache.get(id).is_none() && !read.tenants.iter().any(|t| t.id == id) {
            read.tenants
                .extend(st.tenancy.read_through(Some(id), None).await.map(Arc::new));
        }
    }
    if let Some(slug) = req.match_info().get("slug") {
        if cache.get_by_slug(slug).is_none()
            && !read.tenants.iter().any(|t| t.slug.as_str() == slug)
        {
            read.tenants.extend(
                st.tenancy
                    .read_through(None, Some(slug))
                    .await
                    .map(Arc::new),
            );
        }
    }
    req.extensions_mut().insert(read);
}

/// The caller behind `authorization`: from the caches, or from the key this request read
/// through on PostgreSQL.
pub(super) fn authenticate(
    req: &HttpRequest,
    st: &AppState,
    authorization: Option<&str>,
) -> Result<Caller, ApiError> {
    match st.authenticate(authorization, client_ip(req, &st.config.trusted_proxies)) {
        Err(ApiError::Unauthorized) => match req.extensions().get::<ReadThrough>() {
            Some(ReadThrough { key: Some(k), .. }) => KeyCache::caller_of(k, st.now()),
            _ => Err(ApiError::Unauthorized),
        },
        other => other,
    }
}

/// While this replica's caches are not trusted (PostgreSQL, its listener not fresh), re-reads
/// the request's keys and tenants from the store, so access is never decided on a cache more
/// than a second stale (docs/SCALE_OUT.md §4.1). Run before the access check.
pub(super) async fn refresh_if_stale(req: &HttpRequest) -> Result<(), ApiError> {
    let st = state(req)?;
    let (Some(replicas), Some(pg)) = (&st.replicas, st.db.pg()) else {
        return Ok(());
    };
    if replicas.trusted() {
        return Ok(());
    }
    let text = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let bearer = text(header::AUTHORIZATION.as_str()).and_then(|h| {
        h.strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
            .map(str::trim)
    });
    let tokens: Vec<&str> = bearer.into_iter().chain(text("x-api-key")).collect();
    let ids: Vec<_> = text("x-tenant-id")
        .and_then(|h| crate::tenancy::TenantId::parse(h.trim()))
        .into_iter()
        .collect();
    let slugs: Vec<&str> = req.match_info().get("slug").into_iter().collect();
    replicas.refresh(pg, &tokens, &ids, &slugs).await
}

/// The caller, authenticated once per request: `access::enforce` keeps it in the request's
/// extensions, so the handler's extractor does not hash the token again.
pub(super) fn caller(req: &HttpRequest) -> Result<Caller, ApiError> {
    if let Some(c) = req.extensions().get::<Caller>() {
        return Ok(c.clone());
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let st = state(req)?;
    let c = authenticate(req, st, auth)?;
    req.extensions_mut().insert(c.clone());
    Ok(c)
}

/// The resolved tenant, once per request (kept in the extensions like the caller): the rate
/// limit is charged once.
pub(super) fn tenant_ctx(req: &HttpRequest) -> Result<TenantCtx, ApiError> {
    if let Some(ctx) = req.extensions().get::<TenantCtx>() {
        return Ok(ctx.clone());
    }
    let st = state(req)?;
    let caller = caller(req)?;
    let header = match req.headers().get("x-tenant-id") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| ApiError::InvalidTenantId)?),
    };
    let naming = Naming {
        header,
        slug: req.match_info().get("slug"),
    };
    let read = req
        .extensions()
        .get::<ReadThrough>()
        .map(|r| r.tenants.clone())
        .unwrap_or_default();
    let tenants = Tenants {
        cache: st.tenancy.cache(),
        read: &read,
    };
    let ctx = resolve(caller, naming, tenants, &st.config.flags)?;
    req.extensions_mut().insert(ResolvedTenant(ctx.id()));
    let decision = rate_decision(st, &ctx);
    req.extensions_mut().insert(RateInfo(decision));
    refuse_if_denied(st, &ctx, decision)?;
    req.extensions_mut().insert(ctx.clone());
    Ok(ctx)
}

impl FromRequest for TenantCtx {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(tenant_ctx(req))
    }
}

/// Any valid token, for endpoints that are not tenant-scoped.
pub struct AnyCaller;

impl FromRequest for AnyCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req).map(|_| AnyCaller))
    }
}

/// A request made with the admin token; a tenant key gets 403.
pub struct AdminCaller(pub AdminProof);

impl FromRequest for AdminCaller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(caller(req).and_then(|c| match c {
            Caller::Admin(proof) => Ok(AdminCaller(proof)),
            Caller::Key(_) => Err(ApiError::Forbidden("this needs the admin token".into())),
        }))
    }
}
