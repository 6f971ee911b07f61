//! What handlers take from a request: who is calling, the command headers,
//! a JSON body kept with its bytes, and validated fields.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use futures::StreamExt;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use shopstream_domain::values::{Currency, FieldError, Money, Role};

use super::correlation::CorrelationId;
use super::problem::ApiError;
use crate::app::App;
use crate::app::commands::{Actor, CommandContext, IdempotencyKey};

/// The largest accepted request body, and how long it may take to arrive
/// once the headers have (a body that stalls or trickles is cut off), set
/// from configuration.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes: usize,
    pub time: std::time::Duration,
}

impl Default for BodyLimit {
    fn default() -> Self {
        Self {
            bytes: 64 * 1024,
            time: std::time::Duration::from_secs(10),
        }
    }
}

/// Who is calling: anonymous without a token; a bad token is refused
/// rather than ignored.
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Actor);

/// The token of an `Authorization: Bearer <token>` value (the scheme's
/// name is case-insensitive, RFC 9110).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The request's bearer token, if it sends one (a malformed
/// `Authorization` is refused rather than ignored).
fn token_of(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(bearer)
        .map(|t| Some(t.to_string()))
        .ok_or_else(|| ApiError::unauthorized("use Authorization: Bearer <token>"))
}

fn app_of(req: &HttpRequest) -> Result<web::Data<App>, ApiError> {
    req.app_data::<web::Data<App>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))
}

/// The customer a request's token is signed for, by its signature alone
/// (rate limits and the audit log key on it; what the caller may do is
/// [`Caller`]'s business).
pub fn signed_customer(req: &HttpRequest) -> Option<shopstream_domain::values::CustomerId> {
    let token = token_of(req).ok()??;
    app_of(req).ok()?.auth.signed_for(&token)
}

/// Who is calling: the token checked against its customer's current
/// state (known, enabled, role) and its session.
fn caller(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Actor, ApiError>> {
    let found = token_of(req).and_then(|t| Ok((t, app_of(req)?)));
    Box::pin(async move {
        let (token, app) = found?;
        let Some(token) = token else {
            return Ok(Actor::Anonymous);
        };
        Ok(app.auth.authenticate(&token).await?)
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let actor = caller(req);
        Box::pin(async move { actor.await.map(Caller) })
    }
}

impl Caller {
    /// A logged-in customer (of any role), or 401.
    pub fn signed_in(self) -> Result<Actor, ApiError> {
        match self.0 {
            Actor::Customer { .. } => Ok(self.0),
            _ => Err(ApiError::unauthorized("this needs a bearer token")),
        }
    }

    /// A logged-in customer with one of these roles: 401 or 403 otherwise.
    pub fn with_role(self, roles: &[Role]) -> Result<Actor, ApiError> {
        match self.signed_in()? {
            actor @ Actor::Customer { role, .. } if roles.contains(&role) => Ok(actor),
            _ => Err(ApiError::forbidden()),
        }
    }
}

/// A command request: the caller and the headers that shape a command.
pub struct CommandRequest {
    pub actor: Actor,
    correlation_id: String,
    if_match: Option<u64>,
    idempotency_key: Option<String>,
    request_line: String,
}

fn parse_if_match(value: &header::HeaderValue) -> Result<u64, ApiError> {
    value
        .to_str()
        .ok()
        .map(str::trim)
        .and_then(|v| v.strip_prefix('"'))
        .and_then(|v| v.strip_suffix('"'))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::malformed("If-Match must be a quoted revision such as \"3\""))
}

impl FromRequest for CommandRequest {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let actor = caller(req);
        let headers = (|| -> Result<_, ApiError> {
            let if_match = req
                .headers()
                .get(header::IF_MATCH)
                .map(parse_if_match)
                .transpose()?;
            let idempotency_key = match req.headers().get("idempotency-key") {
                Some(v) => Some(
                    v.to_str()
                        .map_err(|_| ApiError::malformed("Idempotency-Key must be ASCII"))?
                        .to_string(),
                ),
                None => None,
            };
            let correlation_id = req
                .extensions()
                .get::<CorrelationId>()
                .map(|c| c.0.clone())
                .unwrap_or_default();
            Ok((
                correlation_id,
                if_match,
                idempotency_key,
                format!("{} {}", req.method(), req.path()),
            ))
        })();
        Box::pin(async move {
            let (correlation_id, if_match, idempotency_key, request_line) = headers?;
            Ok(CommandRequest {
                actor: actor.await?,
                correlation_id,
                if_match,
                idempotency_key,
                request_line,
            })
        })
    }
}

impl CommandRequest {
    pub fn signed_in(&self) -> Result<Actor, ApiError> {
        Caller(self.actor).signed_in()
    }

    pub fn with_role(&self, roles: &[Role]) -> Result<Actor, ApiError> {
        Caller(self.actor).with_role(roles)
    }

    /// The command context; `body` identifies the request for idempotency.
    pub fn context(&self, body: &[u8]) -> Result<CommandContext, ApiError> {
        let mut ctx = CommandContext::new(self.actor, self.correlation_id.clone());
        ctx.if_match = self.if_match;
        if let Some(key) = &self.idempotency_key {
            let mut request = self.request_line.clone().into_bytes();
            request.push(b'\n');
            request.extend_from_slice(body);
            ctx.idempotency = Some(
                IdempotencyKey::new(&self.actor, key, &request)
                    .map_err(|e| ApiError::validation(vec![e]))?,
            );
        }
        Ok(ctx)
    }
}

/// A JSON body, parsed, with the bytes it came as.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: web::Bytes,
}

impl<T> std::ops::Deref for JsonBody<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let BodyLimit { bytes: limit, time } =
            req.app_data::<BodyLimit>().copied().unwrap_or_default();
        let json = req
            .mime_type()
            .ok()
            .flatten()
            .is_some_and(|m| m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut payload = payload.take();
        Box::pin(async move {
            let too_large = || {
                ApiError::new(
                    actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body must be at most {limit} bytes"),
                )
            };
            if !json {
                return Err(ApiError::new(
                    actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as application/json",
                ));
            }
            if declared.is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let read = async {
                let mut body = web::BytesMut::new();
                while let Some(chunk) = payload.next().await {
                    let chunk =
                        chunk.map_err(|e| ApiError::malformed(format!("unreadable body: {e}")))?;
                    if body.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body.freeze())
            };
            let raw = tokio::time::timeout(time, read).await.map_err(|_| {
                ApiError::new(
                    actix_web::http::StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!("the body did not arrive within {} ms", time.as_millis()),
                )
            })??;
            let value = serde_json::from_slice(&raw)
                .map_err(|e| ApiError::malformed(format!("the body is not valid: {e}")))?;
            Ok(JsonBody { value, raw })
        })
    }
}

/// Collects every field error of a request before answering 422.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn check<T>(&mut self, field: &str, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                // Keep a nested field's own path (`shipping_address.city`).
                let e = if e.field.starts_with(field) {
                    e
                } else {
                    e.at(field)
                };
                self.errors.push(e);
                None
            }
        }
    }

    /// The 422 answer for what was collected.
    pub fn error(self) -> ApiError {
        ApiError::validation(self.errors)
    }
}

/// Money as clients send it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MoneyBody {
    pub amount: i64,
    pub currency: String,
}

impl MoneyBody {
    pub fn parse(&self) -> Result<Money, FieldError> {
        let currency = Currency::parse(&self.currency)?;
        Money::new(self.amount, currency)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer;

    #[test]
    fn the_bearer_scheme_is_named_in_any_case() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "  Bearer   abc  "] {
            assert_eq!(bearer(value), Some("abc"), "{value:?}");
        }
        for value in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", ""] {
            assert_eq!(bearer(value), None, "{value:?}");
        }
    }
}
