//! Two embedded stores in a fresh directory, projection runners spawned on
//! them, and an observer that reports the runners' progress over a watch
//! channel, so tests wait for exactly what they need instead of sleeping.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use shopstream_infra::Durability;
use shopstream_infra::event_store::{EventStore, SqliteEventStore, SqliteEventStoreOptions};
use shopstream_infra::read_store::{ReadSide, SqliteReadStore};
use shopstream_infra::runner::{ProjectionRunner, RunnerObserver};
use shopstream_projections::memory::MemoryRows;
use shopstream_projections::{Projection, RowKey};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::reference;

/// How long a test waits for runners before it calls them stuck. A bound,
/// not a synchronisation: every wait ends on a reported event.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// What the runners have reported so far.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Per projection: the newest generation reported and how far it is.
    pub at: BTreeMap<String, (u32, u64)>,
    /// Batches of events applied to a live generation.
    pub batches: u64,
    /// Those batches, per projection.
    pub batches_of: BTreeMap<String, u64>,
    /// Generations that became live through a rebuild.
    pub switches: Vec<(String, u32)>,
    pub failures: Vec<String>,
}

impl Seen {
    fn report(&mut self, projection: &str, generation: u32, checkpoint: u64) {
        let entry = self
            .at
            .entry(projection.to_string())
            .or_insert((generation, checkpoint));
        if generation > entry.0 {
            *entry = (generation, checkpoint);
        } else if generation == entry.0 {
            entry.1 = entry.1.max(checkpoint);
        }
    }

    /// Every projection has applied everything up to `position`.
    pub fn caught_up(&self, position: u64) -> bool {
        let all = shopstream_projections::all();
        all.iter().all(|p| {
            self.at
                .get(p.name())
                .is_some_and(|(_, checkpoint)| *checkpoint >= position)
        })
    }
}

/// A [`RunnerObserver`] that publishes what it hears.
pub struct Progress {
    seen: watch::Sender<Seen>,
}

impl Progress {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            seen: watch::Sender::new(Seen::default()),
        })
    }

    /// Waits until `done` holds for what the runners reported; a runner
    /// that fails, or silence for longer than [`PATIENCE`], fails the test.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let mut seen = self.seen.subscribe();
        let waited = tokio::time::timeout(
            PATIENCE,
            seen.wait_for(|s| !s.failures.is_empty() || done(s)),
        )
        .await;
        let seen = waited
            .unwrap_or_else(|_| panic!("runners did not get to {what}: {:?}", *self.seen.borrow()))
            .expect("the observer lives as long as the test")
            .clone();
        assert!(
            seen.failures.is_empty(),
            "a runner failed: {:?}",
            seen.failures
        );
        seen
    }

    pub async fn caught_up(&self, position: u64) -> Seen {
        self.wait_until(&format!("position {position}"), |s| s.caught_up(position))
            .await
    }
}

impl RunnerObserver for Progress {
    fn applied(
        &self,
        projection: &str,
        generation: u32,
        checkpoint: u64,
        _changed: &[RowKey],
        lags: &[Duration],
    ) {
        self.seen.send_modify(|s| {
            s.report(projection, generation, checkpoint);
            if !lags.is_empty() {
                s.batches += 1;
                *s.batches_of.entry(projection.to_string()).or_default() += 1;
            }
        });
    }

    fn changed(&self, _projection: &str, _generation: u32, _changed: &[RowKey]) {}

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        self.seen.send_modify(|s| {
            let before = s.at.get(projection).map(|(g, _)| *g);
            s.report(projection, generation, checkpoint);
            if before.is_some_and(|g| g < generation) {
                s.switches.push((projection.to_string(), generation));
            }
        });
    }

    fn dead_lettered(
        &self,
        projection: &str,
        event: &shopstream_infra::event_store::RecordedEvent,
        error: &str,
    ) {
        self.seen.send_modify(|s| {
            s.failures
                .push(format!("{projection}: event {}: {error}", event.position))
        });
    }
}

/// Every projection's runner, running live in its own task. Dropping them
/// kills them.
pub struct LiveRunners {
    tasks: Vec<JoinHandle<()>>,
    pub progress: Arc<Progress>,
}

impl LiveRunners {
    /// Kills every runner wherever it is, as a crash would, and waits until
    /// they are gone. A batch already handed to the store may still commit.
    pub async fn kill(mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            if let Err(e) = task.await
                && e.is_panic()
            {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
}

impl Drop for LiveRunners {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A background task that works until told to stop, then hands back what
/// it has.
pub struct UntilStopped<T> {
    stop: Arc<AtomicBool>,
    task: JoinHandle<T>,
}

impl<T: Send + 'static> UntilStopped<T> {
    /// Spawns `work`, which checks the flag it is given between steps.
    pub fn spawn<F: Future<Output = T> + Send + 'static>(
        work: impl FnOnce(Arc<AtomicBool>) -> F,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(work(stop.clone()));
        Self { stop, task }
    }

    pub async fn stop(self) -> T {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the background task does not panic")
    }
}

/// An event store and a read store in a fresh directory.
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub read: ReadSide,
    _dir: tempfile::TempDir,
}

impl Default for Stores {
    fn default() -> Self {
        Self::new()
    }
}

impl Stores {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = SqliteEventStoreOptions {
            // Power loss is not what these tests are about.
            durability: Durability::Os,
            ..SqliteEventStoreOptions::default()
        };
        let events = SqliteEventStore::open(dir.path().join("events.sqlite"), options)
            .expect("event store opens");
        let rows = SqliteReadStore::open(dir.path().join("read.sqlite")).expect("read store opens");
        Self {
            events: Arc::new(events),
            read: ReadSide::of(rows),
            _dir: dir,
        }
    }

    pub fn runner(
        &self,
        projection: Arc<dyn Projection>,
        observer: Arc<dyn RunnerObserver>,
    ) -> ProjectionRunner {
        ProjectionRunner::new(projection, self.events.clone(), self.read.clone(), observer)
    }

    /// A runner for every projection, supervising it as `serve` does.
    pub fn spawn_live(&self) -> LiveRunners {
        let progress = Progress::new();
        let tasks = shopstream_projections::all()
            .into_iter()
            .map(|p| {
                tokio::spawn(
                    self.runner(p, progress.clone())
                        .run(CancellationToken::new()),
                )
            })
            .collect();
        LiveRunners { tasks, progress }
    }

    pub async fn head(&self) -> u64 {
        self.events.head_position().await.expect("head readable")
    }

    /// The read model every event recorded so far should give.
    pub async fn reference(&self) -> MemoryRows {
        reference::fold(&reference::history(self.events.as_ref()).await)
    }

    /// The live generations hold exactly what the history gives.
    pub async fn assert_matches_reference(&self) {
        let expected = self.reference().await;
        reference::assert_matches(&self.read, &expected).await;
    }
}
