//! The projection runner: feeds recorded events through a projection into
//! the read store, batch by batch, each batch written atomically with its
//! checkpoint, so a restart resumes exactly where the last batch ended and
//! no event is skipped or applied twice.
//!
//! One runner supervises one projection: it registers the projection,
//! rebuilds it when the code's version differs from the registry's, runs it
//! live from its checkpoint, and notices when a rebuild elsewhere (another
//! task, or the CLI in another process) has replaced its generation. A
//! rebuild fills a fresh generation from position 0 while the live one
//! keeps serving, then switches the registry's live pointer atomically.

mod overlay;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shopstream_projections::{Envelope, Projection, ProjectionError, Row, RowKey};

use crate::event_store::{AllSlice, EventFilter, EventStore, RecordedEvent, StoreError};
use crate::read_store::{Batch, ReadStore, ReadStoreError, Target};
use overlay::Overlay;

/// Who hears about a runner's progress: the query cache (rows changed,
/// generations switched), consistency waits (checkpoints) and metrics.
pub trait RunnerObserver: Send + Sync + 'static {
    /// A batch is durable in `generation`; every event up to `checkpoint`
    /// is applied. `lags` are commit-to-applied delays of its events.
    fn applied(
        &self,
        projection: &str,
        generation: u32,
        checkpoint: u64,
        changed: &[RowKey],
        lags: &[Duration],
    );

    /// A rebuilt generation became live at `checkpoint`.
    fn switched(&self, projection: &str, generation: u32, checkpoint: u64);

    /// The live runner stopped on an event it cannot apply.
    fn failed(&self, projection: &str, error: &str);
}

/// Progress of a rebuild: how far it is, and where `$all` ended when it
/// last looked.
pub trait BuildProgress: Send {
    fn advanced(&mut self, position: u64, head: u64, events: u64);
}

impl<F: FnMut(u64, u64, u64) + Send> BuildProgress for F {
    fn advanced(&mut self, position: u64, head: u64, events: u64) {
        self(position, head, events)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Events(#[from] StoreError),
    #[error(transparent)]
    Rows(#[from] ReadStoreError),
    /// The projection cannot apply an event: a bug or bad data. The live
    /// runner stops and says so; a rebuild after the fix starts it again.
    #[error("{projection} cannot apply event {position} ({event_type}): {error}")]
    Projection {
        projection: String,
        position: u64,
        event_type: String,
        error: String,
    },
}

/// Rows a runner remembers between batches (it is their only writer, so
/// they stay true), up to this many.
const KNOWN_ROWS: usize = 200_000;

/// What a runner knows of its generation's rows.
struct Known {
    rows: HashMap<RowKey, Row>,
    /// Every row of the generation is in `rows` (a rebuild's fresh tables,
    /// until memory runs out): a row not in it does not exist.
    complete: bool,
}

impl Known {
    fn new(complete: bool) -> Self {
        Self {
            rows: HashMap::new(),
            complete,
        }
    }

    /// The stored state of a row, if known (`Some(None)`: absent).
    fn base(&self, key: &RowKey) -> Option<Option<Row>> {
        match self.rows.get(key) {
            Some(row) => Some(Some(row.clone())),
            None if self.complete => Some(None),
            None => None,
        }
    }

    fn remember(&mut self, rows: HashMap<RowKey, Row>) {
        if self.rows.len() + rows.len() > KNOWN_ROWS {
            self.rows.clear();
            self.complete = false;
        }
        self.rows.extend(rows);
    }
}

/// How often a projection that sees no events of its own records that it
/// is still up to date.
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// Events read per page while rebuilding.
const BUILD_PAGE: usize = 8192;

pub struct ProjectionRunner {
    projection: Arc<dyn Projection>,
    events: Arc<dyn EventStore>,
    rows: Arc<dyn ReadStore>,
    observer: Arc<dyn RunnerObserver>,
}

impl ProjectionRunner {
    pub fn new(
        projection: Arc<dyn Projection>,
        events: Arc<dyn EventStore>,
        rows: Arc<dyn ReadStore>,
        observer: Arc<dyn RunnerObserver>,
    ) -> Self {
        Self {
            projection,
            events,
            rows,
            observer,
        }
    }

    fn name(&self) -> &'static str {
        self.projection.name()
    }

    fn filter(&self) -> EventFilter {
        EventFilter {
            types: self
                .projection
                .event_types()
                .into_iter()
                .map(String::from)
                .collect(),
            stream_prefix: None,
        }
    }

    /// Supervises the projection for ever: registers it, rebuilds it when
    /// its version changed, runs it live, waits while it is paused or
    /// failed. Transient store errors are retried with a pause.
    pub async fn run(self) {
        loop {
            if let Err(e) = self.step().await {
                tracing::warn!(projection = self.name(), error = %e, "projection runner retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }

    /// One round of supervision (returns when something changed).
    async fn step(&self) -> Result<(), RunnerError> {
        let p = &self.projection;
        let record = self
            .rows
            .register(p.name(), p.version(), p.tables())
            .await?;
        if record.version != p.version() && record.build.is_none() {
            tracing::info!(
                projection = p.name(),
                from = record.version,
                to = p.version(),
                "projection version changed; rebuilding"
            );
            self.rebuild(&mut |_, _, _| {}).await?;
            return Ok(());
        }
        if record.paused || record.failure.is_some() || record.version != p.version() {
            // Paused, failed, or being rebuilt to this version elsewhere.
            tokio::time::sleep(Duration::from_millis(250)).await;
            return Ok(());
        }
        // Whoever serves reads learns which generation is live now (it may
        // have been switched by a rebuild in another process).
        self.observer
            .switched(p.name(), record.generation, record.checkpoint);
        match self.live(record.generation, record.checkpoint).await {
            // A rebuild switched generations (and may have dropped ours).
            Err(RunnerError::Rows(ReadStoreError::Superseded | ReadStoreError::NoSuchTable(_))) => {
                Ok(())
            }
            Err(RunnerError::Projection {
                projection,
                error: why,
                ..
            }) => {
                tracing::error!(projection, error = %why, "projection failed");
                self.rows.set_failure(self.name(), Some(&why)).await?;
                self.observer.failed(self.name(), &why);
                Ok(())
            }
            other => other,
        }
    }

    /// Applies new events to the live generation until superseded.
    async fn live(&self, generation: u32, checkpoint: u64) -> Result<(), RunnerError> {
        let mut subscription = self.events.subscribe_all(checkpoint, self.filter()).await?;
        let mut known = Known::new(false);
        let mut persisted = std::time::Instant::now();
        loop {
            let slice = subscription.next().await?;
            if slice.events.is_empty() {
                // Nothing for this projection: it is still up to date to
                // here, which read-your-writes waits need to hear now. The
                // checkpoint is written now and then; replaying a stretch
                // of events that are not ours costs nothing.
                self.observer
                    .applied(self.name(), generation, slice.scanned_to, &[], &[]);
                if persisted.elapsed() < IDLE_CHECKPOINT_EVERY {
                    continue;
                }
            }
            self.apply(Target::Live(generation), &slice, &mut known)
                .await?;
            persisted = std::time::Instant::now();
        }
    }

    /// Rebuilds the projection into a fresh generation from position 0 and
    /// makes it live once it has caught up; the live generation serves
    /// until then.
    pub async fn rebuild(&self, progress: &mut dyn BuildProgress) -> Result<u32, RunnerError> {
        let p = &self.projection;
        let generation = self
            .rows
            .start_build(p.name(), p.version(), p.tables())
            .await?;
        let filter = self.filter();
        let mut position = 0;
        let mut applied = 0u64;
        let mut known = Known::new(true);
        loop {
            let slice = self.events.read_all(position, &filter, BUILD_PAGE).await?;
            if slice.events.is_empty() {
                // Record that the build has looked this far: the live
                // runner's checkpoint moves on without events of its own,
                // and the switch waits for the build to be as far.
                self.apply(Target::Build(generation), &slice, &mut known)
                    .await?;
                position = position.max(slice.scanned_to);
                if self.rows.finish_build(p.name(), generation).await? {
                    self.observer.switched(p.name(), generation, position);
                    progress.advanced(position, slice.scanned_to, applied);
                    return Ok(generation);
                }
                // The live generation is ahead: there is more to read.
                tokio::task::yield_now().await;
                continue;
            }
            applied += slice.events.len() as u64;
            self.apply(Target::Build(generation), &slice, &mut known)
                .await?;
            position = slice.scanned_to;
            let head = self.events.head_position().await.unwrap_or(position);
            progress.advanced(position, head, applied);
        }
    }

    /// Applies one slice of events and its checkpoint atomically.
    async fn apply(
        &self,
        target: Target,
        slice: &AllSlice,
        known: &mut Known,
    ) -> Result<(), RunnerError> {
        let generation = match target {
            Target::Live(g) | Target::Build(g) => g,
        };
        let mut overlay = Overlay::default();
        for event in &slice.events {
            self.apply_event(event, generation, &mut overlay, known)
                .await?;
        }
        // A rebuild is its generation's only writer (starting another
        // supersedes it), so it can write whole rows; a live runner may
        // have a twin in another process, so the store merges its changes.
        let whole = matches!(target, Target::Build(_));
        let (deltas, now_known) = overlay.finish(whole, |key| known.base(key));
        let changed = self
            .rows
            .apply(Batch {
                projection: self.name().to_string(),
                target,
                deltas,
                checkpoint: slice.scanned_to,
            })
            .await?;
        known.remember(now_known);
        if let Target::Live(g) = target {
            let now = Utc::now();
            let lags: Vec<Duration> = slice
                .events
                .iter()
                .map(|e| (now - e.recorded_at).to_std().unwrap_or_default())
                .collect();
            self.observer
                .applied(self.name(), g, slice.scanned_to, &changed, &lags);
        }
        Ok(())
    }

    async fn apply_event(
        &self,
        event: &RecordedEvent,
        generation: u32,
        overlay: &mut Overlay,
        known: &Known,
    ) -> Result<(), RunnerError> {
        let envelope = Envelope {
            stream: &event.stream,
            revision: event.revision,
            position: event.position,
            event_type: &event.event_type,
            schema_version: event.schema_version,
            recorded_at: event.recorded_at,
            data: event.data.get().as_bytes(),
        };
        loop {
            match self.projection.apply(&envelope, overlay) {
                Ok(writes) => {
                    overlay.write(writes);
                    return Ok(());
                }
                Err(ProjectionError::Need(keys)) => {
                    let mut missing = Vec::new();
                    for key in keys {
                        if overlay.knows(&key) {
                            continue;
                        }
                        match known.rows.get(&key) {
                            Some(row) => overlay.learn(key, Some(row.clone())),
                            None if known.complete => overlay.learn(key, None),
                            None => missing.push(key),
                        }
                    }
                    if !missing.is_empty() {
                        let rows = self.rows.get_many(generation, missing.clone()).await?;
                        for (key, row) in missing.into_iter().zip(rows) {
                            overlay.learn(key, row);
                        }
                    }
                }
                Err(other) => {
                    return Err(RunnerError::Projection {
                        projection: self.name().to_string(),
                        position: event.position,
                        event_type: event.event_type.clone(),
                        error: other.to_string(),
                    });
                }
            }
        }
    }
}
