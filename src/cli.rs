//! The `shopstream` command line.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Settings;
use crate::startup::Application;
use crate::telemetry;

#[derive(Parser)]
#[command(
    name = "shopstream",
    version,
    about = "Event-sourced CQRS commerce backend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serves the HTTP API on SHOPSTREAM_HTTP_ADDR (127.0.0.1:8080) with
    /// data under SHOPSTREAM_DATA_DIR (./data).
    Serve,
    /// Produces the event store's `$all` to Kafka (SHOPSTREAM_FEED=kafka);
    /// one relay holds the lease at a time, others wait.
    Relay,
    /// Runs projection workers consuming Kafka into the read store.
    Project {
        /// Only these projections (comma-separated); all by default.
        #[arg(long, value_delimiter = ',')]
        projections: Vec<String>,
    },
    /// Lists, rebuilds, pauses and resumes projections, on the stores in
    /// SHOPSTREAM_DATA_DIR, whether or not a server is running on them.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Name, version, status, checkpoint and lag of every projection.
    List,
    /// Rebuilds a projection into fresh tables from the first event, with a
    /// progress bar; the live tables serve until the rebuilt ones replace
    /// them. `all` rebuilds every projection, side by side.
    Rebuild { name: String },
    /// Stops applying events to a projection (reads keep being served).
    Pause { name: String },
    /// Resumes a paused projection, or retries a failed one.
    Resume { name: String },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shopstream: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => serve().await,
            Command::Projections(command) => projections(command).await,
            Command::Relay => {
                let settings = Settings::load()?;
                telemetry::init(&settings.log);
                let (progress, seen) = tokio::sync::watch::channel(Default::default());
                crate::roles::log_relay_progress(seen);
                crate::roles::relay(&settings, crate::roles::stop_on_signal(), progress).await
            }
            Command::Project { projections } => {
                let settings = Settings::load()?;
                telemetry::init(&settings.log);
                crate::roles::project(&settings, &projections, crate::roles::stop_on_signal()).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shopstream: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn projections(command: ProjectionsCommand) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let ops = crate::ops::Operations::open(&settings).await?;
    match command {
        ProjectionsCommand::List => {
            println!(
                "{:<12} {:>7} {:<11} {:>12} {:>10} {:>9}",
                "name", "version", "status", "checkpoint", "lag", "lag ms"
            );
            for p in ops.projections().await? {
                println!(
                    "{:<12} {:>7} {:<11} {:>12} {:>10} {:>9}",
                    p.name, p.version, p.status, p.checkpoint, p.lag_events, p.lag_ms
                );
                if let Some(why) = p.failure {
                    println!("    failed: {why}");
                }
            }
        }
        ProjectionsCommand::Rebuild { name } => {
            let names: Vec<String> = if name == "all" {
                ops.names()
            } else {
                vec![name]
            };
            ops.rebuild(&names).await?;
        }
        ProjectionsCommand::Pause { name } => ops.set_paused(&name, true).await?,
        ProjectionsCommand::Resume { name } => ops.set_paused(&name, false).await?,
    }
    Ok(())
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    let application = Application::build(settings).await?;
    application.run_until_stopped().await?;
    tracing::info!("shopstream stopped");
    Ok(())
}
