//! Operator endpoints, admin token only: `/metrics` (Prometheus text) and `/api/stats`
//! (per-tenant request counts and latency).
use super::extract::AdminCaller;
use crate::state::AppState;
use actix_web::{web, HttpResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").get(metrics))
        .service(web::resource("/api/stats").get(stats));
}

async fn metrics(_: AdminCaller, st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(st.metrics.render())
}

async fn stats(_: AdminCaller, st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(st.request_stats.json())
}
