//! The embedded read store: its own SQLite file (WAL) serving all three
//! read-side ports; one SQLite table per logical table and generation, rows
//! stored as their cells in JSON.
//!
//! Read models can always be rebuilt from the event store, so the file runs
//! with `synchronous=NORMAL`: a power cut may lose the last commits. A
//! batch's rows commit before the checkpoint that covers them, and the WAL
//! keeps commits in order, so what survives never has a checkpoint ahead of
//! its rows; lost batches are applied again.
//!
//! # Layout
//! - [`rows`]: the [`RowStore`](super::RowStore): rows, scans, batches.
//! - [`registry`]: the [`ProjectionRegistry`](super::ProjectionRegistry).
//! - [`coordination`]: leases and dead letters.

mod coordination;
mod registry;
mod rows;

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::ReadStoreError;
use crate::Durability;
use crate::error::cause;
use crate::sqlite::{ReadPool, open_prepared};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS projections (
    name             TEXT PRIMARY KEY,
    version          INTEGER NOT NULL,
    generation       INTEGER NOT NULL,
    checkpoint       INTEGER NOT NULL,
    tables           TEXT    NOT NULL, -- JSON array of logical table names
    failure          TEXT,
    paused           INTEGER NOT NULL DEFAULT 0,
    next_generation  INTEGER NOT NULL,
    build_version    INTEGER,
    build_generation INTEGER,
    build_checkpoint INTEGER,
    build_tables     TEXT,
    -- The furthest any applied event reached (a partitioned feed applies
    -- some partitions ahead of the checkpoint): a rebuild may only take
    -- over once it is at least this far.
    high             INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS partition_progress (
    projection TEXT    NOT NULL,
    generation INTEGER NOT NULL,
    partition  INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (projection, generation, partition)
);
CREATE TABLE IF NOT EXISTS dead_letters (
    projection TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    event_id   TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    at         TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    status     TEXT    NOT NULL DEFAULT 'open',
    generation INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (projection, event_id)
);
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL,
    position   INTEGER NOT NULL DEFAULT 0
);
";

/// The embedded read store: rows, registry and coordination in one file.
#[derive(Clone)]
pub struct SqliteReadStore {
    writer: Arc<Mutex<Connection>>,
    reads: ReadPool,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ReadStoreError {
    ReadStoreError::Unavailable(cause(e))
}

fn sql_err(e: rusqlite::Error) -> ReadStoreError {
    if let rusqlite::Error::SqliteFailure(_, Some(message)) = &e
        && let Some(table) = message.strip_prefix("no such table: ")
    {
        return ReadStoreError::NoSuchTable(table.to_string());
    }
    unavailable(e)
}

fn corrupt(e: serde_json::Error) -> ReadStoreError {
    ReadStoreError::Corrupt(cause(e))
}

/// Table names are spliced into SQL: only lower-case letters, digits and
/// underscores.
fn valid_table(name: &str) -> Result<(), ReadStoreError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(ReadStoreError::Invalid(format!(
            "invalid table name {name:?}"
        )))
    }
}

impl SqliteReadStore {
    /// Opens (creating if needed) the read store in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadStoreError> {
        let path = path.as_ref().to_path_buf();
        crate::files::private_file(&path).map_err(unavailable)?;
        let conn = open_prepared(&path, Durability::Os, |conn| {
            conn.execute_batch(SCHEMA)?;
            // Files made before partitioned feeds lack the `high` column.
            let has_high = conn
                .prepare("SELECT 1 FROM pragma_table_info('projections') WHERE name = 'high'")
                .and_then(|mut q| q.exists([]))?;
            if !has_high {
                conn.execute_batch(
                    "ALTER TABLE projections ADD COLUMN high INTEGER NOT NULL DEFAULT 0",
                )?;
            }
            // Files made before dead letters could be retried or skipped,
            // or resolved by a rebuild.
            for (column, definition) in [
                ("status", "TEXT NOT NULL DEFAULT 'open'"),
                ("generation", "INTEGER NOT NULL DEFAULT 0"),
            ] {
                let has = conn
                    .prepare("SELECT 1 FROM pragma_table_info('dead_letters') WHERE name = ?1")
                    .and_then(|mut q| q.exists([column]))?;
                if !has {
                    conn.execute_batch(&format!(
                        "ALTER TABLE dead_letters ADD COLUMN {column} {definition}"
                    ))?;
                }
            }
            Ok(())
        })
        .map_err(unavailable)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(conn)),
            reads: ReadPool::sized_for_machine(path),
        })
    }

    /// Runs `f` on the writer connection, off the async threads.
    async fn write<T, F>(&self, f: F) -> Result<T, ReadStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ReadStoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| ReadStoreError::Unavailable(cause("writer lock poisoned")))?;
            f(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }

    /// Runs `f` on one of the reader connections.
    async fn read<T, F>(&self, f: F) -> Result<T, ReadStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ReadStoreError> + Send + 'static,
    {
        self.reads.blocking(f).await.map_err(sql_err)?
    }
}
