//! What a projection is: a name, a version, its tables, the event types it
//! reads, and a deterministic function from one recorded event (and the
//! projection's own rows it asks for) to row writes.

use chrono::{DateTime, Utc};
use shopstream_domain::{DecodeError, EventSet};

use crate::row::{Row, RowKey, RowWrite};

/// A recorded event as projections see it: the store's envelope with the
/// event data still as JSON bytes.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub position: u64,
    pub event_type: &'a str,
    pub schema_version: u16,
    pub recorded_at: DateTime<Utc>,
    pub data: &'a [u8],
}

impl Envelope<'_> {
    /// The stream's category: `order` for `order-<id>`.
    pub fn category(&self) -> &str {
        self.stream.split_once('-').map_or(self.stream, |(c, _)| c)
    }

    /// The stream's id: `<id>` for `order-<id>`.
    pub fn stream_id(&self) -> &str {
        self.stream.split_once('-').map_or("", |(_, id)| id)
    }

    /// The domain event this envelope holds.
    pub fn decode<E: EventSet>(&self) -> Result<E, DecodeError> {
        E::decode(self.event_type, self.schema_version, self.data)
    }
}

/// Why a projection could not turn an event into writes.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// The projection needs these rows first; the runner fetches them and
    /// calls again. Not a failure.
    #[error("rows needed: {0:?}")]
    Need(Vec<RowKey>),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The event contradicts the rows (a bug, or a corrupt store).
    #[error("cannot apply: {0}")]
    Inconsistent(String),
}

/// The projection's own rows, as of just before the event.
pub trait RowSource {
    /// The row at `key`: `Ok(None)` when it does not exist, `Err(Need)`
    /// when the source has not fetched it yet.
    fn get(&self, key: &RowKey) -> Result<Option<&Row>, ProjectionError>;
}

/// Asks for several rows at once, so the runner fetches them together.
pub fn get_all<'r>(
    rows: &'r dyn RowSource,
    keys: &[RowKey],
) -> Result<Vec<Option<&'r Row>>, ProjectionError> {
    let mut missing = Vec::new();
    let mut found = Vec::with_capacity(keys.len());
    for key in keys {
        match rows.get(key) {
            Ok(row) => found.push(row),
            Err(ProjectionError::Need(more)) => missing.extend(more),
            Err(other) => return Err(other),
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(ProjectionError::Need(missing))
    }
}

pub trait Projection: Send + Sync + 'static {
    /// Stable name, used in URLs and the admin view.
    fn name(&self) -> &'static str;

    /// Bumped whenever the rows this code writes would differ: a new
    /// version is rebuilt from the start into fresh tables.
    fn version(&self) -> u32;

    /// The logical tables it writes (and only it).
    fn tables(&self) -> &'static [&'static str];

    /// The tables among its own it looks rows up in (the others it only
    /// writes). A rebuild keeps these rows in memory; a lookup in another
    /// table still works, from the store.
    fn reads(&self) -> &'static [&'static str] {
        self.tables()
    }

    /// The event types it reads; others are never given to it. Empty:
    /// every event, whatever its type.
    fn event_types(&self) -> Vec<&'static str>;

    /// The writes for one event, given its own rows on demand.
    fn apply(
        &self,
        event: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError>;
}
