//! The answer cache: ready-to-send answers by key, never older than the
//! read model (see the module above), and concurrent misses of one key
//! sharing one build.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use shopstream_infra::read_store::{ReadStoreError, Row, RowKey};

use super::{Answer, QueryError, QueryService};

pub(super) const BUCKETS: usize = 1 << 16;

pub(super) struct Entry {
    pub(super) answer: Answer,
    /// The sequence number when its reading started.
    seq: u64,
    buckets: Vec<u32>,
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

pub(super) fn bucket(table: &str, partition: &str) -> usize {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    table.hash(&mut hasher);
    partition.hash(&mut hasher);
    (hasher.finish() as usize) % BUCKETS
}

impl QueryService {
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
                    .map_err(|_| QueryError::Poisoned)?
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
        Err(QueryError::Unsettled)
    }

    fn still_valid(&self, entry: &Entry) -> bool {
        entry
            .buckets
            .iter()
            .all(|b| self.buckets[*b as usize].load(Ordering::SeqCst) <= entry.seq)
    }

    /// Marks every partition of `changed` as written after everything
    /// cached so far: answers built from them before are misses from now.
    pub(super) fn invalidate(&self, changed: &[RowKey]) {
        if changed.is_empty() {
            return;
        }
        let seq = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        for key in changed {
            self.buckets[bucket(&key.table, &key.partition)].fetch_max(seq, Ordering::SeqCst);
        }
    }

    /// The bytes of answers cached right now, as the cache weighs them.
    pub fn cached_bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }
}
