//! What both embedded stores share: opening SQLite files the same way and a
//! small pool of read connections used from blocking tasks.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Opens a connection for writing, in WAL mode, with the given durability.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
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
    Ok(conn)
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

/// Read connections kept open between uses, at most `size` at work at
/// once. Async callers queue for a permit before taking a blocking thread,
/// so a burst of reads waits its turn on a few warm connections instead of
/// opening (and memory-mapping) a new connection per blocking thread: more
/// concurrent SQLite reads than a few per core only add memory and system
/// time.
#[derive(Clone)]
pub(crate) struct ReadPool {
    path: Arc<PathBuf>,
    idle: Arc<Mutex<Vec<Connection>>>,
    max_idle: usize,
    permits: Arc<tokio::sync::Semaphore>,
}

impl ReadPool {
    pub(crate) fn new(path: PathBuf, size: usize) -> Self {
        Self {
            path: Arc::new(path),
            idle: Arc::new(Mutex::new(Vec::new())),
            max_idle: size,
            permits: Arc::new(tokio::sync::Semaphore::new(size)),
        }
    }

    /// A pool sized for this machine: four connections per core, 4 to 32.
    pub(crate) fn sized_for_machine(path: PathBuf) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self::new(path, (cores * 4).clamp(4, 32))
    }

    /// Runs `f` with a read connection, on the calling (blocking) thread.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let conn = match pooled {
            Some(c) => c,
            None => open_reader(&self.path)?,
        };
        let result = f(&conn);
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(conn);
        }
        result
    }

    /// Runs `f` with a read connection on tokio's blocking pool, once one
    /// of the pool's permits is free.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> rusqlite::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> T + Send + 'static,
    {
        let failed = |why: String| {
            rusqlite::Error::ToSqlConversionFailure(Box::new(std::io::Error::other(why)))
        };
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| failed(format!("read pool closed: {e}")))?;
        let pool = self.clone();
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            pool.with(|conn| Ok(f(conn)))
        });
        match task.await {
            Ok(r) => r,
            Err(join) => Err(failed(format!("read task failed: {join}"))),
        }
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
