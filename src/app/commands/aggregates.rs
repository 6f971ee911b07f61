//! Aggregates as the command side sees them: folded from their stream,
//! kept in a moka cache with the revision they were folded to, so a command
//! does not replay its stream; only a tail read brings a stale copy up to
//! date.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::Arc;

use shopstream_domain::{Aggregate, EventSet, stream_name};
use shopstream_infra::event_store::{Direction, EventStore};

use super::CommandError;

/// An aggregate's state as of one revision of its stream.
#[derive(Debug, Clone)]
pub struct Snapshot<A> {
    pub stream: String,
    pub state: A,
    /// The revision of the last event folded in (None: no stream yet).
    pub revision: Option<u64>,
    /// A position at or after the last event folded in (0: none).
    pub position: u64,
}

/// A stream's revision once `events` more are appended to it at
/// `revision` (None: no stream yet).
pub fn revision_after(revision: Option<u64>, events: usize) -> Option<u64> {
    match (revision, events as u64) {
        (r, 0) => r,
        (None, n) => Some(n - 1),
        (Some(r), n) => Some(r + n),
    }
}

impl<A> Snapshot<A> {
    /// The stream's revision once `events` more are appended to it.
    pub fn revision_after(&self, events: usize) -> Option<u64> {
        revision_after(self.revision, events)
    }
}

impl<A: Aggregate> Snapshot<A> {
    fn empty(stream: String) -> Self {
        Self {
            stream,
            state: A::default(),
            revision: None,
            position: 0,
        }
    }
}

/// The states of several snapshots, by the same keys.
pub fn states<K: Ord + Clone, A: Clone>(snapshots: &BTreeMap<K, Snapshot<A>>) -> BTreeMap<K, A> {
    snapshots
        .iter()
        .map(|(k, s)| (k.clone(), s.state.clone()))
        .collect()
}

const PAGE: usize = 512;

/// The aggregate cache: stream name → snapshot, of whichever aggregate type
/// the stream's category holds.
#[derive(Clone)]
pub struct AggregateCache {
    cache: moka::sync::Cache<String, Arc<dyn Any + Send + Sync>>,
    store: Arc<dyn EventStore>,
}

impl AggregateCache {
    pub fn new(store: Arc<dyn EventStore>, capacity: u64) -> Self {
        Self {
            cache: moka::sync::Cache::new(capacity),
            store,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The cached snapshot, or the stream folded from the store.
    pub async fn load<A: Aggregate>(&self, id: impl Display) -> Result<Snapshot<A>, CommandError> {
        let stream = stream_name::<A>(id);
        if let Some(cached) = self.cached::<A>(&stream) {
            return Ok(cached);
        }
        self.catch_up(Snapshot::empty(stream)).await
    }

    /// The snapshot brought up to the stream's current end.
    pub async fn load_fresh<A: Aggregate>(
        &self,
        id: impl Display,
    ) -> Result<Snapshot<A>, CommandError> {
        let stream = stream_name::<A>(id);
        let base = self
            .cached::<A>(&stream)
            .unwrap_or_else(|| Snapshot::empty(stream));
        self.catch_up(base).await
    }

    fn cached<A: Aggregate>(&self, stream: &str) -> Option<Snapshot<A>> {
        self.cache
            .get(stream)
            .and_then(|any| any.downcast_ref::<Snapshot<A>>().cloned())
    }

    pub fn put<A: Aggregate>(&self, snapshot: Snapshot<A>) {
        self.cache
            .insert(snapshot.stream.clone(), Arc::new(snapshot));
    }

    /// Folds every event after the snapshot's revision into it and caches
    /// the result when it moved.
    async fn catch_up<A: Aggregate>(
        &self,
        mut snapshot: Snapshot<A>,
    ) -> Result<Snapshot<A>, CommandError> {
        let start = snapshot.revision;
        loop {
            let from = snapshot.revision.map_or(0, |r| r + 1);
            let events = self
                .store
                .read_stream(&snapshot.stream, Some(from), Direction::Forward, PAGE)
                .await?;
            for recorded in &events {
                let event = A::Event::decode(
                    &recorded.event_type,
                    recorded.schema_version,
                    recorded.data.get().as_bytes(),
                )?;
                snapshot.state.evolve(&event);
                snapshot.revision = Some(recorded.revision);
                snapshot.position = snapshot.position.max(recorded.position);
            }
            if events.len() < PAGE {
                break;
            }
        }
        if snapshot.revision != start || start.is_none() {
            self.put(snapshot.clone());
        }
        Ok(snapshot)
    }

    /// Whether the stream has events after `revision`, catching the cache
    /// up if so.
    pub async fn moved_on<A: Aggregate>(
        &self,
        stream: &str,
        revision: Option<u64>,
    ) -> Result<bool, CommandError> {
        let base = self
            .cached::<A>(stream)
            .filter(|s| s.revision == revision)
            .unwrap_or_else(|| Snapshot::empty(stream.to_string()));
        let fresh = self.catch_up(base).await?;
        Ok(fresh.revision != revision)
    }
}
