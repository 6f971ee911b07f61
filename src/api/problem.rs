//! Every HTTP error, mapped once, to an RFC 9457 problem+json response.
//!
//! The cause chain of a server-side failure is logged with the request's
//! correlation id and never sent; the client gets the id to quote.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use shopstream_domain::DomainError;
use shopstream_domain::values::FieldError;
use shopstream_infra::crypto::token::TokenError;
use shopstream_infra::event_store::StoreError;
use shopstream_infra::read_store::ReadStoreError;

use crate::app::CommandError;
use crate::app::auth::AuthError;
use crate::app::commands::Conflict;
use crate::app::operations::OperationError;

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members: which SKUs are short, which products unavailable.
    #[serde(flatten, skip_serializing_if = "serde_json::Map::is_empty")]
    pub extra: serde_json::Map<String, serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    #[serde(skip)]
    retry_after: Option<u64>,
    #[serde(skip)]
    allow: Option<String>,
}

/// An error that becomes a problem response.
#[derive(Debug)]
pub struct ApiError(pub Box<Problem>);

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status, self.0.code, self.0.detail)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        let title = match status.as_u16() {
            400 => "Malformed request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not found",
            409 => "Conflict",
            412 => "Precondition failed",
            413 => "Payload too large",
            415 => "Unsupported media type",
            422 => "Validation failed",
            429 => "Too many requests",
            503 => "Service unavailable",
            _ => "Internal error",
        };
        ApiError(Box::new(Problem {
            kind: format!("https://shopstream.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: vec![],
            extra: serde_json::Map::new(),
            correlation_id: super::correlation::current(),
            retry_after: None,
            allow: None,
        }))
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "you are not allowed to do this",
        )
    }

    /// With what the command ran into: `stream`, `expected_revision`,
    /// `current_revision` and `conflicting_events`.
    fn with_conflict(mut self, conflict: &Conflict) -> Self {
        if let Ok(serde_json::Value::Object(members)) = serde_json::to_value(conflict) {
            self.0.extra.extend(members);
        }
        self
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            detail,
        );
        e.0.errors = errors;
        e
    }

    /// A failure the client cannot fix: logged in full (every cause),
    /// answered vaguely.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        tracing::error!(error = format!("{cause:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side; quote the correlation id if you report it",
        )
    }

    /// The problem for an error status that something other than a
    /// handler answered (it said no more than its status).
    pub fn for_status(status: StatusCode) -> Self {
        let code = match status.as_u16() {
            400 => "malformed_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            408 => "request_timeout",
            413 => "payload_too_large",
            414 => "uri_too_long",
            415 => "unsupported_media_type",
            429 => "rate_limited",
            431 => "headers_too_large",
            503 => "unavailable",
            s if s >= 500 => "internal",
            _ => "client_error",
        };
        let detail = status
            .canonical_reason()
            .unwrap_or("the request could not be answered");
        Self::new(status, code, detail)
    }

    /// 429: the caller's bucket of a route class is empty for `wait` s.
    pub fn rate_limited(wait: u64, class: &str) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many {class} requests; try again in {wait} s"),
        );
        e.0.retry_after = Some(wait);
        e
    }

    /// 405 for a route that exists with other methods, which `Allow` names.
    pub fn method_not_allowed(allowed: Vec<String>) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this resource answers {}", allowed.join(", ")),
        );
        e.0.allow = Some(allowed.join(", "));
        e
    }

    pub fn unavailable(cause: impl Into<anyhow::Error>) -> Self {
        let cause = cause.into();
        tracing::warn!(error = format!("{cause:#}"), "a store is unavailable");
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "a store is unavailable; try again shortly",
        );
        e.0.retry_after = Some(1);
        e
    }

    fn with(mut self, key: &str, value: impl Serialize) -> Self {
        if let Ok(v) = serde_json::to_value(value) {
            self.0.extra.insert(key.to_string(), v);
        }
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        if let Some(secs) = self.0.retry_after {
            response.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(allow) = &self.0.allow
            && let Ok(value) = HeaderValue::from_str(allow)
        {
            response.insert_header((header::ALLOW, value));
        }
        if self.0.status == 401 {
            // RFC 6750: say which scheme to use.
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"shopstream\""),
            ));
        }
        response.json(&self.0)
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        let detail = e.to_string();
        match e {
            DomainError::Validation(errors) => ApiError::validation(errors),
            DomainError::CurrencyMismatch(why) => {
                ApiError::validation(vec![FieldError::new("currency", why)])
            }
            DomainError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            DomainError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", detail)
            }
            DomainError::EmailTaken => ApiError::new(StatusCode::CONFLICT, "email_taken", detail),
            DomainError::SkuTaken => ApiError::new(StatusCode::CONFLICT, "sku_taken", detail),
            DomainError::InsufficientStock { skus } => {
                ApiError::new(StatusCode::CONFLICT, "insufficient_stock", detail).with("skus", skus)
            }
            DomainError::ProductsUnavailable(products) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", detail)
                    .with("products", products)
            }
            DomainError::InvalidState { .. } | DomainError::NoReservation(_) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_state", detail)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Corrupt(_) | StoreError::Unsupported(_) => ApiError::internal(e),
            StoreError::Unavailable(_) | StoreError::Closed => ApiError::unavailable(e),
        }
    }
}

impl From<ReadStoreError> for ApiError {
    fn from(e: ReadStoreError) -> Self {
        match e {
            ReadStoreError::Unavailable(_) => ApiError::unavailable(e),
            _ => ApiError::internal(e),
        }
    }
}

impl From<OperationError> for ApiError {
    fn from(e: OperationError) -> Self {
        match e {
            OperationError::UnknownProjection { name, .. } => {
                ApiError::not_found(format!("no projection named {name}"))
            }
            OperationError::NoSuchLetter { .. } => ApiError::not_found(e.to_string()),
            OperationError::LetterApplied => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            OperationError::Redaction(_) => ApiError::internal(e),
            OperationError::Events(e) => e.into(),
            OperationError::Rows(e) => e.into(),
            OperationError::Runner(_) => ApiError::unavailable(e),
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(e: CommandError) -> Self {
        match e {
            CommandError::Domain(d) => d.into(),
            CommandError::Forbidden => ApiError::forbidden(),
            CommandError::PreconditionFailed(conflict) => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the resource has changed since the revision in If-Match",
            )
            .with_conflict(&conflict),
            CommandError::Contention(conflict) => {
                let mut e = ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    "the resource is changing too fast right now; try again",
                )
                .with_conflict(&conflict);
                e.0.retry_after = Some(1);
                e
            }
            CommandError::IdempotencyKeyReused => ApiError::validation(vec![FieldError::new(
                "Idempotency-Key",
                "was used for a different request within the last 24 hours",
            )]),
            CommandError::Store(s) => s.into(),
            CommandError::Stale
            | CommandError::Decode(_)
            | CommandError::Append(_)
            | CommandError::Record(_) => ApiError::internal(e),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::BadCredentials => ApiError::unauthorized("invalid email or password"),
            AuthError::Revoked(why) => ApiError::unauthorized(why),
            AuthError::BadLink(why) => ApiError::validation(vec![FieldError::new("token", why)]),
            AuthError::Token(TokenError::Expired | TokenError::Invalid) => {
                ApiError::unauthorized(e.to_string())
            }
            AuthError::Command(c) => c.into(),
            AuthError::Hashing(_) | AuthError::Token(_) | AuthError::Pool(_) => {
                ApiError::internal(e)
            }
        }
    }
}
