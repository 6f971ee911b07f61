//! `shopstream-bench lag`: commit → queryable. Workers run commands (cart
//! changes, price changes) and, for each, wait until the read models say
//! they reflect it, through the same wait a query with a consistency token
//! does. The time from the command's acknowledgement to that moment is the
//! lag a client sees.
//!
//! By default the embedded topology runs in this process. With `--kafka`
//! the scaled-out one does, every part talking through a broker as if in
//! its own process: the relay produces `$all`, projection workers consume
//! it into the read store and publish invalidations, and the API node's
//! query service hears them (its read-your-writes wait is released by
//! those). The same run measures the broker's own produce → consume round
//! trip, the floor under that lag, and the relay's throughput on a backlog
//! seeded before it starts. Without `--brokers`, the broker is librdkafka's
//! mock cluster hosted in this process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use shopstream_domain::values::{CartId, Money, Role};
use shopstream_infra::feed::kafka::{RelayProgress, probe};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::seed::{SeedArgs, Seeded, seed};
use shopstream::app::App;
use shopstream::app::commands::carts::{CreateCart, SetCartItem};
use shopstream::app::commands::catalogue::ChangePrice;
use shopstream::app::commands::{Actor, CommandContext};
use shopstream::app::queries::Consistency;
use shopstream::config::{FeedKind, Settings};

#[derive(Args, Debug, Clone)]
pub struct LagArgs {
    /// Commands to measure.
    #[arg(long, default_value_t = 4000)]
    pub commands: usize,
    /// Workers sending them.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Through Kafka: relay, projection workers and the API node's
    /// invalidation listener, with a broker between them.
    #[arg(long)]
    pub kafka: bool,
    /// With --kafka: the brokers (host:port list); by default librdkafka's
    /// mock cluster, hosted in this process.
    #[arg(long)]
    pub brokers: Option<String>,
    /// With --kafka: orders seeded before the relay starts, the backlog its
    /// throughput is measured on.
    #[arg(long, default_value_t = 5000)]
    pub backlog_orders: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Default, serde::Serialize)]
pub struct LagResult {
    pub topology: &'static str,
    pub commands: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub stale: u64,
    /// With Kafka: the broker's own produce → consume round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_round_trip: Option<Percentiles>,
    /// With Kafka: events the relay produced from its backlog, per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_events_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_backlog_events: Option<u64>,
}

#[derive(Debug, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

fn ms(histogram: &Histogram<u64>, q: f64) -> f64 {
    histogram.value_at_quantile(q) as f64 / 1000.0
}

pub async fn run(args: LagArgs) -> anyhow::Result<()> {
    let result = if args.kafka {
        through_kafka(&args).await?
    } else {
        embedded(&args).await?
    };
    println!(
        "commit -> queryable ({}) over {} commands ({} workers): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} stale",
        result.topology,
        result.commands,
        args.concurrency,
        result.p50_ms,
        result.p90_ms,
        result.p99_ms,
        result.max_ms,
        result.stale
    );
    if let Some(b) = &result.broker_round_trip {
        println!(
            "broker produce -> consume, same run, {} messages: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            b.count, b.p50_ms, b.p99_ms, b.max_ms
        );
    }
    if let (Some(rate), Some(events)) = (result.relay_events_per_s, result.relay_backlog_events) {
        println!("relay: {events} backlog events at {rate:.0} events/s");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}

async fn embedded(args: &LagArgs) -> anyhow::Result<LagResult> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let stop = CancellationToken::new();
    let runners: Vec<_> = shopstream_projections::all()
        .into_iter()
        .map(|p| tokio::spawn(app.runner(p).run(stop.clone())))
        .collect();
    let seeded = seed(&app, &seed_args(args, 0)).await?;
    caught_up(&app, Duration::from_secs(60)).await?;
    let result = measure(&app, &seeded, args).await;
    stop.cancel();
    for runner in runners {
        runner.await?;
    }
    Ok(LagResult {
        topology: "embedded",
        ..result?
    })
}

async fn through_kafka(args: &LagArgs) -> anyhow::Result<LagResult> {
    let mut settings = Settings::load()?;
    settings.feed = FeedKind::Kafka;
    settings.kafka_topic_prefix = format!("bench{}", Uuid::now_v7().simple());
    // Kept alive until the end of the run.
    let _mock: Option<MockCluster<'static, DefaultProducerContext>> = match &args.brokers {
        Some(brokers) => {
            settings.kafka_brokers = brokers.clone();
            None
        }
        None => {
            let cluster = MockCluster::new(3).context("starting the mock cluster")?;
            settings.kafka_brokers = cluster.bootstrap_servers();
            let kafka = settings.kafka();
            // Its admin API does not create topics; the host does.
            for (topic, partitions) in [
                (kafka.events_topic(), kafka.partitions),
                (kafka.dead_letter_topic(), 1),
                (kafka.invalidations_topic(), 1),
                (kafka.probe_topic(), 1),
            ] {
                cluster.create_topic(&topic, partitions, 1)?;
            }
            Some(cluster)
        }
    };
    let app = App::open(&settings).await?;
    let seeded = seed(&app, &seed_args(args, args.backlog_orders)).await?;
    let backlog = app.history.head_position().await?;
    let stop = CancellationToken::new();

    // The relay, timed on the backlog.
    let (progress, mut relayed) = watch::channel(RelayProgress::default());
    let relay = {
        let (settings, stop) = (settings.clone(), stop.clone());
        tokio::spawn(async move { shopstream::roles::relay(&settings, &stop, progress).await })
    };
    relayed.wait_for(|p| p.events > 0).await?;
    let first = Instant::now();
    let from = relayed.borrow().position;
    tokio::time::timeout(
        Duration::from_secs(600),
        relayed.wait_for(|p| p.position >= backlog),
    )
    .await
    .context("the relay did not reach the backlog's end in 10 minutes")??;
    let relay_secs = first.elapsed().as_secs_f64();

    // The API node's ear, then the workers.
    let listener = {
        let (settings, queries, stop) = (settings.clone(), app.queries.clone(), stop.clone());
        tokio::spawn(async move { shopstream::roles::listen(&settings, queries, &stop).await })
    };
    let workers = {
        let (settings, stop) = (settings.clone(), stop.clone());
        tokio::spawn(async move { shopstream::roles::project(&settings, &[], &stop).await })
    };
    caught_up(&app, Duration::from_secs(120)).await?;

    let kafka = settings.kafka();
    let (lag, broker) = tokio::join!(
        measure(&app, &seeded, args),
        probe(&kafka, args.commands.min(2000))
    );
    let mut broker_histogram = Histogram::<u64>::new(3)?;
    for round_trip in broker? {
        broker_histogram.record(round_trip.as_micros() as u64)?;
    }
    stop.cancel();
    for task in [relay, workers, listener] {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    Ok(LagResult {
        topology: "kafka",
        broker_round_trip: Some(Percentiles {
            count: broker_histogram.len(),
            p50_ms: ms(&broker_histogram, 0.5),
            p99_ms: ms(&broker_histogram, 0.99),
            max_ms: broker_histogram.max() as f64 / 1000.0,
        }),
        relay_events_per_s: Some((backlog - from) as f64 / relay_secs),
        relay_backlog_events: Some(backlog),
        ..lag?
    })
}

fn seed_args(args: &LagArgs, orders: usize) -> SeedArgs {
    SeedArgs {
        products: if orders > 0 { 1000 } else { 100 },
        customers: args.concurrency.max(if orders > 0 { 200 } else { 0 }),
        orders,
        concurrency: 16,
        rng_seed: 7,
    }
}

/// Waits until every projection this node knows of has reached the head
/// (looking at the registry too, as `serve` does now and then: workers that
/// caught up before this node listened publish nothing more).
async fn caught_up(app: &App, within: Duration) -> anyhow::Result<()> {
    let head = app.history.head_position().await?;
    let names: Vec<&str> = shopstream_projections::all()
        .iter()
        .map(|p| p.name())
        .collect();
    let deadline = Instant::now() + within;
    while app.queries.wait_for(&names, head).await == Consistency::Stale {
        app.queries.refresh_routing().await?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "the projections did not catch up in {within:?}"
        );
    }
    Ok(())
}

/// Each worker's commands, timed from acknowledgement to queryable.
async fn measure(app: &App, seeded: &Seeded, args: &LagArgs) -> anyhow::Result<LagResult> {
    let per_worker = args.commands.div_ceil(args.concurrency.max(1));
    let workers = seeded
        .customers
        .iter()
        .take(args.concurrency)
        .enumerate()
        .map(|(w, customer)| async move {
            let shopper = Actor::Customer {
                id: *customer,
                role: Role::Customer,
            };
            let cart_id = CartId(Uuid::now_v7());
            app.commands
                .execute(
                    &CommandContext::new(shopper, "lag"),
                    &CreateCart {
                        cart_id,
                        currency: app.currency,
                    },
                )
                .await?;
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut stale = 0u64;
            for i in 0..per_worker {
                // A cart holds at most 100 products.
                let (product, _) = seeded.products[(w * 7 + i) % seeded.products.len().min(100)];
                // One in four commands changes a price (the catalogue
                // projection); the rest change a cart (the carts one).
                let (position, projection) = if i % 4 == 3 {
                    let done = app
                        .commands
                        .execute(
                            &CommandContext::new(Actor::System, "lag"),
                            &ChangePrice {
                                product_id: product,
                                price: Money::new(100 + (i % 900) as i64, app.currency)?,
                            },
                        )
                        .await?;
                    (done.position, "catalogue")
                } else {
                    let done = app
                        .commands
                        .execute(
                            &CommandContext::new(shopper, "lag"),
                            &SetCartItem {
                                cart_id,
                                product_id: product,
                                quantity: 1 + (i % 5) as u32,
                            },
                        )
                        .await?;
                    (done.position, "carts")
                };
                let acknowledged = Instant::now();
                if app.queries.wait_for(&[projection], position).await == Consistency::Stale {
                    stale += 1;
                }
                histogram.record(acknowledged.elapsed().as_micros() as u64)?;
            }
            anyhow::Ok((histogram, stale))
        });
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut stale = 0;
    for result in futures::future::join_all(workers).await {
        let (h, s) = result?;
        histogram.add(h)?;
        stale += s;
    }
    Ok(LagResult {
        commands: histogram.len(),
        p50_ms: ms(&histogram, 0.5),
        p90_ms: ms(&histogram, 0.9),
        p99_ms: ms(&histogram, 0.99),
        max_ms: histogram.max() as f64 / 1000.0,
        stale,
        ..Default::default()
    })
}
