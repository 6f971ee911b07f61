//! What every response passes through at the edge of the API: CORS for
//! the configured origins, headers that keep browsers from guessing, and a
//! problem+json body on every error answered outside the handlers (CORS
//! refusals, extractors actix-web runs itself).

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_cors::{Cors, CorsMiddleware};
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError};
use futures::future::LocalBoxFuture;

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
/// Only requests that carry `Origin` (every cross-origin request and
/// preflight a browser makes does) go through it: other clients' answers
/// carry just `Vary: Origin`, not a dozen CORS headers each.
pub fn cors(origins: &[String]) -> BrowserCors {
    BrowserCors(cors_for(origins))
}

fn cors_for(origins: &[String]) -> Cors {
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

/// [`Cors`] for requests with an `Origin`, nothing but `Vary: Origin` for
/// the others.
pub struct BrowserCors(Cors);

/// The service [`BrowserCors`] puts in front of the next one.
pub struct BrowserCorsMiddleware<S> {
    next: Rc<S>,
    cors: CorsMiddleware<Shared<S>>,
}

/// The next service, shared by the CORS path and the direct one.
pub struct Shared<S>(Rc<S>);

impl<S: Service<ServiceRequest>> Service<ServiceRequest> for Shared<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        self.0.call(req)
    }
}

impl<S, B> Transform<S, ServiceRequest> for BrowserCors
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type InitError = ();
    type Transform = BrowserCorsMiddleware<S>;
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let next = Rc::new(service);
        // `Cors` builds its middleware at once (its future is ready).
        let cors = self.0.new_transform(Shared(next.clone())).into_inner();
        ready(cors.map(|cors| BrowserCorsMiddleware { next, cors }))
    }
}

impl<S, B> Service<ServiceRequest> for BrowserCorsMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Error>>;

    forward_ready!(next);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        if req.headers().contains_key(header::ORIGIN) {
            return self.cors.call(req);
        }
        let answer = self.next.call(req);
        Box::pin(async move {
            let mut response = answer.await?;
            // A cache must not hand this answer to a browser's request.
            response
                .headers_mut()
                .append(header::VARY, HeaderValue::from_static("Origin"));
            Ok(response.map_into_left_body())
        })
    }
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
