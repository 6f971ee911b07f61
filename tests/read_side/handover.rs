//! A live runner whose feed hands its events to another worker for a while
//! (a Kafka rebalance) and then back: the rows it remembers may have been
//! changed meanwhile, and the batch that says so makes it read them again.
//! The feeds here are scripted, so the hand-over is exact.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use shopstream_infra::event_store::{EventFilter, RecordedEvent};
use shopstream_infra::feed::{Checkpoint, EventFeed, FeedBatch, FeedError, FeedSubscription};
use shopstream_projections::catalogue::Catalogue;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::harness::{Progress, Stores};
use crate::reference::assert_stock_matches_domain;
use crate::shop::Shop;

/// A feed that gives its one subscriber the batches a test sends.
struct ScriptedFeed(Mutex<Option<mpsc::UnboundedReceiver<FeedBatch>>>);

impl ScriptedFeed {
    fn new() -> (Arc<ScriptedFeed>, mpsc::UnboundedSender<FeedBatch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(ScriptedFeed(Mutex::new(Some(rx)))), tx)
    }
}

struct Scripted(mpsc::UnboundedReceiver<FeedBatch>);

#[async_trait]
impl EventFeed for ScriptedFeed {
    async fn subscribe(
        &self,
        _subscriber: &str,
        _types: &[&str],
        _from: u64,
    ) -> Result<Box<dyn FeedSubscription>, FeedError> {
        let rx = self.0.lock().expect("not poisoned").take();
        let rx = rx.ok_or_else(|| FeedError::kafka_says("subscribed twice"))?;
        Ok(Box::new(Scripted(rx)))
    }

    async fn dead_letter(&self, _event: &RecordedEvent, _error: &str) -> Result<(), FeedError> {
        Ok(())
    }
}

#[async_trait]
impl FeedSubscription for Scripted {
    async fn next(&mut self) -> Result<FeedBatch, FeedError> {
        match self.0.recv().await {
            Some(batch) => Ok(batch),
            // The test is over: nothing more comes.
            None => std::future::pending().await,
        }
    }

    async fn acknowledge(&mut self, _batch: &FeedBatch) -> Result<(), FeedError> {
        Ok(())
    }
}

/// A catalogue runner on its own scripted feed: the sender of its
/// batches, and what it reports.
fn worker(side: &Stores) -> (mpsc::UnboundedSender<FeedBatch>, Arc<Progress>) {
    let (feed, batches) = ScriptedFeed::new();
    let progress = Progress::new();
    let runner = side
        .runner(Arc::new(Catalogue), progress.clone())
        .with_feed(feed);
    tokio::spawn(runner.run(CancellationToken::new()));
    (batches, progress)
}

/// Hands a worker every event after `after`, as a batch after a
/// rebalance, and waits until it has applied them; the new `after`.
async fn hand_over(
    side: &Stores,
    (batches, progress): &(mpsc::UnboundedSender<FeedBatch>, Arc<Progress>),
    after: u64,
) -> u64 {
    let slice = side
        .events
        .read_all(after, &EventFilter::default(), 100_000)
        .await
        .expect("events readable");
    let to = slice.scanned_to;
    batches
        .send(FeedBatch::new(slice.events, Checkpoint::Position(to), true))
        .expect("the worker runs");
    progress
        .wait_until(&format!("the catalogue at {to}"), |s| {
            s.at.get("catalogue").is_some_and(|(_, at)| *at >= to)
        })
        .await;
    to
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_given_its_events_back_reads_the_rows_another_changed() {
    let side = Stores::new();
    let mut shop = Shop::new(side.events.clone(), 31);
    shop.open().await;
    let products: Vec<_> = shop.products.keys().copied().collect();

    // Worker A applies the shop's opening and remembers every stock row.
    let a = worker(&side);
    let at = hand_over(&side, &a, 0).await;

    // Worker B has those streams for a while: every SKU's stock changes.
    let b = worker(&side);
    for product in &products {
        shop.receive_stock(*product, 1).await;
    }
    let at = hand_over(&side, &b, at).await;

    // A has them back: its next receipts must count B's.
    for product in &products {
        shop.receive_stock(*product, 2).await;
    }
    hand_over(&side, &a, at).await;
    assert_stock_matches_domain(&side.read, &shop).await;
}
