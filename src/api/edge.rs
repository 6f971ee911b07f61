//! What every response passes through at the edge of the API: CORS for
//! the configured origins, headers that keep browsers from guessing, and a
//! problem+json body on every error answered outside the handlers (CORS
//! refusals, extractors actix-web runs itself).

use actix_cors::Cors;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};

use super::problem::ApiError;

/// Request headers a browser client may send, and response headers it may
/// read, beyond the CORS-safelisted ones.
const REQUEST_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "idempotency-key",
    "x-consistency-token",
    "last-event-id",
];
const RESPONSE_HEADERS: [&str; 10] = [
    "etag",
    "x-consistency-token",
    "x-consistency-status",
    "idempotent-replayed",
    "retry-after",
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
];

/// Whether `origin` can be allowed: `*`, or `http(s)://host[:port]`.
pub fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let Ok(uri) = origin.parse::<actix_web::http::Uri>() else {
        return false;
    };
    matches!(uri.scheme_str(), Some("http" | "https"))
        && uri.authority().is_some()
        && matches!(uri.path(), "" | "/")
        && uri.query().is_none()
        && !origin.ends_with('/')
}

/// CORS for these origins (checked with [`valid_origin`]; `*`: any). With
/// none, cross-origin browsers get no CORS headers and so no answers.
pub fn cors(origins: &[String]) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers(REQUEST_HEADERS)
        .expose_headers(RESPONSE_HEADERS)
        .max_age(600)
        .block_on_origin_mismatch(false);
    for origin in origins.iter().filter(|o| valid_origin(o)) {
        cors = if origin == "*" {
            cors.allow_any_origin().send_wildcard()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// `X-Content-Type-Options: nosniff` on every answer, and a problem+json
/// body for any error that left without a JSON one (its headers kept).
pub async fn finish(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Errors raised rather than answered are ours (problems already).
    let mut response = next.call(req).await?.map_into_boxed_body();
    let status = response.status();
    // JSON already (a problem, or a body that says more, as readiness's).
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json") || v.starts_with("application/json")
        });
    if (status.is_client_error() || status.is_server_error()) && !is_json {
        let (request, old) = response.into_parts();
        let mut problem = ApiError::for_status(status).error_response();
        for (name, value) in old.headers() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                problem.headers_mut().append(name.clone(), value.clone());
            }
        }
        response = ServiceResponse::new(request, problem);
    }
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::valid_origin;

    #[test]
    fn origins_are_a_scheme_and_a_host() {
        for ok in ["*", "https://shop.example.com", "http://localhost:3000"] {
            assert!(valid_origin(ok), "{ok}");
        }
        for bad in [
            "shop.example.com",
            "https://shop.example.com/",
            "ftp://x",
            "https://x/path",
            "",
        ] {
            assert!(!valid_origin(bad), "{bad}");
        }
    }
}
