//! `shopstream-bench cache`: the query cache's hit ratio when reads of
//! `GET /v1/products/{id}` follow Zipf(1.0) and the cache holds a quarter
//! of the answers. The cache is sized by measuring every answer once; the
//! reads then go through the real query service (cache and read store).

use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};

use crate::seed::{SeedArgs, seed};
use shopstream::app::queries::{QueryService, catalogue};
use shopstream::app::{App, open_stores};
use shopstream::config::Settings;
use shopstream::telemetry::Metrics;

#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// Products (distinct keys).
    #[arg(long, default_value_t = 10_000)]
    pub products: usize,
    /// Reads to count (after as many again to warm up).
    #[arg(long, default_value_t = 200_000)]
    pub reads: usize,
    /// The share of all answers' bytes the cache may hold.
    #[arg(long, default_value_t = 0.25)]
    pub cache_share: f64,
    /// Zipf exponent of product popularity.
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, serde::Serialize)]
pub struct CacheResult {
    pub keys: usize,
    pub cache_bytes: u64,
    pub all_answers_bytes: u64,
    pub reads: usize,
    pub hits: u64,
    pub misses: u64,
    pub hit_ratio: f64,
}

fn counted(metrics: &Metrics, result: &str) -> u64 {
    metrics.cache.with_label_values(&[result]).get()
}

pub async fn run(args: CacheArgs) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let seeded = seed(
        &app,
        &SeedArgs {
            products: args.products,
            customers: 0,
            orders: 0,
            concurrency: 64,
            rng_seed: 11,
        },
    )
    .await?;
    app.operations
        .rebuild(&[catalogue::PROJECTION.to_string()], &mut |_, _, _| {})
        .await?;

    // Query services of their own, with caches of the sizes measured, on
    // the same stores.
    let stores = open_stores(&settings).await?;
    let projections = shopstream_projections::all();
    let service = |bytes: u64| -> anyhow::Result<(QueryService, Metrics)> {
        let metrics = Metrics::new()?;
        let q = QueryService::new(
            stores.read.rows.clone(),
            stores.read.registry.clone(),
            &projections,
            bytes,
            std::time::Duration::from_secs(2),
            metrics.clone(),
        );
        Ok((q, metrics))
    };
    // Every answer's size, measured by caching them all.
    let (sizing, _) = service(u64::MAX)?;
    sizing.refresh_routing().await?;
    for (id, _) in &seeded.products {
        catalogue::product(&sizing, id.as_uuid()).await?;
    }
    let all_bytes = sizing.cached_bytes();

    let cache_bytes = (all_bytes as f64 * args.cache_share) as u64;
    let (queries, metrics) = service(cache_bytes)?;
    queries.refresh_routing().await?;
    let queries = Arc::new(queries);
    let zipf = Zipf::new(seeded.products.len() as f64, args.zipf)?;
    let mut rng = StdRng::seed_from_u64(5);
    let mut read = async |count: usize| -> anyhow::Result<()> {
        for _ in 0..count {
            let rank = (zipf.sample(&mut rng) as usize).saturating_sub(1);
            let (id, _) = seeded.products[rank.min(seeded.products.len() - 1)];
            catalogue::product(&queries, id.as_uuid()).await?;
        }
        Ok(())
    };
    read(args.reads).await?;
    let (hits0, misses0) = (counted(&metrics, "hit"), counted(&metrics, "miss"));
    read(args.reads).await?;
    let hits = counted(&metrics, "hit") - hits0;
    let misses = counted(&metrics, "miss") - misses0;
    let result = CacheResult {
        keys: seeded.products.len(),
        cache_bytes,
        all_answers_bytes: all_bytes,
        reads: args.reads,
        hits,
        misses,
        hit_ratio: hits as f64 / (hits + misses).max(1) as f64,
    };
    println!(
        "Zipf({}) over {} products, cache {} of {} bytes ({:.0}%): hit ratio {:.1}% ({} hits, {} misses)",
        args.zipf,
        result.keys,
        result.cache_bytes,
        result.all_answers_bytes,
        args.cache_share * 100.0,
        result.hit_ratio * 100.0,
        result.hits,
        result.misses
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&result)?)?;
    }
    Ok(())
}
