//! The `shopstream` command line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use shopstream_infra::event_store::{
    EventFilter, EventStore, KurrentDbEventStore, KurrentDbOptions, SqliteEventStore,
    SqliteEventStoreOptions,
};

use crate::app::operations::Operations;
use crate::app::queries::history::Start;
use crate::app::{App, copy, open_stores};
use crate::config::Settings;
use crate::shutdown;
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
    /// The event history itself.
    #[command(subcommand)]
    Events(EventsCommand),
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Copies every event of the configured event store into another one,
    /// keeping streams, revisions, ids, types, metadata and order (not
    /// recorded times: a store stamps its own), with a progress bar.
    /// Resumable: run it again after a stop and it goes on.
    Copy {
        /// `kurrentdb://user:password@host:2113?tls=false`, or a directory
        /// for an embedded store (`sqlite:DIR` or just `DIR`).
        #[arg(long)]
        to: String,
        /// With a KurrentDB target: a prefix for every stream name there.
        #[arg(long, default_value = "")]
        namespace: String,
    },
    /// Follows `$all` live, one line per event as it is recorded (like
    /// `tail -f`): `position recorded-at stream@revision type data`.
    /// Secret fields are redacted. Stops on Ctrl-C.
    Tail {
        /// Start at the event at this position instead of now.
        #[arg(long)]
        from_position: Option<u64>,
        /// Only these event types (comma-separated).
        #[arg(long, value_delimiter = ',')]
        types: Vec<String>,
        /// Only streams whose name starts with this (`order-`).
        #[arg(long)]
        stream_prefix: Option<String>,
        /// Each event as one JSON object a line (as `GET /v1/events`).
        #[arg(long)]
        json: bool,
    },
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
            Command::Events(EventsCommand::Copy { to, namespace }) => {
                copy_events(&to, &namespace).await
            }
            Command::Events(EventsCommand::Tail {
                from_position,
                types,
                stream_prefix,
                json,
            }) => {
                let filter = EventFilter {
                    types,
                    stream_prefix,
                };
                tail_events(from_position, filter, json).await
            }
            Command::Relay => {
                let settings = Settings::load()?;
                telemetry::init(&settings.log);
                let stop = shutdown::on_signal();
                let (progress, seen) = tokio::sync::watch::channel(Default::default());
                crate::roles::log_relay_progress(seen, stop.clone());
                crate::roles::relay(&settings, &stop, progress).await
            }
            Command::Project { projections } => {
                let settings = Settings::load()?;
                telemetry::init(&settings.log);
                crate::roles::project(&settings, &projections, &shutdown::on_signal()).await
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
    let ops = Operations::on_stores(open_stores(&settings).await?);
    match command {
        ProjectionsCommand::List => {
            println!(
                "{:<12} {:>7} {:<11} {:>12} {:>10} {:>9}",
                "name", "version", "status", "checkpoint", "lag", "lag ms"
            );
            for p in ops.projections(|_| 0).await? {
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
            rebuild(&ops, &names).await?;
        }
        ProjectionsCommand::Pause { name } => {
            ops.pause(&name).await?;
            println!("{name}: paused");
        }
        ProjectionsCommand::Resume { name } => {
            ops.resume(&name).await?;
            println!("{name}: resumed");
        }
    }
    Ok(())
}

/// Rebuilds projections side by side with a progress bar showing
/// positions read, rate and ETA.
async fn rebuild(ops: &Operations, names: &[String]) -> anyhow::Result<()> {
    let bar = ProgressBar::new(ops.head_position().await?);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} positions, {per_sec}, eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_prefix("rebuilding");
    let started = std::time::Instant::now();
    let mut events = 0;
    let generations = ops
        .rebuild(names, &mut |position: u64, head: u64, read: u64| {
            bar.set_length(head);
            bar.set_position(position);
            events = read;
        })
        .await?;
    bar.finish();
    for (name, generation) in names.iter().zip(generations) {
        println!("{name}: generation {generation} is live");
    }
    println!(
        "rebuilt {} in {:.1}s from {events} events",
        names.join(", "),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The event store a `--to` names.
fn target_store(to: &str, namespace: &str) -> anyhow::Result<Arc<dyn EventStore>> {
    if to.starts_with("kurrentdb") || to.starts_with("esdb") || to.starts_with("kdb") {
        return Ok(Arc::new(
            KurrentDbEventStore::connect(&KurrentDbOptions {
                url: to.to_string(),
                namespace: namespace.to_string(),
            })
            .context("the target's connection string")?,
        ));
    }
    let dir = to.strip_prefix("sqlite:").unwrap_or(to);
    Ok(Arc::new(
        SqliteEventStore::open(
            std::path::Path::new(dir).join("events.sqlite"),
            SqliteEventStoreOptions::default(),
        )
        .with_context(|| format!("opening the embedded event store in {dir}"))?,
    ))
}

async fn copy_events(to: &str, namespace: &str) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    let source = open_stores(&settings).await?.events;
    let target = target_store(to, namespace)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>8} [{bar:40}] {pos}/{len} events, {per_sec}, eta {eta}",
        )
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_prefix("copying");
    let started = std::time::Instant::now();
    let copied = copy::copy_events(source.as_ref(), target.as_ref(), &mut |c: copy::Copied| {
        bar.set_length(c.total);
        bar.set_position(c.events);
        std::ops::ControlFlow::Continue(())
    })
    .await?;
    bar.finish();
    println!(
        "copied {} events in {:.1}s ({} were there already)",
        copied.events - copied.resumed_after.min(copied.events),
        started.elapsed().as_secs_f64(),
        copied.resumed_after
    );
    Ok(())
}

async fn tail_events(from: Option<u64>, filter: EventFilter, json: bool) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let mut tail = app.history.live(from.map(Start::At), filter).await?;
    let stop = shutdown::on_signal();
    loop {
        let events = tokio::select! {
            events = tail.next() => events?,
            _ = stop.cancelled() => return Ok(()),
        };
        let mut out = std::io::stdout().lock();
        for event in &events {
            if json {
                serde_json::to_writer(&mut out, event)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:>8} {} {}@{} {} {}",
                    event.position,
                    event
                        .recorded_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    event.stream,
                    event.revision,
                    event.event_type,
                    event.data.get()
                )?;
            }
        }
        out.flush()?;
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    let application = Application::build(settings, shutdown::on_signal()).await?;
    application.run_until_stopped().await?;
    tracing::info!("shopstream stopped");
    Ok(())
}
