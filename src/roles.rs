//! The scale-out roles beside `serve`: the relay (event store → Kafka) and
//! projection workers (Kafka → read store), and how an API node hears
//! their invalidations.

use std::sync::Arc;
use std::time::Duration;

use shopstream_infra::event_store::RecordedEvent;
use shopstream_infra::feed::kafka::{Invalidation, Invalidations, KafkaFeed, Relay, RelayProgress};
use shopstream_infra::read_store::RowKey;
use shopstream_infra::runner::{ProjectionRunner, RunnerObserver};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::app::open_stores;
use crate::app::queries::QueryService;
use crate::app::redaction::Redacted;
use crate::config::Settings;

/// Who this process is, in leases and consumer groups.
pub fn process_name(role: &str) -> String {
    format!(
        "{role}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

/// `shopstream relay`: produces `$all` to Kafka until `stop`, reporting
/// what it relayed on `progress`.
pub async fn relay(
    settings: &Settings,
    stop: &CancellationToken,
    progress: watch::Sender<RelayProgress>,
) -> anyhow::Result<()> {
    let stores = open_stores(settings).await?;
    let relay = Relay {
        events: stores.events,
        coordination: stores.read.coordination,
        outbound: Arc::new(Redacted),
        settings: settings.kafka(),
        holder: process_name("relay"),
    };
    // A broker that is not there yet, or went away, is waited for: the
    // relay starts over from its stored position.
    loop {
        match relay.run(stop, &progress).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(
                    error = %shopstream_infra::error::Report(&e),
                    "relay stopped; starting again"
                );
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
    }
}

/// Logs the relay's rate every ten seconds while it moves, until `stop`.
pub fn log_relay_progress(mut seen: watch::Receiver<RelayProgress>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut last = RelayProgress::default();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let now = *seen.borrow_and_update();
            if now.events != last.events {
                tracing::info!(
                    position = now.position,
                    events = now.events,
                    per_second = (now.events - last.events) / 10,
                    "relaying"
                );
            }
            last = now;
        }
    });
}

/// Publishes what a worker's runners did, for API nodes' caches and
/// read-your-writes waits.
struct Publish(Invalidations);

impl RunnerObserver for Publish {
    fn applied(
        &self,
        projection: &str,
        generation: u32,
        checkpoint: u64,
        changed: &[RowKey],
        _lags: &[Duration],
    ) {
        let mut partitions: Vec<(String, String)> = changed
            .iter()
            .map(|k| (k.table.clone(), k.partition.clone()))
            .collect();
        partitions.sort();
        partitions.dedup();
        self.0.publish(&Invalidation {
            projection: projection.to_string(),
            generation,
            checkpoint,
            changed: partitions,
        });
    }

    fn changed(&self, projection: &str, generation: u32, changed: &[RowKey]) {
        // No checkpoint moved: nodes only drop what changed.
        self.applied(projection, generation, 0, changed, &[]);
    }

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        self.applied(projection, generation, checkpoint, &[], &[]);
    }

    /// The runner has logged it, and the feed has the dead letter.
    fn dead_lettered(&self, _: &str, _: &RecordedEvent, _: &str) {}
}

/// `shopstream project`: projection runners consuming Kafka until `stop`.
pub async fn project(
    settings: &Settings,
    only: &[String],
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let stores = open_stores(settings).await?;
    let kafka = settings.kafka();
    let feed = loop {
        match KafkaFeed::connect(kafka.clone(), Arc::new(Redacted)).await {
            Ok(feed) => break Arc::new(feed),
            Err(e) => {
                tracing::warn!(error = %shopstream_infra::error::Report(&e), "waiting for Kafka");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return Ok(()),
                }
            }
        }
    };
    let observer = Arc::new(Publish(Invalidations::new(kafka)?));
    let projections: Vec<_> = shopstream_projections::all()
        .into_iter()
        .filter(|p| only.is_empty() || only.iter().any(|n| n == p.name()))
        .collect();
    anyhow::ensure!(!projections.is_empty(), "no projection named {only:?}");
    let runners: Vec<_> = projections
        .into_iter()
        .map(|p| {
            let runner = ProjectionRunner::new(
                p,
                stores.events.clone(),
                stores.read.clone(),
                observer.clone(),
            )
            .with_feed(feed.clone());
            tokio::spawn(runner.run(stop.clone()))
        })
        .collect();
    tracing::info!(count = runners.len(), "projection workers running");
    // Rows are durable before their checkpoint and acknowledged after:
    // stopping anywhere loses nothing, and what was not acknowledged is
    // read again.
    for runner in runners {
        runner.await?;
    }
    Ok(())
}

/// An API node's ear for invalidations: drops cached answers of changed
/// partitions and moves its read-your-writes checkpoints on.
pub async fn listen(
    settings: &Settings,
    queries: Arc<QueryService>,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let invalidations = Invalidations::new(settings.kafka())?;
    invalidations
        .listen(&process_name("api"), stop, |heard| {
            queries.heard(
                &heard.projection,
                heard.generation,
                heard.checkpoint,
                &heard.keys(),
            );
        })
        .await?;
    Ok(())
}
