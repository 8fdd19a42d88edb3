//! Liveness and readiness.
use super::extract::state;
use super::routes::{Mount, Op};
use crate::auth::Access;
use crate::error::ApiError;
use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::time::Duration;

pub fn ops() -> Vec<Op> {
    vec![
        Op::new(Method::GET, "/health", Mount::Root, || {
            web::route().to(health)
        })
        .doc(
            "Liveness: answers without touching the database",
            Access::Public,
        )
        .ok(200, Some("Status")),
        Op::new(Method::GET, "/ready", Mount::Root, || {
            web::route().to(ready)
        })
        .doc("Readiness: the database answers", Access::Public)
        .ok(200, Some("Status"))
        .errors(&["not_ready"]),
        Op::new(Method::GET, "/openapi.json", Mount::Root, || {
            web::route().to(super::openapi::document)
        })
        .doc("This OpenAPI document", Access::Public)
        .ok(200, Some("Object")),
    ]
}

/// Alive: answers without touching the database.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: the database answers a query within two seconds.
async fn ready(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let db = state(&req)?.db.clone();
    match actix_web::rt::time::timeout(Duration::from_secs(2), db.ping()).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        _ => Err(ApiError::NotReady),
    }
}
