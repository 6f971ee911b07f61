//! The `shopstream` command line.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use shopstream_infra::event_store::{
    EventFilter, EventStore, KurrentDbEventStore, KurrentDbOptions, SqliteEventStore,
    SqliteEventStoreOptions,
};

use crate::app::export::{self, Format};
use crate::app::operations::Operations;
use crate::app::queries::history::{Range, Start};
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
    /// Events projections could not apply and set aside: list, show,
    /// retry (after a fix; the projection's runner applies it again within
    /// a second or so, wherever it runs) or skip.
    #[command(subcommand, name = "dead-letters")]
    DeadLetters(LettersCommand),
}

#[derive(Subcommand)]
enum LettersCommand {
    /// Every set-aside event (of one projection), oldest first.
    List {
        #[arg(long)]
        projection: Option<String>,
    },
    /// One set-aside event: its error and the event itself (redacted).
    Show {
        projection: String,
        event_id: String,
    },
    /// Applies the event again.
    Retry {
        projection: String,
        event_id: String,
    },
    /// Leaves the event unapplied for good.
    Skip {
        projection: String,
        event_id: String,
    },
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
        #[command(flatten)]
        filter: Filter,
        /// Each event as one JSON object a line (as `GET /v1/events`).
        #[arg(long)]
        json: bool,
    },
    /// Writes `$all`, or part of it, as NDJSON, CSV or Parquet (the same
    /// bytes as `GET /v1/events?format=`) to a file or stdout, with a
    /// progress bar and a summary line on stderr. Secret fields are
    /// redacted. A file appears under its name only once complete.
    Export(ExportArgs),
}

/// Which events of `$all`, by type and stream.
#[derive(clap::Args)]
struct Filter {
    /// Only these event types (comma-separated).
    #[arg(long, value_delimiter = ',')]
    types: Vec<String>,
    /// Only streams whose name starts with this (`order-`).
    #[arg(long)]
    stream_prefix: Option<String>,
}

impl From<Filter> for EventFilter {
    fn from(f: Filter) -> Self {
        EventFilter {
            types: f.types,
            stream_prefix: f.stream_prefix,
        }
    }
}

#[derive(clap::Args)]
struct ExportArgs {
    /// `ndjson`, `csv` or `parquet` [default: the output's extension
    /// (`.ndjson`, `.jsonl`, `.csv`, `.parquet`), else ndjson].
    #[arg(long, value_parser = format_arg)]
    format: Option<Format>,
    /// The file to write; `-` is stdout.
    #[arg(long, short, default_value = "-")]
    output: String,
    /// From the event at this position (inclusive).
    #[arg(long)]
    from_position: Option<u64>,
    /// Up to the event at this position (inclusive).
    #[arg(long)]
    to_position: Option<u64>,
    /// From this time (RFC 3339, `2026-12-01T00:00:00Z`; inclusive).
    #[arg(long)]
    from_time: Option<DateTime<Utc>>,
    /// Up to this time (RFC 3339; inclusive).
    #[arg(long)]
    to_time: Option<DateTime<Utc>>,
    #[command(flatten)]
    filter: Filter,
    /// At most this many events.
    #[arg(long)]
    limit: Option<u64>,
}

fn format_arg(name: &str) -> Result<Format, String> {
    Format::parse(name).ok_or_else(|| "one of ndjson, csv, parquet".to_string())
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
                filter,
                json,
            }) => tail_events(from_position, filter.into(), json).await,
            Command::Events(EventsCommand::Export(args)) => export_events(args).await,
            Command::DeadLetters(command) => dead_letters(command).await,
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

async fn dead_letters(command: LettersCommand) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let ops = Operations::on_stores(open_stores(&settings).await?);
    let letter = match command {
        LettersCommand::List { projection } => {
            let letters = ops.dead_letters(projection.as_deref()).await?;
            println!(
                "{:<10} {:>10} {:<36} {:<22} {:<8} error",
                "projection", "position", "event id", "type", "status"
            );
            for l in &letters {
                println!(
                    "{:<10} {:>10} {:<36} {:<22} {:<8} {}",
                    l.projection,
                    l.position,
                    l.event_id,
                    l.event_type,
                    l.status.as_str(),
                    l.error
                );
            }
            return Ok(());
        }
        LettersCommand::Show {
            projection,
            event_id,
        } => ops.dead_letter(&projection, &event_id).await?,
        LettersCommand::Retry {
            projection,
            event_id,
        } => {
            let letter = ops.retry_dead_letter(&projection, &event_id).await?;
            eprintln!("a running `serve` or `project` applies it again within a second or so");
            letter
        }
        LettersCommand::Skip {
            projection,
            event_id,
        } => ops.skip_dead_letter(&projection, &event_id).await?,
    };
    println!("{}", serde_json::to_string_pretty(&letter)?);
    Ok(())
}

/// A progress bar on stderr (hidden when it is not a terminal): what is
/// done, of how many `unit`s, the rate and the time left.
fn progress_bar(doing: &'static str, unit: &str, len: u64) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{prefix}} [{{bar:40}}] {{pos}}/{{len}} {unit}, {{per_sec}}, eta {{eta}}"
        ))
        .context("progress bar template")?
        .progress_chars("=> "),
    );
    bar.set_prefix(doing);
    Ok(bar)
}

/// Rebuilds projections side by side with a progress bar showing
/// positions read, rate and ETA.
async fn rebuild(ops: &Operations, names: &[String]) -> anyhow::Result<()> {
    let bar = progress_bar("rebuilding", "positions", ops.head_position().await?)?;
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
    let bar = progress_bar("copying", "events", 0)?;
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

/// Where an export goes: a file written under a temporary name and
/// renamed when whole, or stdout.
enum Output {
    File {
        path: std::path::PathBuf,
        partial: std::path::PathBuf,
        file: std::io::BufWriter<std::fs::File>,
    },
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl Output {
    fn open(name: &str) -> anyhow::Result<Self> {
        if name == "-" {
            return Ok(Self::Stdout(std::io::BufWriter::new(std::io::stdout())));
        }
        let path = std::path::PathBuf::from(name);
        let partial = path.with_file_name(format!(
            ".{}.partial",
            path.file_name()
                .map_or("export".into(), |n| n.to_string_lossy())
        ));
        let file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        Ok(Self::File {
            path,
            partial,
            file: std::io::BufWriter::with_capacity(1 << 20, file),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::File { file, .. } => file.write_all(bytes),
            Self::Stdout(out) => out.write_all(bytes),
        }
    }

    /// Makes the export durable and visible under its name.
    fn finish(self) -> anyhow::Result<String> {
        match self {
            Self::File {
                path,
                partial,
                file,
            } => {
                let file = file.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&partial, &path)
                    .with_context(|| format!("renaming {}", partial.display()))?;
                Ok(path.display().to_string())
            }
            Self::Stdout(mut out) => {
                out.flush()?;
                Ok("stdout".into())
            }
        }
    }
}

async fn export_events(args: ExportArgs) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let format = args
        .format
        .or_else(|| Format::of_file(&args.output))
        .unwrap_or(Format::Ndjson);
    let head = app.history.head_position().await?;
    let bar = progress_bar(
        "exporting",
        "positions",
        args.to_position.map_or(head, |to| to.min(head)),
    )?;
    let range = Range {
        from_position: args.from_position,
        to_position: args.to_position,
        from_time: args.from_time,
        to_time: args.to_time,
        filter: args.filter.into(),
        limit: args.limit,
    };
    let started = std::time::Instant::now();
    let mut chunks = std::pin::pin!(export::encoded(app.history.export(range).await?, format)?);
    let mut output = Output::open(&args.output)?;
    let (mut events, mut bytes, mut last) = (0, 0, None);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        output.write(&chunk.bytes)?;
        (events, last) = (chunk.events, chunk.last_position);
        bytes += chunk.bytes.len() as u64;
        if let Some(position) = last {
            bar.set_position(position);
        }
    }
    let written_to = output.finish()?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "exported {events} events{} as {} to {written_to}: {:.1} MiB in {secs:.1} s ({:.0} events/s)",
        last.map_or(String::new(), |p| format!(" (to position {p})")),
        format.name(),
        bytes as f64 / 1048576.0,
        events as f64 / secs.max(1e-9),
    );
    Ok(())
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    telemetry::init(&settings.log);
    let application = Application::build(settings, shutdown::on_signal()).await?;
    application.run_until_stopped().await?;
    tracing::info!("shopstream stopped");
    Ok(())
}
