//! The EventStore port, shaped like KurrentDB.
//!
//! Streams are named `<category>-<id>` and numbered from revision 0; every
//! event also has a global position in `$all` that only grows. Positions
//! may have gaps (KurrentDB's are commit positions, log offsets): nothing
//! may count on them being consecutive, so the distance between two
//! positions is not a number of events ([`EventStore::count_after`] counts
//! those). One [`EventStore::append`] call may write several streams:
//! either every stream's expectation holds and all events are written, or
//! nothing is (KurrentDB 25.1's multi-stream append; the embedded store does
//! it in one SQLite transaction).
//!
//! The port has no time index: times map onto positions through the
//! `timeline` read model, which every adapter can feed.

pub mod kurrentdb;
mod sqlite;

use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

pub use kurrentdb::{KurrentDbEventStore, KurrentDbOptions};
pub use sqlite::{
    CommitObserver, Durability, GroupCommits, SqliteEventStore, SqliteEventStoreOptions,
};

use crate::error::Cause;

/// What a writer expects of a stream before its events are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedRevision {
    /// Write whatever the stream's state.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl ExpectedRevision {
    /// The expectation that holds for a stream at `current` (None: no stream).
    pub fn at(current: Option<u64>) -> Self {
        match current {
            None => ExpectedRevision::NoStream,
            Some(r) => ExpectedRevision::Exact(r),
        }
    }

    /// The exact revision expected, if this expectation names one.
    pub fn exact(self) -> Option<u64> {
        match self {
            ExpectedRevision::Exact(r) => Some(r),
            _ => None,
        }
    }

    pub fn holds_for(self, current: Option<u64>) -> bool {
        match (self, current) {
            (ExpectedRevision::Any, _) => true,
            (ExpectedRevision::NoStream, None) => true,
            (ExpectedRevision::StreamExists, Some(_)) => true,
            (ExpectedRevision::Exact(e), Some(c)) => e == c,
            _ => false,
        }
    }
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedRevision::Any => f.write_str("any"),
            ExpectedRevision::NoStream => f.write_str("no stream"),
            ExpectedRevision::StreamExists => f.write_str("stream exists"),
            ExpectedRevision::Exact(r) => write!(f, "revision {r}"),
        }
    }
}

/// Who and what caused an event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The request (or job) that led to this event.
    pub correlation_id: Option<String>,
    /// The message that directly caused this event.
    pub causation_id: Option<String>,
    /// Who acted: `customer:<id>`, `system`, or `anonymous`.
    pub actor: Option<String>,
}

/// An event to append. Its id makes a repeated append harmless.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u16,
    /// The event's data as JSON.
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

/// Events for one stream, with the expectation that guards them.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamWrite {
    pub stream: String,
    pub expected: ExpectedRevision,
    /// May be empty: the write then only checks its expectation.
    pub events: Vec<NewEvent>,
}

/// What one stream looks like after an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppended {
    pub stream: String,
    /// The stream's revision after the append (None: still no stream).
    pub revision: Option<u64>,
}

/// A successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// One entry per write, in the order given.
    pub streams: Vec<StreamAppended>,
    /// The position of the last event written (or, for a write of no events,
    /// the head of `$all` when it was checked).
    pub position: u64,
    /// True when every event was already stored by an earlier identical
    /// append, and nothing was written this time.
    pub replayed: bool,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// A stream was not where the writer expected it.
    #[error("conflict on {stream}: expected {expected}, actual {}", display_revision(*.actual))]
    Conflict {
        stream: String,
        expected: ExpectedRevision,
        actual: Option<u64>,
    },
    /// The request itself is wrong (no writes, ids half-written already).
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn display_revision(r: Option<u64>) -> String {
    r.map_or_else(|| "no stream".to_string(), |r| format!("revision {r}"))
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or failed to do I/O; nothing is known to
    /// be written.
    #[error("event store unavailable")]
    Unavailable(#[source] Cause),
    /// The store holds something this build cannot read.
    #[error("event store data is unreadable")]
    Corrupt(#[source] Cause),
    /// The server lacks something shopstream needs (KurrentDB older than
    /// 25.1 has no atomic multi-stream append).
    #[error("the event store cannot do this")]
    Unsupported(#[source] Cause),
    /// The store is shutting down.
    #[error("event store is closed")]
    Closed,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream: String,
    pub revision: u64,
    pub position: u64,
    pub event_type: String,
    pub schema_version: u16,
    pub recorded_at: DateTime<Utc>,
    pub data: Box<RawValue>,
    pub metadata: Metadata,
}

impl Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("RecordedEvent", 9)?;
        s.serialize_field("event_id", &self.event_id)?;
        s.serialize_field("stream", &self.stream)?;
        s.serialize_field("revision", &self.revision)?;
        s.serialize_field("position", &self.position)?;
        s.serialize_field("type", &self.event_type)?;
        s.serialize_field("schema_version", &self.schema_version)?;
        s.serialize_field(
            "recorded_at",
            &self
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        )?;
        s.serialize_field("data", &self.data)?;
        s.serialize_field("metadata", &self.metadata)?;
        s.end()
    }
}

/// The recorded event's JSON form (API.md), read back: NDJSON exports,
/// Kafka message values.
#[derive(Deserialize)]
struct WireEvent {
    event_id: Uuid,
    stream: String,
    revision: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u16,
    recorded_at: DateTime<Utc>,
    data: Box<RawValue>,
    #[serde(default)]
    metadata: Metadata,
}

impl<'de> Deserialize<'de> for RecordedEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireEvent::deserialize(d)?;
        Ok(RecordedEvent {
            event_id: w.event_id,
            stream: w.stream,
            revision: w.revision,
            position: w.position,
            event_type: w.event_type,
            schema_version: w.schema_version,
            recorded_at: w.recorded_at,
            data: w.data,
            metadata: w.metadata,
        })
    }
}

/// Which direction to read a stream in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Forward,
    Backward,
}

/// Which events of `$all` a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only these event types (empty: all types).
    pub types: Vec<String>,
    /// Only streams whose name starts with this.
    pub stream_prefix: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, event_type: &str, stream: &str) -> bool {
        (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
            && self
                .stream_prefix
                .as_deref()
                .is_none_or(|p| stream.starts_with(p))
    }
}

/// A page of `$all`.
#[derive(Debug, Clone)]
pub struct AllSlice {
    pub events: Vec<RecordedEvent>,
    /// How far the read looked: every matching event up to this position is
    /// in `events`, so the next read continues after it. With a filter this
    /// can be past the last event returned.
    pub scanned_to: u64,
}

/// A catch-up subscription to `$all`: first every stored event after the
/// starting position, then new events as they are committed, in position
/// order, none skipped and none twice.
#[async_trait]
pub trait Subscription: Send {
    /// Waits until `$all` moves past the subscription's position and returns
    /// the next matching events in order (at most the batch size). With a
    /// filter the slice may hold no events: it still says how far `$all`
    /// was looked at, which a consumer needs to report its progress.
    async fn next(&mut self) -> Result<AllSlice, StoreError>;
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends to one or more streams atomically: all writes' expectations
    /// are checked and all events written, or nothing is written. A repeat
    /// of an append whose event ids are all stored already succeeds with
    /// `replayed` and writes nothing. Acknowledged only once durable.
    async fn append(&self, writes: Vec<StreamWrite>) -> Result<Appended, AppendError>;

    /// Reads one stream. `from` is the first revision to return (forward)
    /// or the last (backward); `None` starts at the stream's start or end.
    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads `$all` from just after position `after` (0: from the start).
    async fn read_all(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError>;

    /// Subscribes to `$all` from just after `after`.
    async fn subscribe_all(
        &self,
        after: u64,
        filter: EventFilter,
    ) -> Result<Box<dyn Subscription>, StoreError>;

    /// The position of the last event in `$all` (0 when empty).
    async fn head_position(&self) -> Result<u64, StoreError>;

    /// Where to read or subscribe "after" so that the first event is the
    /// one at `position` (an event's position, as this store gave it): the
    /// position of the event before it, or 0. Positions may have gaps and
    /// a networked store may only start at its own positions, so
    /// `position - 1` is not that in general. An embedded store starts
    /// anywhere: the default is `position - 1`.
    async fn preceding(&self, position: u64) -> Result<u64, StoreError> {
        Ok(position.saturating_sub(1))
    }

    /// The event at `position` (an event's position, as this store gave
    /// it), if one is there.
    async fn event_at(&self, position: u64) -> Result<Option<RecordedEvent>, StoreError> {
        let after = self.preceding(position).await?;
        let slice = self.read_all(after, &EventFilter::default(), 1).await?;
        Ok(slice.events.into_iter().find(|e| e.position == position))
    }

    /// How many events `$all` holds after position `after`, counting at
    /// most `cap` of them (a networked store counts by reading): how far a
    /// reader at `after` is behind, in events.
    async fn count_after(&self, after: u64, cap: u64) -> Result<u64, StoreError> {
        let (mut counted, mut from) = (0u64, after);
        while counted < cap {
            let page = (cap - counted).min(4096) as usize;
            let slice = self.read_all(from, &EventFilter::default(), page).await?;
            if slice.events.is_empty() {
                break;
            }
            counted += slice.events.len() as u64;
            from = slice.scanned_to;
        }
        Ok(counted.min(cap))
    }
}
