//! `shopstream-bench`: measures shopstream on this machine. It is not part
//! of the product: it drives the product binary (`shopstream`, built
//! beside it) as a separate process, or the application's own command and
//! query services in process, and keeps the load generators, plotting and
//! histograms out of what shops deploy.
//!
//! # Layout
//! - [`append`]: durable append throughput beside the disk's fsync rate
//!   and beside PostgreSQL ([`postgres`]).
//! - [`seed`]: fills a data directory through the real write path.
//! - [`lag`]: commit → queryable delay, embedded or through Kafka.
//! - [`cache`]: the query cache's hit ratio under Zipf popularity.
//! - [`hello`]: the trivial handler the query path is compared with.
//! - [`suite`]: every scenario of the benchmark plan, driving processes of
//!   the product binary with external load generators ([`load`]), and the
//!   latency chart ([`chart`]).
//!
//! The virtual users of the mixed workload are a second binary of this
//! crate, `shopstream-vu` (`vu.rs`).

mod append;
mod cache;
mod chart;
mod hello;
mod lag;
mod load;
mod postgres;
mod seed;
mod suite;

use std::process::ExitCode;

/// The product binary's allocator, so what is measured in this process
/// (the appends, the cache) runs as it does in `shopstream`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};
use shopstream::config::{LogFormat, LogSettings};

#[derive(Parser)]
#[command(
    name = "shopstream-bench",
    version,
    about = "Measures shopstream on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Durable append throughput with 1 and many writers, beside this
    /// disk's one-fsync-per-write rate measured in the same run.
    Append(append::AppendArgs),
    /// Fills SHOPSTREAM_DATA_DIR with products, customers and orders
    /// through the real write path.
    Seed(seed::SeedArgs),
    /// Commit -> queryable lag through the embedded projections or Kafka.
    Lag(lag::LagArgs),
    /// Query cache hit ratio under Zipf popularity.
    Cache(cache::CacheArgs),
    /// Serves a trivial actix-web handler, the baseline for the query path.
    Hello(hello::HelloArgs),
    /// Every scenario of the benchmark plan (or `--only` some), against
    /// release processes of `shopstream` driven by oha and goose; results
    /// go to bench/results/. `--smoke` checks the harness in seconds.
    Suite(suite::SuiteArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shopstream-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Benchmarks print their results; the log says only what went wrong
    // (RUST_LOG overrides, as everywhere).
    shopstream::telemetry::init(&LogSettings {
        format: LogFormat::Pretty,
        filter: "warn".into(),
    });
    let result = runtime.block_on(async {
        match cli.command {
            Command::Append(args) => append::run(args).await,
            Command::Seed(args) => seed::run(args).await,
            Command::Lag(args) => lag::run(args).await,
            Command::Cache(args) => cache::run(args).await,
            Command::Hello(args) => hello::run(args).await,
            Command::Suite(args) => suite::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shopstream-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
