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

/// Every projection with its status and lag.
async fn projections(app: &App) -> Result<Vec<crate::ops::ProjectionView>, ApiError> {
    crate::ops::views(app.store.as_ref(), app.rows.as_ref(), |name| {
        app.queries.checkpoint(name)
    })
    .await
    .map_err(ApiError::unavailable)
}

async fn list(app: web::Data<App>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    Ok(HttpResponse::Ok().json(projections(&app).await?))
}

fn named(
    app: &App,
    name: &str,
) -> Result<std::sync::Arc<dyn shopstream_projections::Projection>, ApiError> {
    app.projection(name)
        .ok_or_else(|| ApiError::not_found(format!("no projection named {name}")))
}

/// Starts a rebuild in the background: the live generation keeps serving
/// until the rebuilt one has caught up and replaces it.
async fn rebuild(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    let projection = named(&app, &name)?;
    let runner = app.runner(projection);
    let name = name.into_inner();
    let task_name = name.clone();
    app.background.spawn(async move {
        match runner.rebuild(&mut |_, _, _| {}).await {
            Ok(generation) => tracing::info!(projection = task_name, generation, "rebuild done"),
            Err(e) => tracing::warn!(projection = task_name, error = %e, "rebuild ended early"),
        }
    });
    Ok(HttpResponse::build(StatusCode::ACCEPTED)
        .json(serde_json::json!({"name": name, "status": "rebuilding"})))
}

async fn set_paused(
    app: &App,
    caller: Caller,
    name: &str,
    paused: bool,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin])?;
    named(app, name)?;
    app.rows.set_paused(name, paused).await?;
    if !paused {
        app.rows.set_failure(name, None).await?;
    }
    Ok(HttpResponse::Ok().json(serde_json::json!({"name": name, "paused": paused})))
}

async fn pause(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(&app, caller, &name, true).await
}

/// Resumes a paused projection, and retries a failed one.
async fn resume(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    set_paused(&app, caller, &name, false).await
}
