//! `GET /api/features`: the instance's flags and the resolved tenant's plan features.
use crate::state::AppState;
use crate::tenancy::TenantCtx;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/features").get(features));
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
