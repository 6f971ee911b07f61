//! What every query endpoint shares: read-your-writes waits, conditional
//! answers (ETag, If-None-Match → 304), owner checks.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse};
use shopstream_domain::values::Role;

use super::consistency;
use super::problem::ApiError;
use crate::app::App;
use crate::app::commands::Actor;
use crate::app::export::ExportError;
use crate::app::queries::{Answer, Consistency, QueryError};

/// The header a query says how its consistency wait went in.
pub const CONSISTENCY_STATUS: &str = "x-consistency-status";

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            QueryError::Invalid(why) => ApiError::malformed(why),
            QueryError::Store(e) => e.into(),
            QueryError::Events(e) => e.into(),
            QueryError::Document(_)
            | QueryError::NoDocument
            | QueryError::Decode(_)
            | QueryError::Projection(_)
            | QueryError::Unsettled
            | QueryError::Poisoned => ApiError::internal(e),
        }
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Read(e) => e.into(),
            ExportError::Encode(_) => ApiError::internal(e),
        }
    }
}

/// Waits, bounded, for the projections a query reads to reflect the
/// command whose `X-Consistency-Token` the client sent back.
pub async fn consistent(
    app: &App,
    req: &HttpRequest,
    projections: &[&str],
) -> Result<Option<Consistency>, ApiError> {
    let Some(value) = req.headers().get(super::CONSISTENCY_TOKEN) else {
        return Ok(None);
    };
    let position = value
        .to_str()
        .ok()
        .and_then(consistency::position)
        .ok_or_else(|| ApiError::malformed("X-Consistency-Token is not one this service issued"))?;
    // A token past everything recorded was never issued: refuse it at once
    // rather than let anyone make a query wait.
    if !app.queries.reached(projections, position) && position > app.history.head_position().await?
    {
        return Err(ApiError::malformed(
            "X-Consistency-Token is ahead of every event recorded",
        ));
    }
    Ok(Some(app.queries.wait_for(projections, position).await))
}

/// The answer, or 304 when the client has it already.
pub fn reply(req: &HttpRequest, answer: &Answer, consistency: Option<Consistency>) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // If-None-Match compares weakly: `W/"x"` matches `"x"`.
            let ours = answer.etag.trim_start_matches("W/");
            v.split(',')
                .map(str::trim)
                .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
        });
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    if let Ok(etag) = HeaderValue::from_str(&answer.etag) {
        response.insert_header((header::ETAG, etag));
    }
    response.insert_header((header::CACHE_CONTROL, "private, no-cache"));
    if let Some(c) = consistency {
        response.insert_header((
            CONSISTENCY_STATUS,
            match c {
                Consistency::Consistent => "consistent",
                Consistency::Stale => "stale",
            },
        ));
    }
    if fresh {
        response.finish()
    } else {
        response
            .content_type("application/json")
            .body(answer.body.clone())
    }
}

/// Only the owner of the data, or an admin when `admin_too`, reads it.
pub fn owner_only(actor: Actor, answer: &Answer, admin_too: bool) -> Result<(), ApiError> {
    match actor {
        Actor::Customer { id, .. } if answer.owner == Some(id.as_uuid()) => Ok(()),
        Actor::Customer {
            role: Role::Admin, ..
        } if admin_too => Ok(()),
        Actor::Customer { .. } => Err(ApiError::forbidden()),
        _ => Err(ApiError::unauthorized("this needs a bearer token")),
    }
}
