//! The HTTP API of `API.md`, on actix-web.
//!
//! # Layout
//! - [`problem`]: every error as problem+json, mapped in one place.
//! - [`extract`]: caller, command headers, JSON bodies, validation.
//! - [`correlation`]: correlation ids on requests, responses, logs, events.
//! - [`client`]: the client's address, through trusted proxies.
//! - [`audit`]: the audit log (logins, administrative requests).
//! - [`limits`]: rate limits per route class.
//! - [`edge`]: CORS, security headers, problem bodies for every error.
//! - [`read`]: what query endpoints share (consistency waits, ETags, owners).
//! - [`routes`]: the OpenAPI document's routes as a table (405 and `Allow`).
//! - [`identity`], [`catalogue`], [`carts`], [`orders`], [`operations`],
//!   [`admin`]: the endpoints, grouped as in `API.md`.

pub mod admin;
pub mod audit;
pub mod carts;
pub mod catalogue;
pub mod client;
pub mod console;
pub mod correlation;
pub mod edge;
pub mod extract;
pub mod identity;
pub mod limits;
pub mod operations;
pub mod orders;
pub mod problem;
pub mod read;
pub mod routes;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use serde::Serialize;

use crate::app::commands::Committed;
use problem::ApiError;

/// The header a command's consistency token travels in.
pub const CONSISTENCY_TOKEN: &str = "x-consistency-token";

/// Opaque consistency tokens: a position in `$all`, versioned.
pub mod consistency {
    pub fn token(position: u64) -> String {
        format!("c1.{position:x}")
    }

    pub fn position(token: &str) -> Option<u64> {
        u64::from_str_radix(token.strip_prefix("c1.")?, 16).ok()
    }
}

/// A command's answer: its output with `ETag` and `X-Consistency-Token`.
pub fn committed<O: Serialize>(status: StatusCode, done: &Committed<O>) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if let Some(revision) = done.revision {
        response.insert_header((header::ETAG, format!("\"{revision}\"")));
    }
    response.insert_header((CONSISTENCY_TOKEN, consistency::token(done.position)));
    if done.replayed {
        response.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    }
    response.json(&done.output)
}

/// Every route.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::PathConfig::default()
            .error_handler(|e, _| ApiError::not_found(format!("no such resource: {e}")).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| ApiError::malformed(format!("bad query: {e}")).into()),
    )
    .service(
        web::scope("/v1")
            .configure(identity::routes)
            .configure(catalogue::routes)
            .configure(carts::routes)
            .configure(orders::routes)
            .configure(admin::routes)
            .configure(operations::v1_routes),
    )
    .configure(operations::routes)
    .configure(console::routes)
    .default_service(web::to(|req: actix_web::HttpRequest| async move {
        let allowed = routes::allowed(req.path());
        if allowed.is_empty() {
            return Err::<HttpResponse, _>(ApiError::not_found("no such endpoint"));
        }
        Err(ApiError::method_not_allowed(allowed))
    }));
}

#[cfg(test)]
mod tests {
    use super::consistency;

    #[test]
    fn consistency_tokens_round_trip_and_reject_garbage() {
        assert_eq!(
            consistency::position(&consistency::token(12345)),
            Some(12345)
        );
        assert_eq!(consistency::position("12345"), None);
        assert_eq!(consistency::position("c1.zz"), None);
    }
}
