//! What both embedded stores share: opening SQLite files the same way and a
//! small pool of reader threads, each with its own connection.

use std::ffi::c_int;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{Connection, OpenFlags};

/// How hard a commit tries to reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Every commit is fsynced before it is acknowledged: survives power loss.
    #[default]
    Fsync,
    /// Commits reach the operating system before they are acknowledged:
    /// survive a crash of the process, not of the machine.
    Os,
}

/// How long a connection waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection for writing, in WAL mode, with the given durability;
/// with [`Durability::Os`], its checkpoints run on a thread of their own.
fn open_writer(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match durability {
            Durability::Fsync => "FULL",
            Durability::Os => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "cache_size", -16_000)?;
    conn.set_prepared_statement_cache_capacity(64);
    if durability == Durability::Os {
        checkpoint_aside(&mut conn, path)?;
    }
    Ok(conn)
}

/// A connection for [`checkpoint_aside`]'s thread. It checkpoints only once
/// it has seen that the file is in WAL mode (before that its checkpoints
/// do nothing): asking for the mode is the cheapest look.
fn open_for_checkpoints(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    Ok(conn)
}

/// WAL pages after which a commit asks for a checkpoint (SQLite's own
/// automatic threshold).
const CHECKPOINT_PAGES: c_int = 1000;

/// WAL pages past which the writer checkpoints itself, as SQLite would on
/// its own: the bound on the WAL should the checkpoint thread fall behind.
const CHECKPOINT_PAGES_MAX: c_int = 64 * CHECKPOINT_PAGES;

/// Bytes of WAL file kept when the log starts over: one that grew while
/// the checkpoint thread caught up is cut back to this, not kept at its
/// largest (SQLite reuses the file and never shrinks it otherwise).
const WAL_KEPT_BYTES: i64 = 16 << 20;

/// Moves the writer's automatic checkpoints onto a thread of their own.
///
/// SQLite checkpoints in the commit that takes the WAL past 1,000 pages:
/// the committing writer copies the WAL into the database and waits for
/// the fsync that ends the copy. Where commits do not fsync (the read
/// store), that fsync is the writer's only wait, and a rebuild of the read
/// models spent most of its waits there. Here that commit only nudges the
/// checkpoint thread, which runs a passive checkpoint (it never blocks the
/// writer or readers) on its own connection; the writer goes on at once.
/// Durability is unchanged: a commit is durable in the WAL, and a crash
/// before a checkpoint recovers from it.
///
/// Not where every commit fsyncs (the event store by default): there the
/// thread's fsync of the database competed with the group commit's fsync
/// of the WAL on the same disk, and 64 writers appended ×0.78 as many
/// events (30,600 against 39,500 events/s, interleaved, same run).
///
/// The thread ends with the writer connection, whose hook holds the only
/// sender. Should it fall behind (or not start), the writer checkpoints
/// itself past [`CHECKPOINT_PAGES_MAX`].
fn checkpoint_aside(conn: &mut Connection, path: &Path) -> rusqlite::Result<()> {
    let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
    let path = path.to_path_buf();
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            // Opened on the first nudge, and again on the next one after a
            // failure (another process recovering the WAL as this one
            // starts, say).
            let mut conn: Option<Connection> = None;
            while nudged.recv().is_ok() {
                let c = match conn.take().map_or_else(|| open_for_checkpoints(&path), Ok) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, path = %path.display(), "cannot open a connection for checkpoints");
                        continue;
                    }
                };
                // Busy: another process's checkpoint is under way, which
                // does the same work.
                if let Err(e) = c.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE)
                    && e.sqlite_error_code() != Some(rusqlite::ErrorCode::DatabaseBusy)
                {
                    tracing::warn!(error = %e, path = %path.display(), "checkpoint failed");
                }
                conn = Some(c);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a SQLite checkpoint thread");
    }
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT_BYTES)?;
    conn.wal_hook(Some(move |wal: &mut Wal, pages: c_int| {
        if pages >= CHECKPOINT_PAGES_MAX {
            // The thread is behind or gone: do what SQLite would.
            let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
        } else if pages >= CHECKPOINT_PAGES {
            // Full: a nudge is already waiting.
            let _ = nudge.try_send(());
        }
        Ok(())
    }))
}

/// Opens a writing connection and brings its schema up with `prepare`,
/// trying again while the file is busy in a way SQLite's busy handler does
/// not wait out (another process recovering the WAL, or checkpointing, the
/// moment this one opens: several processes starting together on one data
/// directory), for as long as the busy timeout.
pub(crate) fn open_prepared(
    path: &Path,
    durability: Durability,
    prepare: impl Fn(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<Connection> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    let mut pause = Duration::from_millis(5);
    loop {
        let opened = open_writer(path, durability).and_then(|conn| {
            prepare(&conn)?;
            Ok(conn)
        });
        match opened {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// Opens a read-only connection to a file a writer has created.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "cache_size", -2_000)?;
    // Reads map the file instead of copying pages through syscalls; the
    // pages are the operating system's page cache, shared, not our heap.
    conn.pragma_update(None, "mmap_size", 1i64 << 30)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// A job for a reader thread: given its connection, or why it could not
/// be opened.
type Job = Box<dyn FnOnce(rusqlite::Result<&Connection>) + Send>;

/// A fixed set of reader threads, each with its own connection, taking
/// reads from one queue in arrival order. Async callers queue their read
/// and await its answer; a burst of reads waits its turn on a few warm
/// connections instead of opening (and memory-mapping) one per blocking
/// thread: more concurrent SQLite reads than a few per core only add
/// memory and system time. A connection never changes threads, so the
/// memory SQLite allocates for it is freed by the thread that allocated
/// it, and the pool's thread count does not grow with load (on tokio's
/// blocking pool it did, and every idle thread kept some heap).
///
/// The threads end when the last clone of the pool is dropped.
#[derive(Clone)]
pub(crate) struct ReadPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, size: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..size.max(1) {
            let (queue, path) = (queue.clone(), path.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("sqlite-read-{n}"))
                .spawn(move || reader(&path, &queue));
            if let Err(e) = spawned {
                // Fewer threads serve the same queue; none would make every
                // read wait forever, hence the `max(1)` and this log line.
                tracing::error!(error = %e, "cannot start a SQLite reader thread");
            }
        }
        Self { jobs }
    }

    /// A pool sized for this machine: four connections per core, 4 to 32.
    pub(crate) fn sized_for_machine(path: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(path, (cores * 4).clamp(4, 32))
    }

    /// Runs `f` on one of the pool's reader threads with its connection,
    /// once every read queued before it has been taken. A caller that stops
    /// waiting before its turn costs nothing: its read is skipped.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> T + Send + 'static,
    {
        let failed = |why: &str| {
            rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(why)))
        };
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(conn.map(f));
        });
        self.jobs
            .send(job)
            .map_err(|_| failed("no SQLite reader thread is running"))?;
        answered
            .await
            .map_err(|_| failed("a SQLite read failed on its thread"))?
    }

    /// [`Self::blocking`] for a read that can fail.
    pub(crate) async fn run<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.blocking(f).await?
    }
}

/// One reader thread: opens its connection on first use (again after a
/// failed open) and runs jobs until the pool is dropped. A job that panics
/// answers nobody (its caller sees an error) and the thread goes on.
fn reader(path: &Path, queue: &Mutex<std::sync::mpsc::Receiver<Job>>) {
    let mut conn: Option<Connection> = None;
    loop {
        // The lock is held only while waiting for the next job: one thread
        // waits on the channel, the others on the lock.
        let Some(job) = queue.lock().ok().and_then(|queue| queue.recv().ok()) else {
            return;
        };
        let opened = match conn.take() {
            Some(c) => Ok(c),
            None => open_reader(path),
        };
        match opened {
            Ok(c) => {
                let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&c))));
                if ran.is_err() {
                    tracing::error!("a SQLite read panicked; its caller got an error");
                }
                conn = Some(c);
            }
            Err(e) => job(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer with checkpoints beside it on `wal.sqlite` in a fresh
    /// directory, with an empty table `t`.
    fn writer() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let conn = open_writer(&dir.path().join("wal.sqlite"), Durability::Os).expect("a writer");
        conn.execute_batch("CREATE TABLE t (v BLOB NOT NULL)")
            .expect("a table");
        (dir, conn)
    }

    /// One commit of `pages` rows of about a page each.
    fn commit_pages(conn: &mut Connection, pages: i64) {
        let tx = conn.transaction().expect("a transaction");
        for _ in 0..pages {
            tx.execute("INSERT INTO t (v) VALUES (zeroblob(4000))", [])
                .expect("a row");
        }
        tx.commit().expect("the commit");
    }

    /// Checkpoints moved off the writer still happen: a commit that takes
    /// the WAL past the threshold reaches the database file, whose size
    /// only a checkpoint grows.
    #[test]
    fn a_commit_past_the_threshold_reaches_the_database_file() {
        let (dir, mut conn) = writer();
        let path = dir.path().join("wal.sqlite");
        let before = std::fs::metadata(&path).expect("the file").len();
        commit_pages(&mut conn, i64::from(CHECKPOINT_PAGES) + 200);
        let wanted = before + CHECKPOINT_PAGES as u64 * 4000;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        // Polls the file: nothing else tells when a checkpoint has run.
        while std::fs::metadata(&path).expect("the file").len() < wanted {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL never reached the database file"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(conn);
    }

    /// A WAL that grew past the size kept is cut back once it starts over.
    #[test]
    fn a_grown_wal_is_cut_back_when_it_starts_over() {
        let (dir, mut conn) = writer();
        commit_pages(&mut conn, 2 * WAL_KEPT_BYTES / 4000);
        let wal = dir.path().join("wal.sqlite-wal");
        let grown = std::fs::metadata(&wal).expect("the WAL").len();
        assert!(grown > WAL_KEPT_BYTES as u64, "the WAL grew: {grown} bytes");
        // The log starts over at the first commit after a checkpoint has
        // taken all of it into the database; nothing tells when that is,
        // so commit until it has happened.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            conn.execute("INSERT INTO t (v) VALUES (zeroblob(10))", [])
                .expect("a row");
            let kept = std::fs::metadata(&wal).expect("the WAL").len();
            if kept <= WAL_KEPT_BYTES as u64 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was never cut back: {kept} bytes after {grown}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
