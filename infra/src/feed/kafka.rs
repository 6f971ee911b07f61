//! Kafka between the event store and the projections.
//!
//! - **Topics**: `<prefix>.events` (key = stream, so each aggregate's events
//!   keep their order; value = the recorded-event JSON of API.md; headers
//!   `event-type`, `event-id`), `<prefix>.dead-letter` (events a projection
//!   could not apply, with the error), `<prefix>.invalidations` (which
//!   read-model partitions a batch changed, for API nodes' caches).
//! - **[`Relay`]**: holds a lease so only one relay produces; tails `$all`
//!   from its stored position with an idempotent producer (`acks=all`); the
//!   position advances only once every message of a slice is acknowledged,
//!   so a crash re-sends and never skips. After each slice it writes a
//!   watermark (`event-type: $watermark`, the slice's end position) to every
//!   partition: a consumer that has read partition `p` up to a watermark
//!   knows it has every event of `p` up to that position, even when `p` got
//!   no event for a while, which is what read-your-writes needs.
//! - **[`KafkaFeed`]**: one consumer group per projection version; a batch
//!   is acknowledged (offsets committed) only after the read store holds it,
//!   so a worker killed at any point re-reads what it had not made durable;
//!   duplicates are harmless because rows ignore what they have seen.
//! - **[`Invalidations`]**: workers publish what they changed, API nodes
//!   listen and drop their cached answers.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Ack, EventFeed, FeedBatch, FeedError, FeedSubscription};
use crate::event_store::{EventFilter, EventStore, RecordedEvent};
use crate::read_store::{Checkpoint, ReadStore, RowKey};

/// The `event-type` header of a watermark message.
pub const WATERMARK: &str = "$watermark";

/// Where Kafka is and how shopstream uses it.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `host:port` list.
    pub brokers: String,
    pub topic_prefix: String,
    /// Partitions of the events topic when the relay creates it.
    pub partitions: i32,
    pub replication: i32,
    /// Consumer group session timeout: how long a dead worker keeps its
    /// partitions.
    pub session_timeout: Duration,
    /// How long a relay's lease lasts without renewal.
    pub lease_ttl: Duration,
    /// How long the producer waits to fill a batch.
    pub linger: Duration,
    /// librdkafka debug contexts (`cgrp,fetch`…), logged at debug level.
    pub debug: String,
}

impl KafkaSettings {
    pub fn events_topic(&self) -> String {
        format!("{}.events", self.topic_prefix)
    }

    pub fn dead_letter_topic(&self) -> String {
        format!("{}.dead-letter", self.topic_prefix)
    }

    pub fn invalidations_topic(&self) -> String {
        format!("{}.invalidations", self.topic_prefix)
    }

    /// Where [`probe`] measures the broker's own latency.
    pub fn probe_topic(&self) -> String {
        format!("{}.probe", self.topic_prefix)
    }

    fn client(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // A broker back from an outage is reconnected to within a
            // second, not after librdkafka's default ten, and a request in
            // flight to a broker that went away fails after five seconds,
            // not sixty: until it does, its partitions are not fetched.
            .set("reconnect.backoff.max.ms", "1000")
            .set("socket.timeout.ms", "5000");
        if !self.debug.is_empty() {
            config.set("debug", &self.debug);
        }
        config
    }

    fn producer(&self) -> Result<FutureProducer, FeedError> {
        self.client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger.as_millis().to_string())
            .create()
            .map_err(kafka)
    }

    fn consumer(&self, group: &str, from_start: bool) -> Result<StreamConsumer, FeedError> {
        self.client()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set(
                "auto.offset.reset",
                if from_start { "earliest" } else { "latest" },
            )
            .set(
                "session.timeout.ms",
                self.session_timeout.as_millis().to_string(),
            )
            .set("fetch.wait.max.ms", "5")
            .create()
            .map_err(kafka)
    }
}

fn kafka(e: KafkaError) -> FeedError {
    FeedError::Kafka(e.to_string())
}

/// Creates the topics if absent. A broker that cannot create topics
/// through the admin API (librdkafka's mock cluster) is given the benefit
/// of the doubt when the topics already exist.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), FeedError> {
    let names = [
        settings.events_topic(),
        settings.dead_letter_topic(),
        settings.invalidations_topic(),
    ];
    create_missing(settings, &names, settings.partitions).await
}

async fn create_missing(
    settings: &KafkaSettings,
    names: &[String],
    partitions: i32,
) -> Result<(), FeedError> {
    let producer = settings.producer()?;
    let existing = partitions_of_all(&producer, names)?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !existing.contains_key(*n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = settings.client().create().map_err(kafka)?;
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(settings.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics(&topics, &options),
    )
    .await
    {
        Ok(Ok(results)) => {
            for result in results {
                match result {
                    Ok(name) => tracing::info!(topic = name, "created topic"),
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = name, "topic exists")
                    }
                    Err((name, code)) => {
                        return Err(FeedError::Kafka(format!("creating {name}: {code}")));
                    }
                }
            }
            Ok(())
        }
        Ok(Err(e)) => Err(kafka(e)),
        Err(_) => Err(FeedError::Kafka(format!(
            "creating topics {missing:?} timed out; create them on the broker"
        ))),
    }
}

/// The broker's own produce → consume latency, the floor under commit →
/// queryable through Kafka: `count` small messages sent one at a time by a
/// producer configured like the relay's (idempotent, `acks=all`, the same
/// linger), each timed until a consumer of `<prefix>.probe` receives it.
pub async fn probe(settings: &KafkaSettings, count: usize) -> Result<Vec<Duration>, FeedError> {
    let topic = settings.probe_topic();
    create_missing(settings, std::slice::from_ref(&topic), 1).await?;
    let producer = settings.producer()?;
    let group = format!(
        "{}.probe.{}",
        settings.topic_prefix,
        uuid::Uuid::now_v7().simple()
    );
    let consumer = settings.consumer(&group, false)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::End)
        .map_err(kafka)?;
    consumer.assign(&assignment).map_err(kafka)?;
    let send = |payload: &[u8]| {
        let record = FutureRecord::<str, [u8]>::to(&topic)
            .key("probe")
            .payload(payload);
        producer.send_result(record).map_err(|(e, _)| kafka(e))
    };
    // The consumer starts reading at the end once it has looked the end
    // up: until a message sent now comes back, it may not have.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    'ready: loop {
        let _delivery = send(b"ready")?;
        let resend = tokio::time::Instant::now() + Duration::from_millis(250);
        while let Ok(message) = tokio::time::timeout_at(resend, consumer.recv()).await {
            if message.map_err(kafka)?.payload() == Some(b"ready".as_slice()) {
                break 'ready;
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(FeedError::Kafka(format!("{topic}: no message came back")));
        }
    }
    let mut round_trips = Vec::with_capacity(count);
    for i in 0..count {
        let payload = i.to_string();
        let sent = std::time::Instant::now();
        let _delivery = send(payload.as_bytes())?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
                .await
                .map_err(|_| FeedError::Kafka(format!("{topic}: message {i} did not come back")))?
                .map_err(kafka)?;
            if message.payload() == Some(payload.as_bytes()) {
                break;
            }
        }
        round_trips.push(sent.elapsed());
    }
    Ok(round_trips)
}

/// Partition counts of the topics that exist among `names`.
fn partitions_of_all(
    producer: &FutureProducer,
    names: &[String],
) -> Result<BTreeMap<String, usize>, FeedError> {
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(kafka)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| names.iter().any(|n| n == t.name()) && t.error().is_none())
        .filter(|t| !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}

fn header<'a>(message: &'a impl Message, key: &str) -> Option<&'a [u8]> {
    message
        .headers()?
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
}

#[derive(Debug, Serialize, Deserialize)]
struct WatermarkBody {
    position: u64,
}

/// Enqueues a record, waiting while the producer's queue is full.
async fn enqueue(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, str, [u8]>,
) -> Result<DeliveryFuture, FeedError> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(kafka(e)),
        }
    }
}

async fn delivered(delivery: DeliveryFuture) -> Result<(), FeedError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(kafka(e)),
        Err(_) => Err(FeedError::Kafka("the producer went away".into())),
    }
}

// ------------------------------------------------------------------ relay

/// The name of the relay's lease in the read store's registry.
pub const RELAY_LEASE: &str = "relay";

/// Produces `$all` to the events topic, one relay at a time.
pub struct Relay {
    pub events: Arc<dyn EventStore>,
    pub rows: Arc<dyn ReadStore>,
    pub settings: KafkaSettings,
    /// Who this relay is, in the lease.
    pub holder: String,
}

/// What the relay has done, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayProgress {
    pub position: u64,
    pub events: u64,
}

impl Relay {
    /// Waits for the lease, then relays until `stop` says so or the lease
    /// is lost (to a relay that took over while this one stalled).
    pub async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        progress: watch::Sender<RelayProgress>,
    ) -> Result<(), FeedError> {
        ensure_topics(&self.settings).await?;
        let lease = self.settings.lease_ttl;
        loop {
            if self.lease(lease).await? {
                break;
            }
            tracing::info!(holder = %self.holder, "another relay holds the lease; waiting");
            tokio::select! {
                _ = tokio::time::sleep(lease / 3) => {}
                _ = stop.changed() => return Ok(()),
            }
        }
        tracing::info!(holder = %self.holder, "relay holds the lease");
        let result = self.relay(&mut stop, &progress).await;
        let _ = self.rows.release_lease(RELAY_LEASE, &self.holder).await;
        result
    }

    async fn lease(&self, ttl: Duration) -> Result<bool, FeedError> {
        self.rows
            .acquire_lease(RELAY_LEASE, &self.holder, ttl)
            .await
            .map_err(|e| FeedError::Kafka(format!("relay lease: {e}")))
    }

    async fn relay(
        &self,
        stop: &mut watch::Receiver<bool>,
        progress: &watch::Sender<RelayProgress>,
    ) -> Result<(), FeedError> {
        let topic = self.settings.events_topic();
        let producer = self.settings.producer()?;
        let partitions = partitions_of_all(&producer, std::slice::from_ref(&topic))?
            .get(&topic)
            .copied()
            .ok_or_else(|| FeedError::Kafka(format!("topic {topic} has no partitions")))?;
        let mut position = self
            .rows
            .lease_position(RELAY_LEASE)
            .await
            .map_err(|e| FeedError::Kafka(format!("relay position: {e}")))?;
        let mut subscription = self
            .events
            .subscribe_all(position, EventFilter::default())
            .await?;
        // The lease is renewed beside the relaying, which may wait long on
        // a broker that went away; only another relay taking it ends it.
        let (lost, mut taken) = watch::channel(false);
        let renewal = {
            let (rows, holder, ttl) = (
                self.rows.clone(),
                self.holder.clone(),
                self.settings.lease_ttl,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match rows.acquire_lease(RELAY_LEASE, &holder, ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            let _ = lost.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "renewing the relay lease failed"),
                    }
                }
            })
        };
        let _stop_renewing = AbortOnDrop(renewal);
        let mut relayed = 0u64;
        loop {
            let slice = tokio::select! {
                slice = subscription.next() => slice?,
                _ = taken.changed() => {
                    return Err(FeedError::Kafka("another relay took the lease".into()));
                }
                _ = stop.changed() => return Ok(()),
            };
            let mut deliveries = Vec::with_capacity(slice.events.len() + partitions);
            for event in &slice.events {
                let value = serde_json::to_vec(
                    event
                        .redacted()
                        .map_err(|e| FeedError::Corrupt(e.to_string()))?
                        .as_ref(),
                )
                .map_err(|e| FeedError::Corrupt(e.to_string()))?;
                let id = event.event_id.to_string();
                let headers = OwnedHeaders::new()
                    .insert(Header {
                        key: "event-type",
                        value: Some(event.event_type.as_str()),
                    })
                    .insert(Header {
                        key: "event-id",
                        value: Some(id.as_str()),
                    });
                let record = FutureRecord::to(&topic)
                    .key(event.stream.as_str())
                    .payload(value.as_slice())
                    .headers(headers);
                deliveries.push(enqueue(&producer, record).await?);
            }
            let mark = serde_json::to_vec(&WatermarkBody {
                position: slice.scanned_to,
            })
            .map_err(|e| FeedError::Corrupt(e.to_string()))?;
            for partition in 0..partitions as i32 {
                let record = FutureRecord::to(&topic)
                    .partition(partition)
                    .key(WATERMARK)
                    .payload(mark.as_slice())
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "event-type",
                        value: Some(WATERMARK),
                    }));
                deliveries.push(enqueue(&producer, record).await?);
            }
            for delivery in deliveries {
                delivered(delivery).await?;
            }
            // Everything of the slice is acknowledged by the brokers: only
            // now may the relay's position move past it.
            let moved = self
                .rows
                .advance_lease(RELAY_LEASE, &self.holder, slice.scanned_to)
                .await
                .map_err(|e| FeedError::Kafka(format!("relay position: {e}")))?;
            if !moved {
                return Err(FeedError::Kafka("another relay took the lease".into()));
            }
            position = slice.scanned_to;
            relayed += slice.events.len() as u64;
            progress.send_replace(RelayProgress {
                position,
                events: relayed,
            });
        }
    }
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// ------------------------------------------------------------------ feed

/// Projection runners' feed from the events topic.
pub struct KafkaFeed {
    settings: KafkaSettings,
    producer: FutureProducer,
    partitions: u32,
}

impl KafkaFeed {
    pub async fn connect(settings: KafkaSettings) -> Result<Self, FeedError> {
        ensure_topics(&settings).await?;
        let producer = settings.producer()?;
        let topic = settings.events_topic();
        let partitions = partitions_of_all(&producer, std::slice::from_ref(&topic))?
            .get(&topic)
            .copied()
            .ok_or_else(|| FeedError::Kafka(format!("topic {topic} does not exist")))?;
        Ok(Self {
            settings,
            producer,
            partitions: partitions as u32,
        })
    }
}

struct KafkaSubscription {
    consumer: StreamConsumer,
    topic: String,
    types: HashSet<String>,
    partitions: u32,
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
        let consumer = self.settings.consumer(&group, true)?;
        let topic = self.settings.events_topic();
        consumer.subscribe(&[&topic]).map_err(kafka)?;
        Ok(Box::new(KafkaSubscription {
            consumer,
            topic,
            types: types.iter().map(|t| t.to_string()).collect(),
            partitions: self.partitions,
        }))
    }

    async fn dead_letter(&self, event: &RecordedEvent, error: &str) -> Result<(), FeedError> {
        let value = serde_json::to_vec(
            event
                .redacted()
                .map_err(|e| FeedError::Corrupt(e.to_string()))?
                .as_ref(),
        )
        .map_err(|e| FeedError::Corrupt(e.to_string()))?;
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
        Ok(FeedBatch {
            events,
            checkpoint: Checkpoint::Partitions {
                total: self.partitions,
                positions: positions.into_iter().collect(),
            },
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
                .map_err(|e| FeedError::Corrupt(format!("watermark: {e}")))?
                .position
        } else {
            let event: RecordedEvent = serde_json::from_slice(payload)
                .map_err(|e| FeedError::Corrupt(format!("event: {e}")))?;
            let position = event.position;
            if self.types.contains(&event.event_type) {
                events.push(event);
            }
            position
        };
        let seen = positions.entry(partition).or_insert(0);
        *seen = (*seen).max(position);
        Ok(())
    }
}

// ------------------------------------------------------------------ invalidations

/// What a worker tells API nodes after a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invalidation {
    pub projection: String,
    pub generation: u32,
    /// Every event up to here is in the read model.
    pub checkpoint: u64,
    /// The (table, partition) pairs whose rows changed.
    pub changed: Vec<(String, String)>,
}

impl Invalidation {
    /// The changed partitions as row keys (clustering left empty: caches
    /// invalidate whole partitions).
    pub fn keys(&self) -> Vec<RowKey> {
        self.changed
            .iter()
            .map(|(table, partition)| RowKey::new(table, partition.clone(), ""))
            .collect()
    }
}

/// Publishes and hears invalidations.
pub struct Invalidations {
    settings: KafkaSettings,
    producer: FutureProducer,
}

impl Invalidations {
    pub fn new(settings: KafkaSettings) -> Result<Self, FeedError> {
        let producer = settings.producer()?;
        Ok(Self { settings, producer })
    }

    /// Publishes one invalidation (without waiting for its delivery: a lost
    /// one only delays a cache refresh until the registry is next read).
    pub fn publish(&self, invalidation: &Invalidation) {
        let Ok(value) = serde_json::to_vec(invalidation) else {
            return;
        };
        let topic = self.settings.invalidations_topic();
        let record = FutureRecord::<str, [u8]>::to(&topic)
            .key(invalidation.projection.as_str())
            .payload(value.as_slice());
        if let Err((e, _)) = self.producer.send_result(record) {
            tracing::warn!(error = %e, "invalidation not published");
        }
    }

    /// Hears every invalidation published from now on, until `stop`.
    pub async fn listen(
        &self,
        node: &str,
        mut stop: watch::Receiver<bool>,
        mut heard: impl FnMut(Invalidation) + Send,
    ) -> Result<(), FeedError> {
        // Every node hears every invalidation, from now on: it assigns itself
        // all partitions at their end rather than joining a consumer group,
        // so nodes coming and going never make the others rebalance.
        let group = format!("{}.api.{node}", self.settings.topic_prefix);
        let consumer = self.settings.consumer(&group, false)?;
        let topic = self.settings.invalidations_topic();
        let partitions = consumer
            .fetch_metadata(Some(&topic), Duration::from_secs(10))
            .map_err(kafka)?
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions as i32 {
            assignment
                .add_partition_offset(&topic, partition, Offset::End)
                .map_err(kafka)?;
        }
        consumer.assign(&assignment).map_err(kafka)?;
        loop {
            let message = tokio::select! {
                message = consumer.recv() => message.map_err(kafka)?,
                _ = stop.changed() => return Ok(()),
            };
            match serde_json::from_slice::<Invalidation>(message.payload().unwrap_or_default()) {
                Ok(invalidation) => heard(invalidation),
                Err(e) => tracing::warn!(error = %e, "unreadable invalidation"),
            }
        }
    }
}
