//! For analysts and operators: streams, health and metrics.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Deserialize;
use shopstream_domain::values::Role;
use shopstream_infra::event_store::EventFilter;

use super::extract::Caller;
use super::problem::ApiError;
use super::read;
use crate::app::App;
use crate::app::export::{self, Format};
use crate::app::queries::history::{Range, Start};
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
    let page = app
        .history
        .stream(&name, page.cursor.as_deref(), limit)
        .await?;
    Ok(HttpResponse::Ok().json(page))
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
    format: Option<String>,
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

/// `GET /v1/events`: recorded events as NDJSON (or `format=csv`,
/// `format=parquet`), streamed page by page in position order, for
/// analysts replaying or exporting history.
async fn export(
    app: web::Data<App>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.with_role(&[Role::Admin, Role::Analyst])?;
    let format = match query.format.as_deref() {
        None => Format::Ndjson,
        Some(name) => Format::parse(name)
            .ok_or_else(|| ApiError::malformed("format must be ndjson, csv or parquet"))?,
    };
    let range = Range {
        from_position: query.from_position,
        to_position: query.to_position,
        from_time: rfc3339("from_time", &query.from_time)?,
        to_time: rfc3339("to_time", &query.to_time)?,
        filter: filter_of(&query.types, &query.stream_prefix),
        limit: query.limit,
    };
    let chunks = export::encoded(app.history.export(range).await?, format)?.map(|chunk| {
        chunk.map(|c| c.bytes).map_err(|e| {
            tracing::warn!(error = %shopstream_infra::error::Report(&e), "export stopped");
            ApiError::from(e)
        })
    });
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    if format != Format::Ndjson {
        response.insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"events.{}\"", format.name()),
        ));
    }
    Ok(response.streaming(chunks))
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
    let start = resume
        .map(Start::After)
        .or(query.from_position.map(Start::At));
    let tail = app
        .history
        .live(start, filter_of(&query.types, &query.stream_prefix))
        .await?;
    let events = futures::stream::unfold(tail, |mut tail| async move {
        let next = tokio::time::timeout(Duration::from_secs(15), tail.next()).await;
        let chunk = match next {
            Err(_) => Ok(Bytes::from_static(b": keep-alive\n\n")),
            Ok(Err(e)) => {
                tracing::warn!(error = %shopstream_infra::error::Report(&e), "live events stopped");
                return None;
            }
            Ok(Ok(events)) => {
                let mut out = Vec::new();
                for event in &events {
                    out.extend_from_slice(
                        format!(
                            "id: {}\nevent: {}\ndata: ",
                            event.position, event.event_type
                        )
                        .as_bytes(),
                    );
                    if let Err(e) = export::ndjson_line(&mut out, event) {
                        return Some((Err(ApiError::internal(e)), tail));
                    }
                    out.push(b'\n');
                }
                Ok(Bytes::from(out))
            }
        };
        Some((chunk, tail))
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

/// Ready when both stores answer (within two seconds each): the body says
/// how each is, so an operator sees which one a 503 waits for.
async fn ready(app: web::Data<App>) -> HttpResponse {
    use shopstream_infra::error::Report;
    let limit = std::time::Duration::from_secs(2);
    let (events, read) = futures::join!(
        tokio::time::timeout(limit, app.history.head_position()),
        tokio::time::timeout(limit, app.queries.registered()),
    );
    let (events_ok, event_store) = match events {
        Ok(Ok(position)) => (true, serde_json::json!({"head_position": position})),
        Ok(Err(e)) => (false, serde_json::json!(Report(&e).to_string())),
        Err(_) => (false, serde_json::json!("timed out")),
    };
    let (read_ok, read_store) = match read {
        Ok(Ok(projections)) => (true, serde_json::json!({"projections": projections})),
        Ok(Err(e)) => (false, serde_json::json!(Report(&e).to_string())),
        Err(_) => (false, serde_json::json!("timed out")),
    };
    let ready = events_ok && read_ok;
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "unavailable" },
        "event_store": event_store,
        "read_store": read_store,
    });
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// `GET /metrics`. The projections' figures are read from the registry at
/// each scrape, so they are as fresh as the scrape and every node reports
/// every projection (read at most once a second); a registry that cannot
/// be read leaves the last ones.
async fn metrics(app: web::Data<App>) -> HttpResponse {
    if app.metrics.projections_due() {
        match app
            .operations
            .projections(|name| app.queries.checkpoint(name))
            .await
        {
            Ok(views) => app.metrics.set_projections(views.iter().map(|v| {
                crate::telemetry::ProjectionFigures {
                    name: &v.name,
                    status: v.status,
                    checkpoint: v.checkpoint,
                    behind_events: v.lag_events,
                    behind_ms: v.lag_ms,
                    dead_letters: v.dead_letters,
                    partitions: v
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.lag_events))
                        .collect(),
                }
            })),
            Err(e) => tracing::debug!(error = %e, "projection figures for /metrics"),
        }
        if app.relayed {
            match app.operations.relay().await {
                Ok((position, behind)) => app.metrics.set_relay(position, behind),
                Err(e) => tracing::debug!(error = %e, "relay figures for /metrics"),
            }
        }
    }
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
}
