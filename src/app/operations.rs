//! What operators do to projections, once for the admin API and the CLI:
//! status with lag, rebuilds, pause and resume. A server running on the
//! same stores notices what the CLI does (its runner is superseded by a
//! rebuild's switch, and it re-reads the registry).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shopstream_infra::event_store::{EventFilter, EventStore, RecordedEvent, StoreError};
use shopstream_infra::read_store::{
    BuildRecord, KeptLetter, LetterStatus, ReadSide, ReadStoreError, RowKey,
};
use shopstream_infra::runner::{
    BuildProgress, ProjectionRunner, RunnerError, RunnerObserver, rebuild_together,
};
use shopstream_projections::Projection;

use super::redaction::redact;
use super::stores::Stores;

/// Lag is counted in events up to this many; beyond, it reads this many.
pub const LAG_COUNT_CAP: u64 = 1_000_000;

/// A projection's state, as `projections list` and the admin API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProjectionView {
    pub name: String,
    pub version: u32,
    /// `live`, `rebuilding`, `paused` or `failed`.
    pub status: &'static str,
    pub checkpoint: u64,
    /// Events of `$all` after the checkpoint (counted up to
    /// [`LAG_COUNT_CAP`]).
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
    /// The code version being built.
    pub version: u32,
    pub generation: u32,
    /// Every event up to this position is applied to the new generation.
    pub checkpoint: u64,
    /// Events applied, of the events `$all` holds now (counted up to
    /// [`LAG_COUNT_CAP`] each).
    pub events_done: u64,
    pub events_total: u64,
    /// Events applied a second, since this process first saw the rebuild
    /// (none at the first look).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_per_second: Option<f64>,
    /// At that rate, how long until it has caught up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta_seconds: Option<u64>,
}

/// A rebuild as this process first saw it: how far it was, and when.
#[derive(Debug, Clone, Copy)]
struct FirstSeen {
    generation: u32,
    left: u64,
    at: std::time::Instant,
}

/// An event a projection set aside, as the admin API and the CLI show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LetterView {
    pub projection: String,
    pub position: u64,
    pub event_id: String,
    pub event_type: String,
    /// Why the projection could not apply it (the last time it tried).
    pub error: String,
    /// `open`, `retrying` (a runner will apply it again within a second
    /// or so), `retried` (applied) or `skipped`.
    pub status: LetterStatus,
    pub set_aside_at: chrono::DateTime<Utc>,
    /// The event itself, redacted, when one letter is inspected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<RecordedEvent>,
}

impl From<KeptLetter> for LetterView {
    fn from(k: KeptLetter) -> Self {
        Self {
            projection: k.letter.projection,
            position: k.letter.position,
            event_id: k.letter.event_id,
            event_type: k.letter.event_type,
            error: k.letter.error,
            status: k.status,
            set_aside_at: k.at,
            event: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OperationError {
    #[error("no projection named {name}; try: {}", known.join(", "))]
    UnknownProjection { name: String, known: Vec<String> },
    #[error("{projection} set no event {event_id} aside")]
    NoSuchLetter {
        projection: String,
        event_id: String,
    },
    /// A retried letter is done with: the event is applied.
    #[error("the event was applied on a retry already")]
    LetterApplied,
    #[error("a set-aside event could not be redacted")]
    Redaction(#[source] serde_json::Error),
    #[error(transparent)]
    Events(#[from] StoreError),
    #[error(transparent)]
    Rows(#[from] ReadStoreError),
    #[error(transparent)]
    Runner(#[from] RunnerError),
}

/// Operators' work on the stores.
pub struct Operations {
    events: Arc<dyn EventStore>,
    read: ReadSide,
    projections: Vec<Arc<dyn Projection>>,
    /// Who hears what rebuilds do: the query service in a server, a log
    /// in the CLI.
    observer: Arc<dyn RunnerObserver>,
    /// The runtime rebuilds started in the background run on (not an HTTP
    /// worker's: it serves requests).
    background: tokio::runtime::Handle,
    /// Rebuilds as first seen, for their rate.
    rebuilds_seen: std::sync::Mutex<std::collections::HashMap<String, FirstSeen>>,
}

impl Operations {
    /// Must be called on the runtime background rebuilds are to run on.
    pub fn new(
        events: Arc<dyn EventStore>,
        read: ReadSide,
        projections: Vec<Arc<dyn Projection>>,
        observer: Arc<dyn RunnerObserver>,
    ) -> Self {
        Self {
            events,
            read,
            projections,
            observer,
            background: tokio::runtime::Handle::current(),
            rebuilds_seen: Default::default(),
        }
    }

    /// Operations on the stores alone, for a process that serves no
    /// queries (the CLI): rebuilds are reported in the log.
    pub fn on_stores(stores: Stores) -> Self {
        Self::new(
            stores.events,
            stores.read,
            shopstream_projections::all(),
            Arc::new(Logged),
        )
    }

    pub fn names(&self) -> Vec<String> {
        self.projections
            .iter()
            .map(|p| p.name().to_string())
            .collect()
    }

    fn projection(&self, name: &str) -> Result<Arc<dyn Projection>, OperationError> {
        self.projections
            .iter()
            .find(|p| p.name() == name)
            .cloned()
            .ok_or_else(|| OperationError::UnknownProjection {
                name: name.to_string(),
                known: self.names(),
            })
    }

    fn runner(&self, projection: Arc<dyn Projection>) -> Arc<ProjectionRunner> {
        Arc::new(ProjectionRunner::new(
            projection,
            self.events.clone(),
            self.read.clone(),
            self.observer.clone(),
        ))
    }

    /// How far `$all` is after `position`: events (up to the cap), and how
    /// long the first of them has waited.
    async fn lag(&self, position: u64) -> Result<(u64, u64), OperationError> {
        let events = self.events.count_after(position, LAG_COUNT_CAP).await?;
        if events == 0 {
            return Ok((0, 0));
        }
        let next = self
            .events
            .read_all(position, &EventFilter::default(), 1)
            .await?;
        let waited = next.events.first().map_or(0, |e| {
            (Utc::now() - e.recorded_at).num_milliseconds().max(0) as u64
        });
        Ok((events, waited))
    }

    /// Every projection with its status and lag. `known` gives checkpoints
    /// this process has heard of that the registry may not hold yet.
    pub async fn projections(
        &self,
        known: impl Fn(&str) -> u64,
    ) -> Result<Vec<ProjectionView>, OperationError> {
        let dead_letters = self.read.coordination.dead_letters().await?;
        // Events `$all` holds, counted once for all the rebuilds listed.
        let mut all_events = None;
        let mut views = Vec::new();
        for r in self.read.registry.projections().await? {
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
            for p in self.read.registry.partitions(&r.name).await? {
                let (lag_events, lag_ms) = self.lag(p.position).await?;
                partitions.push(PartitionView {
                    partition: p.partition,
                    position: p.position,
                    lag_events,
                    lag_ms,
                });
            }
            let (lag_events, lag_ms) = self.lag(checkpoint).await?;
            let rebuild = match r.build {
                Some(b) => {
                    let total = match all_events {
                        Some(n) => n,
                        None => {
                            *all_events.insert(self.events.count_after(0, LAG_COUNT_CAP).await?)
                        }
                    };
                    Some(self.rebuild_view(&r.name, b, total).await?)
                }
                None => None,
            };
            views.push(ProjectionView {
                dead_letters: dead_letters
                    .iter()
                    .find(|(name, _)| *name == r.name)
                    .map_or(0, |(_, n)| *n),
                name: r.name,
                version: r.version,
                status,
                checkpoint,
                lag_events,
                lag_ms,
                generation: r.generation,
                failure: r.failure,
                rebuild,
                partitions,
            });
        }
        Ok(views)
    }

    /// Where a rebuild stands: events done of the `total` `$all` holds,
    /// and (from what this process saw before) its rate and the time left.
    async fn rebuild_view(
        &self,
        name: &str,
        build: BuildRecord,
        total: u64,
    ) -> Result<RebuildView, OperationError> {
        let left = self
            .events
            .count_after(build.checkpoint, LAG_COUNT_CAP)
            .await?;
        let now = std::time::Instant::now();
        let first = {
            let mut seen = self.rebuilds_seen.lock().unwrap_or_else(|p| p.into_inner());
            let first = seen.entry(name.to_string()).or_insert(FirstSeen {
                generation: build.generation,
                left,
                at: now,
            });
            if first.generation != build.generation {
                *first = FirstSeen {
                    generation: build.generation,
                    left,
                    at: now,
                };
            }
            *first
        };
        let elapsed = now.duration_since(first.at).as_secs_f64();
        let rate =
            (elapsed > 0.0 && first.left > left).then(|| (first.left - left) as f64 / elapsed);
        Ok(RebuildView {
            version: build.version,
            generation: build.generation,
            checkpoint: build.checkpoint,
            events_done: total.saturating_sub(left),
            events_total: total,
            events_per_second: rate.map(|r| r.round()),
            eta_seconds: rate.map(|r| (left as f64 / r).ceil() as u64),
        })
    }

    /// How far the relay (Kafka) has produced `$all`: its position, and
    /// events after it (counted up to [`LAG_COUNT_CAP`]).
    pub async fn relay(&self) -> Result<(u64, u64), OperationError> {
        let position = self
            .read
            .coordination
            .lease_position(shopstream_infra::feed::kafka::RELAY_LEASE)
            .await?;
        let behind = self.events.count_after(position, LAG_COUNT_CAP).await?;
        Ok((position, behind))
    }

    /// The position of the last event, where a rebuild will have to reach.
    pub async fn head_position(&self) -> Result<u64, OperationError> {
        Ok(self.events.head_position().await?)
    }

    /// Rebuilds projections from one read of the event store, their work
    /// side by side; each replaces its live generation once caught up.
    /// Returns the generation each made live.
    pub async fn rebuild(
        &self,
        names: &[String],
        progress: &mut dyn BuildProgress,
    ) -> Result<Vec<u32>, OperationError> {
        let runners = names
            .iter()
            .map(|n| self.projection(n).map(|p| self.runner(p)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rebuild_together(runners, progress).await?)
    }

    /// Starts rebuilding one projection in the background; the live
    /// generation serves until the rebuilt one replaces it.
    pub fn start_rebuild(&self, name: &str) -> Result<(), OperationError> {
        let runner = self.runner(self.projection(name)?);
        let name = name.to_string();
        self.background.spawn(async move {
            match runner.rebuild(&mut |_, _, _| {}).await {
                Ok(generation) => tracing::info!(projection = name, generation, "rebuild done"),
                Err(e) => tracing::warn!(
                    projection = name,
                    error = %shopstream_infra::error::Report(&e),
                    "rebuild ended early"
                ),
            }
        });
        Ok(())
    }

    /// The events projections set aside (of one projection, or all),
    /// by projection and position.
    pub async fn dead_letters(
        &self,
        projection: Option<&str>,
    ) -> Result<Vec<LetterView>, OperationError> {
        if let Some(name) = projection {
            self.projection(name)?;
        }
        let letters = self.read.coordination.letters(projection).await?;
        Ok(letters.into_iter().map(LetterView::from).collect())
    }

    /// One set-aside event, with the event itself (redacted) as the event
    /// store holds it.
    pub async fn dead_letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<LetterView, OperationError> {
        let mut view = LetterView::from(self.kept_letter(projection, event_id).await?);
        view.event = self
            .events
            .event_at(view.position)
            .await?
            .filter(|e| e.event_id.to_string() == view.event_id)
            .map(redact)
            .transpose()
            .map_err(OperationError::Redaction)?;
        Ok(view)
    }

    async fn kept_letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<KeptLetter, OperationError> {
        self.projection(projection)?;
        self.read
            .coordination
            .letter(projection, event_id)
            .await?
            .ok_or_else(|| OperationError::NoSuchLetter {
                projection: projection.to_string(),
                event_id: event_id.to_string(),
            })
    }

    /// Asks the projection's runner to apply a set-aside event again (after
    /// a fix); it does within a second or so, wherever it runs. Asking
    /// again while it waits changes nothing; an event already applied is a
    /// conflict.
    pub async fn retry_dead_letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<LetterView, OperationError> {
        use LetterStatus::*;
        self.move_letter(projection, event_id, &[Open, Skipped], Retrying)
            .await
    }

    /// Leaves a set-aside event unapplied for good (it no longer counts as
    /// a dead letter to act on).
    pub async fn skip_dead_letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<LetterView, OperationError> {
        use LetterStatus::*;
        self.move_letter(projection, event_id, &[Open, Retrying], Skipped)
            .await
    }

    async fn move_letter(
        &self,
        projection: &str,
        event_id: &str,
        from: &[LetterStatus],
        to: LetterStatus,
    ) -> Result<LetterView, OperationError> {
        let mut kept = self.kept_letter(projection, event_id).await?;
        if kept.status != to {
            let moved = self
                .read
                .coordination
                .set_letter_status(projection, event_id, from, to)
                .await?;
            if moved {
                kept.status = to;
            } else {
                // It moved meanwhile (or was applied): say where it is now.
                kept = self.kept_letter(projection, event_id).await?;
                if kept.status != to {
                    return Err(OperationError::LetterApplied);
                }
            }
        }
        Ok(LetterView::from(kept))
    }

    /// Stops applying events to a projection (reads keep being served).
    pub async fn pause(&self, name: &str) -> Result<(), OperationError> {
        self.projection(name)?;
        self.read.registry.set_paused(name, true).await?;
        Ok(())
    }

    /// Resumes a paused projection, and retries a failed one.
    pub async fn resume(&self, name: &str) -> Result<(), OperationError> {
        self.projection(name)?;
        self.read.registry.set_paused(name, false).await?;
        self.read.registry.set_failure(name, None).await?;
        Ok(())
    }
}

/// A process without a query cache reports what rebuilds do in its log.
struct Logged;

impl RunnerObserver for Logged {
    fn applied(&self, _: &str, _: u32, _: u64, _: &[RowKey], _: &[Duration]) {}

    fn changed(&self, _: &str, _: u32, _: &[RowKey]) {}

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        tracing::info!(
            projection,
            generation,
            checkpoint,
            "rebuilt projection is live"
        );
    }

    /// The runner has logged it.
    fn dead_lettered(&self, _: &str, _: &RecordedEvent, _: &str) {}
}
