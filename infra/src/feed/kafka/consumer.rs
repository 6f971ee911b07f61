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
}

/// Counts a consumer's rebalances (partitions assigned or revoked), so a
/// batch can tell its runner that the partitions it reads have changed.
#[derive(Default)]
struct Rebalances(AtomicU64);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, _rebalance: &Rebalance<'_>) {
        self.0.fetch_add(1, Ordering::SeqCst);
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
        let consumer = self
            .settings
            .consumer_with(&group, true, Rebalances::default())?;
        let topic = self.settings.events_topic();
        consumer.subscribe(&[&topic]).map_err(kafka)?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            topic,
            types: types.iter().map(|t| t.to_string()).collect(),
            partitions: self.partitions,
            rebalances: 0,
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
    async fn next(&mut self) -> Result<FeedBatch, FeedError> {
        let mut events = Vec::new();
        let mut positions: BTreeMap<i32, u64> = BTreeMap::new();
        let mut offsets: BTreeMap<i32, i64> = BTreeMap::new();
        let deadline = {
            let first = self.consumer.recv().await.map_err(kafka)?;
            self.take(&first, &mut events, &mut positions, &mut offsets)?;
            tokio::time::Instant::now() + BATCH_WAIT
        };
        let mut taken = 1;
        while taken < BATCH_MESSAGES {
            let Ok(next) = tokio::time::timeout_at(deadline, self.consumer.recv()).await else {
                break;
            };
            let message = next.map_err(kafka)?;
            self.take(&message, &mut events, &mut positions, &mut offsets)?;
            taken += 1;
        }
        // Read after the last message: a rebalance that handed over any
        // partition of this batch is counted by now.
        let rebalances = self.consumer.context().0.load(Ordering::SeqCst);
        let reassigned = std::mem::replace(&mut self.rebalances, rebalances) != rebalances;
        Ok(FeedBatch {
            events,
            checkpoint: Checkpoint::Partitions {
                total: self.partitions,
                positions: positions.into_iter().collect(),
            },
            reassigned,
            ack: Ack::Offsets(offsets.into_iter().collect()),
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
        if let Err(e) = self.consumer.commit(&list, CommitMode::Sync) {
            tracing::warn!(error = %e, "offsets not committed; the batch will be read again");
        }
        Ok(())
    }
}

impl KafkaSubscription {
    /// Takes one message into a batch: an event of ours, or only progress.
    fn take(
        &self,
        message: &impl Message,
        events: &mut Vec<RecordedEvent>,
        positions: &mut BTreeMap<i32, u64>,
        offsets: &mut BTreeMap<i32, i64>,
    ) -> Result<(), FeedError> {
        let partition = message.partition();
        let next = offsets.entry(partition).or_insert(0);
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
            if self.types.is_empty() || self.types.contains(&event.event_type) {
                events.push(event);
            }
            position
        };
        let seen = positions.entry(partition).or_insert(0);
        *seen = (*seen).max(position);
        Ok(())
    }
}
