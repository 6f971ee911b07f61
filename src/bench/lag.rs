//! `shopstream bench lag`: commit → queryable. Workers run commands (cart
//! changes, price changes) and, for each, wait until the read models say
//! they reflect it, through the same wait a query with a consistency token
//! does. The time from the command's acknowledgement to that moment is the
//! lag a client sees. Runs the embedded topology in this process.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use hdrhistogram::Histogram;
use shopstream_domain::values::{CartId, Money, Role};
use uuid::Uuid;

use super::seed::{SeedArgs, seed};
use crate::app::App;
use crate::app::commands::carts::{CreateCart, SetCartItem};
use crate::app::commands::catalogue::ChangePrice;
use crate::app::commands::{Actor, CommandContext};
use crate::app::queries::Consistency;
use crate::config::Settings;

#[derive(Args, Debug, Clone)]
pub struct LagArgs {
    /// Commands to measure.
    #[arg(long, default_value_t = 4000)]
    pub commands: usize,
    /// Workers sending them.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct LagResult {
    pub commands: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub stale: u64,
}

pub async fn run(args: LagArgs) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let runners: Vec<_> = app
        .projections
        .iter()
        .map(|p| tokio::spawn(app.runner(p.clone()).run()))
        .collect();
    let seeded = seed(
        &app,
        &SeedArgs {
            products: 100,
            customers: args.concurrency,
            orders: 0,
            concurrency: 16,
            rng_seed: 7,
        },
    )
    .await?;
    let head = app.store.head_position().await?;
    let names: Vec<&str> = app.projections.iter().map(|p| p.name()).collect();
    app.queries.wait_for(&names, head).await;

    let per_worker = args.commands.div_ceil(args.concurrency.max(1));
    let workers = seeded.customers.iter().enumerate().map(|(w, customer)| {
        let app = &app;
        let seeded = &seeded;
        async move {
            let shopper = Actor::Customer {
                id: *customer,
                role: Role::Customer,
            };
            let cart_id = CartId(Uuid::now_v7());
            app.commands
                .execute(
                    &CommandContext::new(shopper, "lag"),
                    &CreateCart { cart_id },
                )
                .await?;
            let mut histogram = Histogram::<u64>::new(3)?;
            let mut stale = 0u64;
            for i in 0..per_worker {
                let (product, _) = seeded.products[(w * 7 + i) % seeded.products.len()];
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
                                currency: app.currency,
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
        }
    });
    let mut histogram = Histogram::<u64>::new(3)?;
    let mut stale = 0;
    for result in futures::future::join_all(workers).await {
        let (h, s) = result?;
        histogram.add(h)?;
        stale += s;
    }
    for runner in runners {
        runner.abort();
    }
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    let result = LagResult {
        commands: histogram.len(),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        max_ms: histogram.max() as f64 / 1000.0,
        stale,
    };
    println!(
        "commit -> queryable over {} commands ({} workers): p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} stale",
        result.commands,
        args.concurrency,
        result.p50_ms,
        result.p90_ms,
        result.p99_ms,
        result.max_ms,
        result.stale
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
