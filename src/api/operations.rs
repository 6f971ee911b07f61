//! For analysts and operators: streams, health and metrics.

use std::borrow::Cow;

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use shopstream_domain::values::Role;
use shopstream_infra::event_store::{Direction, RecordedEvent};

use super::extract::Caller;
use super::problem::ApiError;
use crate::app::App;

pub fn v1_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/streams/{stream}", web::get().to(stream))
        .route("/openapi.json", web::get().to(openapi));
}

/// The OpenAPI description of this API, kept beside the handlers.
pub const OPENAPI: &str = include_str!("openapi.json");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .body(OPENAPI)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/metrics", web::get().to(metrics));
}

#[derive(Deserialize)]
struct Page {
    limit: Option<usize>,
    cursor: Option<String>,
}

#[derive(Serialize)]
struct StreamPage<'a> {
    stream: String,
    items: Vec<Cow<'a, RecordedEvent>>,
    next_cursor: Option<String>,
}

/// An event as it leaves the system: secrets such as password hashes are
/// replaced by `"[redacted]"`.
pub fn redacted(event: &RecordedEvent) -> Result<Cow<'_, RecordedEvent>, ApiError> {
    for (event_type, field) in shopstream_domain::customer::SECRET_FIELDS {
        if event.event_type != *event_type {
            continue;
        }
        let mut data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(event.data.get()).map_err(ApiError::internal)?;
        if data.contains_key(*field) {
            data.insert(field.to_string(), "[redacted]".into());
            let mut clean = event.clone();
            clean.data = serde_json::value::to_raw_value(&data).map_err(ApiError::internal)?;
            return Ok(Cow::Owned(clean));
        }
    }
    Ok(Cow::Borrowed(event))
}

/// Revision cursors: opaque to clients, a revision to us.
fn cursor(revision: u64) -> String {
    format!("r{revision:x}")
}

fn revision_of(cursor: &str) -> Option<u64> {
    u64::from_str_radix(cursor.strip_prefix('r')?, 16).ok()
}

async fn stream(
    app: web::Data<App>,
    caller: Caller,
    name: web::Path<String>,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin, Role::Analyst])?;
    let limit = page.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::malformed("limit must be between 1 and 100"));
    }
    let from = match &page.cursor {
        Some(c) => revision_of(c).ok_or_else(|| ApiError::malformed("cursor is not valid"))?,
        None => 0,
    };
    let mut events = app
        .store
        .read_stream(&name, Some(from), Direction::Forward, limit + 1)
        .await?;
    if events.is_empty() && from == 0 {
        return Err(ApiError::not_found("no such stream"));
    }
    let next_cursor = (events.len() > limit).then(|| cursor(events[limit].revision));
    events.truncate(limit);
    let items = events.iter().map(redacted).collect::<Result<_, _>>()?;
    Ok(HttpResponse::Ok().json(StreamPage {
        stream: name.into_inner(),
        items,
        next_cursor,
    }))
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "live"}))
}

async fn ready(app: web::Data<App>) -> HttpResponse {
    let check = tokio::time::timeout(std::time::Duration::from_secs(2), app.store.head_position());
    match check.await {
        Ok(Ok(position)) => HttpResponse::Ok().json(serde_json::json!({
            "status": "ready",
            "event_store": {"head_position": position},
        })),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "event_store": e.to_string()})),
        Err(_) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unavailable", "event_store": "timed out"})),
    }
}

async fn metrics(app: web::Data<App>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/plain; version=0.0.4"))
        .body(app.metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_valid_json_with_every_path() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["paths"]["/v1/carts/{id}/checkout"]["post"].is_object());
    }

    #[test]
    fn cursors_round_trip() {
        assert_eq!(revision_of(&cursor(300)), Some(300));
        assert_eq!(revision_of("300"), None);
    }
}
