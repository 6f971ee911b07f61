//! For operators: projections, their lag, rebuilds, pausing; the events
//! they set aside, to inspect, retry or skip.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use shopstream_domain::values::Role;

use shopstream_infra::read_store::LetterStatus;

use super::extract::Caller;
use super::problem::ApiError;
use crate::app::App;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/projections", web::get().to(list))
        .route("/admin/projections/{name}/rebuild", web::post().to(rebuild))
        .route("/admin/projections/{name}/pause", web::post().to(pause))
        .route("/admin/projections/{name}/resume", web::post().to(resume))
        .route("/admin/dead-letters", web::get().to(dead_letters))
        .route(
            "/admin/dead-letters/{projection}/{event_id}",
            web::get().to(dead_letter),
        )
        .route(
            "/admin/dead-letters/{projection}/{event_id}/retry",
            web::post().to(retry),
        )
        .route(
            "/admin/dead-letters/{projection}/{event_id}/skip",
            web::post().to(skip),
        );
}

/// Every projection with its status and lag (checkpoints as this node
/// has heard them, which may be ahead of the registry's).
async fn list(app: web::Data<App>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let views = app
        .operations
        .projections(|name| app.queries.checkpoint(name))
        .await?;
    Ok(HttpResponse::Ok().json(views))
}

/// Starts a rebuild in the background: the live generation keeps serving
/// until the rebuilt one has caught up and replaces it.
async fn rebuild(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    app.operations.start_rebuild(&name)?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED)
        .json(serde_json::json!({"name": name.into_inner(), "status": "rebuilding"})))
}

async fn pause(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    app.operations.pause(&name).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name.into_inner(), "paused": true})))
}

/// Resumes a paused projection, and retries a failed one.
async fn resume(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    app.operations.resume(&name).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name.into_inner(), "paused": false})))
}

#[derive(Deserialize)]
struct LetterQuery {
    projection: Option<String>,
    status: Option<String>,
}

/// The events projections set aside, oldest first per projection.
async fn dead_letters(
    app: web::Data<App>,
    caller: Caller,
    query: web::Query<LetterQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(LetterStatus::parse(s).ok_or_else(|| {
            ApiError::malformed("status must be open, retrying, retried or skipped")
        })?),
    };
    let mut letters = app
        .operations
        .dead_letters(query.projection.as_deref())
        .await?;
    letters.retain(|l| status.is_none_or(|s| l.status == s));
    Ok(HttpResponse::Ok().json(letters))
}

/// One set-aside event, with the event (redacted) and the error.
async fn dead_letter(
    app: web::Data<App>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let (projection, event_id) = path.into_inner();
    let letter = app.operations.dead_letter(&projection, &event_id).await?;
    Ok(HttpResponse::Ok().json(letter))
}

/// Asks for a set-aside event to be applied again: accepted, the
/// projection's runner does it.
async fn retry(
    app: web::Data<App>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let (projection, event_id) = path.into_inner();
    let letter = app
        .operations
        .retry_dead_letter(&projection, &event_id)
        .await?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(letter))
}

async fn skip(
    app: web::Data<App>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let (projection, event_id) = path.into_inner();
    let letter = app
        .operations
        .skip_dead_letter(&projection, &event_id)
        .await?;
    Ok(HttpResponse::Ok().json(letter))
}
