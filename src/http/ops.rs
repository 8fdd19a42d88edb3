//! Operator endpoints, admin token only: `/metrics` (Prometheus text) and `/api/stats`
//! (per-tenant request counts and latency).
use super::extract::AdminCaller;
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::state::AppState;
use actix_web::http::Method;
use actix_web::{web, HttpResponse};

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/metrics", Mount::Root, || {
            web::route().to(metrics)
        })
        .doc("Prometheus text exposition", Access::Admin),
        Op::new(Method::GET, "/stats", Mount::Api, || web::route().to(stats))
            .doc("Per-tenant request counts and latency", Access::Admin)
            .ok(200, Some("RequestStats")),
    ]
}

async fn metrics(_: AdminCaller, st: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = st.replica_status() {
        st.observe.metrics().set_replica(&r);
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(st.observe.metrics().render())
}

async fn stats(_: AdminCaller, st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(st.observe.requests().json())
}
