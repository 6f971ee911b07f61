//! Invalidations: workers publish what each batch changed and how far it
//! reached; every API node hears all of them.

use rdkafka::Message;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use super::{KafkaSettings, kafka};
use crate::feed::FeedError;
use crate::read_store::RowKey;

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
        stop: &CancellationToken,
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
                _ = stop.cancelled() => return Ok(()),
            };
            match serde_json::from_slice::<Invalidation>(message.payload().unwrap_or_default()) {
                Ok(invalidation) => heard(invalidation),
                Err(e) => tracing::warn!(error = %e, "unreadable invalidation"),
            }
        }
    }
}
