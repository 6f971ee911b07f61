//! The embedded read store: its own SQLite file (WAL), one SQLite table per
//! logical table and generation, rows stored as their cells in JSON.
//!
//! Read models can always be rebuilt from the event store, and each batch
//! commits together with its checkpoint, so the file runs with
//! `synchronous=NORMAL`: a power cut may lose the last batches, and their
//! checkpoint with them, so they are applied again.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{
    Applied, Batch, BuildRecord, Checkpoint, DeadLetter, PartitionProgress, ProjectionRecord,
    ReadStore, ReadStoreError, Row, RowKey, Target, physical,
};
use crate::Durability;
use crate::sqlite::{ReadPool, open_writer};

const REGISTRY: &str = "
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
    -- With a partitioned feed: the furthest any partition has been applied
    -- (a rebuild may only take over once it is at least this far).
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
    PRIMARY KEY (projection, event_id)
);
CREATE TABLE IF NOT EXISTS leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_ms INTEGER NOT NULL,
    position   INTEGER NOT NULL DEFAULT 0
);
";

#[derive(Clone)]
pub struct SqliteReadStore {
    writer: Arc<Mutex<Connection>>,
    reads: ReadPool,
}

fn unavailable(e: impl std::fmt::Display) -> ReadStoreError {
    ReadStoreError::Unavailable(e.to_string())
}

fn sql_err(e: rusqlite::Error) -> ReadStoreError {
    let text = e.to_string();
    if let Some(table) = text.strip_prefix("no such table: ") {
        return ReadStoreError::NoSuchTable(table.to_string());
    }
    ReadStoreError::Unavailable(text)
}

fn valid_table(name: &str) -> Result<(), ReadStoreError> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Ok(())
    } else {
        Err(ReadStoreError::Unavailable(format!(
            "invalid table name {name:?}"
        )))
    }
}

/// Table names checked (they are spliced into SQL) and owned.
fn owned_tables(tables: &[&str]) -> Result<Vec<String>, ReadStoreError> {
    tables
        .iter()
        .map(|t| valid_table(t).map(|()| t.to_string()))
        .collect()
}

fn create_tables(conn: &Connection, tables: &[&str], generation: u32) -> rusqlite::Result<()> {
    // A rowid table with a unique key index rather than WITHOUT ROWID:
    // documents run to kilobytes, and SQLite keeps large rows better in a
    // rowid table, with only the small keys in the index.
    for table in tables {
        let name = physical(table, generation);
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{name}\" (
                pk   TEXT    NOT NULL,
                ck   TEXT    NOT NULL,
                row  TEXT    NOT NULL,
                live INTEGER NOT NULL
            );
            CREATE UNIQUE INDEX IF NOT EXISTS \"{name}__key\" ON \"{name}\" (pk, ck);"
        ))?;
    }
    Ok(())
}

fn drop_tables(conn: &Connection, tables_json: &str, generation: u32) -> rusqlite::Result<()> {
    let tables: Vec<String> = serde_json::from_str(tables_json).unwrap_or_default();
    for table in tables {
        conn.execute_batch(&format!(
            "DROP TABLE IF EXISTS \"{}\"",
            physical(&table, generation)
        ))?;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Moves the batch's target checkpoint on (refusing a generation that is
/// no longer the target's), and returns the generation written and how far
/// the projection now reflects `$all`.
fn record_progress(
    tx: &rusqlite::Transaction<'_>,
    batch: &Batch,
) -> Result<(u32, u64), ReadStoreError> {
    let superseded = |moved: usize| {
        if moved == 0 {
            Err(ReadStoreError::Superseded)
        } else {
            Ok(())
        }
    };
    match (&batch.target, &batch.checkpoint) {
        (Target::Build(g), checkpoint) => {
            let position = match checkpoint {
                Checkpoint::Position(p) => *p,
                Checkpoint::Partitions { .. } => {
                    return Err(ReadStoreError::Unavailable(
                        "a rebuild reads $all in order".into(),
                    ));
                }
            };
            superseded(
                tx.execute(
                    "UPDATE projections SET build_checkpoint = ?1 \
                     WHERE name = ?2 AND build_generation = ?3",
                    params![position as i64, batch.projection, g],
                )
                .map_err(sql_err)?,
            )?;
            Ok((*g, position))
        }
        (Target::Live(g), Checkpoint::Position(p)) => {
            superseded(
                tx.execute(
                    "UPDATE projections SET checkpoint = MAX(checkpoint, ?1), high = MAX(high, ?1) \
                     WHERE name = ?2 AND generation = ?3 AND paused = 0",
                    params![*p as i64, batch.projection, g],
                )
                .map_err(sql_err)?,
            )?;
            let checkpoint: i64 = tx
                .query_row(
                    "SELECT checkpoint FROM projections WHERE name = ?1",
                    [&batch.projection],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            Ok((*g, checkpoint as u64))
        }
        (Target::Live(g), Checkpoint::Partitions { total, positions }) => {
            superseded(
                tx.execute(
                    "UPDATE projections SET high = high WHERE name = ?1 AND generation = ?2 AND paused = 0",
                    params![batch.projection, g],
                )
                .map_err(sql_err)?,
            )?;
            for (partition, position) in positions {
                tx.prepare_cached(
                    "INSERT INTO partition_progress (projection, generation, partition, position) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection, generation, partition) \
                     DO UPDATE SET position = MAX(position, excluded.position)",
                )
                .map_err(sql_err)?
                .execute(params![batch.projection, g, partition, *position as i64])
                .map_err(sql_err)?;
            }
            // Every partition past `p` means every event up to `p` is in.
            let (count, low, high): (i64, Option<i64>, Option<i64>) = tx
                .query_row(
                    "SELECT COUNT(*), MIN(position), MAX(position) FROM partition_progress \
                     WHERE projection = ?1 AND generation = ?2",
                    params![batch.projection, g],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(sql_err)?;
            let low = if count as u32 >= *total {
                low.unwrap_or(0)
            } else {
                0
            };
            tx.execute(
                "UPDATE projections SET checkpoint = MAX(checkpoint, ?1), high = MAX(high, ?2) WHERE name = ?3",
                params![low, high.unwrap_or(0), batch.projection],
            )
            .map_err(sql_err)?;
            let checkpoint: i64 = tx
                .query_row(
                    "SELECT checkpoint FROM projections WHERE name = ?1",
                    [&batch.projection],
                    |r| r.get(0),
                )
                .map_err(sql_err)?;
            Ok((*g, checkpoint as u64))
        }
    }
}

fn decode_row(text: &str) -> Result<Row, ReadStoreError> {
    serde_json::from_str(text).map_err(|e| ReadStoreError::Corrupt(e.to_string()))
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectionRecord> {
    let build_generation: Option<i64> = r.get("build_generation")?;
    Ok(ProjectionRecord {
        name: r.get("name")?,
        version: r.get("version")?,
        generation: r.get("generation")?,
        checkpoint: r.get::<_, i64>("checkpoint")? as u64,
        failure: r.get("failure")?,
        paused: r.get::<_, i64>("paused")? != 0,
        build: match build_generation {
            Some(generation) => Some(BuildRecord {
                version: r.get("build_version")?,
                generation: generation as u32,
                checkpoint: r.get::<_, i64>("build_checkpoint")? as u64,
            }),
            None => None,
        },
    })
}

impl SqliteReadStore {
    /// Opens (creating if needed) the read store in `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ReadStoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(unavailable)?;
        }
        let conn = open_writer(&path, Durability::Os).map_err(unavailable)?;
        conn.execute_batch(REGISTRY).map_err(unavailable)?;
        // Files made before partitioned feeds lack the `high` column.
        let has_high = conn
            .prepare("SELECT 1 FROM pragma_table_info('projections') WHERE name = 'high'")
            .and_then(|mut q| q.exists([]))
            .map_err(unavailable)?;
        if !has_high {
            conn.execute_batch(
                "ALTER TABLE projections ADD COLUMN high INTEGER NOT NULL DEFAULT 0",
            )
            .map_err(unavailable)?;
        }
        Ok(Self {
            writer: Arc::new(Mutex::new(conn)),
            reads: ReadPool::sized_for_machine(path),
        })
    }

    async fn write<T, F>(&self, f: F) -> Result<T, ReadStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, ReadStoreError> + Send + 'static,
    {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer
                .lock()
                .map_err(|_| ReadStoreError::Unavailable("writer lock poisoned".into()))?;
            f(&mut conn)
        })
        .await
        .map_err(unavailable)?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, ReadStoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, ReadStoreError> + Send + 'static,
    {
        self.reads.blocking(f).await.map_err(sql_err)?
    }
}

fn get_row(
    conn: &Connection,
    generation: u32,
    key: &RowKey,
) -> Result<Option<Row>, ReadStoreError> {
    valid_table(&key.table)?;
    let text: Option<String> = conn
        .prepare_cached(&format!(
            "SELECT row FROM \"{}\" WHERE pk = ?1 AND ck = ?2",
            physical(&key.table, generation)
        ))
        .map_err(sql_err)?
        .query_row(params![key.partition, key.clustering], |r| r.get(0))
        .optional()
        .map_err(sql_err)?;
    text.map(|t| decode_row(&t)).transpose()
}

#[async_trait]
impl ReadStore for SqliteReadStore {
    async fn get(&self, generation: u32, key: &RowKey) -> Result<Option<Row>, ReadStoreError> {
        let key = key.clone();
        self.read(move |conn| Ok(get_row(conn, generation, &key)?.filter(Row::is_live)))
            .await
    }

    async fn get_many(
        &self,
        generation: u32,
        keys: Vec<RowKey>,
    ) -> Result<Vec<Option<Row>>, ReadStoreError> {
        self.read(move |conn| keys.iter().map(|k| get_row(conn, generation, k)).collect())
            .await
    }

    async fn scan(
        &self,
        generation: u32,
        table: &str,
        partition: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Row)>, ReadStoreError> {
        valid_table(table)?;
        let sql = format!(
            "SELECT ck, row FROM \"{}\" WHERE pk = ?1 AND ck > ?2 AND live = 1 ORDER BY ck LIMIT ?3",
            physical(table, generation)
        );
        let partition = partition.to_string();
        // `ck >= ''` on a first page: the empty clustering key is a key too.
        let sql = if after.is_none() {
            sql.replace("ck > ?2", "ck >= ?2")
        } else {
            sql
        };
        let after = after.unwrap_or("").to_string();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |conn| {
            let mut out = Vec::new();
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(params![partition, after, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_err)?;
            for row in rows {
                let (ck, text) = row.map_err(sql_err)?;
                out.push((ck, decode_row(&text)?));
            }
            Ok(out)
        })
        .await
    }

    async fn apply(&self, batch: Batch) -> Result<Applied, ReadStoreError> {
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let (generation, checkpoint) = record_progress(&tx, &batch)?;
            let mut changed = Vec::new();
            for delta in &batch.deltas {
                let (row, was_live) = if delta.whole {
                    (delta.change.clone(), true)
                } else {
                    let mut row = get_row(&tx, generation, &delta.key)?.unwrap_or_default();
                    let was_live = row.is_live();
                    if !row.absorb(&delta.change) {
                        continue;
                    }
                    (row, was_live)
                };
                let text = serde_json::to_string(&row)
                    .map_err(|e| ReadStoreError::Corrupt(e.to_string()))?;
                tx.prepare_cached(&format!(
                    "INSERT INTO \"{}\" (pk, ck, row, live) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (pk, ck) DO UPDATE SET row = excluded.row, live = excluded.live",
                    physical(&delta.key.table, generation)
                ))
                .map_err(sql_err)?
                .execute(params![
                    delta.key.partition,
                    delta.key.clustering,
                    text,
                    row.is_live()
                ])
                .map_err(sql_err)?;
                if was_live || row.is_live() {
                    changed.push(delta.key.clone());
                }
            }
            tx.commit().map_err(sql_err)?;
            Ok(Applied {
                changed,
                checkpoint,
            })
        })
        .await
    }

    async fn partitions(&self, projection: &str) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        let projection = projection.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT p.partition, p.position FROM partition_progress p \
                 JOIN projections r ON r.name = p.projection AND r.generation = p.generation \
                 WHERE p.projection = ?1 ORDER BY p.partition",
            )
            .map_err(sql_err)?
            .query_map([projection], |r| {
                Ok(PartitionProgress {
                    partition: r.get(0)?,
                    position: r.get::<_, i64>(1)? as u64,
                })
            })
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)
        })
        .await
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), ReadStoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR IGNORE INTO dead_letters (projection, position, event_id, event_type, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    letter.projection,
                    letter.position as i64,
                    letter.event_id,
                    letter.event_type,
                    letter.error
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT projection, COUNT(*) FROM dead_letters GROUP BY projection ORDER BY projection",
            )
            .map_err(sql_err)?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            let now = now_ms();
            let until = now + ttl.as_millis() as i64;
            conn.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
                 WHERE leases.holder = excluded.holder OR leases.expires_ms < ?4",
                params![name, holder, until, now],
            )
            .map_err(sql_err)?;
            let current: String = conn
                .query_row("SELECT holder FROM leases WHERE name = ?1", [&name], |r| r.get(0))
                .map_err(sql_err)?;
            Ok(current == holder)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn lease_position(&self, name: &str) -> Result<u64, ReadStoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT position FROM leases WHERE name = ?1",
                [&name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|p| p.unwrap_or(0) as u64)
            .map_err(sql_err)
        })
        .await
    }

    async fn advance_lease(
        &self,
        name: &str,
        holder: &str,
        position: u64,
    ) -> Result<bool, ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            let moved = conn
                .execute(
                    "UPDATE leases SET position = MAX(position, ?1) WHERE name = ?2 AND holder = ?3",
                    params![position as i64, name, holder],
                )
                .map_err(sql_err)?;
            Ok(moved == 1)
        })
        .await
    }

    async fn projections(&self) -> Result<Vec<ProjectionRecord>, ReadStoreError> {
        self.read(|conn| {
            conn.prepare_cached("SELECT * FROM projections ORDER BY rowid")
                .map_err(sql_err)?
                .query_map([], record)
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)
        })
        .await
    }

    async fn register(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<ProjectionRecord, ReadStoreError> {
        let (name, tables) = (name.to_string(), owned_tables(tables)?);
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let existing = tx
                .query_row("SELECT * FROM projections WHERE name = ?1", [&name], record)
                .optional()
                .map_err(sql_err)?;
            if let Some(existing) = existing {
                return Ok(existing);
            }
            let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
            create_tables(&tx, &refs, 1).map_err(sql_err)?;
            tx.execute(
                "INSERT INTO projections (name, version, generation, checkpoint, tables, next_generation) \
                 VALUES (?1, ?2, 1, 0, ?3, 2)",
                params![name, version, serde_json::to_string(&tables).unwrap_or_default()],
            )
            .map_err(sql_err)?;
            let created = tx
                .query_row("SELECT * FROM projections WHERE name = ?1", [&name], record)
                .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(created)
        })
        .await
    }

    async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<u32, ReadStoreError> {
        let (name, tables) = (name.to_string(), owned_tables(tables)?);
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let (next, old_generation, old_tables): (u32, Option<u32>, Option<String>) = tx
                .query_row(
                    "SELECT next_generation, build_generation, build_tables FROM projections WHERE name = ?1",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(sql_err)?
                .ok_or_else(|| ReadStoreError::Unavailable(format!("projection {name} is not registered")))?;
            if let (Some(g), Some(t)) = (old_generation, old_tables) {
                drop_tables(&tx, &t, g).map_err(sql_err)?;
            }
            let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
            create_tables(&tx, &refs, next).map_err(sql_err)?;
            tx.execute(
                "UPDATE projections SET next_generation = ?1, build_version = ?2, \
                 build_generation = ?3, build_checkpoint = 0, build_tables = ?4 WHERE name = ?5",
                params![
                    next + 1,
                    version,
                    next,
                    serde_json::to_string(&tables).unwrap_or_default(),
                    name
                ],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(next)
        })
        .await
    }

    async fn finish_build(&self, name: &str, generation: u32) -> Result<bool, ReadStoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let current = tx
                .query_row(
                    "SELECT generation, MAX(checkpoint, high), tables, build_generation, build_checkpoint, \
                     build_version, build_tables FROM projections WHERE name = ?1",
                    [&name],
                    |r| {
                        Ok((
                            r.get::<_, u32>(0)?,
                            r.get::<_, i64>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, Option<u32>>(3)?,
                            r.get::<_, Option<i64>>(4)?,
                            r.get::<_, Option<u32>>(5)?,
                            r.get::<_, Option<String>>(6)?,
                        ))
                    },
                )
                .optional()
                .map_err(sql_err)?;
            let Some((live_generation, live_checkpoint, live_tables, Some(g), Some(cp), Some(v), Some(t))) =
                current
            else {
                return Err(ReadStoreError::Superseded);
            };
            if g != generation {
                return Err(ReadStoreError::Superseded);
            }
            if cp < live_checkpoint {
                return Ok(false);
            }
            tx.execute(
                "UPDATE projections SET version = ?1, generation = ?2, checkpoint = ?3, high = ?3, \
                 tables = ?4, failure = NULL, build_version = NULL, build_generation = NULL, \
                 build_checkpoint = NULL, build_tables = NULL WHERE name = ?5",
                params![v, g, cp, t, name],
            )
            .map_err(sql_err)?;
            // A partitioned feed's partitions start over in the new generation.
            tx.execute(
                "DELETE FROM partition_progress WHERE projection = ?1 AND generation <> ?2",
                params![name, g],
            )
            .map_err(sql_err)?;
            drop_tables(&tx, &live_tables, live_generation).map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(true)
        })
        .await
    }

    async fn set_failure(&self, name: &str, failure: Option<&str>) -> Result<(), ReadStoreError> {
        let (name, failure) = (name.to_string(), failure.map(str::to_string));
        self.write(move |conn| {
            conn.execute(
                "UPDATE projections SET failure = ?1 WHERE name = ?2",
                params![failure, name],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ReadStoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            conn.execute(
                "UPDATE projections SET paused = ?1 WHERE name = ?2",
                params![paused, name],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }
}
