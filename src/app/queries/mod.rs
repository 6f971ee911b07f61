//! The query service: every read is served from a read model, through a
//! moka cache of ready-to-send JSON bytes with their ETag.
//!
//! **Never older than the read model.** Every cached answer records which
//! partitions it was built from, as buckets of a fixed table of invalidation
//! counters, and the sequence number current when it started reading. When
//! a projection batch commits, the runner bumps the buckets of every row it
//! changed to a newer sequence number before anyone can see the batch's
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

pub mod carts;
pub mod catalogue;
pub mod customers;
pub mod orders;
pub mod reports;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use shopstream_infra::read_store::{ReadStore, ReadStoreError, Row, RowKey};
use shopstream_infra::runner::RunnerObserver;
use shopstream_projections::{Json, Projection};
use tokio::sync::watch;
use uuid::Uuid;

use crate::telemetry::Metrics;

/// A ready-to-send answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub body: Bytes,
    /// A strong validator: a hash of the body.
    pub etag: String,
    /// Whose data this is, when only they (and admins) may read it.
    pub owner: Option<Uuid>,
}

/// A stored document read into a type (or a `serde_json::Value`).
pub(crate) fn decode<T: serde::de::DeserializeOwned>(json: &Json) -> Result<T, QueryError> {
    json.decode()
        .map_err(|e| QueryError::Internal(format!("unreadable document: {e}")))
}

impl Answer {
    pub fn json<T: Serialize>(value: &T, owner: Option<Uuid>) -> Result<Self, QueryError> {
        let body = serde_json::to_vec(value).map_err(|e| QueryError::Internal(e.to_string()))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        Ok(Self {
            etag: format!("\"{:016x}\"", hasher.finish()),
            body: Bytes::from(body),
            owner,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] ReadStoreError),
    #[error(transparent)]
    Events(#[from] shopstream_infra::event_store::StoreError),
    #[error("{0}")]
    Internal(String),
}

/// How a query waited for a consistency token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// The read models reflect the token's position.
    Consistent,
    /// They did not within the wait; the answer may not show that write.
    Stale,
}

const BUCKETS: usize = 1 << 16;

struct Entry {
    answer: Answer,
    /// The sequence number when its reading started.
    seq: u64,
    buckets: Vec<u32>,
}

/// Reads read models, caches answers, and hears from the runners.
pub struct QueryService {
    rows: Arc<dyn ReadStore>,
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
    pub(crate) currency: shopstream_domain::values::Currency,
}

/// How to read one answer: its cache key, and the rows' projection.
pub(crate) struct Reader<'q> {
    service: &'q QueryService,
    generation: u32,
    buckets: Vec<u32>,
}

impl Reader<'_> {
    fn note(&mut self, key_table: &str, partition: &str) {
        self.buckets.push(bucket(key_table, partition) as u32);
    }

    pub(crate) async fn get(&mut self, key: &RowKey) -> Result<Option<Row>, QueryError> {
        self.note(&key.table, &key.partition);
        Ok(self.service.rows.get(self.generation, key).await?)
    }

    pub(crate) async fn scan(
        &mut self,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Row)>, QueryError> {
        self.note(table, partition);
        Ok(self
            .service
            .rows
            .scan(self.generation, table, partition, after, limit)
            .await?)
    }
}

fn bucket(table: &str, partition: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut hasher);
    partition.hash(&mut hasher);
    (hasher.finish() as usize) % BUCKETS
}

impl QueryService {
    pub fn new(
        rows: Arc<dyn ReadStore>,
        projections: &[Arc<dyn Projection>],
        cache_bytes: u64,
        wait: Duration,
        metrics: Metrics,
        currency: shopstream_domain::values::Currency,
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
            currency,
        }
    }

    /// Learns every projection's live generation and checkpoint from the
    /// registry (at start, and when a table turned out to be gone).
    pub async fn refresh_routing(&self) -> Result<(), QueryError> {
        for record in self.rows.projections().await? {
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

    /// The cached answer under `key`, or `build`'s, cached. `table` names
    /// the projection the answer reads.
    ///
    /// Concurrent misses of one key share one build. A caller that joined
    /// a build another started uses its answer only if no write the answer
    /// read has been applied since that build began (else it could be older
    /// than what this caller was promised, e.g. by a consistency token); it
    /// then builds again.
    pub(crate) async fn answer<F>(
        &self,
        table: &str,
        key: &str,
        build: F,
    ) -> Result<Arc<Answer>, QueryError>
    where
        F: AsyncFn(&mut Reader<'_>) -> Result<Answer, QueryError>,
    {
        let projection = self.owner(table);
        let mut moved = false;
        for pass in 0..4 {
            // The last pass builds its own answer, whatever else is building.
            let join_others = pass < 3;
            let generation = self.generation(projection);
            let cache_key = format!("{projection}/{generation}/{key}");
            if let Some(entry) = self.cache.get(&cache_key)
                && self.still_valid(&entry)
            {
                self.metrics.cache.with_label_values(&["hit"]).inc();
                return Ok(Arc::new(entry.answer.clone()));
            }
            self.metrics.cache.with_label_values(&["miss"]).inc();
            let cell = if join_others {
                self.building
                    .lock()
                    .map_err(|_| QueryError::Internal("answer builds lock poisoned".into()))?
                    .entry(cache_key.clone())
                    .or_default()
                    .clone()
            } else {
                Arc::default()
            };
            let led = std::sync::atomic::AtomicBool::new(false);
            let built = cell
                .get_or_try_init(|| async {
                    led.store(true, Ordering::Relaxed);
                    let seq = self.sequence.load(Ordering::SeqCst);
                    let mut reader = Reader {
                        service: self,
                        generation,
                        buckets: Vec::with_capacity(2),
                    };
                    let answer = build(&mut reader).await?;
                    let entry = Arc::new(Entry {
                        answer,
                        seq,
                        buckets: reader.buckets,
                    });
                    self.cache.insert(cache_key.clone(), entry.clone());
                    Ok::<_, QueryError>(entry)
                })
                .await
                .cloned();
            if let Ok(mut building) = self.building.lock()
                && building
                    .get(&cache_key)
                    .is_some_and(|c| Arc::ptr_eq(c, &cell))
            {
                building.remove(&cache_key);
            }
            match built {
                Ok(entry) if led.load(Ordering::Relaxed) || self.still_valid(&entry) => {
                    return Ok(Arc::new(entry.answer.clone()));
                }
                // Joined a build that began before a write it read: again.
                Ok(_) => continue,
                // A rebuild replaced the generation under us: look again.
                Err(QueryError::Store(ReadStoreError::NoSuchTable(_))) if !moved => {
                    moved = true;
                    self.refresh_routing().await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(QueryError::Internal(
            "the read model kept moving while reading".into(),
        ))
    }

    fn still_valid(&self, entry: &Entry) -> bool {
        entry
            .buckets
            .iter()
            .all(|b| self.buckets[*b as usize].load(Ordering::SeqCst) <= entry.seq)
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

    pub fn rows(&self) -> &Arc<dyn ReadStore> {
        &self.rows
    }

    /// The number of answers cached right now.
    pub fn cached_entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// The bytes of answers cached right now, as the cache weighs them.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}

impl RunnerObserver for QueryService {
    fn applied(
        &self,
        projection: &str,
        generation: u32,
        checkpoint: u64,
        changed: &[RowKey],
        lags: &[Duration],
    ) {
        // A runner still writing a generation that is no longer served
        // (a rebuild replaced it) must not vouch for the served one.
        if self.generation(projection) != generation {
            return;
        }
        if !changed.is_empty() {
            let seq = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
            for key in changed {
                self.buckets[bucket(&key.table, &key.partition)].fetch_max(seq, Ordering::SeqCst);
            }
        }
        if let Some(tx) = self.checkpoints.get(projection) {
            tx.send_if_modified(|c| {
                let moved = checkpoint > *c;
                *c = (*c).max(checkpoint);
                moved
            });
        }
        let histogram = self.metrics.projection_lag.with_label_values(&[projection]);
        for lag in lags {
            histogram.observe(lag.as_secs_f64());
        }
    }

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        let previous = self
            .routing
            .write()
            .ok()
            .and_then(|mut routing| routing.insert(projection.to_string(), generation));
        if previous == Some(generation) {
            return;
        }
        if let Some(tx) = self.checkpoints.get(projection) {
            tx.send_if_modified(|c| {
                let moved = checkpoint > *c;
                *c = (*c).max(checkpoint);
                moved
            });
        }
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
        self.metrics
            .dead_letters
            .with_label_values(&[projection])
            .inc();
        tracing::error!(
            projection,
            position = event.position,
            error,
            "event set aside"
        );
    }
}

/// A page of a list, as every list endpoint answers.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Opaque list cursors: the last clustering key of a page, hex-encoded.
pub mod cursor {
    pub fn encode(clustering: &str) -> String {
        hex::encode(clustering)
    }

    pub fn decode(cursor: &str) -> Option<String> {
        String::from_utf8(hex::decode(cursor).ok()?).ok()
    }
}

/// `limit` as lists take it: 1 to 100, 20 by default.
pub fn limit(raw: Option<usize>) -> Result<usize, QueryError> {
    match raw {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(QueryError::Invalid(
            "limit must be between 1 and 100".into(),
        )),
    }
}

/// A row's document cell.
pub(crate) fn doc(row: &Row) -> Result<&Json, QueryError> {
    row.cell(shopstream_projections::DOC)
        .ok_or_else(|| QueryError::Internal("a row without its document".into()))
}

/// Scans a partition page by page into an answer with a cursor.
pub(crate) async fn page(
    reader: &mut Reader<'_>,
    table: &str,
    partition: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Json>, QueryError> {
    let after = match cursor {
        Some(c) => Some(
            cursor::decode(c).ok_or_else(|| QueryError::Invalid("cursor is not valid".into()))?,
        ),
        None => None,
    };
    let mut rows = reader
        .scan(table, partition, after.as_deref(), limit + 1)
        .await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(ck, _)| cursor::encode(ck))
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|(_, row)| doc(row).cloned())
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}
