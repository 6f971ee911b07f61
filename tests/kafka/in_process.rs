//! The relay and projection workers in this process, over the mock cluster.

use std::sync::Arc;

use shopstream_infra::feed::kafka::{KafkaFeed, Relay, RelayProgress};
use shopstream_infra::runner::ProjectionRunner;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::harness::{Progress, ReadSide};
use crate::reference::assert_stock_matches_domain;
use crate::shop::Shop;

/// A relay running in a task until the returned sender says stop.
fn spawn_relay(side: &ReadSide, broker: &Broker, holder: &str) -> watch::Sender<bool> {
    let relay = Relay {
        events: side.events.clone(),
        rows: side.rows.clone(),
        settings: broker.settings.clone(),
        holder: holder.to_string(),
    };
    let (stop, stopped) = watch::channel(false);
    let (progress, _) = watch::channel(RelayProgress::default());
    tokio::spawn(async move {
        if let Err(e) = relay.run(stopped, progress).await {
            eprintln!("relay stopped: {e}");
        }
    });
    stop
}

/// Every projection's runner, fed by Kafka, reporting to `progress`.
async fn spawn_workers(
    side: &ReadSide,
    broker: &Broker,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let feed = Arc::new(
        KafkaFeed::connect(broker.settings.clone())
            .await
            .expect("the feed connects"),
    );
    shopstream_projections::all()
        .into_iter()
        .map(|p| {
            let runner =
                ProjectionRunner::new(p, side.events.clone(), side.rows.clone(), progress.clone())
                    .with_feed(feed.clone());
            tokio::spawn(runner.run())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_every_projection_through_kafka() {
    let broker = Broker::start();
    let side = ReadSide::new();
    let mut shop = Shop::new(side.events.clone(), 21);
    shop.open().await;
    shop.rounds(5).await;

    let _relay = spawn_relay(&side, &broker, "relay-a");
    let progress = Progress::new();
    let workers = spawn_workers(&side, &broker, &progress).await;
    // The shop keeps trading while events flow through Kafka.
    shop.rounds(10).await;

    progress.caught_up(side.head().await).await;
    side.assert_matches_reference().await;
    assert_stock_matches_domain(side.rows.as_ref(), &shop).await;
    let partitions = side.rows.partitions("catalogue").await.unwrap();
    assert_eq!(
        partitions.len() as i32,
        crate::broker::PARTITIONS,
        "{partitions:?}"
    );
    for worker in workers {
        worker.abort();
    }
}
