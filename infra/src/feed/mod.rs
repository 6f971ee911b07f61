//! The EventFeed port: how projection runners receive recorded events.
//!
//! Two adapters: the event store's own catch-up subscription (embedded, in
//! `$all`'s order, progress is one position), and Kafka (a relay produces
//! `$all` to a topic keyed by stream; runners consume it in consumer groups,
//! in order within each partition, progress is a position per partition).
//! Delivery is at least once either way: a runner acknowledges a batch only
//! after the read store holds its rows, and rows ignore what they have seen.

pub mod kafka;

use async_trait::async_trait;

use crate::error::Cause;
use crate::event_store::{EventFilter, EventStore, RecordedEvent, StoreError, Subscription};

/// How far a batch's events reach into `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every event up to this position (a feed in `$all`'s order).
    Position(u64),
    /// Per partition of a feed that keeps order only within a partition
    /// (Kafka): the position each partition has been read to. The
    /// projection reflects position `p` once every one of `total` partitions
    /// is past `p`.
    Partitions {
        total: u32,
        positions: Vec<(i32, u64)>,
    },
}

/// How an event is written where it leaves the event store (a Kafka
/// message, a dead letter): the recorded-event JSON of `API.md`, with what
/// may not leave the system (secret fields) taken out. The application
/// decides what that is; adapters only call it.
pub trait Outbound: Send + Sync + 'static {
    fn to_json(&self, event: &RecordedEvent) -> Result<Vec<u8>, serde_json::Error>;
}

/// A run of events for one subscriber, and how far it reaches.
pub struct FeedBatch {
    pub events: Vec<RecordedEvent>,
    pub checkpoint: Checkpoint,
    /// The partitions this subscriber reads changed since its last batch
    /// (a Kafka rebalance): rows it remembers of a stream another consumer
    /// had meanwhile may have changed under it, and must be read again.
    pub reassigned: bool,
    /// What the adapter needs to acknowledge the batch (Kafka offsets).
    pub(crate) ack: Ack,
}

impl FeedBatch {
    /// A batch of a feed whose only progress is the read store's
    /// checkpoint: nothing to acknowledge.
    pub fn new(events: Vec<RecordedEvent>, checkpoint: Checkpoint, reassigned: bool) -> Self {
        Self {
            events,
            checkpoint,
            reassigned,
            ack: Ack::None,
        }
    }
}

/// How a batch is acknowledged.
pub(crate) enum Ack {
    /// Nothing to do: the read store's checkpoint is the progress.
    None,
    /// Offsets to commit, per partition (the next offset to read).
    Offsets(Vec<(i32, i64)>),
}

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(transparent)]
    Events(#[from] StoreError),
    #[error("kafka: {context}")]
    Kafka {
        context: String,
        #[source]
        source: Option<Cause>,
    },
    #[error("a message on the feed is unreadable")]
    Corrupt(#[source] Cause),
}

impl FeedError {
    /// A Kafka failure in `context`, caused by `source`.
    pub fn kafka(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        FeedError::Kafka {
            context: context.into(),
            source: Some(crate::error::cause(source)),
        }
    }

    /// A Kafka-side condition with no error value behind it.
    pub fn kafka_says(context: impl Into<String>) -> Self {
        FeedError::Kafka {
            context: context.into(),
            source: None,
        }
    }
}

#[async_trait]
pub trait EventFeed: Send + Sync + 'static {
    /// Subscribes `subscriber` (a projection at a version) to events of
    /// these types (none: every type). The embedded feed starts after
    /// `from`; Kafka starts where the subscriber's consumer group last
    /// committed.
    async fn subscribe(
        &self,
        subscriber: &str,
        types: &[&str],
        from: u64,
    ) -> Result<Box<dyn FeedSubscription>, FeedError>;

    /// Sets aside an event a projection could not apply (Kafka: the
    /// dead-letter topic). The read store records it either way.
    async fn dead_letter(&self, event: &RecordedEvent, error: &str) -> Result<(), FeedError>;
}

#[async_trait]
pub trait FeedSubscription: Send {
    /// The next events (waits for at least one, or for progress to report).
    /// Cancel-safe: a caller may stop waiting (drop the future) and call
    /// again without losing anything the feed had taken meanwhile.
    async fn next(&mut self) -> Result<FeedBatch, FeedError>;

    /// The batch's rows are durable: the feed may move past it.
    async fn acknowledge(&mut self, batch: &FeedBatch) -> Result<(), FeedError>;
}

/// The embedded feed: the event store's catch-up subscription to `$all`.
pub struct StoreFeed {
    events: std::sync::Arc<dyn EventStore>,
}

impl StoreFeed {
    pub fn new(events: std::sync::Arc<dyn EventStore>) -> Self {
        Self { events }
    }
}

struct StoreSubscription(Box<dyn Subscription>);

#[async_trait]
impl EventFeed for StoreFeed {
    async fn subscribe(
        &self,
        _subscriber: &str,
        types: &[&str],
        from: u64,
    ) -> Result<Box<dyn FeedSubscription>, FeedError> {
        let filter = EventFilter {
            types: types.iter().map(|t| t.to_string()).collect(),
            stream_prefix: None,
        };
        Ok(Box::new(StoreSubscription(
            self.events.subscribe_all(from, filter).await?,
        )))
    }

    async fn dead_letter(&self, _event: &RecordedEvent, _error: &str) -> Result<(), FeedError> {
        Ok(())
    }
}

#[async_trait]
impl FeedSubscription for StoreSubscription {
    async fn next(&mut self) -> Result<FeedBatch, FeedError> {
        let slice = self.0.next().await?;
        // Every subscriber reads all of `$all`: nothing is reassigned.
        Ok(FeedBatch::new(
            slice.events,
            Checkpoint::Position(slice.scanned_to),
            false,
        ))
    }

    async fn acknowledge(&mut self, _batch: &FeedBatch) -> Result<(), FeedError> {
        Ok(())
    }
}
