//! The projection runner on the real embedded stores: live runs, kills and
//! restarts while the shop keeps trading, duplicate deliveries, rebuilds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use shopstream_infra::read_store::{Delta, Progress as Reach, ReadSide, ReadStoreError, Target};
use shopstream_infra::runner::{ProjectionRunner, rebuild_together};
use shopstream_projections::catalogue::{ALL, Catalogue, PRODUCTS_BY_NAME};
use shopstream_projections::customers::Customers;
use shopstream_projections::memory::MemoryRows;
use shopstream_projections::{Projection, Row, RowKey, RowWrite};
use tokio::sync::watch;

use crate::harness::{LiveRunners, PATIENCE, Progress, Seen, Stores, UntilStopped};
use crate::reference::{self, assert_stock_matches_domain};
use crate::shop::Shop;

/// A shop opened in `side`'s event store and run for `rounds` rounds.
async fn shop_with_history(side: &Stores, seed: u64, rounds: usize) -> Shop {
    let mut shop = Shop::new(side.events.clone(), seed);
    shop.open().await;
    shop.rounds(rounds).await;
    shop
}

/// Checks the live generations against the history and the stock levels
/// against the inventory aggregates.
async fn assert_read_model_is_right(side: &Stores, shop: &Shop) {
    side.assert_matches_reference().await;
    assert_stock_matches_domain(&side.read, shop).await;
}

/// A shop with some history, and live runners that have applied all of it.
async fn running_shop(seed: u64, rounds: usize) -> (Stores, Shop, LiveRunners) {
    let side = Stores::new();
    let shop = shop_with_history(&side, seed, rounds).await;
    let live = side.spawn_live();
    live.progress.caught_up(side.head().await).await;
    (side, shop, live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_runners_catch_up_then_follow_and_match_the_reference() {
    let (side, mut shop, live) = running_shop(1, 15).await;
    shop.rounds(15).await;
    live.progress.caught_up(side.head().await).await;

    assert_read_model_is_right(&side, &shop).await;
    for record in side.read.registry.projections().await.unwrap() {
        assert_eq!(
            (record.generation, record.failure, record.build),
            (1, None, None),
            "{} runs live on its first generation",
            record.name
        );
        assert!(record.checkpoint > 0, "{} is checkpointed", record.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runners_killed_at_random_points_skip_and_repeat_nothing() {
    let seed: u64 = rand::random();
    eprintln!("kill points and shop drawn from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let side = Stores::new();
    let trading = shop_with_history(&side, seed, 5).await.trade();
    for _ in 0..10 {
        let live = side.spawn_live();
        let batches = rng.random_range(1..=6);
        live.progress
            .wait_until(&format!("{batches} batches"), |s| s.batches >= batches)
            .await;
        // Somewhere in the next batch, wherever these yields leave it.
        for _ in 0..rng.random_range(0..200) {
            tokio::task::yield_now().await;
        }
        live.kill().await;
    }
    let shop = trading.stop().await;

    let live = side.spawn_live();
    live.progress.caught_up(side.head().await).await;
    assert_read_model_is_right(&side, &shop).await;
}

/// The batch deltas of a projection's writes for one event.
fn deltas(writes: Vec<RowWrite>) -> Vec<Delta> {
    let mut rows: BTreeMap<RowKey, Row> = BTreeMap::new();
    for write in writes {
        rows.entry(write.key).or_default().merge(&write.change);
    }
    rows.into_iter()
        .map(|(key, change)| Delta {
            key,
            change,
            whole: false,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delivering_the_whole_history_again_changes_nothing() {
    let (side, shop, live) = running_shop(3, 25).await;
    live.kill().await;
    assert_read_model_is_right(&side, &shop).await;
    let registry = side.read.registry.projections().await.unwrap();
    let generations = reference::live_generations(&side.read).await;

    // Each event's writes, as its first delivery computed them, written
    // again one event per batch, as a redelivery from position 0 would.
    let readers = reference::readers();
    let mut first_delivery = MemoryRows::default();
    for event in reference::history(side.events.as_ref()).await {
        for reader in readers.iter().filter(|r| r.reads(&event)) {
            let projection = reader.projection.name();
            let writes = reader.project(&mut first_delivery, &event);
            let generation = generations[reader.projection.tables()[0]];
            let changed = side
                .read
                .rows
                .apply(generation, deltas(writes))
                .await
                .expect("a redelivered batch is accepted");
            assert!(
                changed.is_empty(),
                "redelivering {} at {} to {projection} changed {changed:?}",
                event.event_type,
                event.position
            );
            side.read
                .registry
                .advance(
                    projection,
                    Target::Live(generation),
                    Reach::to(event.position),
                )
                .await
                .expect("an old checkpoint is accepted");
        }
    }
    assert_eq!(
        side.read.registry.projections().await.unwrap(),
        registry,
        "no checkpoint moved back"
    );
    assert_read_model_is_right(&side, &shop).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_runners_racing_on_one_generation_agree_with_the_reference() {
    let side = Stores::new();
    let mut shop = shop_with_history(&side, 4, 15).await;
    // Both start from position 0: every event reaches the tables twice,
    // sometimes onto rows the other runner has already moved past it.
    let first = side.spawn_live();
    let second = side.spawn_live();
    shop.rounds(15).await;
    let head = side.head().await;
    first.progress.caught_up(head).await;
    second.progress.caught_up(head).await;
    assert_read_model_is_right(&side, &shop).await;
}

/// What a reader of the product list saw while a rebuild went on.
#[derive(Debug, Default)]
struct Reads {
    count: usize,
    generations: BTreeSet<u32>,
    failures: Vec<String>,
}

/// Reads the first page of the product list as the query service does: on
/// the generation the registry says is live, looking again once if a
/// rebuild dropped it in between.
async fn read_product_list(read: &ReadSide) -> Result<(u32, usize), String> {
    let mut last_error = None;
    for _ in 0..2 {
        let generation = read
            .registry
            .projection("catalogue")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("catalogue is not registered")?
            .generation;
        match read
            .rows
            .scan(generation, PRODUCTS_BY_NAME, ALL, None, 50)
            .await
        {
            Ok(page) => return Ok((generation, page.len())),
            Err(e @ ReadStoreError::NoSuchTable(_)) => last_error = Some(e),
            Err(e) => return Err(e.to_string()),
        }
    }
    Err(format!("the generation moved twice: {last_error:?}"))
}

/// Reads the product list over and over until stopped, then once more.
struct ProductListReader {
    reads: watch::Receiver<usize>,
    task: UntilStopped<Reads>,
}

impl ProductListReader {
    fn start(read: ReadSide) -> Self {
        let (counted, reads) = watch::channel(0);
        let task = UntilStopped::spawn(|stop| async move {
            let mut reads = Reads::default();
            loop {
                let last = stop.load(Ordering::SeqCst);
                match read_product_list(&read).await {
                    Ok((generation, 0)) => reads
                        .failures
                        .push(format!("an empty list in generation {generation}")),
                    Ok((generation, _)) => {
                        reads.generations.insert(generation);
                    }
                    Err(e) => reads.failures.push(e),
                }
                reads.count += 1;
                counted.send_replace(reads.count);
                if last {
                    return reads;
                }
            }
        });
        Self { reads, task }
    }

    /// Waits until the reader has read the list `n` times.
    async fn has_read(&mut self, n: usize) {
        let read = tokio::time::timeout(PATIENCE, self.reads.wait_for(|count| *count >= n));
        read.await
            .expect("the reader reads")
            .expect("the reader is alive");
    }

    async fn stop(self) -> Reads {
        self.task.stop().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_under_load_switches_generations_without_readers_noticing() {
    let (side, shop, live) = running_shop(5, 15).await;

    let mut reader = ProductListReader::start(side.read.clone());
    reader.has_read(1).await;
    let trading = shop.trade();
    // The rebuild is held after its first page until the live runner has
    // applied a few rounds of trading past it, so it has to catch up with
    // a moving target.
    let (runtime, progress) = (tokio::runtime::Handle::current(), live.progress.clone());
    let mut pages = Vec::new();
    let mut hold_after_first_page = |position: u64, _head: u64, _applied: u64| {
        if pages.is_empty() {
            let live_past_it = |s: &Seen| {
                s.at.get("catalogue")
                    .is_some_and(|(_, c)| *c > position + 50)
            };
            let wait = progress.wait_until("live past the rebuild's first page", live_past_it);
            tokio::task::block_in_place(|| runtime.block_on(wait));
        }
        pages.push(position);
    };
    let rebuilt = tokio::time::timeout(
        PATIENCE,
        side.runner(Arc::new(Catalogue), live.progress.clone())
            .rebuild(&mut hold_after_first_page),
    )
    .await
    .expect("the rebuild finishes")
    .expect("the rebuild succeeds");
    assert!(
        pages.len() > 1,
        "the rebuild caught up page by page: {pages:?}"
    );
    let shop = trading.stop().await;
    let reads = reader.stop().await;

    assert_ne!(rebuilt, 1);
    let record = side
        .read
        .registry
        .projection("catalogue")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((record.generation, record.build), (rebuilt, None));
    assert!(reads.failures.is_empty(), "readers noticed: {reads:?}");
    assert!(
        reads.generations.contains(&1),
        "reads overlapped the rebuild: {reads:?}"
    );
    assert!(reads.generations.contains(&rebuilt), "{reads:?}");

    let head = side.head().await;
    let seen = live
        .progress
        .wait_until("the live runner following the rebuilt generation", |s| {
            s.caught_up(head) && s.at.get("catalogue").is_some_and(|(g, _)| *g == rebuilt)
        })
        .await;
    assert_eq!(
        seen.switches,
        [("catalogue".to_string(), rebuilt)],
        "observers heard of it"
    );
    assert_read_model_is_right(&side, &shop).await;
}

/// Events per page of the rebuilds below: small, so they span pages.
const PAGE: usize = 1_000;

/// Registers `projection` and rebuilds it, with a bound on how long that
/// may take.
async fn rebuild(
    side: &Stores,
    projection: Arc<dyn Projection>,
    within: Duration,
) -> Result<u32, String> {
    side.read
        .register(projection.name(), projection.version(), projection.tables())
        .await
        .unwrap();
    let runner = side
        .runner(projection, Progress::new())
        .with_build_page(PAGE);
    match tokio::time::timeout(within, runner.rebuild(&mut |_, _, _| {})).await {
        Ok(rebuilt) => rebuilt.map_err(|e| e.to_string()),
        Err(_) => Err(format!("still rebuilding after {within:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_longer_than_one_page_finds_rows_its_earlier_pages_wrote() {
    let side = Stores::new();
    let mut shop = Shop::new(side.events.clone(), 6);
    // More customer events than one page of a rebuild, then one that needs
    // the first customer's row.
    let customers = shop.import_customers(PAGE * 2 + 100, 500).await;
    shop.verify_email(customers[0]).await;

    let rebuilt = rebuild(&side, Arc::new(Customers), PATIENCE).await;
    assert_eq!(rebuilt, Ok(2));
    let history = reference::history(side.events.as_ref()).await;
    reference::assert_matches(&side.read, &reference::fold_only(&history, &["customers"])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_with_nothing_to_apply_finishes_after_the_live_runner_checkpointed() {
    let side = Stores::new();
    // A shop with a catalogue and stock, where nobody has registered yet.
    let mut shop = Shop::new(side.events.clone(), 7);
    for price in [900, 1_500, 2_400] {
        let product = shop.add_product("Enamel Mug", "kitchen", price).await;
        shop.receive_stock(product, 10).await;
    }
    let customers: Arc<dyn Projection> = Arc::new(Customers);
    let record = side
        .read
        .register(customers.name(), customers.version(), customers.tables())
        .await
        .unwrap();
    // The live runner, seeing only others' events, writes this batch once
    // a second (IDLE_CHECKPOINT_EVERY): no rows, its checkpoint at the
    // head. Written here directly rather than waiting for the clock.
    side.read
        .registry
        .advance(
            customers.name(),
            Target::Live(record.generation),
            Reach::to(side.head().await),
        )
        .await
        .unwrap();

    let rebuilt = rebuild(&side, customers, Duration::from_secs(10)).await;
    assert_eq!(
        rebuilt,
        Ok(2),
        "the rebuild has nothing to apply and is caught up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilding_every_projection_from_one_read_matches_the_reference_under_load() {
    rebuild_every_projection_under_load(|runner| runner).await;
}

/// A rebuild writes one page's rows while it applies the next; one that
/// has forgotten rows reads them back from the store, which must first
/// hold every page it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebuilds_that_forget_rows_read_back_what_they_wrote() {
    rebuild_every_projection_under_load(|runner| runner.with_build_known_rows(8)).await;
}

async fn rebuild_every_projection_under_load(
    runner: impl Fn(ProjectionRunner) -> ProjectionRunner,
) {
    let (side, shop, live) = running_shop(8, 20).await;
    let trading = shop.trade();
    let runners = shopstream_projections::all()
        .into_iter()
        .map(|p| {
            Arc::new(runner(
                side.runner(p, live.progress.clone()).with_build_page(50),
            ))
        })
        .collect();
    let mut pages = 0;
    let rebuilt = tokio::time::timeout(
        PATIENCE,
        rebuild_together(runners, &mut |_: u64, _: u64, _: u64| pages += 1),
    )
    .await
    .expect("the rebuilds finish")
    .expect("the rebuilds succeed");
    assert!(pages > 1, "one read fed every rebuild, page by page");
    let shop = trading.stop().await;
    for (record, generation) in side
        .read
        .registry
        .projections()
        .await
        .unwrap()
        .iter()
        .zip(&rebuilt)
    {
        assert_eq!(
            (record.generation, &record.build),
            (*generation, &None),
            "{}",
            record.name
        );
        assert_ne!(*generation, 1, "{} was rebuilt", record.name);
    }
    live.progress.caught_up(side.head().await).await;
    assert_read_model_is_right(&side, &shop).await;
}

/// The catalogue with a bug in one event type, until its fix is deployed.
struct BuggyCatalogue {
    fixed: Arc<std::sync::atomic::AtomicBool>,
}

impl Projection for BuggyCatalogue {
    fn name(&self) -> &'static str {
        Catalogue.name()
    }

    fn version(&self) -> u32 {
        Catalogue.version()
    }

    fn tables(&self) -> &'static [&'static str] {
        Catalogue.tables()
    }

    fn reads(&self) -> &'static [&'static str] {
        Catalogue.reads()
    }

    fn event_types(&self) -> Vec<&'static str> {
        Catalogue.event_types()
    }

    fn apply(
        &self,
        event: &shopstream_projections::Envelope<'_>,
        rows: &dyn shopstream_projections::RowSource,
    ) -> Result<Vec<RowWrite>, shopstream_projections::ProjectionError> {
        if event.event_type == "ProductPriceChanged" && !self.fixed.load(Ordering::SeqCst) {
            return Err(shopstream_projections::ProjectionError::Inconsistent(
                "a bug in the price code".into(),
            ));
        }
        Catalogue.apply(event, rows)
    }
}

/// A runner's observer that listens to nothing (a set-aside event is
/// what the test wants, not a failure).
struct Unobserved;

impl shopstream_infra::runner::RunnerObserver for Unobserved {
    fn applied(&self, _: &str, _: u32, _: u64, _: &[RowKey], _: &[Duration]) {}

    fn changed(&self, _: &str, _: u32, _: &[RowKey]) {}

    fn switched(&self, _: &str, _: u32, _: u64) {}

    fn dead_lettered(&self, _: &str, _: &shopstream_infra::event_store::RecordedEvent, _: &str) {}
}

/// Polls the dead letters until `check` accepts them (they change in the
/// runner's own time: nothing else says when).
async fn letters_until(
    read: &ReadSide,
    what: &str,
    check: impl Fn(&[shopstream_infra::read_store::KeptLetter]) -> bool,
) -> Vec<shopstream_infra::read_store::KeptLetter> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let letters = read.coordination.letters(Some("catalogue")).await.unwrap();
        if check(&letters) {
            return letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_set_aside_event_is_applied_on_retry_once_the_bug_is_fixed() {
    use shopstream_infra::read_store::LetterStatus;
    let side = Stores::new();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = side.runner(
        Arc::new(BuggyCatalogue {
            fixed: fixed.clone(),
        }),
        Arc::new(Unobserved),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(runner.run(stop.clone()));
    let mut shop = Shop::new(side.events.clone(), 7);
    let lamp = shop.add_product("lamp", "lighting", 1000).await;
    shop.change_price(lamp, 1250).await;
    let head = side.head().await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while side
        .read
        .registry
        .projection("catalogue")
        .await
        .unwrap()
        .is_none_or(|r| r.checkpoint < head)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the runner caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The price change is set aside; everything else is applied.
    let letters = letters_until(&side.read, "the price change set aside", |l| l.len() == 1).await;
    let price_change = letters[0].letter.event_id.clone();
    assert_eq!(letters[0].letter.event_type, "ProductPriceChanged");
    assert_eq!(letters[0].status, LetterStatus::Open);
    let history = reference::history(side.events.as_ref()).await;
    let without: Vec<_> = history
        .iter()
        .filter(|e| e.event_type != "ProductPriceChanged")
        .cloned()
        .collect();
    reference::assert_matches(&side.read, &reference::fold_only(&without, &["catalogue"])).await;

    // Retried before the fix: set aside again, open.
    let retry = |from| {
        let (read, id) = (side.read.clone(), price_change.clone());
        async move {
            assert!(
                read.coordination
                    .set_letter_status("catalogue", &id, from, LetterStatus::Retrying)
                    .await
                    .unwrap()
            );
        }
    };
    retry(&[LetterStatus::Open]).await;
    letters_until(&side.read, "the failed retry open again", |l| {
        l[0].status == LetterStatus::Open
    })
    .await;

    // The fix is deployed; the retry applies it, and the catalogue is what
    // the whole history gives.
    fixed.store(true, Ordering::SeqCst);
    retry(&[LetterStatus::Open]).await;
    letters_until(&side.read, "the retry applied", |l| {
        l[0].status == LetterStatus::Retried
    })
    .await;
    reference::assert_matches(&side.read, &reference::fold_only(&history, &["catalogue"])).await;
    assert_eq!(side.read.coordination.dead_letters().await.unwrap(), []);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_rebuild_resolves_the_letters_it_applied_and_keeps_those_it_set_aside_again() {
    use shopstream_infra::read_store::LetterStatus;
    let side = Stores::new();
    let fixed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runner = || {
        Arc::new(side.runner(
            Arc::new(BuggyCatalogue {
                fixed: fixed.clone(),
            }),
            Arc::new(Unobserved),
        ))
    };
    let mut shop = Shop::new(side.events.clone(), 11);
    let lamp = shop.add_product("lamp", "lighting", 1000).await;
    shop.change_price(lamp, 1250).await;
    side.read
        .register(Catalogue.name(), Catalogue.version(), Catalogue.tables())
        .await
        .unwrap();

    // Rebuilds the catalogue; the one letter's status after it.
    let rebuilt = async || {
        runner().rebuild(&mut |_, _, _| {}).await.unwrap();
        let letters = side.read.coordination.letters(Some("catalogue")).await;
        let letters = letters.unwrap();
        assert_eq!(letters.len(), 1, "{letters:?}");
        letters[0].status
    };
    // The first build sets the price change aside; rebuilt with the bug
    // still there, it is set aside again and stays open.
    assert_eq!(rebuilt().await, LetterStatus::Open);
    assert_eq!(rebuilt().await, LetterStatus::Open);
    // Rebuilt with the fix: the rebuild applied it, so it is resolved, and
    // the catalogue is what the whole history gives.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(rebuilt().await, LetterStatus::Retried);
    assert_eq!(side.read.coordination.dead_letters().await.unwrap(), []);
    let history = reference::history(side.events.as_ref()).await;
    reference::assert_matches(&side.read, &reference::fold_only(&history, &["catalogue"])).await;
}
