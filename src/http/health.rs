//! Liveness and readiness.
use super::extract::state;
use crate::error::ApiError;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use std::time::Duration;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").get(health))
        .service(web::resource("/ready").get(ready));
}

/// Alive: answers without touching the database.
async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready: the database answers a query within two seconds.
async fn ready(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let db = state(&req)?.db.clone();
    let probe = db.run(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?));
    match actix_web::rt::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(1)) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        _ => Err(ApiError::NotReady),
    }
}
