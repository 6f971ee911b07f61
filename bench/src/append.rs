//! `shopstream-bench append`: durable appends per second through the
//! embedded event store with 1 and many concurrent writers, beside the same
//! disk's one-fsync-per-write rate measured in the same run, so group
//! commit's gain is a ratio rather than a number from another day; with
//! `--postgres`, beside PostgreSQL too, driven by the same writers with the
//! same events.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use shopstream_infra::Durability;
use shopstream_infra::event_store::{
    EventStore, ExpectedRevision, KurrentDbEventStore, KurrentDbOptions, Metadata, NewEvent,
    SqliteEventStore, SqliteEventStoreOptions, StreamWrite,
};
use uuid::Uuid;

#[derive(Args, Debug, Clone)]
pub struct AppendArgs {
    /// Where the benchmark's store files go (created; files removed after).
    #[arg(long, default_value = "./data/bench")]
    pub dir: PathBuf,
    /// Concurrent writers to measure, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    pub writers: Vec<usize>,
    /// Events in each append.
    #[arg(long, default_value_t = 1)]
    pub events_per_append: usize,
    /// How long each run lasts.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Skip the one-fsync-per-write baselines.
    #[arg(long)]
    pub no_baseline: bool,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Append to this KurrentDB server instead
    /// (`kurrentdb://admin:changeit@host:2113?tls=false`), each run in a
    /// namespace of its own; the baselines are the embedded store's and
    /// are left out.
    #[arg(long)]
    pub event_store: Option<String>,
    /// Also measure PostgreSQL with the same writers and events: a cluster
    /// started here for the run (see `postgres.rs` for its schema).
    #[arg(long)]
    pub postgres: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub scenario: String,
    pub writers: usize,
    pub appends_per_sec: f64,
    pub events_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

pub async fn run(args: AppendArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let duration = Duration::from_secs_f64(args.seconds);

    let mut results = Vec::new();
    if let Some(url) = &args.event_store {
        for &writers in &args.writers {
            let store: Arc<dyn EventStore> =
                Arc::new(KurrentDbEventStore::connect(&KurrentDbOptions {
                    url: url.clone(),
                    namespace: format!("bench-append-{}.", Uuid::now_v7().simple()),
                })?);
            results.push(
                measure(
                    vec![Writer::Store(store); writers],
                    "KurrentDB",
                    args.events_per_append,
                    duration,
                )
                .await?,
            );
        }
    } else if !args.no_baseline {
        results.push(raw_fsync(&args.dir, duration)?);
        results.push(
            through_store(
                &args.dir,
                "store, one transaction per append",
                1,
                1,
                args.events_per_append,
                duration,
            )
            .await?,
        );
    }
    for &writers in args.writers.iter().filter(|_| args.event_store.is_none()) {
        results.push(
            through_store(
                &args.dir,
                "store, group commit",
                writers,
                1024,
                args.events_per_append,
                duration,
            )
            .await?,
        );
    }

    if args.postgres {
        let cluster = crate::postgres::Cluster::start()?;
        cluster.create_schema().await?;
        let scenario = format!("PostgreSQL {}", cluster.version().await?);
        for &writers in &args.writers {
            let mut connections = Vec::with_capacity(writers);
            for _ in 0..writers {
                connections.push(Writer::Postgres(Arc::new(
                    crate::postgres::Writer::connect(&cluster).await?,
                )));
            }
            results.push(measure(connections, &scenario, args.events_per_append, duration).await?);
        }
    }

    println!(
        "{:<36} {:>8} {:>12} {:>12} {:>9} {:>9}",
        "scenario", "writers", "appends/s", "events/s", "p50 ms", "p99 ms"
    );
    for m in &results {
        println!(
            "{:<36} {:>8} {:>12.0} {:>12.0} {:>9.3} {:>9.3}",
            m.scenario, m.writers, m.appends_per_sec, m.events_per_sec, m.p50_ms, m.p99_ms
        );
    }
    if let Some(single) = results
        .iter()
        .find(|m| m.scenario.starts_with("store, one transaction"))
    {
        for m in results
            .iter()
            .filter(|m| m.scenario == "store, group commit")
        {
            println!(
                "group commit, {} writer(s): {:.1}x the one-fsync-per-append rate",
                m.writers,
                m.events_per_sec / single.events_per_sec.max(f64::MIN_POSITIVE)
            );
        }
    }
    for m in results
        .iter()
        .filter(|m| m.scenario.starts_with("PostgreSQL"))
    {
        if let Some(ours) = results
            .iter()
            .find(|o| o.scenario == "store, group commit" && o.writers == m.writers)
        {
            println!(
                "group commit, {} writer(s): {:.1}x {}'s events/s",
                m.writers,
                ours.events_per_sec / m.events_per_sec.max(f64::MIN_POSITIVE),
                m.scenario
            );
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn event(batch: Uuid, index: usize, size: usize) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: "BenchmarkEventAppended".into(),
        schema_version: 1,
        data: format!(r#"{{"batch":"{batch}","index":{index},"size":{size}}}"#).into_bytes(),
        metadata: Metadata {
            correlation_id: None,
            causation_id: None,
            actor: Some("system".into()),
        },
    }
}

fn batch(size: usize) -> Vec<NewEvent> {
    let id = Uuid::now_v7();
    (0..size).map(|i| event(id, i, size)).collect()
}

fn remove_store(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// The disk's rate of small writes each followed by fdatasync.
fn raw_fsync(dir: &Path, duration: Duration) -> anyhow::Result<Measurement> {
    let path = dir.join("fsync-baseline.bin");
    let mut file = std::fs::File::create(&path)?;
    let mut histogram = Histogram::<u64>::new(3)?;
    let record = [7u8; 128];
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < duration {
        let t = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        histogram.record(t.elapsed().as_micros() as u64)?;
        writes += 1;
    }
    let secs = started.elapsed().as_secs_f64();
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(Measurement {
        scenario: "raw write + fdatasync".into(),
        writers: 1,
        appends_per_sec: writes as f64 / secs,
        events_per_sec: writes as f64 / secs,
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
    })
}

async fn through_store(
    dir: &Path,
    scenario: &str,
    writers: usize,
    max_batch: usize,
    events_per_append: usize,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let path = dir.join(format!("bench-{writers}-{max_batch}.sqlite"));
    remove_store(&path);
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(
        &path,
        SqliteEventStoreOptions {
            durability: Durability::Fsync,
            max_batch,
            ..Default::default()
        },
    )?);
    let measured = measure(
        vec![Writer::Store(store); writers],
        scenario,
        events_per_append,
        duration,
    )
    .await;
    remove_store(&path);
    measured
}

/// Where a writer appends: the event store (shared by every writer), or
/// a PostgreSQL connection of its own.
#[derive(Clone)]
enum Writer {
    Store(Arc<dyn EventStore>),
    Postgres(Arc<crate::postgres::Writer>),
}

impl Writer {
    /// Appends `events` to `stream` at `expected`; the stream's revision
    /// after.
    async fn append(
        &self,
        stream: &str,
        expected: Option<u64>,
        events: Vec<NewEvent>,
    ) -> anyhow::Result<Option<u64>> {
        Ok(match self {
            Writer::Store(store) => {
                let done = store
                    .append(vec![StreamWrite {
                        stream: stream.to_string(),
                        expected: ExpectedRevision::at(expected),
                        events,
                    }])
                    .await?;
                done.streams[0].revision
            }
            Writer::Postgres(pg) => Some(pg.append(stream, expected, &events).await?),
        })
    }
}

/// Appends per second from concurrent writers, each on a stream of its
/// own, for `duration`.
async fn measure(
    writers: Vec<Writer>,
    scenario: &str,
    events_per_append: usize,
    duration: Duration,
) -> anyhow::Result<Measurement> {
    let count = writers.len();
    // Streams of this run only: runs may share a store.
    let run = Uuid::now_v7().simple();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(w, writer)| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let stream = format!("bench-{run}-{w}");
                let mut revision: Option<u64> = None;
                let mut histogram = Histogram::<u64>::new(3)?;
                let mut appends = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let events = batch(events_per_append);
                    let t = Instant::now();
                    revision = writer.append(&stream, revision, events).await?;
                    histogram.record(t.elapsed().as_micros() as u64)?;
                    appends += 1;
                }
                anyhow::Ok((appends, histogram))
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = 0u64;
    let mut histogram = Histogram::<u64>::new(3)?;
    for task in tasks {
        let (appends, h) = task.await??;
        total += appends;
        histogram.add(h)?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Measurement {
        scenario: scenario.to_string(),
        writers: count,
        appends_per_sec: total as f64 / secs,
        events_per_sec: (total * events_per_append as u64) as f64 / secs,
        p50_ms: histogram.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: histogram.value_at_quantile(0.99) as f64 / 1000.0,
    })
}
