//! The relay and projection workers in this process, over the mock cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use shopstream::app::redaction::Redacted;
use shopstream_infra::feed::kafka::{KafkaFeed, Relay, RelayProgress};
use shopstream_infra::feed::{Checkpoint, EventFeed};
use shopstream_infra::runner::ProjectionRunner;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::harness::{Progress, Stores};
use crate::reference::assert_stock_matches_domain;
use crate::shop::Shop;

/// A relay running in a task until the returned token is cancelled.
fn spawn_relay(side: &Stores, broker: &Broker, holder: &str) -> CancellationToken {
    let relay = Relay {
        events: side.events.clone(),
        coordination: side.read.coordination.clone(),
        outbound: Arc::new(Redacted),
        settings: broker.settings.clone(),
        holder: holder.to_string(),
    };
    let stop = CancellationToken::new();
    let (progress, _) = watch::channel(RelayProgress::default());
    let relay_stop = stop.clone();
    tokio::spawn(async move {
        if let Err(e) = relay.run(&relay_stop, &progress).await {
            eprintln!("relay stopped: {e}");
        }
    });
    stop
}

/// Every projection's runner, fed by Kafka, reporting to `progress`.
async fn spawn_workers(
    side: &Stores,
    broker: &Broker,
    progress: &Arc<Progress>,
    stop: &CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let feed = Arc::new(
        KafkaFeed::connect(broker.settings.clone(), Arc::new(Redacted))
            .await
            .expect("the feed connects"),
    );
    shopstream_projections::all()
        .into_iter()
        .map(|p| {
            let runner =
                ProjectionRunner::new(p, side.events.clone(), side.read.clone(), progress.clone())
                    .with_feed(feed.clone());
            tokio::spawn(runner.run(stop.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_event_reaches_every_projection_through_kafka() {
    let broker = Broker::start();
    let side = Stores::new();
    let mut shop = Shop::new(side.events.clone(), 21);
    shop.open().await;
    shop.rounds(5).await;

    let relay = spawn_relay(&side, &broker, "relay-a");
    let progress = Progress::new();
    let stop = CancellationToken::new();
    let workers = spawn_workers(&side, &broker, &progress, &stop).await;
    // The shop keeps trading while events flow through Kafka.
    shop.rounds(10).await;

    progress.caught_up(side.head().await).await;
    side.assert_matches_reference().await;
    assert_stock_matches_domain(&side.read, &shop).await;
    let partitions = side.read.registry.partitions("catalogue").await.unwrap();
    assert_eq!(
        partitions.len() as i32,
        crate::broker::PARTITIONS,
        "{partitions:?}"
    );
    // Stopping is clean: every worker and the relay end on the signal.
    stop.cancel();
    relay.cancel();
    for worker in workers {
        tokio::time::timeout(crate::harness::PATIENCE, worker)
            .await
            .expect("a worker stops when told")
            .expect("a worker stops without panicking");
    }
}

/// A worker that forgot nothing when its partitions came back would apply
/// new events to rows as they were before another worker changed them.
/// Here real rebalances say so; whether a run shows the fault depends on
/// which partitions move (without the forgetting, about half the runs
/// fail). `read_side handover` checks the runner's side exactly, on
/// scripted feeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_given_partitions_back_reads_what_another_wrote_meanwhile() {
    let broker = Broker::start();
    let side = Stores::new();
    let mut shop = Shop::new(side.events.clone(), 23);
    shop.open().await;
    let _relay = spawn_relay(&side, &broker, "relay-a");

    // Worker A alone applies every event, and remembers the rows it wrote.
    let (a_progress, a_stop) = (Progress::new(), CancellationToken::new());
    let _a = spawn_workers(&side, &broker, &a_progress, &a_stop).await;
    shop.rounds(10).await;
    a_progress.caught_up(side.head().await).await;

    // Worker B joins and takes some partitions: the rows of their streams
    // change in B's hands while the shop trades.
    let trading = shop.trade();
    let (b_progress, b_stop) = (Progress::new(), CancellationToken::new());
    let b = spawn_workers(&side, &broker, &b_progress, &b_stop).await;
    // Stock rows change in nearly every round: the catalogue's are the
    // rows most surely remembered by A and changed by B.
    b_progress
        .wait_until("worker B applying catalogue events", |s| {
            s.batches_of.get("catalogue").is_some_and(|n| *n >= 10)
        })
        .await;
    let mut shop = trading.stop().await;

    // B leaves; A gets its partitions back and applies more to those rows.
    b_stop.cancel();
    for worker in b {
        worker.await.expect("worker B stops without panicking");
    }
    shop.rounds(60).await;
    a_progress.caught_up(side.head().await).await;
    side.assert_matches_reference().await;
    assert_stock_matches_domain(&side.read, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_stops_waiting_for_a_batch_loses_no_message() {
    let broker = Broker::start();
    let side = Stores::new();
    let mut shop = Shop::new(side.events.clone(), 29);
    shop.open().await;
    shop.rounds(60).await;
    let head = side.head().await;
    let _relay = spawn_relay(&side, &broker, "relay-a");
    let feed = KafkaFeed::connect(broker.settings.clone(), Arc::new(Redacted))
        .await
        .expect("the feed connects");
    let mut subscription = feed
        .subscribe("impatient", &[], 0)
        .await
        .expect("subscribed");

    // Every wait is cut short after 0 to 3 ms, often while a batch is
    // being gathered (for up to 2 ms after its first message), until the
    // watermarks say every partition has been read to the head.
    let mut delivered = BTreeSet::new();
    let mut reached: BTreeMap<i32, u64> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + crate::harness::PATIENCE;
    let mut wait = 0u64;
    while reached.len() < crate::broker::PARTITIONS as usize || reached.values().any(|p| *p < head)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the feed stopped short of {head}: {reached:?}"
        );
        wait = (wait + 137) % 3000;
        let next = subscription.next();
        let Ok(batch) = tokio::time::timeout(Duration::from_micros(wait), next).await else {
            continue;
        };
        let batch = batch.expect("a batch");
        delivered.extend(batch.events.iter().map(|e| e.position));
        if let Checkpoint::Partitions { positions, .. } = &batch.checkpoint {
            for (partition, position) in positions {
                let at = reached.entry(*partition).or_default();
                *at = (*at).max(*position);
            }
        }
        subscription
            .acknowledge(&batch)
            .await
            .expect("acknowledged");
    }
    let missing: Vec<u64> = (1..=head).filter(|p| !delivered.contains(p)).collect();
    assert!(missing.is_empty(), "never delivered: {missing:?}");
}
