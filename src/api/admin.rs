//! For operators: projections, their lag, rebuilds, pausing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use shopstream_domain::values::Role;

use super::extract::Caller;
use super::problem::ApiError;
use crate::app::App;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/projections", web::get().to(list))
        .route("/admin/projections/{name}/rebuild", web::post().to(rebuild))
        .route("/admin/projections/{name}/pause", web::post().to(pause))
        .route("/admin/projections/{name}/resume", web::post().to(resume));
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
