//! The query service: every read of the API's resources is served from a
//! read model, through a moka cache of ready-to-send JSON bytes with their
//! ETag; reads of the event history go through [`history`].
//!
//! **Never older than the read model.** Every cached answer records which
//! partitions it was built from, as buckets of a fixed table of invalidation
//! counters, and the sequence number current when it started reading. When
//! a projection batch is durable, the runner bumps the buckets of every row
//! it changed to a newer sequence number before anyone can see the batch's
//! checkpoint; an answer whose buckets moved since it started reading is a
//! miss. Hashing partitions into buckets bounds memory; two partitions
//! sharing a bucket only cost an extra miss.
//!
//! **Read-your-writes.** A query carrying a command's consistency token
//! waits (bounded, 2 s by default) until the projections it reads have
//! applied that position of `$all`, then answers; `X-Consistency-Status`
//! says whether it got there (`consistent`) or answered anyway (`stale`).
//!
//! # Layout
//! - [`catalogue`], [`carts`], [`orders`], [`customers`], [`reports`]: the
//!   queries, grouped as the API groups them.
//! - [`history`]: the event store read for analysts: streams, exports, live
//!   tails, orders as they stood at an instant; [`timeline`] maps times
//!   onto positions for it.
//! - `cache` (answers and their invalidation), `observer` (what runners
//!   report), [`paging`] (pages and cursors): the service's machinery.

pub mod carts;
pub mod catalogue;
pub mod customers;
pub mod history;
pub mod orders;
pub mod paging;
pub mod reports;
pub mod timeline;

pub(crate) mod cache;
mod observer;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use shopstream_domain::DecodeError;
use shopstream_infra::event_store::StoreError;
use shopstream_infra::read_store::{ProjectionRegistry, ReadStoreError, Row, RowKey, RowStore};
use shopstream_infra::runner::RunnerObserver;
use shopstream_projections::{Json, Projection, ProjectionError};
use tokio::sync::watch;
use uuid::Uuid;

use crate::telemetry::Metrics;
use cache::{BUCKETS, Entry};
pub use paging::{Page, cursor, limit};

/// A ready-to-send answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// A strong validator: a hash of the body.
    pub etag: String,
    /// Whose data this is, when only they (and admins) may read it.
    pub owner: Option<Uuid>,
}

impl Answer {
    pub fn json<T: Serialize>(value: &T, owner: Option<Uuid>) -> Result<Self, QueryError> {
        let body = serde_json::to_vec(value).map_err(QueryError::Document)?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        Ok(Self {
            etag: format!("\"{:016x}\"", hasher.finish()),
            body: Bytes::from(body),
            owner,
        })
    }
}

/// A stored document read into a type (or a `serde_json::Value`).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(json: &Json) -> Result<T, QueryError> {
    json.decode().map_err(QueryError::Document)
}

/// A row's document cell.
pub(crate) fn doc(row: &Row) -> Result<&Json, QueryError> {
    row.cell(shopstream_projections::DOC)
        .ok_or(QueryError::NoDocument)
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request is wrong (a bad cursor or limit).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] ReadStoreError),
    #[error(transparent)]
    Events(#[from] StoreError),
    /// A stored document does not read (or an answer does not write) as
    /// this build expects.
    #[error("a document cannot be read or written")]
    Document(#[source] serde_json::Error),
    #[error("a stored row has no document")]
    NoDocument,
    #[error("a stored event cannot be read")]
    Decode(#[from] DecodeError),
    #[error("a stored event cannot be folded")]
    Projection(#[from] ProjectionError),
    #[error("the read model kept moving while reading")]
    Unsettled,
    #[error("a lock was poisoned by a panic")]
    Poisoned,
}

/// How a query waited for a consistency token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// The read models reflect the token's position.
    Consistent,
    /// They did not within the wait; the answer may not show that write.
    Stale,
}

/// Reads read models, caches answers, and hears from the runners.
pub struct QueryService {
    rows: Arc<dyn RowStore>,
    registry: Arc<dyn ProjectionRegistry>,
    cache: moka::sync::Cache<String, Arc<Entry>>,
    /// Answers being built right now, by cache key: a burst of misses for
    /// one key builds it once while the rest wait for that build.
    building: std::sync::Mutex<HashMap<String, Arc<tokio::sync::OnceCell<Arc<Entry>>>>>,
    sequence: AtomicU64,
    buckets: Box<[AtomicU64]>,
    /// Which generation of each projection is live.
    routing: RwLock<HashMap<String, u32>>,
    /// Which projection owns each table.
    owners: HashMap<&'static str, &'static str>,
    checkpoints: HashMap<&'static str, watch::Sender<u64>>,
    wait: Duration,
    metrics: Metrics,
}

impl QueryService {
    pub fn new(
        rows: Arc<dyn RowStore>,
        registry: Arc<dyn ProjectionRegistry>,
        projections: &[Arc<dyn Projection>],
        cache_bytes: u64,
        wait: Duration,
        metrics: Metrics,
    ) -> Self {
        let mut owners = HashMap::new();
        let mut checkpoints = HashMap::new();
        for p in projections {
            for table in p.tables() {
                owners.insert(*table, p.name());
            }
            checkpoints.insert(p.name(), watch::channel(0).0);
        }
        Self {
            rows,
            registry,
            cache: moka::sync::Cache::builder()
                .weigher(|key: &String, entry: &Arc<Entry>| {
                    (key.len() + entry.answer.body.len() + 64).min(u32::MAX as usize) as u32
                })
                .max_capacity(cache_bytes)
                .build(),
            building: std::sync::Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(1),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            routing: RwLock::new(HashMap::new()),
            owners,
            checkpoints,
            wait,
            metrics,
        }
    }

    /// Learns every projection's live generation and checkpoint from the
    /// registry (at start, and when a table turned out to be gone).
    /// How many projections the read store's registry holds: whether it
    /// answers (readiness).
    pub async fn registered(&self) -> Result<usize, ReadStoreError> {
        Ok(self.registry.projections().await?.len())
    }

    pub async fn refresh_routing(&self) -> Result<(), QueryError> {
        for record in self.registry.projections().await? {
            if let Ok(mut routing) = self.routing.write() {
                routing.insert(record.name.clone(), record.generation);
            }
            if let Some(tx) = self.checkpoints.get(record.name.as_str()) {
                tx.send_if_modified(|c| {
                    let moved = record.checkpoint > *c;
                    *c = (*c).max(record.checkpoint);
                    moved
                });
            }
        }
        Ok(())
    }

    fn generation(&self, projection: &str) -> u32 {
        self.routing
            .read()
            .ok()
            .and_then(|r| r.get(projection).copied())
            .unwrap_or(1)
    }

    /// The projection that owns a table.
    fn owner(&self, table: &str) -> &'static str {
        self.owners.get(table).copied().unwrap_or("")
    }

    /// Waits until every named projection has applied `position`.
    pub async fn wait_for(&self, projections: &[&str], position: u64) -> Consistency {
        let deadline = tokio::time::Instant::now() + self.wait;
        for name in projections {
            let Some(tx) = self.checkpoints.get(name) else {
                continue;
            };
            let mut rx = tx.subscribe();
            let reached = tokio::time::timeout_at(deadline, rx.wait_for(|c| *c >= position)).await;
            if !matches!(reached, Ok(Ok(_))) {
                return Consistency::Stale;
            }
        }
        Consistency::Consistent
    }

    /// Whether every named projection has applied `position` already.
    pub fn reached(&self, projections: &[&str], position: u64) -> bool {
        projections.iter().all(|p| self.checkpoint(p) >= position)
    }

    /// The checkpoint of a projection as this process last heard it.
    pub fn checkpoint(&self, projection: &str) -> u64 {
        self.checkpoints
            .get(projection)
            .map_or(0, |tx| *tx.borrow())
    }

    /// Another process's runner applied a batch (heard through Kafka): a
    /// generation this node did not know of yet means a rebuild switched.
    pub fn heard(&self, projection: &str, generation: u32, checkpoint: u64, changed: &[RowKey]) {
        if self.generation(projection) != generation {
            self.switched(projection, generation, checkpoint);
        }
        self.applied(projection, generation, checkpoint, changed, &[]);
    }
}

/// Query services over an embedded read store holding given rows, for the
/// query modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use shopstream_infra::read_store::{ReadSide, SqliteReadStore};
    use shopstream_projections::{Change, DOC, Json, Row, RowKey};

    use super::QueryService;
    use crate::telemetry::Metrics;

    /// A row of one `doc` cell written at `version`.
    pub fn doc_row(key: RowKey, doc: Json, version: u64) -> shopstream_infra::read_store::Delta {
        let mut change = Row::default();
        change.merge(&Change::Upsert {
            cells: vec![(DOC.to_string(), doc)],
            version,
        });
        shopstream_infra::read_store::Delta {
            key,
            change,
            whole: false,
        }
    }

    /// A query service over a fresh read store (every projection
    /// registered) holding these rows in generation 1.
    pub async fn service_with(
        rows: Vec<shopstream_infra::read_store::Delta>,
    ) -> (QueryService, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let read = ReadSide::of(SqliteReadStore::open(dir.path().join("read.sqlite")).unwrap());
        let projections = shopstream_projections::all();
        for p in &projections {
            read.register(p.name(), p.version(), p.tables())
                .await
                .unwrap();
        }
        read.rows.apply(1, rows).await.unwrap();
        let q = QueryService::new(
            read.rows.clone(),
            read.registry.clone(),
            &projections,
            1 << 20,
            std::time::Duration::from_millis(10),
            Metrics::new().unwrap(),
        );
        q.refresh_routing().await.unwrap();
        (q, dir)
    }
}
