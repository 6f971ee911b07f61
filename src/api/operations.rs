//! For analysts and operators: streams, health and metrics.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use shopstream_domain::values::Role;
use shopstream_infra::event_store::{Direction, EventFilter, RecordedEvent};

use super::extract::Caller;
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::queries::reports;

pub fn v1_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/streams/{stream}", web::get().to(stream))
        .route("/events", web::get().to(export))
        .route("/events/live", web::get().to(live_events))
        .route("/reports/sales", web::get().to(sales_report))
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

/// An event as it leaves the system, secrets redacted.
pub fn redacted(event: &RecordedEvent) -> Result<Cow<'_, RecordedEvent>, ApiError> {
    event.redacted().map_err(ApiError::internal)
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

#[derive(Deserialize)]
struct ExportQuery {
    from_position: Option<u64>,
    to_position: Option<u64>,
    from_time: Option<String>,
    to_time: Option<String>,
    types: Option<String>,
    stream_prefix: Option<String>,
    limit: Option<u64>,
}

fn rfc3339(field: &str, value: &Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .as_deref()
        .map(|v| {
            DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| ApiError::malformed(format!("{field} must be an RFC 3339 time")))
        })
        .transpose()
}

fn filter_of(types: &Option<String>, stream_prefix: &Option<String>) -> EventFilter {
    EventFilter {
        types: types
            .as_deref()
            .map(|t| {
                t.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
        stream_prefix: stream_prefix.clone().filter(|p| !p.is_empty()),
    }
}

/// One recorded event as an NDJSON line, secrets redacted.
fn ndjson_line(out: &mut Vec<u8>, event: &RecordedEvent) -> Result<(), ApiError> {
    let event = redacted(event)?;
    serde_json::to_writer(&mut *out, event.as_ref()).map_err(ApiError::internal)?;
    out.push(b'\n');
    Ok(())
}

/// `GET /v1/events`: recorded events as NDJSON, streamed page by page, in
/// position order, for analysts replaying or exporting history.
async fn export(
    app: web::Data<App>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin, Role::Analyst])?;
    let from_time = rfc3339("from_time", &query.from_time)?;
    let to_time = rfc3339("to_time", &query.to_time)?;
    let mut after = query.from_position.unwrap_or(1).saturating_sub(1);
    if let Some(t) = from_time {
        after = after.max(app.store.position_before(t).await?);
    }
    let filter = filter_of(&query.types, &query.stream_prefix);
    let to_position = query.to_position.unwrap_or(u64::MAX);
    let limit = query.limit.unwrap_or(u64::MAX);
    let store = app.store.clone();
    // State: where the next page starts, and how many events may follow.
    let pages = futures::stream::unfold(Some((after, limit)), move |state| {
        let store = store.clone();
        let filter = filter.clone();
        async move {
            let (after, mut remaining) = state?;
            if remaining == 0 {
                return None;
            }
            let page = (remaining.min(4096)) as usize;
            let slice = match store.read_all(after, &filter, page).await {
                Ok(slice) => slice,
                Err(e) => {
                    tracing::warn!(error = %e, "export stopped");
                    return Some((Err(ApiError::from(e)), None));
                }
            };
            let mut out = Vec::with_capacity(slice.events.len() * 320);
            let mut done = slice.events.is_empty();
            for event in &slice.events {
                if event.position > to_position || to_time.is_some_and(|t| event.recorded_at > t) {
                    done = true;
                    break;
                }
                if let Err(e) = ndjson_line(&mut out, event) {
                    return Some((Err(e), None));
                }
                remaining -= 1;
            }
            let next = (!done).then_some((slice.scanned_to, remaining));
            Some((Ok(Bytes::from(out)), next))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(pages))
}

#[derive(Deserialize)]
struct LiveQuery {
    types: Option<String>,
    stream_prefix: Option<String>,
    from_position: Option<u64>,
}

/// `GET /v1/events/live`: Server-Sent Events, one per recorded event from
/// now on (or after `Last-Event-ID` / `from_position`), with a comment
/// every 15 s to keep the connection open.
async fn live_events(
    app: web::Data<App>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<LiveQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin, Role::Analyst])?;
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let after = match resume.or(query.from_position.map(|p| p.saturating_sub(1))) {
        Some(p) => p,
        None => app.store.head_position().await?,
    };
    let subscription = app
        .store
        .subscribe_all(after, filter_of(&query.types, &query.stream_prefix))
        .await?;
    let events = futures::stream::unfold(subscription, |mut subscription| async move {
        let next = tokio::time::timeout(Duration::from_secs(15), subscription.next()).await;
        let chunk = match next {
            Err(_) => Ok(Bytes::from_static(b": keep-alive\n\n")),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "live events stopped");
                return None;
            }
            Ok(Ok(slice)) => {
                let mut out = Vec::new();
                for event in &slice.events {
                    out.extend_from_slice(
                        format!(
                            "id: {}\nevent: {}\ndata: ",
                            event.position, event.event_type
                        )
                        .as_bytes(),
                    );
                    if let Err(e) = ndjson_line(&mut out, event) {
                        return Some((Err(e), subscription));
                    }
                    out.push(b'\n');
                }
                Ok(Bytes::from(out))
            }
        };
        Some((chunk, subscription))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .streaming(events))
}

#[derive(Deserialize)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
}

/// A day from `YYYY-MM-DD` or the date part of an RFC 3339 time.
fn day(field: &str, value: &str) -> Result<NaiveDate, ApiError> {
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .or_else(|_| {
            DateTime::parse_from_rfc3339(value).map(|t| t.with_timezone(&Utc).date_naive())
        })
        .map_err(|_| ApiError::malformed(format!("{field} must be a date such as 2026-11-26")))
}

/// `GET /v1/reports/sales?from=&to=`: the last 30 days by default.
async fn sales_report(
    app: web::Data<App>,
    caller: Caller,
    req: HttpRequest,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin, Role::Analyst])?;
    let to = match &query.to {
        Some(t) => day("to", t)?,
        None => Utc::now().date_naive(),
    };
    let from = match &query.from {
        Some(f) => day("from", f)?,
        None => to - chrono::Days::new(29),
    };
    let consistency = read::consistent(&app, &req, &[reports::PROJECTION]).await?;
    let answer = reports::sales(&app.queries, from, to).await?;
    Ok(read::reply(&req, &answer, consistency))
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
