//! For operators: projections, their lag, rebuilds, pausing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::Utc;
use serde::Serialize;
use shopstream_domain::values::Role;
use shopstream_infra::event_store::EventFilter;
use shopstream_infra::read_store::ProjectionRecord;

use super::extract::Caller;
use super::problem::ApiError;
use crate::app::App;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/projections", web::get().to(list))
        .route("/admin/projections/{name}/rebuild", web::post().to(rebuild))
        .route("/admin/projections/{name}/pause", web::post().to(pause))
        .route("/admin/projections/{name}/resume", web::post().to(resume));
}

#[derive(Debug, Serialize)]
pub struct ProjectionView {
    pub name: String,
    pub version: u32,
    /// `live`, `rebuilding`, `paused` or `failed`.
    pub status: &'static str,
    pub checkpoint: u64,
    /// Positions of `$all` not yet looked at.
    pub lag_events: u64,
    /// How long the oldest event not yet applied has waited.
    pub lag_ms: u64,
    pub generation: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildView>,
}

#[derive(Debug, Serialize)]
pub struct RebuildView {
    pub version: u32,
    pub checkpoint: u64,
}

/// Every projection with its status and lag, as the admin view and the CLI
/// show them.
pub async fn projections(app: &App) -> Result<Vec<ProjectionView>, ApiError> {
    let head = app.store.head_position().await?;
    let records = app.rows.projections().await?;
    let mut views = Vec::with_capacity(records.len());
    for record in records {
        views.push(view(app, record, head).await?);
    }
    Ok(views)
}

async fn view(app: &App, r: ProjectionRecord, head: u64) -> Result<ProjectionView, ApiError> {
    let status = if r.failure.is_some() {
        "failed"
    } else if r.build.is_some() {
        "rebuilding"
    } else if r.paused {
        "paused"
    } else {
        "live"
    };
    // This process may know of a later checkpoint than the registry holds
    // (idle projections record theirs only now and then).
    let checkpoint = r.checkpoint.max(app.queries.checkpoint(&r.name));
    let lag_events = head.saturating_sub(checkpoint);
    let lag_ms = if lag_events == 0 {
        0
    } else {
        let next = app
            .store
            .read_all(checkpoint, &EventFilter::default(), 1)
            .await?;
        next.events.first().map_or(0, |e| {
            (Utc::now() - e.recorded_at).num_milliseconds().max(0) as u64
        })
    };
    Ok(ProjectionView {
        name: r.name,
        version: r.version,
        status,
        checkpoint,
        lag_events,
        lag_ms,
        generation: r.generation,
        failure: r.failure,
        rebuild: r.build.map(|b| RebuildView {
            version: b.version,
            checkpoint: b.checkpoint,
        }),
    })
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
