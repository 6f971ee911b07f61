//! The ReadStore port, shaped like ScyllaDB: tables of rows addressed by a
//! partition key and a clustering key, read by key or by partition scan in
//! clustering order, written in batches together with the projection's
//! checkpoint.
//!
//! Each projection's tables exist in generations: the live generation
//! serves reads while a rebuild fills the next one from position 0; the
//! switch moves the live pointer in the projection registry atomically and
//! drops the old generation. A live runner writing to a generation that is
//! no longer live is told it was `Superseded`, so a rebuild in another
//! process (the CLI) takes over cleanly.

mod sqlite;

use async_trait::async_trait;
pub use shopstream_projections::{Row, RowKey};

pub use sqlite::SqliteReadStore;

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

/// Which generation a batch writes: the live one, or one being rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Live(u32),
    Build(u32),
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

/// How far a batch's events reach into `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checkpoint {
    /// Every event up to this position (a feed in `$all`'s order).
    Position(u64),
    /// Per partition of a feed that keeps order only within a partition
    /// (Kafka): the position each partition has been read to. The
    /// projection reflects position `p` once every one of `total` partitions
    /// is past `p`.
    Partitions {
        total: u32,
        positions: Vec<(i32, u64)>,
    },
}

/// A projection's writes for a run of events, and how far that run went.
#[derive(Debug, Clone)]
pub struct Batch {
    pub projection: String,
    pub target: Target,
    pub deltas: Vec<Delta>,
    pub checkpoint: Checkpoint,
}

/// What applying a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Rows whose visible state changed.
    pub changed: Vec<RowKey>,
    /// How far the projection now reflects `$all` (every event up to here).
    pub checkpoint: u64,
}

/// How far one partition of a partitioned feed is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadStoreError {
    /// The generation written to is no longer the one the writer thinks.
    #[error("the projection's generation was replaced")]
    Superseded,
    #[error("read store unavailable: {0}")]
    Unavailable(String),
    #[error("read store data is unreadable: {0}")]
    Corrupt(String),
    /// A table of an old generation was dropped under a reader; it should
    /// look up the live generation again.
    #[error("no such table: {0}")]
    NoSuchTable(String),
}

#[async_trait]
pub trait ReadStore: Send + Sync + 'static {
    /// Live rows by key, in the given (logical) tables of a generation.
    async fn get(&self, generation: u32, key: &RowKey) -> Result<Option<Row>, ReadStoreError>;

    /// Rows as stored, deleted ones included (the runner merges onto them).
    async fn get_many(
        &self,
        generation: u32,
        keys: Vec<RowKey>,
    ) -> Result<Vec<Option<Row>>, ReadStoreError>;

    /// Live rows of one partition after `after` (exclusive) in clustering
    /// order, at most `limit`.
    async fn scan(
        &self,
        generation: u32,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Row)>, ReadStoreError>;

    /// Writes a batch and its checkpoint atomically.
    async fn apply(&self, batch: Batch) -> Result<Applied, ReadStoreError>;

    /// The live generation's progress per partition (partitioned feeds).
    async fn partitions(&self, projection: &str) -> Result<Vec<PartitionProgress>, ReadStoreError>;

    /// Sets an event aside that a projection could not apply.
    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), ReadStoreError>;

    /// How many events each projection has set aside.
    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError>;

    /// Takes (or renews) a named lease for `ttl` unless someone else holds
    /// it; returns whether `holder` holds it now. One relay at a time.
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, ReadStoreError>;

    /// Gives a lease up at once (a clean stop).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ReadStoreError>;

    /// The position a lease's holder has recorded (0 at first).
    async fn lease_position(&self, name: &str) -> Result<u64, ReadStoreError>;

    /// Records a position under a lease; `false` if another holder took it
    /// (a lease that ran out but was not taken is still its holder's).
    async fn advance_lease(
        &self,
        name: &str,
        holder: &str,
        position: u64,
    ) -> Result<bool, ReadStoreError>;

    async fn projections(&self) -> Result<Vec<ProjectionRecord>, ReadStoreError>;

    async fn projection(&self, name: &str) -> Result<Option<ProjectionRecord>, ReadStoreError> {
        Ok(self
            .projections()
            .await?
            .into_iter()
            .find(|p| p.name == name))
    }

    /// Registers a projection met for the first time: generation 1, empty,
    /// at checkpoint 0. Returns the record, new or existing.
    async fn register(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<ProjectionRecord, ReadStoreError>;

    /// Starts a rebuild into a fresh generation (replacing any unfinished
    /// one) and returns that generation.
    async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<u32, ReadStoreError>;

    /// Makes a finished build live if it has caught up with the live
    /// generation (`false`: it has not, apply more and try again), and drops
    /// the old generation's tables.
    async fn finish_build(&self, name: &str, generation: u32) -> Result<bool, ReadStoreError>;

    /// Records (or clears) why the live runner stopped.
    async fn set_failure(&self, name: &str, failure: Option<&str>) -> Result<(), ReadStoreError>;

    /// Pauses or resumes the live runner.
    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ReadStoreError>;
}
