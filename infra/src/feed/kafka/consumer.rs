//! Projection runners' feed from the events topic: one consumer group per
//! projection version, offsets committed only once a batch's rows are
//! durable.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use rdkafka::ClientContext;
use rdkafka::Message;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::topics::{ensure_topics, partitions_of_all};
use super::{KafkaSettings, WATERMARK, WatermarkBody, delivered, enqueue, header, kafka};
use crate::error::cause;
use crate::event_store::RecordedEvent;
use crate::feed::{Ack, Checkpoint, EventFeed, FeedBatch, FeedError, FeedSubscription, Outbound};

/// Projection runners' feed from the events topic.
pub struct KafkaFeed {
    settings: KafkaSettings,
    producer: FutureProducer,
    partitions: u32,
    outbound: Arc<dyn Outbound>,
}

impl KafkaFeed {
    /// Connects to the brokers (creating the topics if absent); dead
    /// letters are written with `outbound`.
    pub async fn connect(
        settings: KafkaSettings,
        outbound: Arc<dyn Outbound>,
    ) -> Result<Self, FeedError> {
        ensure_topics(&settings).await?;
        let producer = settings.producer()?;
        let topic = settings.events_topic();
        let partitions = partitions_of_all(&producer, std::slice::from_ref(&topic))?
            .get(&topic)
            .copied()
            .ok_or_else(|| FeedError::kafka_says(format!("topic {topic} does not exist")))?;
        Ok(Self {
            settings,
            producer,
            partitions: partitions as u32,
            outbound,
        })
    }
}

struct KafkaSubscription {
    consumer: StreamConsumer<Rebalances>,
    topic: String,
    /// The event types wanted (empty: every type).
    types: HashSet<String>,
    partitions: u32,
    /// The consumer's rebalance count when the last batch was taken.
    rebalances: u64,
    /// The batch being gathered. It lives here, not in `next`'s future: a
    /// caller that stops waiting (a timeout) drops the future, and the
    /// messages taken from the consumer so far must not go with it, or
    /// offsets committed later would skip them.
    gathering: Option<Gathering>,
}

/// A batch taken so far.
struct Gathering {
    events: Vec<RecordedEvent>,
    /// The furthest `$all` position seen, per partition.
    positions: BTreeMap<i32, u64>,
    /// The next offset to read, per partition.
    offsets: BTreeMap<i32, i64>,
    taken: usize,
    /// When to stop waiting for more messages.
    until: tokio::time::Instant,
}

impl Gathering {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            positions: BTreeMap::new(),
            offsets: BTreeMap::new(),
            taken: 0,
            until: tokio::time::Instant::now() + BATCH_WAIT,
        }
    }

    /// Takes one message: an event of ours (any type when `types` is
    /// empty), or only progress.
    fn take(&mut self, message: &impl Message, types: &HashSet<String>) -> Result<(), FeedError> {
        let partition = message.partition();
        let next = self.offsets.entry(partition).or_insert(0);
        *next = (*next).max(message.offset() + 1);
        let payload = message.payload().unwrap_or_default();
        let position = if header(message, "event-type") == Some(WATERMARK.as_bytes()) {
            serde_json::from_slice::<WatermarkBody>(payload)
                .map_err(|e| FeedError::Corrupt(cause(e)))?
                .position
        } else {
            let event: RecordedEvent =
                serde_json::from_slice(payload).map_err(|e| FeedError::Corrupt(cause(e)))?;
            let position = event.position;
            if types.is_empty() || types.contains(&event.event_type) {
                self.events.push(event);
            }
            position
        };
        let seen = self.positions.entry(partition).or_insert(0);
        *seen = (*seen).max(position);
        self.taken += 1;
        Ok(())
    }
}

/// Counts a consumer's rebalances (partitions assigned or revoked), so a
/// batch can tell its runner that the partitions it reads have changed.
struct Rebalances {
    count: AtomicU64,
    group: String,
}

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.count.fetch_add(1, Ordering::SeqCst);
        let group = &self.group;
        match rebalance {
            Rebalance::Assign(list) => {
                tracing::info!(%group, partitions = ?partition_numbers(list), "partitions assigned")
            }
            Rebalance::Revoke(list) => {
                tracing::info!(%group, partitions = ?partition_numbers(list), "partitions revoked")
            }
            Rebalance::Error(e) => tracing::warn!(%group, error = %e, "rebalance failed"),
        }
    }
}

/// The most messages one batch takes, and how long it waits for more after
/// the first.
const BATCH_MESSAGES: usize = 2048;
const BATCH_WAIT: Duration = Duration::from_millis(2);

#[async_trait]
impl EventFeed for KafkaFeed {
    async fn subscribe(
        &self,
        subscriber: &str,
        types: &[&str],
        _from: u64,
    ) -> Result<Box<dyn FeedSubscription>, FeedError> {
        let group = format!("{}.projection.{subscriber}", self.settings.topic_prefix);
        let consumer = self.settings.consumer_with(
            &group,
            true,
            Rebalances {
                count: AtomicU64::new(0),
                group: group.clone(),
            },
        )?;
        let topic = self.settings.events_topic();
        consumer.subscribe(&[&topic]).map_err(kafka)?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            topic,
            types: types.iter().map(|t| t.to_string()).collect(),
            partitions: self.partitions,
            rebalances: 0,
            gathering: None,
        }))
    }

    async fn dead_letter(&self, event: &RecordedEvent, error: &str) -> Result<(), FeedError> {
        let value = self
            .outbound
            .to_json(event)
            .map_err(|e| FeedError::Corrupt(cause(e)))?;
        let topic = self.settings.dead_letter_topic();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "event-type",
                value: Some(event.event_type.as_str()),
            })
            .insert(Header {
                key: "error",
                value: Some(error),
            });
        let record = FutureRecord::to(&topic)
            .key(event.stream.as_str())
            .payload(value.as_slice())
            .headers(headers);
        delivered(enqueue(&self.producer, record).await?).await
    }
}

#[async_trait]
impl FeedSubscription for KafkaSubscription {
    /// Cancel-safe: messages taken by a dropped call are in the next
    /// call's batch.
    async fn next(&mut self) -> Result<FeedBatch, FeedError> {
        let Self {
            consumer,
            types,
            gathering,
            ..
        } = self;
        let batch = match gathering {
            Some(batch) => batch,
            None => {
                // Nothing is taken until a message is here.
                let first = consumer.recv().await.map_err(kafka)?;
                let mut batch = Gathering::new();
                batch.take(&first, types)?;
                gathering.insert(batch)
            }
        };
        while batch.taken < BATCH_MESSAGES {
            let Ok(next) = tokio::time::timeout_at(batch.until, consumer.recv()).await else {
                break;
            };
            batch.take(&next.map_err(kafka)?, types)?;
        }
        let batch = std::mem::replace(batch, Gathering::new());
        *gathering = None;
        // Read after the last message: a rebalance that handed over any
        // partition of this batch is counted by now.
        let rebalances = self.consumer.context().count.load(Ordering::SeqCst);
        let reassigned = std::mem::replace(&mut self.rebalances, rebalances) != rebalances;
        tracing::debug!(
            group = %self.consumer.context().group,
            offsets = ?batch.offsets,
            positions = ?batch.positions,
            events = ?batch.events.iter().map(|e| e.position).collect::<Vec<_>>(),
            reassigned,
            "batch taken"
        );
        Ok(FeedBatch {
            events: batch.events,
            checkpoint: Checkpoint::Partitions {
                total: self.partitions,
                positions: batch.positions.into_iter().collect(),
            },
            reassigned,
            ack: Ack::Offsets(batch.offsets.into_iter().collect()),
        })
    }

    async fn acknowledge(&mut self, batch: &FeedBatch) -> Result<(), FeedError> {
        let Ack::Offsets(offsets) = &batch.ack else {
            return Ok(());
        };
        let mut list = TopicPartitionList::new();
        for (partition, next) in offsets {
            list.add_partition_offset(&self.topic, *partition, Offset::Offset(*next))
                .map_err(kafka)?;
        }
        // A commit refused (a rebalance took the partition meanwhile) only
        // means the new owner reads the batch again: rows ignore repeats.
        let group = &self.consumer.context().group;
        match self.consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => tracing::debug!(%group, ?offsets, "offsets committed"),
            Err(e) => tracing::warn!(
                %group,
                error = %e,
                "offsets not committed; the batch will be read again"
            ),
        }
        Ok(())
    }
}

fn partition_numbers(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}
