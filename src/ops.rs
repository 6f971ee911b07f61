//! What operators do from the command line, directly on the stores: list
//! projections with their lag, rebuild them with a progress bar, pause and
//! resume them. A running server notices (its runner is superseded by a
//! rebuild's switch, and it re-reads the registry).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use indicatif::{ProgressBar, ProgressStyle};
use shopstream_infra::event_store::{EventFilter, EventStore};
use shopstream_infra::read_store::{ReadStore, RowKey};
use shopstream_infra::runner::{ProjectionRunner, RunnerObserver, rebuild_together};
use shopstream_projections::Projection;

use crate::config::Settings;

/// A projection's state, as `projections list` and the admin API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectionView {
    pub name: String,
    pub version: u32,
    /// `live`, `rebuilding`, `paused` or `failed`.
    pub status: &'static str,
    pub checkpoint: u64,
    /// Positions of `$all` not yet looked at.
    pub lag_events: u64,
    /// How long the oldest event not yet applied has waited.
    pub lag_ms: u64,
    pub generation: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rebuild: Option<RebuildView>,
    /// Events set aside because the projection could not apply them.
    pub dead_letters: u64,
    /// With a partitioned feed (Kafka): how far each partition is applied.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionView>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PartitionView {
    pub partition: i32,
    pub position: u64,
    pub lag_events: u64,
    pub lag_ms: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RebuildView {
    pub version: u32,
    pub checkpoint: u64,
}

/// Every projection with its status and lag. `known` gives checkpoints this
/// process has heard of that the registry may not hold yet.
pub async fn views(
    events: &dyn EventStore,
    rows: &dyn ReadStore,
    known: impl Fn(&str) -> u64,
) -> anyhow::Result<Vec<ProjectionView>> {
    let head = events.head_position().await?;
    let dead_letters = rows.dead_letters().await?;
    // How long the oldest event after `position` has waited (0: none).
    let waited = async |position: u64| -> anyhow::Result<u64> {
        if position >= head {
            return Ok(0);
        }
        let next = events
            .read_all(position, &EventFilter::default(), 1)
            .await?;
        Ok(next.events.first().map_or(0, |e| {
            (Utc::now() - e.recorded_at).num_milliseconds().max(0) as u64
        }))
    };
    let mut views = Vec::new();
    for r in rows.projections().await? {
        let status = if r.failure.is_some() {
            "failed"
        } else if r.build.is_some() {
            "rebuilding"
        } else if r.paused {
            "paused"
        } else {
            "live"
        };
        let checkpoint = r.checkpoint.max(known(&r.name));
        let mut partitions = Vec::new();
        for p in rows.partitions(&r.name).await? {
            partitions.push(PartitionView {
                partition: p.partition,
                position: p.position,
                lag_events: head.saturating_sub(p.position),
                lag_ms: waited(p.position).await?,
            });
        }
        views.push(ProjectionView {
            dead_letters: dead_letters
                .iter()
                .find(|(name, _)| *name == r.name)
                .map_or(0, |(_, n)| *n),
            name: r.name,
            version: r.version,
            status,
            checkpoint,
            lag_events: head.saturating_sub(checkpoint),
            lag_ms: waited(checkpoint).await?,
            generation: r.generation,
            failure: r.failure,
            rebuild: r.build.map(|b| RebuildView {
                version: b.version,
                checkpoint: b.checkpoint,
            }),
            partitions,
        });
    }
    Ok(views)
}

pub struct Operations {
    events: Arc<dyn EventStore>,
    rows: Arc<dyn ReadStore>,
    projections: Vec<Arc<dyn Projection>>,
}

/// The CLI has no cache to invalidate; it reports what it does instead.
struct Quiet;

impl RunnerObserver for Quiet {
    fn applied(&self, _: &str, _: u32, _: u64, _: &[RowKey], _: &[Duration]) {}

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        tracing::info!(
            projection,
            generation,
            checkpoint,
            "rebuilt projection is live"
        );
    }

    fn dead_lettered(
        &self,
        projection: &str,
        event: &shopstream_infra::event_store::RecordedEvent,
        error: &str,
    ) {
        tracing::error!(
            projection,
            position = event.position,
            error,
            "event set aside"
        );
    }
}

impl Operations {
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        let (events, rows) = crate::app::open_stores(settings).await?;
        Ok(Self {
            events,
            rows,
            projections: shopstream_projections::all(),
        })
    }

    pub fn names(&self) -> Vec<String> {
        self.projections
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    pub async fn projections(&self) -> anyhow::Result<Vec<ProjectionView>> {
        views(self.events.as_ref(), self.rows.as_ref(), |_| 0).await
    }

    fn projection(&self, name: &str) -> anyhow::Result<Arc<dyn Projection>> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .with_context(|| {
                format!(
                    "no projection named {name}; try: {}",
                    self.names().join(", ")
                )
            })
    }

    /// Rebuilds projections from one read of the event store, their work
    /// side by side, with a progress bar showing positions read, rate and
    /// ETA.
    pub async fn rebuild(&self, names: &[String]) -> anyhow::Result<()> {
        let runners = names
            .iter()
            .map(|n| {
                self.projection(n).map(|p| {
                    Arc::new(ProjectionRunner::new(
                        p,
                        self.events.clone(),
                        self.rows.clone(),
                        Arc::new(Quiet),
                    ))
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let bar = ProgressBar::new(self.events.head_position().await?);
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
        let generations = rebuild_together(runners, &mut |position: u64, head: u64, read: u64| {
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

    pub async fn set_paused(&self, name: &str, paused: bool) -> anyhow::Result<()> {
        self.projection(name)?;
        self.rows.set_paused(name, paused).await?;
        if !paused {
            self.rows.set_failure(name, None).await?;
        }
        println!("{name}: {}", if paused { "paused" } else { "resumed" });
        Ok(())
    }
}
