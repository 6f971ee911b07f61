//! The operator console: one page that logs an admin in and drives the
//! admin API (projections with their lag over the last minutes, rebuild
//! progress, dead letters; pause, resume, rebuild, retry and skip). Its
//! HTML, script and stylesheet sit beside this file and are built into the
//! binary: no build step, nothing fetched from elsewhere. `GET /console`.
//!
//! Not part of the HTTP API (not in the OpenAPI document): a view of it.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// The page loads only its own script and stylesheet, talks only to this
/// origin, runs no inline code and is never framed.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; form-action 'self'; \
                      frame-ancestors 'none'; base-uri 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(page))
        .route("/console/console.js", web::get().to(script))
        .route("/console/console.css", web::get().to(style));
}

fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, POLICY))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(body)
}

async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", PAGE)
}

async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", STYLE)
}
