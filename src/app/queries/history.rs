//! The event history, for analysts and operators: one stream's events, a
//! range of `$all` (by position, time, type and stream prefix) streamed
//! page by page, a live tail, and an order as it stood at an instant.
//! Every event leaves redacted ([`crate::app::redaction`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use serde::Serialize;
use shopstream_domain::EventSet;
use shopstream_domain::order::OrderEvent;
use shopstream_infra::event_store::{
    Direction, EventFilter, EventStore, RecordedEvent, Subscription,
};
use shopstream_projections::orders::{OrderDoc, evolve};
use uuid::Uuid;

use super::{Answer, QueryError, QueryService, timeline};
use crate::app::redaction::redact;

/// Events read from `$all` per page of an export.
const EXPORT_PAGE: u64 = 4096;

/// Where a read of `$all` begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// After this position (one the store gave, or 0).
    After(u64),
    /// At the event at this position.
    At(u64),
}

/// Reads the event store for analysts.
pub struct History {
    events: Arc<dyn EventStore>,
    queries: Arc<QueryService>,
}

/// A page of one stream's events.
#[derive(Debug, Serialize)]
pub struct StreamPage {
    pub stream: String,
    pub items: Vec<RecordedEvent>,
    pub next_cursor: Option<String>,
}

/// Which part of `$all` an export reads. Bounds are inclusive.
#[derive(Debug, Clone, Default)]
pub struct Range {
    pub from_position: Option<u64>,
    pub to_position: Option<u64>,
    pub from_time: Option<DateTime<Utc>>,
    pub to_time: Option<DateTime<Utc>>,
    pub filter: EventFilter,
    /// At most this many events.
    pub limit: Option<u64>,
}

/// Pages of an export, in position order, each event redacted.
pub type Export = BoxStream<'static, Result<Vec<RecordedEvent>, QueryError>>;

/// Stream cursors: opaque to clients, a revision to us.
fn stream_cursor(revision: u64) -> String {
    format!("r{revision:x}")
}

fn revision_of(cursor: &str) -> Option<u64> {
    u64::from_str_radix(cursor.strip_prefix('r')?, 16).ok()
}

fn redacted(events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>, QueryError> {
    events
        .into_iter()
        .map(|e| redact(e).map_err(QueryError::Document))
        .collect()
}

impl History {
    pub fn new(events: Arc<dyn EventStore>, queries: Arc<QueryService>) -> Self {
        Self { events, queries }
    }

    /// The position of the last event (0: none); also proves the event
    /// store answers.
    pub async fn head_position(&self) -> Result<u64, QueryError> {
        Ok(self.events.head_position().await?)
    }

    /// A page of one stream, from its start or from a cursor.
    pub async fn stream(
        &self,
        stream: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<StreamPage, QueryError> {
        let from = match cursor {
            Some(c) => {
                revision_of(c).ok_or_else(|| QueryError::Invalid("cursor is not valid".into()))?
            }
            None => 0,
        };
        let mut events = self
            .events
            .read_stream(stream, Some(from), Direction::Forward, limit + 1)
            .await?;
        if events.is_empty() && from == 0 {
            return Err(QueryError::NotFound("stream"));
        }
        let next_cursor = (events.len() > limit).then(|| stream_cursor(events[limit].revision));
        events.truncate(limit);
        Ok(StreamPage {
            stream: stream.to_string(),
            items: redacted(events)?,
            next_cursor,
        })
    }

    /// The position to read `$all` after, for a start.
    pub async fn after(&self, start: Start) -> Result<u64, QueryError> {
        Ok(match start {
            Start::After(after) => after,
            Start::At(0) => 0,
            Start::At(position) => self.events.preceding(position).await?,
        })
    }

    /// Where an export starts: after this position.
    async fn start(&self, range: &Range) -> Result<u64, QueryError> {
        let mut after = match range.from_position {
            Some(from) => self.after(Start::At(from)).await?,
            None => 0,
        };
        if let Some(from) = range.from_time {
            let first = self
                .events
                .read_all(0, &EventFilter::default(), 1)
                .await?
                .events
                .first()
                .map(|e| e.recorded_at);
            let start = timeline::start_at(&self.queries, from, first).await?;
            after = after.max(self.after(start).await?);
        }
        Ok(after)
    }

    /// The events of a range, page by page. Recorded times along `$all`
    /// are taken to never go backwards, so the export stops at the first
    /// event after `to_time`.
    pub async fn export(&self, range: Range) -> Result<Export, QueryError> {
        let after = self.start(&range).await?;
        let events = self.events.clone();
        let limit = range.limit.unwrap_or(u64::MAX);
        let pages = futures::stream::unfold(Some((after, limit)), move |state| {
            let events = events.clone();
            let range = range.clone();
            async move {
                let (after, mut remaining) = state?;
                if remaining == 0 {
                    return None;
                }
                let page = remaining.min(EXPORT_PAGE) as usize;
                let slice = match events.read_all(after, &range.filter, page).await {
                    Ok(slice) => slice,
                    Err(e) => return Some((Err(QueryError::from(e)), None)),
                };
                // A filtered page may come back empty before the end (a
                // networked store stops scanning for matches at a bound):
                // the export ends when a page neither holds events nor
                // moves.
                let mut done = slice.events.is_empty() && slice.scanned_to <= after;
                let mut out = Vec::with_capacity(slice.events.len());
                for event in slice.events {
                    let past_end = range.to_position.is_some_and(|p| event.position > p)
                        || range.to_time.is_some_and(|t| event.recorded_at > t);
                    if past_end {
                        done = true;
                        break;
                    }
                    if range.from_time.is_some_and(|t| event.recorded_at < t) {
                        continue;
                    }
                    out.push(event);
                    remaining -= 1;
                    if remaining == 0 {
                        break;
                    }
                }
                let next = (!done).then_some((slice.scanned_to, remaining));
                Some((redacted(out), next))
            }
        });
        Ok(Box::pin(pages))
    }

    /// A live tail of `$all` from `start` (`None`: from now).
    pub async fn live(
        &self,
        start: Option<Start>,
        filter: EventFilter,
    ) -> Result<LiveTail, QueryError> {
        let after = match start {
            Some(start) => self.after(start).await?,
            None => self.events.head_position().await?,
        };
        Ok(LiveTail(self.events.subscribe_all(after, filter).await?))
    }

    /// `GET /v1/orders/{id}?as_of=`: the order folded from its own events
    /// up to that instant (by when they were recorded), straight from the
    /// event store, through the same code that builds the read model.
    pub async fn order_as_of(&self, id: Uuid, as_of: DateTime<Utc>) -> Result<Answer, QueryError> {
        const PAGE: usize = 512;
        let stream = format!("order-{id}");
        let mut order: Option<OrderDoc> = None;
        let mut from = 0;
        'read: loop {
            let page = self
                .events
                .read_stream(&stream, Some(from), Direction::Forward, PAGE)
                .await?;
            for recorded in &page {
                if recorded.recorded_at > as_of {
                    break 'read;
                }
                let event = OrderEvent::decode(
                    &recorded.event_type,
                    recorded.schema_version,
                    recorded.data.get().as_bytes(),
                )?;
                order = Some(evolve(order, event, recorded.revision)?);
                from = recorded.revision + 1;
            }
            if page.len() < PAGE {
                break;
            }
        }
        let order = order.ok_or(QueryError::NotFound("order at that time"))?;
        Answer::json(&order, Some(order.customer_id.as_uuid()))
    }
}

/// New events as they are committed, redacted.
pub struct LiveTail(Box<dyn Subscription>);

impl LiveTail {
    /// The next events (waits for at least one).
    pub async fn next(&mut self) -> Result<Vec<RecordedEvent>, QueryError> {
        loop {
            let slice = self.0.next().await?;
            if !slice.events.is_empty() {
                return redacted(slice.events);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(revision_of(&stream_cursor(300)), Some(300));
        assert_eq!(revision_of("300"), None);
    }
}
