//! The embedded event store: one SQLite file in WAL mode.
//!
//! One writer thread per process does group commit: it takes every append
//! waiting in its queue, writes them in one transaction (each in its own
//! savepoint, so a conflict fails only that append) and commits once, which
//! is one fsync for the lot; only then does it answer each caller. While it
//! waits on the disk, the next appends queue up and form the next group.
//!
//! Several processes may open the same file. SQLite lets one transaction
//! write at a time, and the writer re-reads every stream's revision inside
//! its write transaction, so expectations hold across processes; the
//! `UNIQUE(stream, revision)` index is the last guard. Because writes are
//! serialised, positions become visible in order (here they are even
//! consecutive, which the port does not promise). Subscribers learn of commits from this process at once and of other
//! processes' commits by polling SQLite's cheap `data_version`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use super::{
    AllSlice, AppendError, Appended, Direction, EventFilter, EventStore, ExpectedRevision,
    Metadata, RecordedEvent, StoreError, StreamAppended, StreamWrite, Subscription,
};
use crate::error::cause;
pub use crate::sqlite::Durability;
use crate::sqlite::{ReadPool, open_prepared, open_reader};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position       INTEGER PRIMARY KEY,
    stream         TEXT    NOT NULL,
    revision       INTEGER NOT NULL,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL, -- microseconds since the Unix epoch, never decreasing
    data           TEXT    NOT NULL, -- JSON
    correlation_id TEXT,
    causation_id   TEXT,
    actor          TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS events_stream_revision ON events (stream, revision);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events (event_id);
CREATE INDEX IF NOT EXISTS events_type_position ON events (event_type, position);
-- For analysts reading the file with SQL: times as RFC 3339 text.
CREATE VIEW IF NOT EXISTS recorded_events AS
    SELECT position, stream, revision, event_id, event_type, schema_version,
           strftime('%Y-%m-%dT%H:%M:%fZ', recorded_at / 1000000.0, 'unixepoch') AS recorded_at,
           data, correlation_id, causation_id, actor
    FROM events;
";

const COLUMNS: &str = "position, stream, revision, event_id, event_type, schema_version, \
                       recorded_at, data, correlation_id, causation_id, actor";

/// Tuning of the embedded event store.
#[derive(Debug, Clone)]
pub struct SqliteEventStoreOptions {
    pub durability: Durability,
    /// The most appends committed in one transaction.
    pub max_batch: usize,
    /// How often to look for commits made by other processes while someone
    /// is subscribed.
    pub poll_interval: Duration,
    /// Who hears how each group commit went (metrics).
    pub commits: Option<CommitObserver>,
}

impl Default for SqliteEventStoreOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Fsync,
            max_batch: 1024,
            poll_interval: Duration::from_millis(2),
            commits: None,
        }
    }
}

/// Hears each group commit: how many appends it carried and how long its
/// transaction took, the fsync included (the wait every acknowledged
/// append of the group shared).
pub trait GroupCommits: Send + Sync + 'static {
    fn committed(&self, appends: usize, took: Duration);
}

/// A [`GroupCommits`] in the store's options.
#[derive(Clone)]
pub struct CommitObserver(pub Arc<dyn GroupCommits>);

impl std::fmt::Debug for CommitObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitObserver")
    }
}

struct AppendJob {
    writes: Vec<StreamWrite>,
    reply: oneshot::Sender<Result<Appended, AppendError>>,
}

/// The embedded, SQLite-backed [`EventStore`].
#[derive(Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    jobs: mpsc::Sender<AppendJob>,
    reads: ReadPool,
    head: watch::Sender<u64>,
    subscribers: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
    }
}

impl SqliteEventStore {
    /// Opens (creating if needed) the store in `path`.
    pub fn open(
        path: impl AsRef<Path>,
        options: SqliteEventStoreOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        crate::files::private_file(&path).map_err(unavailable)?;
        let writer = open_prepared(&path, options.durability, |conn| conn.execute_batch(SCHEMA))
            .map_err(unavailable)?;
        let head_now = head_of(&writer).map_err(unavailable)?;
        let (head, _) = watch::channel(head_now);
        let (jobs, queue) = mpsc::channel(options.max_batch * 16);
        let subscribers = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicBool::new(false));

        let writer_head = head.clone();
        let (max_batch, commits) = (options.max_batch, options.commits.clone());
        std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || run_writer(writer, queue, writer_head, max_batch, commits))
            .map_err(unavailable)?;

        let poller = Poller {
            conn: open_reader(&path).map_err(unavailable)?,
            head: head.clone(),
            subscribers: subscribers.clone(),
            closed: closed.clone(),
            interval: options.poll_interval,
        };
        std::thread::Builder::new()
            .name("event-store-poller".into())
            .spawn(move || poller.run())
            .map_err(unavailable)?;

        Ok(Self {
            inner: Arc::new(Inner {
                jobs,
                reads: ReadPool::sized_for_machine(path),
                head,
                subscribers,
                closed,
            }),
        })
    }
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(cause(e))
}

fn head_of(conn: &Connection) -> rusqlite::Result<u64> {
    conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|p| p as u64)
}

// ---------------------------------------------------------------- writing

fn run_writer(
    mut conn: Connection,
    mut queue: mpsc::Receiver<AppendJob>,
    head: watch::Sender<u64>,
    max_batch: usize,
    commits: Option<CommitObserver>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let outcomes = commit_group(&mut conn, &batch);
        if let Some(commits) = &commits {
            commits.0.committed(batch.len(), started.elapsed());
        }
        if let Some(last) = outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .filter(|a| !a.replayed)
            .map(|a| a.position)
            .max()
        {
            head.send_if_modified(|h| {
                let moved = last > *h;
                *h = (*h).max(last);
                moved
            });
        }
        for (job, outcome) in batch.drain(..).zip(outcomes) {
            // The caller may have given up waiting; its append stands.
            let _ = job.reply.send(outcome);
        }
    }
    // Every sender is gone: all queued appends were committed and answered.
}

/// Writes a group of appends in one transaction; one outcome per append.
///
/// Each append's expectations are checked before any of its events is
/// written, so the common path needs no savepoint. Only if an insert fails
/// after its checks passed (which the write lock makes a bug or an I/O
/// error) is the group written again with a savepoint around each append,
/// so that failure stays its own.
fn commit_group(conn: &mut Connection, batch: &[AppendJob]) -> Vec<Result<Appended, AppendError>> {
    match write_group(conn, batch, false) {
        Ok(outcomes) => outcomes,
        Err(GroupFailed::Retry) => match write_group(conn, batch, true) {
            Ok(outcomes) => outcomes,
            Err(GroupFailed::Retry) => unreachable_group(batch, cause("a write failed twice")),
            Err(GroupFailed::Store(e)) => unreachable_group(batch, cause(e)),
        },
        Err(GroupFailed::Store(e)) => unreachable_group(batch, cause(e)),
    }
}

/// Every append of the group fails with the same store error.
fn unreachable_group(
    batch: &[AppendJob],
    why: crate::error::Cause,
) -> Vec<Result<Appended, AppendError>> {
    let err = AppendError::Store(StoreError::Unavailable(why));
    batch.iter().map(|_| Err(err.clone())).collect()
}

enum GroupFailed {
    /// An insert failed after its checks: write the group again, carefully.
    Retry,
    Store(rusqlite::Error),
}

impl From<rusqlite::Error> for GroupFailed {
    fn from(e: rusqlite::Error) -> Self {
        GroupFailed::Store(e)
    }
}

fn write_group(
    conn: &mut Connection,
    batch: &[AppendJob],
    careful: bool,
) -> Result<Vec<Result<Appended, AppendError>>, GroupFailed> {
    let mut tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (mut next_position, mut clock) = match tx
        .query_row(
            "SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1",
            [],
            |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)?)),
        )
        .optional()?
    {
        Some((p, t)) => (p + 1, t),
        None => (1, 0),
    };
    // Recorded times never go backwards, so time ranges map onto positions.
    clock = clock.max(Utc::now().timestamp_micros());

    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        let outcome = match check(&tx, &job.writes) {
            Err(refused) => Err(refused),
            Ok(Checked::Replay(appended)) => Ok(appended),
            Ok(Checked::Fresh(currents)) if careful => {
                let mut sp = tx.savepoint()?;
                let start = next_position;
                match insert(&sp, &job.writes, &currents, &mut next_position, clock) {
                    Ok(appended) => {
                        sp.commit()?;
                        Ok(appended)
                    }
                    Err(e) => {
                        next_position = start;
                        sp.set_drop_behavior(rusqlite::DropBehavior::Rollback);
                        Err(e)
                    }
                }
            }
            Ok(Checked::Fresh(currents)) => {
                match insert(&tx, &job.writes, &currents, &mut next_position, clock) {
                    Ok(appended) => Ok(appended),
                    // Dropping the transaction rolls the whole group back.
                    Err(_) => return Err(GroupFailed::Retry),
                }
            }
        };
        outcomes.push(outcome);
    }
    tx.commit()?;
    Ok(outcomes)
}

fn current_revision(conn: &Connection, stream: &str) -> rusqlite::Result<Option<u64>> {
    conn.prepare_cached(
        "SELECT revision FROM events WHERE stream = ?1 ORDER BY revision DESC LIMIT 1",
    )?
    .query_row([stream], |r| r.get::<_, i64>(0))
    .optional()
    .map(|r| r.map(|r| r as u64))
}

/// Where an event id is stored already, if it is.
fn find_event(conn: &Connection, id: &Uuid) -> rusqlite::Result<Option<(String, u64, u64)>> {
    conn.prepare_cached("SELECT stream, revision, position FROM events WHERE event_id = ?1")?
        .query_row([id.to_string()], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        })
        .optional()
}

fn store_err(e: rusqlite::Error) -> AppendError {
    AppendError::Store(unavailable(e))
}

/// What checking an append found.
enum Checked {
    /// Every expectation holds: the streams' current revisions.
    Fresh(Vec<Option<u64>>),
    /// Every event is stored already: the original outcome.
    Replay(Appended),
}

/// Checks an append's expectations before anything is written. A failed
/// expectation may be a retry of an append that succeeded, so the event ids
/// are looked up only then (or always, for `Any`, which never fails).
fn check(conn: &Connection, writes: &[StreamWrite]) -> Result<Checked, AppendError> {
    if writes.is_empty() {
        return Err(AppendError::Invalid(
            "an append needs at least one stream".into(),
        ));
    }
    if writes.iter().any(|w| w.expected == ExpectedRevision::Any)
        && let Some(replay) = replayed(conn, writes)?
    {
        return Ok(Checked::Replay(replay));
    }
    let mut currents = Vec::with_capacity(writes.len());
    for write in writes {
        let current = current_revision(conn, &write.stream).map_err(store_err)?;
        if !write.expected.holds_for(current) {
            if let Some(replay) = replayed(conn, writes)? {
                return Ok(Checked::Replay(replay));
            }
            return Err(AppendError::Conflict {
                stream: write.stream.clone(),
                expected: write.expected,
                actual: current,
            });
        }
        currents.push(current);
    }
    Ok(Checked::Fresh(currents))
}

/// Writes a checked append's events.
fn insert(
    conn: &Connection,
    writes: &[StreamWrite],
    currents: &[Option<u64>],
    next_position: &mut u64,
    recorded_at: i64,
) -> Result<Appended, AppendError> {
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO events (position, stream, revision, event_id, event_type, \
             schema_version, recorded_at, data, correlation_id, causation_id, actor) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .map_err(store_err)?;
    let mut streams = Vec::with_capacity(writes.len());
    for (write, current) in writes.iter().zip(currents) {
        let mut revision = *current;
        for event in &write.events {
            let next = revision.map_or(0, |r| r + 1);
            let data = std::str::from_utf8(&event.data)
                .map_err(|_| AppendError::Invalid("event data is not UTF-8 JSON".into()))?;
            insert
                .execute(params![
                    *next_position as i64,
                    write.stream,
                    next as i64,
                    event.event_id.to_string(),
                    event.event_type,
                    event.schema_version,
                    recorded_at,
                    data,
                    event.metadata.correlation_id,
                    event.metadata.causation_id,
                    event.metadata.actor,
                ])
                .map_err(|e| unique_violation(e, write, *current))?;
            revision = Some(next);
            *next_position += 1;
        }
        streams.push(StreamAppended {
            stream: write.stream.clone(),
            revision,
        });
    }
    Ok(Appended {
        streams,
        position: *next_position - 1,
        replayed: false,
    })
}

/// The unique indexes are the last guard: a revision taken means a conflict
/// (another writer got there first); an event id taken means the caller
/// reused an id for a different event.
fn unique_violation(e: rusqlite::Error, write: &StreamWrite, current: Option<u64>) -> AppendError {
    match &e {
        rusqlite::Error::SqliteFailure(f, Some(msg))
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            if msg.contains("event_id") {
                AppendError::Invalid("an event id is already used by another event".into())
            } else {
                AppendError::Conflict {
                    stream: write.stream.clone(),
                    expected: write.expected,
                    actual: current,
                }
            }
        }
        _ => store_err(e),
    }
}

/// If every event of this append is stored already (a retried append), the
/// original outcome; if only some are, the append is refused.
fn replayed(conn: &Connection, writes: &[StreamWrite]) -> Result<Option<Appended>, AppendError> {
    // The common case costs one index lookup: the first event is new.
    let Some(first) = writes.iter().flat_map(|w| &w.events).next() else {
        return Ok(None);
    };
    if find_event(conn, &first.event_id)
        .map_err(store_err)?
        .is_none()
    {
        return Ok(None);
    }
    let mut streams = Vec::with_capacity(writes.len());
    let mut position = 0u64;
    for write in writes {
        let mut last = None;
        for event in &write.events {
            match find_event(conn, &event.event_id).map_err(store_err)? {
                Some((stream, revision, pos)) if stream == write.stream => {
                    last = Some(revision);
                    position = position.max(pos);
                }
                _ => {
                    return Err(AppendError::Invalid(
                        "some of these event ids are stored already and some are not".into(),
                    ));
                }
            }
        }
        streams.push(StreamAppended {
            stream: write.stream.clone(),
            revision: last,
        });
    }
    Ok(Some(Appended {
        streams,
        position,
        replayed: true,
    }))
}

// ---------------------------------------------------------------- reading

fn row_to_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let conversion = |i: usize, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let id: String = r.get(3)?;
    let micros: i64 = r.get(6)?;
    let data: String = r.get(7)?;
    Ok(RecordedEvent {
        position: r.get::<_, i64>(0)? as u64,
        stream: r.get(1)?,
        revision: r.get::<_, i64>(2)? as u64,
        event_id: Uuid::parse_str(&id).map_err(|e| conversion(3, Box::new(e)))?,
        event_type: r.get(4)?,
        schema_version: r.get(5)?,
        recorded_at: DateTime::from_timestamp_micros(micros)
            .ok_or_else(|| conversion(6, "recorded_at out of range".into()))?,
        data: RawValue::from_string(data).map_err(|e| conversion(7, Box::new(e)))?,
        metadata: Metadata {
            correlation_id: r.get(8)?,
            causation_id: r.get(9)?,
            actor: r.get(10)?,
        },
    })
}

fn read_err(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) => StoreError::Corrupt(cause(e)),
        other => unavailable(other),
    }
}

/// Reads matching events in `(after, until]`, at most `limit`.
fn read_range(
    conn: &Connection,
    after: u64,
    until: u64,
    filter: &EventFilter,
    limit: usize,
) -> rusqlite::Result<AllSlice> {
    let mut sql = format!("SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?2");
    let mut args: Vec<rusqlite::types::Value> = vec![(after as i64).into(), (until as i64).into()];
    if !filter.types.is_empty() {
        let marks: Vec<String> = filter
            .types
            .iter()
            .map(|t| {
                args.push(t.clone().into());
                format!("?{}", args.len())
            })
            .collect();
        sql.push_str(&format!(" AND event_type IN ({})", marks.join(",")));
    }
    if let Some(prefix) = &filter.stream_prefix {
        args.push(prefix.clone().into());
        sql.push_str(&format!(
            " AND substr(stream, 1, length(?{0})) = ?{0}",
            args.len()
        ));
    }
    sql.push_str(&format!(" ORDER BY position LIMIT {limit}"));
    let mut stmt = conn.prepare_cached(&sql)?;
    let events = stmt
        .query_map(rusqlite::params_from_iter(args), row_to_event)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let scanned_to = if events.len() < limit {
        until
    } else {
        events.last().map_or(until, |e| e.position)
    };
    Ok(AllSlice { events, scanned_to })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, writes: Vec<StreamWrite>) -> Result<Appended, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(AppendJob { writes, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.to_string();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.inner
            .reads
            .run(move |conn| {
                let (sql, from) = match direction {
                    Direction::Forward => (
                        format!(
                            "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision >= ?2 \
                             ORDER BY revision LIMIT ?3"
                        ),
                        from.map_or(0, |f| f as i64),
                    ),
                    Direction::Backward => (
                        format!(
                            "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND revision <= ?2 \
                             ORDER BY revision DESC LIMIT ?3"
                        ),
                        from.map_or(i64::MAX, |f| f.min(i64::MAX as u64) as i64),
                    ),
                };
                conn.prepare_cached(&sql)?
                    .query_map(params![stream, from, limit], row_to_event)?
                    .collect()
            })
            .await
            .map_err(read_err)
    }

    async fn read_all(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        let filter = filter.clone();
        let limit = limit.max(1);
        self.inner
            .reads
            .run(move |conn| {
                let until = head_of(conn)?;
                read_range(conn, after, until, &filter, limit)
            })
            .await
            .map_err(read_err)
    }

    async fn subscribe_all(
        &self,
        after: u64,
        filter: EventFilter,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        self.inner.subscribers.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(SqliteSubscription {
            store: self.clone(),
            after,
            filter,
            head: self.inner.head.subscribe(),
            batch: 1024,
        }))
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.inner.reads.run(head_of).await.map_err(read_err)
    }

    async fn count_after(&self, after: u64, cap: u64) -> Result<u64, StoreError> {
        let cap = cap.min(i64::MAX as u64) as i64;
        self.inner
            .reads
            .run(move |conn| {
                conn.prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE position > ?1 LIMIT ?2)",
                )?
                .query_row(params![after.min(i64::MAX as u64) as i64, cap], |r| {
                    r.get::<_, i64>(0)
                })
                .map(|n| n as u64)
            })
            .await
            .map_err(read_err)
    }
}

// ---------------------------------------------------------------- subscribing

struct SqliteSubscription {
    store: SqliteEventStore,
    after: u64,
    filter: EventFilter,
    head: watch::Receiver<u64>,
    batch: usize,
}

impl Drop for SqliteSubscription {
    fn drop(&mut self) {
        self.store.inner.subscribers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Subscription for SqliteSubscription {
    async fn next(&mut self) -> Result<AllSlice, StoreError> {
        loop {
            let head = *self.head.borrow_and_update();
            if head > self.after {
                let (after, filter, limit) = (self.after, self.filter.clone(), self.batch);
                let slice = self
                    .store
                    .inner
                    .reads
                    .run(move |conn| read_range(conn, after, head, &filter, limit))
                    .await
                    .map_err(read_err)?;
                self.after = slice.scanned_to;
                return Ok(slice);
            }
            self.head.changed().await.map_err(|_| StoreError::Closed)?;
        }
    }
}

/// Watches the file for commits by other processes and moves the head.
struct Poller {
    conn: Connection,
    head: watch::Sender<u64>,
    subscribers: Arc<AtomicUsize>,
    closed: Arc<AtomicBool>,
    interval: Duration,
}

impl Poller {
    fn run(self) {
        let idle_interval = Duration::from_millis(50);
        let mut version: Option<i64> = None;
        loop {
            if self.closed.load(Ordering::SeqCst) {
                return;
            }
            let subscribed = self.subscribers.load(Ordering::SeqCst) > 0;
            std::thread::sleep(if subscribed {
                self.interval
            } else {
                idle_interval
            });
            if !subscribed {
                continue;
            }
            let Ok(now) = self
                .conn
                .query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
            else {
                continue;
            };
            if version == Some(now) {
                continue;
            }
            version = Some(now);
            if let Ok(position) = head_of(&self.conn) {
                self.head.send_if_modified(|h| {
                    let moved = position > *h;
                    *h = (*h).max(position);
                    moved
                });
            }
        }
    }
}
