//! `GET /api/features`: the instance's flags and the resolved tenant's plan features.
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn ops() -> Vec<Op> {
    vec![Op::new(Method::GET, "/features", Mount::Api, || {
        web::route().to(features)
    })
    .doc(
        "Effective feature flags, edition and the resolved tenant's plan features",
        Access::AnyToken,
    )
    .ok(200, Some("Features"))]
}

async fn features(ctx: TenantCtx, st: web::Data<AppState>) -> HttpResponse {
    let f = &st.config.flags;
    HttpResponse::Ok().json(json!({
        "multi_tenant": f.multi_tenant,
        "usage_tracking": f.usage_tracking,
        "hosted_queue": f.hosted_queue,
        "billing": f.billing,
        "edition": f.edition(),
        "tenant_features": ctx.tenant().plan.features(),
    }))
}
