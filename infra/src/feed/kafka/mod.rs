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
//!   duplicates are harmless because rows ignore what they have seen. A
//!   batch says when a rebalance changed the consumer's partitions since
//!   the last one: its runner then forgets the rows it remembered, which
//!   another worker may have changed while it had those partitions.
//! - **[`Invalidations`]**: workers publish what they changed, API nodes
//!   listen and drop their cached answers.
//!
//! # Layout
//! - this file: [`KafkaSettings`] and what the others share (headers,
//!   producing with back-pressure).
//! - `topics`: creating topics, partition counts, the broker probe.
//! - `relay`, `consumer`, `invalidations`: the three users of the topics.

mod consumer;
mod invalidations;
mod relay;
mod topics;

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::consumer::{ConsumerContext, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use serde::{Deserialize, Serialize};

pub use consumer::KafkaFeed;
pub use invalidations::{Invalidation, Invalidations};
pub use relay::{RELAY_LEASE, Relay, RelayProgress};
pub use topics::{ensure_topics, probe};

use super::FeedError;

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

    pub(crate) fn client(&self) -> ClientConfig {
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

    pub(crate) fn producer(&self) -> Result<FutureProducer, FeedError> {
        self.client()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", self.linger.as_millis().to_string())
            .create()
            .map_err(kafka)
    }

    pub(crate) fn consumer(
        &self,
        group: &str,
        from_start: bool,
    ) -> Result<StreamConsumer, FeedError> {
        self.consumer_with(group, from_start, DefaultConsumerContext)
    }

    /// A consumer whose `context` hears its rebalances.
    pub(crate) fn consumer_with<C: ConsumerContext + 'static>(
        &self,
        group: &str,
        from_start: bool,
        context: C,
    ) -> Result<StreamConsumer<C>, FeedError> {
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
            // Three heartbeats per session timeout, as Kafka advises: a
            // rebalance reaches the survivors within a third of it.
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout.as_millis() / 3).max(1).to_string(),
            )
            .set("fetch.wait.max.ms", "5")
            .create_with_context(context)
            .map_err(kafka)
    }
}

fn kafka(e: KafkaError) -> FeedError {
    FeedError::kafka("the client failed", e)
}

/// The headers every relayed message (and dead letter) carries.
fn event_headers(event_type: &str, event_id: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header {
            key: "event-type",
            value: Some(event_type),
        })
        .insert(Header {
            key: "event-id",
            value: Some(event_id),
        })
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
        Err(_) => Err(FeedError::kafka_says("the producer went away")),
    }
}
