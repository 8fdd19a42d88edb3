//! The bundled admin page: `static/` embedded in the binary, served at `/` and `/admin/` with
//! its assets under `/ui/`. Every answer revalidates by ETag, so an upgraded binary's page is
//! never stale and an unchanged one costs a 304. The CSP of the envelope middleware applies.
//! Browsers ask for `/favicon.ico` on every load, so the icon is served there too.
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

static STATIC: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/static");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/").get(index))
        .service(web::resource("/admin").get(index))
        .service(web::resource("/admin/").get(index))
        .service(web::resource("/favicon.ico").get(favicon))
        .service(web::resource("/ui/{file}").get(asset));
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn serve(req: &HttpRequest, name: &str) -> HttpResponse {
    let Some(file) = STATIC.get_file(name) else {
        return crate::error::ApiError::NotFound("no such file".into()).error_response();
    };
    let etag = format!(
        "\"{}\"",
        &crate::crypto::hex(&Sha256::digest(file.contents()))[..16]
    );
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == etag);
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        res.finish()
    } else {
        res.content_type(content_type(name)).body(file.contents())
    }
}

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, "index.html")
}

async fn favicon(req: HttpRequest) -> HttpResponse {
    serve(&req, "favicon.ico")
}

async fn asset(req: HttpRequest, file: web::Path<String>) -> HttpResponse {
    // Only the flat files of static/ are served; no path can climb out of it.
    if file.contains('/') || file.contains("..") || file.as_str() == "index.html" {
        return crate::error::ApiError::NotFound("no such file".into()).error_response();
    }
    serve(&req, &file)
}
