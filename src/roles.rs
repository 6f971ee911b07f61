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

use crate::app::open_stores;
use crate::app::queries::QueryService;
use crate::config::Settings;

/// A value that turns true on SIGTERM or Ctrl-C.
pub fn stop_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        let _ = tx.send(true);
    });
    rx
}

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
    stop: watch::Receiver<bool>,
    progress: watch::Sender<RelayProgress>,
) -> anyhow::Result<()> {
    let (events, rows) = open_stores(settings).await?;
    let relay = Relay {
        events,
        rows,
        settings: settings.kafka(),
        holder: process_name("relay"),
    };
    // A broker that is not there yet, or went away, is waited for: the
    // relay starts over from its stored position.
    loop {
        match relay.run(stop.clone(), progress.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "relay stopped; starting again");
                tokio::time::sleep(Duration::from_secs(1)).await;
                if *stop.borrow() {
                    return Ok(());
                }
            }
        }
    }
}

/// Logs the relay's rate every ten seconds while it moves.
pub fn log_relay_progress(mut seen: watch::Receiver<RelayProgress>) {
    tokio::spawn(async move {
        let mut last = RelayProgress::default();
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
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

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        self.applied(projection, generation, checkpoint, &[], &[]);
    }

    fn dead_lettered(&self, projection: &str, event: &RecordedEvent, error: &str) {
        tracing::error!(
            projection,
            position = event.position,
            error,
            "event set aside"
        );
    }
}

/// `shopstream project`: projection runners consuming Kafka until `stop`.
pub async fn project(
    settings: &Settings,
    only: &[String],
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let (events, rows) = open_stores(settings).await?;
    let kafka = settings.kafka();
    let feed = loop {
        match KafkaFeed::connect(kafka.clone()).await {
            Ok(feed) => break Arc::new(feed),
            Err(e) => {
                tracing::warn!(error = %e, "waiting for Kafka");
                tokio::time::sleep(Duration::from_secs(1)).await;
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
            let runner = ProjectionRunner::new(p, events.clone(), rows.clone(), observer.clone())
                .with_feed(feed.clone());
            tokio::spawn(runner.run())
        })
        .collect();
    tracing::info!(count = runners.len(), "projection workers running");
    let _ = stop.wait_for(|stopped| *stopped).await;
    // Each batch is written atomically and acknowledged after: stopping
    // anywhere loses nothing, and what was not acknowledged is read again.
    for runner in runners {
        runner.abort();
    }
    Ok(())
}

/// An API node's ear for invalidations: drops cached answers of changed
/// partitions and moves its read-your-writes checkpoints on.
pub async fn listen(
    settings: &Settings,
    queries: Arc<QueryService>,
    stop: watch::Receiver<bool>,
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
