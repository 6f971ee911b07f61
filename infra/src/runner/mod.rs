//! The projection runner: feeds recorded events through a projection into
//! the read store, batch by batch: a batch's rows first, then the
//! checkpoint that covers them, so a restart resumes at or before the
//! first event whose rows might be missing. Replaying events is harmless
//! (every cell keeps the version that wrote it), so no event is lost and a
//! repeated one changes nothing.
//!
//! One runner supervises one projection: it registers the projection,
//! rebuilds it when the code's version differs from the registry's, runs it
//! live from its checkpoint, and notices when a rebuild elsewhere (another
//! task, or the CLI in another process) has replaced its generation. A
//! rebuild fills a fresh generation from position 0 while the live one
//! keeps serving, then switches the registry's live pointer atomically.

mod overlay;

use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shopstream_projections::{Envelope, Projection, ProjectionError, Row, RowKey};

use tokio_util::sync::CancellationToken;

use crate::event_store::{AllSlice, EventFilter, EventStore, RecordedEvent, StoreError};
use crate::feed::{Checkpoint, EventFeed, FeedError, StoreFeed};
use crate::read_store::{
    DeadLetter, Delta, LetterStatus, PartitionProgress, Progress, ReadSide, ReadStoreError, Target,
};
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

    /// Rows of a live generation changed, but no checkpoint covers them
    /// (it could not be recorded: the projection was paused or its
    /// generation replaced meanwhile). Whoever caches answers built from
    /// them must drop those answers all the same: a redelivery of the
    /// batch will find nothing to change.
    fn changed(&self, projection: &str, generation: u32, changed: &[RowKey]);

    /// A rebuilt generation became live at `checkpoint`.
    fn switched(&self, projection: &str, generation: u32, checkpoint: u64);

    /// The projection could not apply this event; it was set aside (the
    /// read store's dead letters, and the feed's) and the rest went on.
    fn dead_lettered(&self, projection: &str, event: &RecordedEvent, error: &str);
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
    #[error(transparent)]
    Feed(#[from] FeedError),
    /// A rebuild's task for one projection panicked or was cancelled.
    #[error("a rebuild task ended abnormally")]
    Task(#[source] tokio::task::JoinError),
}

/// Rows a rebuild remembers between batches (it is their only writer, so
/// they stay true), up to this many: a rebuild reads back nothing it wrote.
const BUILD_KNOWN_ROWS: usize = 500_000;

/// Rows a live runner remembers between batches. Live traffic reads back
/// the rows of recent carts and orders; a few thousand of them spare most
/// reads, and more only grows the heap (a soak once grew it by 70 MB a
/// minute with the rebuild's bound).
const LIVE_KNOWN_ROWS: usize = 10_000;

/// What a runner knows of its generation's rows: those of the tables its
/// projection reads back.
struct Known {
    rows: HashMap<RowKey, Row>,
    reads: &'static [&'static str],
    /// Every row of those tables is in `rows` (a rebuild's fresh tables,
    /// until memory runs out): a row not in it does not exist.
    complete: bool,
    /// How many rows to keep before forgetting them all.
    limit: usize,
}

impl Known {
    /// What a live runner knows: nothing yet, at most [`LIVE_KNOWN_ROWS`].
    fn live(reads: &'static [&'static str]) -> Self {
        Self {
            rows: HashMap::default(),
            reads,
            complete: false,
            limit: LIVE_KNOWN_ROWS,
        }
    }

    /// What a rebuild into fresh tables knows: every row, while `limit`
    /// of them fit.
    fn building(reads: &'static [&'static str], limit: usize) -> Self {
        Self {
            rows: HashMap::default(),
            reads,
            complete: true,
            limit,
        }
    }

    fn kept(&self, key: &RowKey) -> bool {
        self.reads.contains(&key.table.as_str())
    }

    /// The stored state of a row, if known (`Some(None)`: absent).
    fn base(&self, key: &RowKey) -> Option<Option<Row>> {
        if !self.kept(key) {
            return None;
        }
        match self.rows.get(key) {
            Some(row) => Some(Some(row.clone())),
            None if self.complete => Some(None),
            None => None,
        }
    }

    fn remember(&mut self, rows: HashMap<RowKey, Row>) {
        let rows: Vec<(RowKey, Row)> = rows.into_iter().filter(|(k, _)| self.kept(k)).collect();
        if self.rows.len() + rows.len() > self.limit {
            self.rows.clear();
            self.complete = false;
        }
        self.rows.extend(rows);
    }
}

/// How often a projection that sees no events of its own records that it
/// is still up to date.
const IDLE_CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// How often a live runner looks for set-aside events an operator asked
/// to retry.
const RETRIES_EVERY: Duration = Duration::from_secs(1);

/// Events read per page while rebuilding.
const BUILD_PAGE: usize = 32_768;

/// A rebuild under way.
struct Build {
    generation: u32,
    /// Every event up to here is applied.
    position: u64,
    applied: u64,
    known: Known,
}

/// Rebuilds several projections at once from one read of `$all`: a reader
/// hands each page to every projection's task, so the event store is read
/// and decoded once and the projections' work runs side by side. Each
/// projection then catches up on its own and switches to its rebuilt
/// generation. Progress is reported as the pages are read.
pub async fn rebuild_together(
    runners: Vec<Arc<ProjectionRunner>>,
    progress: &mut dyn BuildProgress,
) -> Result<Vec<u32>, RunnerError> {
    let Some((events, page_size)) = runners.first().map(|r| (r.events.clone(), r.build_page))
    else {
        return Ok(vec![]);
    };
    let mut feeds = Vec::with_capacity(runners.len());
    let mut tasks = Vec::with_capacity(runners.len());
    for runner in &runners {
        let mut build = runner.start_build().await?;
        let (feed, mut pages) = tokio::sync::mpsc::channel::<Arc<AllSlice>>(2);
        feeds.push(feed);
        let runner = runner.clone();
        tasks.push(tokio::spawn(async move {
            let mut writing: Writing = None;
            let built = runner
                .build_pages(&mut build, &mut pages, &mut writing)
                .await;
            // Whatever the pages did, a write under way ends before the
            // task does (the pages' error, if any, is the one reported).
            let wrote = written(&mut writing).await;
            built.and(wrote)?;
            Ok::<_, RunnerError>(build)
        }));
    }
    let head = events.head_position().await?;
    let mut position = 0;
    let mut read = 0u64;
    loop {
        let page = events
            .read_all(position, &EventFilter::default(), page_size)
            .await?;
        if page.events.is_empty() {
            break;
        }
        position = page.scanned_to;
        read += page.events.len() as u64;
        let page = Arc::new(page);
        for feed in &feeds {
            // A task that stopped reports why when joined below.
            let _ = feed.send(page.clone()).await;
        }
        progress.advanced(position, head.max(position), read);
    }
    drop(feeds);
    let mut builds = Vec::with_capacity(tasks.len());
    for task in tasks {
        let build = task.await.map_err(RunnerError::Task)??;
        builds.push(build);
    }
    let finishing = runners
        .iter()
        .zip(builds)
        .map(|(runner, build)| async move { runner.finish_build(build, &mut |_, _, _| {}).await });
    futures::future::try_join_all(finishing).await
}

/// A build's rows for one page of `$all`, not yet written.
struct BuildRows {
    deltas: Vec<Delta>,
    /// Every event up to here is in them.
    position: u64,
}

/// A build's write of its last page, while it may be under way.
type Writing = Option<tokio::task::JoinHandle<Result<(), RunnerError>>>;

/// Waits for a build's write, if one is under way.
async fn written(writing: &mut Writing) -> Result<(), RunnerError> {
    match writing.take() {
        Some(write) => write.await.map_err(RunnerError::Task)?,
        None => Ok(()),
    }
}

pub struct ProjectionRunner {
    projection: Arc<dyn Projection>,
    events: Arc<dyn EventStore>,
    read: ReadSide,
    observer: Arc<dyn RunnerObserver>,
    /// Where live events come from (the event store itself by default).
    feed: Arc<dyn EventFeed>,
    /// Events read per page while rebuilding.
    build_page: usize,
    /// Rows a rebuild remembers before it forgets them all.
    build_known_rows: usize,
}

impl ProjectionRunner {
    pub fn new(
        projection: Arc<dyn Projection>,
        events: Arc<dyn EventStore>,
        read: ReadSide,
        observer: Arc<dyn RunnerObserver>,
    ) -> Self {
        Self {
            feed: Arc::new(StoreFeed::new(events.clone())),
            projection,
            events,
            read,
            observer,
            build_page: BUILD_PAGE,
            build_known_rows: BUILD_KNOWN_ROWS,
        }
    }

    /// Takes live events from `feed` (Kafka) instead of the event store's
    /// own subscription. Rebuilds still read the event store.
    pub fn with_feed(mut self, feed: Arc<dyn EventFeed>) -> Self {
        self.feed = feed;
        self
    }

    /// Reads pages of `page` events while rebuilding (tests use small ones).
    pub fn with_build_page(mut self, page: usize) -> Self {
        self.build_page = page.max(1);
        self
    }

    /// Remembers at most `rows` rows while rebuilding, then reads back
    /// from the store (tests use few, to make a rebuild read back).
    pub fn with_build_known_rows(mut self, rows: usize) -> Self {
        self.build_known_rows = rows;
        self
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

    /// Supervises the projection until `stop`: registers it, rebuilds it
    /// when its version changed, runs it live, waits while it is paused or
    /// failed. Transient store errors are retried with a pause. Stopping
    /// anywhere is safe: rows are durable before their checkpoint.
    pub async fn run(self, stop: CancellationToken) {
        // Pauses double while a store stays away, up to ten seconds.
        const FIRST_PAUSE: Duration = Duration::from_millis(500);
        let mut pause = FIRST_PAUSE;
        loop {
            let started = std::time::Instant::now();
            let step = tokio::select! {
                step = self.step() => step,
                _ = stop.cancelled() => return,
            };
            // A step that ran a while was no quick failure: start over.
            if step.is_ok() || started.elapsed() > Duration::from_secs(30) {
                pause = FIRST_PAUSE;
            }
            match step {
                Ok(()) => {}
                Err(e) => {
                    tracing::warn!(
                        projection = self.name(),
                        error = %crate::error::Report(&e),
                        retry_in_ms = pause.as_millis() as u64,
                        "projection runner retrying"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.cancelled() => return,
                    }
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// One round of supervision (returns when something changed).
    async fn step(&self) -> Result<(), RunnerError> {
        let p = &self.projection;
        let record = self
            .read
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
            // The read store holds something it cannot read: stop, say so,
            // and wait for an operator (a rebuild or a resume).
            Err(RunnerError::Rows(e @ ReadStoreError::Corrupt(_))) => {
                let why = crate::error::Report(&e).to_string();
                tracing::error!(projection = self.name(), error = %why, "projection failed");
                self.read
                    .registry
                    .set_failure(self.name(), Some(&why))
                    .await?;
                Ok(())
            }
            other => other,
        }
    }

    /// Applies new events to the live generation until superseded.
    async fn live(&self, generation: u32, checkpoint: u64) -> Result<(), RunnerError> {
        let p = &self.projection;
        let subscriber = format!("{}.v{}", p.name(), p.version());
        let mut feed = self
            .feed
            .subscribe(&subscriber, &p.event_types(), checkpoint)
            .await?;
        let mut known = Known::live(p.reads());
        let mut persisted = std::time::Instant::now();
        let mut letters_looked = std::time::Instant::now();
        loop {
            if letters_looked.elapsed() >= RETRIES_EVERY {
                self.retry_letters(generation, &mut known).await?;
                letters_looked = std::time::Instant::now();
            }
            let Ok(next) = tokio::time::timeout(IDLE_CHECKPOINT_EVERY, feed.next()).await else {
                // Quiet for a while: make sure this generation is still the
                // live one (a rebuild elsewhere may have replaced it, and
                // with nothing to apply no write would tell us).
                self.still_live(generation).await?;
                continue;
            };
            let batch = next?;
            if batch.reassigned {
                // Another consumer may have written rows of the partitions
                // this one now reads: forget what was remembered of them.
                known = Known::live(p.reads());
            }
            if let (true, Checkpoint::Position(at)) = (batch.events.is_empty(), &batch.checkpoint) {
                // Nothing for this projection: it is still up to date to
                // here, which read-your-writes waits need to hear now. The
                // checkpoint is written now and then; replaying a stretch
                // of events that are not ours costs nothing.
                self.observer.applied(p.name(), generation, *at, &[], &[]);
                if persisted.elapsed() < IDLE_CHECKPOINT_EVERY {
                    continue;
                }
            }
            if !batch.events.is_empty() {
                // Rows are written before the checkpoint that would refuse
                // them: a pause (or a switch) must be seen before writing.
                self.still_live(generation).await?;
            }
            let events: Vec<&RecordedEvent> = batch.events.iter().collect();
            self.apply(generation, &events, batch.checkpoint.clone(), &mut known)
                .await?;
            feed.acknowledge(&batch).await?;
            persisted = std::time::Instant::now();
        }
    }

    /// Applies again the events an operator asked to retry (after a fix),
    /// each against the rows as they are now: cells keep the position that
    /// wrote them, so an old event changes nothing a later one wrote. An
    /// event that fails again is set aside again (open, with its new
    /// error); no checkpoint moves.
    async fn retry_letters(&self, generation: u32, known: &mut Known) -> Result<(), RunnerError> {
        let coordination = &self.read.coordination;
        let letters = coordination.letters(Some(self.name())).await?;
        for kept in letters
            .into_iter()
            .filter(|k| k.status == LetterStatus::Retrying)
        {
            let letter = kept.letter;
            let found = self
                .events
                .event_at(letter.position)
                .await?
                .filter(|e| e.event_id.to_string() == letter.event_id);
            let Some(event) = found else {
                coordination
                    .dead_letter(DeadLetter {
                        error: "the event is no longer in the event store".into(),
                        ..letter
                    })
                    .await?;
                continue;
            };
            self.still_live(generation).await?;
            // Rows are read from the store itself: what the live runner
            // remembers was true for its own batches, not for an event
            // applied out of turn.
            let fresh = Known::live(self.projection.reads());
            let mut overlay = Overlay::default();
            if !self
                .apply_event(&event, generation, &mut overlay, &fresh, &mut None)
                .await?
            {
                continue;
            }
            let (deltas, _) = overlay.finish(false, |key| fresh.base(key));
            if !deltas.is_empty() {
                let changed = self.read.rows.apply(generation, deltas).await?;
                self.observer.changed(self.name(), generation, &changed);
            }
            // The rows it changed are no longer what the live runner knew.
            *known = Known::live(self.projection.reads());
            coordination
                .set_letter_status(
                    self.name(),
                    &letter.event_id,
                    &[LetterStatus::Retrying],
                    LetterStatus::Retried,
                )
                .await?;
            tracing::info!(
                projection = self.name(),
                position = letter.position,
                event_type = %letter.event_type,
                "set-aside event applied on retry"
            );
        }
        Ok(())
    }

    /// A rebuild applied every event again: what older generations set
    /// aside and it did not is resolved. The rebuild stands either way;
    /// a failure here only leaves those letters open.
    async fn letters_applied_by(&self, generation: u32) {
        match self
            .read
            .coordination
            .resolve_letters_before(self.name(), generation)
            .await
        {
            Ok(0) => {}
            Ok(resolved) => tracing::info!(
                projection = self.name(),
                resolved,
                "set-aside events applied by the rebuild"
            ),
            Err(e) => tracing::warn!(
                projection = self.name(),
                error = %crate::error::Report(&e),
                "set-aside events could not be marked applied after the rebuild"
            ),
        }
    }

    /// Fails with `Superseded` unless `generation` is still the live,
    /// unpaused one.
    async fn still_live(&self, generation: u32) -> Result<(), RunnerError> {
        match self.read.registry.projection(self.name()).await? {
            Some(r) if r.generation == generation && !r.paused => Ok(()),
            _ => Err(RunnerError::Rows(ReadStoreError::Superseded)),
        }
    }

    /// Rebuilds the projection into a fresh generation from position 0 and
    /// makes it live once it has caught up; the live generation serves
    /// until then.
    pub async fn rebuild(&self, progress: &mut dyn BuildProgress) -> Result<u32, RunnerError> {
        let build = self.start_build().await?;
        self.finish_build(build, progress).await
    }

    /// A fresh generation to rebuild into.
    async fn start_build(&self) -> Result<Build, RunnerError> {
        let p = &self.projection;
        let generation = self
            .read
            .start_build(p.name(), p.version(), p.tables())
            .await?;
        Ok(Build {
            generation,
            position: 0,
            applied: 0,
            known: Known::building(p.reads(), self.build_known_rows),
        })
    }

    /// Applies the pages of `$all` a rebuild hands this projection. A
    /// page's rows are written on a task of their own while the next page
    /// is applied, so one projection's work and its writes use both cores;
    /// a page that must read rows back from the store waits for that
    /// write first (see [`Self::apply_event`]).
    async fn build_pages(
        self: &Arc<Self>,
        build: &mut Build,
        pages: &mut tokio::sync::mpsc::Receiver<Arc<AllSlice>>,
        writing: &mut Writing,
    ) -> Result<(), RunnerError> {
        while let Some(page) = pages.recv().await {
            let rows = self.build_page(build, &page, writing).await?;
            written(writing).await?;
            let (runner, generation) = (self.clone(), build.generation);
            *writing = Some(tokio::spawn(async move {
                runner.write_build(generation, rows).await
            }));
        }
        Ok(())
    }

    /// Applies a page of `$all` (read for several projections) to a build:
    /// the events of this projection's types. The rows are remembered at
    /// once, and returned with the page's end as their checkpoint, for
    /// [`Self::write_build`] (a build is its generation's only writer, and
    /// fails as a whole if a write does).
    async fn build_page(
        &self,
        build: &mut Build,
        page: &AllSlice,
        writing: &mut Writing,
    ) -> Result<BuildRows, RunnerError> {
        let filter = self.filter();
        let mine: Vec<&RecordedEvent> = page
            .events
            .iter()
            .filter(|e| filter.matches(&e.event_type, &e.stream))
            .collect();
        self.build_slice(build, &mine, page.scanned_to, writing)
            .await
    }

    /// Applies events to a build, every one up to `scanned_to`: their rows
    /// (whole: a rebuild is its generation's only writer, since starting
    /// another supersedes it) remembered at once and returned with
    /// `scanned_to` as their checkpoint.
    async fn build_slice(
        &self,
        build: &mut Build,
        events: &[&RecordedEvent],
        scanned_to: u64,
        writing: &mut Writing,
    ) -> Result<BuildRows, RunnerError> {
        let (deltas, now_known) = self
            .rows_of(build.generation, events, true, &build.known, writing)
            .await?;
        build.known.remember(now_known);
        build.applied += events.len() as u64;
        build.position = build.position.max(scanned_to);
        Ok(BuildRows {
            deltas,
            position: scanned_to,
        })
    }

    /// Writes a page's rows into a build, then its checkpoint.
    async fn write_build(&self, generation: u32, rows: BuildRows) -> Result<(), RunnerError> {
        if !rows.deltas.is_empty() {
            self.read.rows.apply(generation, rows.deltas).await?;
        }
        self.read
            .registry
            .advance(
                self.name(),
                Target::Build(generation),
                Progress::to(rows.position),
            )
            .await?;
        Ok(())
    }

    /// Reads on from where a build is until it has caught up with the live
    /// generation, then makes it live.
    async fn finish_build(
        &self,
        mut build: Build,
        progress: &mut dyn BuildProgress,
    ) -> Result<u32, RunnerError> {
        let name = self.name();
        let filter = self.filter();
        loop {
            let slice = self
                .events
                .read_all(build.position, &filter, BUILD_PAGE)
                .await?;
            let events: Vec<&RecordedEvent> = slice.events.iter().collect();
            // Even with no events, record that the build has looked this
            // far: the live runner's checkpoint moves on without events of
            // its own, and the switch waits for the build to be as far.
            let rows = self
                .build_slice(&mut build, &events, slice.scanned_to, &mut None)
                .await?;
            self.write_build(build.generation, rows).await?;
            if events.is_empty() {
                if self.read.finish_build(name, build.generation).await? {
                    self.observer
                        .switched(name, build.generation, build.position);
                    self.letters_applied_by(build.generation).await;
                    progress.advanced(build.position, slice.scanned_to, build.applied);
                    return Ok(build.generation);
                }
                // The live generation is ahead: there is more to read.
                tokio::task::yield_now().await;
                continue;
            }
            let head = self.events.head_position().await.unwrap_or(build.position);
            progress.advanced(build.position, head, build.applied);
        }
    }

    /// Applies one slice of live events: their rows, then the checkpoint.
    /// A live runner may have a twin in another process, so the store
    /// merges its changes (rebuilds write whole rows: [`Self::build_slice`]).
    async fn apply(
        &self,
        generation: u32,
        events: &[&RecordedEvent],
        checkpoint: Checkpoint,
        known: &mut Known,
    ) -> Result<(), RunnerError> {
        let (deltas, now_known) = self
            .rows_of(generation, events, false, known, &mut None)
            .await?;
        let changed = if deltas.is_empty() {
            Vec::new()
        } else {
            self.read.rows.apply(generation, deltas).await?
        };
        known.remember(now_known);
        let progress = match checkpoint {
            Checkpoint::Position(p) => Progress::to(p),
            Checkpoint::Partitions { total, positions } => {
                let positions: Vec<PartitionProgress> = positions
                    .into_iter()
                    .map(|(partition, position)| PartitionProgress {
                        partition,
                        position,
                    })
                    .collect();
                let all = self
                    .read
                    .registry
                    .advance_partitions(self.name(), generation, &positions)
                    .await?;
                watermarks(total, &all)
            }
        };
        let checkpoint = match self
            .read
            .registry
            .advance(self.name(), Target::Live(generation), progress)
            .await
        {
            Ok(checkpoint) => checkpoint,
            Err(e) => {
                if !changed.is_empty() {
                    self.observer.changed(self.name(), generation, &changed);
                }
                return Err(e.into());
            }
        };
        let now = Utc::now();
        let lags: Vec<Duration> = events
            .iter()
            .map(|e| (now - e.recorded_at).to_std().unwrap_or_default())
            .collect();
        self.observer
            .applied(self.name(), generation, checkpoint, &changed, &lags);
        Ok(())
    }

    /// The rows a slice of events changes, as deltas for the store, and the
    /// rows of the tables the projection reads back as they now are.
    async fn rows_of(
        &self,
        generation: u32,
        events: &[&RecordedEvent],
        whole: bool,
        known: &Known,
        writing: &mut Writing,
    ) -> Result<(Vec<Delta>, HashMap<RowKey, Row>), RunnerError> {
        let mut overlay = Overlay::default();
        for event in events {
            self.apply_event(event, generation, &mut overlay, known, writing)
                .await?;
        }
        Ok(overlay.finish(whole, |key| known.base(key)))
    }

    /// Applies one event to the overlay; `false` when it could not be
    /// applied and was set aside.
    async fn apply_event(
        &self,
        event: &RecordedEvent,
        generation: u32,
        overlay: &mut Overlay,
        known: &Known,
        writing: &mut Writing,
    ) -> Result<bool, RunnerError> {
        let envelope = envelope(event);
        loop {
            match self.projection.apply(&envelope, overlay) {
                Ok(writes) => {
                    overlay.write(writes);
                    return Ok(true);
                }
                Err(ProjectionError::Need(keys)) => {
                    let mut missing = Vec::new();
                    for key in keys {
                        if overlay.knows(&key) {
                            continue;
                        }
                        match known.base(&key) {
                            Some(stored) => overlay.learn(key, stored),
                            None => missing.push(key),
                        }
                    }
                    if !missing.is_empty() {
                        // The store must first hold the build's last page.
                        written(writing).await?;
                        let rows = self.read.rows.get_many(generation, missing.clone()).await?;
                        for (key, row) in missing.into_iter().zip(rows) {
                            overlay.learn(key, row);
                        }
                    }
                }
                Err(other) => {
                    // A bug or bad data: set the event aside and go on, so
                    // one event cannot stop a projection.
                    let error = other.to_string();
                    tracing::error!(
                        projection = self.name(),
                        position = event.position,
                        event_type = %event.event_type,
                        %error,
                        "event set aside"
                    );
                    self.read
                        .coordination
                        .dead_letter(DeadLetter {
                            projection: self.name().to_string(),
                            position: event.position,
                            event_id: event.event_id.to_string(),
                            event_type: event.event_type.clone(),
                            error: error.clone(),
                            generation,
                        })
                        .await?;
                    self.feed.dead_letter(event, &error).await?;
                    self.observer.dead_lettered(self.name(), event, &error);
                    return Ok(false);
                }
            }
        }
    }
}

/// A recorded event as projections see it.
pub fn envelope(event: &RecordedEvent) -> Envelope<'_> {
    Envelope {
        stream: &event.stream,
        revision: event.revision,
        position: event.position,
        event_type: &event.event_type,
        schema_version: event.schema_version,
        recorded_at: event.recorded_at,
        data: event.data.get().as_bytes(),
    }
}

/// How far a projection fed by a partitioned feed reflects `$all`, from
/// how far each partition is applied: every event up to the lowest
/// partition's position once all `total` partitions have reported (before
/// that nothing is known: 0), and the furthest any partition reached.
pub fn watermarks(total: u32, partitions: &[PartitionProgress]) -> Progress {
    let high = partitions.iter().map(|p| p.position).max().unwrap_or(0);
    let reported = partitions
        .iter()
        .map(|p| p.partition)
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let low = if total > 0 && reported >= total as usize {
        partitions.iter().map(|p| p.position).min().unwrap_or(0)
    } else {
        0
    };
    Progress {
        position: low,
        high: high.max(low),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, position: u64) -> PartitionProgress {
        PartitionProgress {
            partition,
            position,
        }
    }

    #[test]
    fn nothing_is_known_until_every_partition_has_reported() {
        assert_eq!(watermarks(3, &[]), Progress::to(0));
        let two_of_three = watermarks(3, &[at(0, 40), at(2, 90)]);
        assert_eq!(two_of_three.position, 0);
        assert_eq!(two_of_three.high, 90);
    }

    #[test]
    fn the_slowest_partition_is_the_checkpoint_and_the_fastest_the_high_mark() {
        let all = watermarks(3, &[at(0, 40), at(1, 12), at(2, 90)]);
        assert_eq!(
            all,
            Progress {
                position: 12,
                high: 90
            }
        );
    }

    #[test]
    fn partitions_beyond_the_total_still_count_once_each() {
        // A topic that grew: more partitions report than were counted.
        let grown = watermarks(2, &[at(0, 7), at(1, 9), at(2, 5)]);
        assert_eq!(grown.position, 5);
        assert_eq!(grown.high, 9);
    }

    #[test]
    fn a_feed_without_partitions_knows_nothing() {
        assert_eq!(watermarks(0, &[at(0, 7)]).position, 0);
    }
}
