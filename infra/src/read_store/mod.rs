//! The read side's ports, shaped like ScyllaDB and split by concern, so an
//! adapter keeps each promise with what its engine has:
//!
//! - [`RowStore`]: tables of rows addressed by a partition key and a
//!   clustering key, read by key or by a partition scan in clustering
//!   order, written in batches of per-cell changes. A batch is durable when
//!   `apply` returns, but it is not atomic: every cell keeps the version
//!   that wrote it, so writing a batch again (or part of it, after a crash)
//!   changes nothing.
//! - [`ProjectionRegistry`]: which generation of each projection is live,
//!   how far each has applied `$all` (its checkpoint, and per partition of
//!   a partitioned feed), whether it failed or is paused, and the
//!   generation a rebuild fills. A checkpoint is only ever recorded after
//!   the rows it covers are durable, so a restart resumes at or before the
//!   first event whose rows might be missing.
//! - [`Coordination`]: leases (one relay at a time) and dead letters
//!   (events a projection could not apply, set aside).
//!
//! Each projection's tables exist in generations: the live generation
//! serves reads while a rebuild fills the next one from position 0; the
//! switch moves the live pointer in the registry and the old generation's
//! tables are dropped after. A runner writing to a generation that is no
//! longer live is told it was [`ReadStoreError::Superseded`] when it records
//! its checkpoint, so a rebuild in another process (the CLI) takes over
//! cleanly. [`ReadSide`] holds the three ports and does what spans them
//! (tables created with their generation, dropped with it).

pub mod scylla;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
pub use shopstream_projections::{Row, RowKey};

pub use scylla::{ScyllaOptions, ScyllaReadStore};
pub use sqlite::SqliteReadStore;

use crate::error::Cause;

/// The physical name of a logical table in one generation.
pub fn physical(table: &str, generation: u32) -> String {
    format!("{table}__g{generation}")
}

/// A projection as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectionRecord {
    pub name: String,
    /// The code version the live generation was built by.
    pub version: u32,
    pub generation: u32,
    /// Every event up to this position of `$all` is applied to the live
    /// generation.
    pub checkpoint: u64,
    /// Why the live runner stopped, if it did.
    pub failure: Option<String>,
    pub paused: bool,
    /// A rebuild in progress, if any.
    pub build: Option<BuildRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRecord {
    pub version: u32,
    pub generation: u32,
    pub checkpoint: u64,
}

/// A generation's tables, as the registry remembers them: what to drop
/// when the generation is retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub generation: u32,
    pub tables: Vec<String>,
}

/// A rebuild's fresh generation, and the unfinished one it replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedBuild {
    pub generation: u32,
    pub abandoned: Option<Generation>,
}

/// What finishing a build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Switch {
    /// The build has not caught up with the live generation: apply more
    /// and try again.
    NotYet,
    /// The build is live; the old generation is retired.
    Done { retired: Generation },
}

/// Which generation a runner writes: the live one, or one being rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Live(u32),
    Build(u32),
}

impl Target {
    pub fn generation(self) -> u32 {
        match self {
            Target::Live(g) | Target::Build(g) => g,
        }
    }
}

/// How far a generation has applied `$all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Every event up to this position is applied.
    pub position: u64,
    /// The furthest position any applied event had (a partitioned feed
    /// applies some partitions beyond `position`); at least `position`. A
    /// rebuild takes over only once it is at least this far.
    pub high: u64,
}

impl Progress {
    /// Progress of a feed that keeps `$all`'s order: up to `position`.
    pub fn to(position: u64) -> Self {
        Self {
            position,
            high: position,
        }
    }
}

/// The changes of a batch to one row (already merged in memory).
#[derive(Debug, Clone, PartialEq)]
pub struct Delta {
    pub key: RowKey,
    pub change: Row,
    /// `change` is the row's whole new state (its writer knew the stored
    /// row): write it as it is, without reading and merging.
    pub whole: bool,
}

/// How far one partition of a partitioned feed is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionProgress {
    pub partition: i32,
    /// Every event of the partition up to here is applied.
    pub position: u64,
}

/// An event a projection could not apply, set aside so the rest go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub projection: String,
    pub position: u64,
    pub event_id: String,
    pub event_type: String,
    pub error: String,
    /// The generation that set it aside (last).
    pub generation: u32,
}

/// What became of an event set aside. An operator asks for a retry (the
/// projection's runner applies the event again, against its rows as they
/// are now) or skips it; a retry that fails again leaves it open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LetterStatus {
    Open,
    Retrying,
    Retried,
    Skipped,
}

impl LetterStatus {
    pub const ALL: [LetterStatus; 4] = [
        LetterStatus::Open,
        LetterStatus::Retrying,
        LetterStatus::Retried,
        LetterStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LetterStatus::Open => "open",
            LetterStatus::Retrying => "retrying",
            LetterStatus::Retried => "retried",
            LetterStatus::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Still waiting for an operator or a runner.
    pub fn unresolved(self) -> bool {
        matches!(self, LetterStatus::Open | LetterStatus::Retrying)
    }
}

/// A dead letter as kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptLetter {
    pub letter: DeadLetter,
    pub status: LetterStatus,
    /// When it was (last) set aside.
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadStoreError {
    /// The generation written to is no longer the one the writer thinks.
    #[error("the projection's generation was replaced")]
    Superseded,
    #[error("read store unavailable")]
    Unavailable(#[source] Cause),
    #[error("read store data is unreadable")]
    Corrupt(#[source] Cause),
    /// A table of an old generation was dropped under a reader; it should
    /// look up the live generation again.
    #[error("no such table: {0}")]
    NoSuchTable(String),
    /// The caller asked for something the store cannot hold (a table name
    /// it cannot use, a projection it was never told of).
    #[error("{0}")]
    Invalid(String),
}

/// Rows, by key and by partition.
#[async_trait]
pub trait RowStore: Send + Sync + 'static {
    /// Creates a generation's tables (those that exist already are kept).
    async fn create_tables(&self, generation: u32, tables: &[String])
    -> Result<(), ReadStoreError>;

    /// Drops a generation's tables (those already gone are ignored).
    async fn drop_tables(&self, generation: u32, tables: &[String]) -> Result<(), ReadStoreError>;

    /// A live row by key, in the (logical) table of a generation.
    async fn get(&self, generation: u32, key: &RowKey) -> Result<Option<Row>, ReadStoreError>;

    /// Rows as stored, deleted ones included (a runner merges onto them).
    async fn get_many(
        &self,
        generation: u32,
        keys: Vec<RowKey>,
    ) -> Result<Vec<Option<Row>>, ReadStoreError>;

    /// Live rows of one partition after `after` (exclusive; `None`: from
    /// the first) in clustering order, at most `limit`.
    async fn scan(
        &self,
        generation: u32,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Row)>, ReadStoreError>;

    /// Writes a batch's row changes to a generation: each cell only where
    /// its version is newer than the stored one, a delete as a tombstone.
    /// Durable when it returns; not atomic. Returns the rows whose visible
    /// state may have changed (an adapter that writes without reading
    /// reports every row it wrote; none is ever left out).
    async fn apply(
        &self,
        generation: u32,
        deltas: Vec<Delta>,
    ) -> Result<Vec<RowKey>, ReadStoreError>;
}

/// Which generation of each projection is live, and how far each is.
#[async_trait]
pub trait ProjectionRegistry: Send + Sync + 'static {
    async fn projections(&self) -> Result<Vec<ProjectionRecord>, ReadStoreError>;

    async fn projection(&self, name: &str) -> Result<Option<ProjectionRecord>, ReadStoreError> {
        Ok(self
            .projections()
            .await?
            .into_iter()
            .find(|p| p.name == name))
    }

    /// Registers a projection met for the first time: generation 1 with
    /// these tables, at checkpoint 0. Returns the record, new or existing.
    async fn register(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<ProjectionRecord, ReadStoreError>;

    /// Starts a rebuild into a fresh generation, replacing any unfinished
    /// one (returned as abandoned, for its tables to be dropped).
    async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<StartedBuild, ReadStoreError>;

    /// Records how far a generation has applied `$all` (positions only
    /// move forward); returns the checkpoint now recorded for it. Fails
    /// with `Superseded` when the target is no longer the live generation
    /// (or the live one is paused), or no longer the one being built.
    async fn advance(
        &self,
        name: &str,
        target: Target,
        progress: Progress,
    ) -> Result<u64, ReadStoreError>;

    /// Makes a build live if it has caught up with the live generation
    /// (with its `high`), retiring the old generation.
    async fn finish_build(&self, name: &str, generation: u32) -> Result<Switch, ReadStoreError>;

    /// Records (or clears) why the live runner stopped.
    async fn set_failure(&self, name: &str, failure: Option<&str>) -> Result<(), ReadStoreError>;

    /// Pauses or resumes the live runner.
    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ReadStoreError>;

    /// Records how far partitions of a partitioned feed are applied in a
    /// generation (each only moves forward) and returns every partition's
    /// progress in it.
    async fn advance_partitions(
        &self,
        name: &str,
        generation: u32,
        positions: &[PartitionProgress],
    ) -> Result<Vec<PartitionProgress>, ReadStoreError>;

    /// The live generation's progress per partition (partitioned feeds).
    async fn partitions(&self, name: &str) -> Result<Vec<PartitionProgress>, ReadStoreError>;
}

/// What processes agree on through the read store.
#[async_trait]
pub trait Coordination: Send + Sync + 'static {
    /// Takes (or renews) a named lease for `ttl` unless someone else holds
    /// it; returns whether `holder` holds it now.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, ReadStoreError>;

    /// Gives a lease up at once (a clean stop).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ReadStoreError>;

    /// The position a lease's holders have recorded (0 at first).
    async fn lease_position(&self, name: &str) -> Result<u64, ReadStoreError>;

    /// Records a position under a lease (it only moves forward); `false`
    /// if another holder took the lease (one that ran out but was not
    /// taken is still its holder's).
    async fn advance_lease(
        &self,
        name: &str,
        holder: &str,
        position: u64,
    ) -> Result<bool, ReadStoreError>;

    /// Sets an event aside that a projection could not apply (one letter
    /// per projection and event). Set aside again (a retry failed, or the
    /// feed delivered it again), a letter takes the new error and is open
    /// again, unless an operator skipped it.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), ReadStoreError>;

    /// How many unresolved (open or retrying) letters each projection has.
    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError>;

    /// The letters of a projection (or of all), by projection and position.
    async fn letters(&self, projection: Option<&str>) -> Result<Vec<KeptLetter>, ReadStoreError>;

    /// One letter.
    async fn letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<Option<KeptLetter>, ReadStoreError>;

    /// A rebuild into `generation` went live: its projection's unresolved
    /// letters that an older generation set aside were applied by it (one
    /// it could not apply it set aside again, as its own), so they are
    /// marked retried. Returns how many.
    async fn resolve_letters_before(
        &self,
        projection: &str,
        generation: u32,
    ) -> Result<u64, ReadStoreError>;

    /// Moves a letter to `to` if its status is one of `from`; whether it
    /// moved.
    async fn set_letter_status(
        &self,
        projection: &str,
        event_id: &str,
        from: &[LetterStatus],
        to: LetterStatus,
    ) -> Result<bool, ReadStoreError>;
}

/// The three ports of one read store, as the runner and the application
/// hold them, with what spans them.
#[derive(Clone)]
pub struct ReadSide {
    pub rows: Arc<dyn RowStore>,
    pub registry: Arc<dyn ProjectionRegistry>,
    pub coordination: Arc<dyn Coordination>,
}

impl ReadSide {
    /// One adapter serving all three ports.
    pub fn of<S: RowStore + ProjectionRegistry + Coordination>(store: S) -> Self {
        let store = Arc::new(store);
        Self {
            rows: store.clone(),
            registry: store.clone(),
            coordination: store,
        }
    }

    /// Registers a projection and makes sure its live generation's tables
    /// exist.
    pub async fn register(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<ProjectionRecord, ReadStoreError> {
        let record = self.registry.register(name, version, tables).await?;
        // A record of another version has its tables from its own start.
        if record.version == version {
            let owned: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            self.rows.create_tables(record.generation, &owned).await?;
        }
        Ok(record)
    }

    /// Starts a rebuild: a fresh generation with empty tables; the tables
    /// of an unfinished one it replaces are dropped.
    pub async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<u32, ReadStoreError> {
        let started = self.registry.start_build(name, version, tables).await?;
        if let Some(abandoned) = started.abandoned {
            self.rows
                .drop_tables(abandoned.generation, &abandoned.tables)
                .await?;
        }
        let owned: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        self.rows.create_tables(started.generation, &owned).await?;
        Ok(started.generation)
    }

    /// Makes a caught-up build live and drops the retired generation's
    /// tables; `false` when the build has not caught up yet.
    pub async fn finish_build(&self, name: &str, generation: u32) -> Result<bool, ReadStoreError> {
        match self.registry.finish_build(name, generation).await? {
            Switch::NotYet => Ok(false),
            Switch::Done { retired } => {
                self.rows
                    .drop_tables(retired.generation, &retired.tables)
                    .await?;
                Ok(true)
            }
        }
    }
}
