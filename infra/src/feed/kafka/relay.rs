//! The relay: `$all` to the events topic, one relay at a time.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::topics::{ensure_topics, partitions_of_all};
use super::{KafkaSettings, WATERMARK, WatermarkBody, delivered, enqueue, event_headers};
use crate::event_store::{EventFilter, EventStore};
use crate::feed::{FeedError, Outbound};
use crate::read_store::Coordination;

/// The name of the relay's lease in the read store's registry.
pub const RELAY_LEASE: &str = "relay";

/// Produces `$all` to the events topic, one relay at a time.
pub struct Relay {
    pub events: Arc<dyn EventStore>,
    /// Where the lease and the relayed position are kept.
    pub coordination: Arc<dyn Coordination>,
    /// How events are written into messages.
    pub outbound: Arc<dyn Outbound>,
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
        stop: &CancellationToken,
        progress: &watch::Sender<RelayProgress>,
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
                _ = stop.cancelled() => return Ok(()),
            }
        }
        tracing::info!(holder = %self.holder, "relay holds the lease");
        let result = self.relay(stop, progress).await;
        let _ = self
            .coordination
            .release_lease(RELAY_LEASE, &self.holder)
            .await;
        result
    }

    async fn lease(&self, ttl: Duration) -> Result<bool, FeedError> {
        self.coordination
            .acquire_lease(RELAY_LEASE, &self.holder, ttl)
            .await
            .map_err(|e| FeedError::kafka("taking the relay lease", e))
    }

    async fn relay(
        &self,
        stop: &CancellationToken,
        progress: &watch::Sender<RelayProgress>,
    ) -> Result<(), FeedError> {
        let topic = self.settings.events_topic();
        let producer = self.settings.producer()?;
        let partitions = partitions_of_all(&producer, std::slice::from_ref(&topic))?
            .get(&topic)
            .copied()
            .ok_or_else(|| FeedError::kafka_says(format!("topic {topic} has no partitions")))?;
        let mut position = self
            .coordination
            .lease_position(RELAY_LEASE)
            .await
            .map_err(|e| FeedError::kafka("reading the relay position", e))?;
        let mut subscription = self
            .events
            .subscribe_all(position, EventFilter::default())
            .await?;
        // The lease is renewed beside the relaying, which may wait long on
        // a broker that went away; only another relay taking it ends it.
        let (lost, mut taken) = watch::channel(false);
        let renewal = {
            let (coordination, holder, ttl) = (
                self.coordination.clone(),
                self.holder.clone(),
                self.settings.lease_ttl,
            );
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match coordination.acquire_lease(RELAY_LEASE, &holder, ttl).await {
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
                    return Err(FeedError::kafka_says("another relay took the lease"));
                }
                _ = stop.cancelled() => return Ok(()),
            };
            let mut deliveries = Vec::with_capacity(slice.events.len() + partitions);
            for event in &slice.events {
                let value = self
                    .outbound
                    .to_json(event)
                    .map_err(|e| FeedError::Corrupt(crate::error::cause(e)))?;
                let record = FutureRecord::to(&topic)
                    .key(event.stream.as_str())
                    .payload(value.as_slice())
                    .headers(event_headers(
                        &event.event_type,
                        &event.event_id.to_string(),
                    ));
                deliveries.push(enqueue(&producer, record).await?);
            }
            let mark = serde_json::to_vec(&WatermarkBody {
                position: slice.scanned_to,
            })
            .map_err(|e| FeedError::Corrupt(crate::error::cause(e)))?;
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
                .coordination
                .advance_lease(RELAY_LEASE, &self.holder, slice.scanned_to)
                .await
                .map_err(|e| FeedError::kafka("recording the relay position", e))?;
            if !moved {
                return Err(FeedError::kafka_says("another relay took the lease"));
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
