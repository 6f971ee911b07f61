//! The projection registry: one row per projection in `projections`, its
//! partitions' progress in `partition_progress`. Every change is one
//! immediate transaction, so two processes (a server and the CLI) never
//! both switch a projection.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::{SqliteReadStore, sql_err, valid_table};
use crate::read_store::{
    BuildRecord, Generation, PartitionProgress, Progress, ProjectionRecord, ProjectionRegistry,
    ReadStoreError, StartedBuild, Switch, Target,
};

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

/// Table names checked (they are spliced into SQL) and as the registry
/// stores them: a JSON array.
fn tables_json(tables: &[&str]) -> Result<String, ReadStoreError> {
    for table in tables {
        valid_table(table)?;
    }
    serde_json::to_string(tables).map_err(super::corrupt)
}

fn recorded_generation(generation: u32, tables_json: &str) -> Result<Generation, ReadStoreError> {
    Ok(Generation {
        generation,
        tables: serde_json::from_str(tables_json).map_err(super::corrupt)?,
    })
}

fn position(p: u64) -> i64 {
    p.min(i64::MAX as u64) as i64
}

#[async_trait]
impl ProjectionRegistry for SqliteReadStore {
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
        let (name, tables) = (name.to_string(), tables_json(tables)?);
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO projections (name, version, generation, checkpoint, tables, next_generation) \
                 VALUES (?1, ?2, 1, 0, ?3, 2) ON CONFLICT (name) DO NOTHING",
                params![name, version, tables],
            )
            .map_err(sql_err)?;
            conn.query_row("SELECT * FROM projections WHERE name = ?1", [&name], record)
                .map_err(sql_err)
        })
        .await
    }

    async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<StartedBuild, ReadStoreError> {
        let (name, tables) = (name.to_string(), tables_json(tables)?);
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
                .ok_or_else(|| ReadStoreError::Invalid(format!("projection {name} is not registered")))?;
            let abandoned = match (old_generation, old_tables) {
                (Some(g), Some(t)) => Some(recorded_generation(g, &t)?),
                _ => None,
            };
            tx.execute(
                "UPDATE projections SET next_generation = ?1, build_version = ?2, \
                 build_generation = ?3, build_checkpoint = 0, build_tables = ?4 WHERE name = ?5",
                params![next + 1, version, next, tables, name],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(StartedBuild {
                generation: next,
                abandoned,
            })
        })
        .await
    }

    async fn advance(
        &self,
        name: &str,
        target: Target,
        progress: Progress,
    ) -> Result<u64, ReadStoreError> {
        let name = name.to_string();
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let (moved, read) = match target {
                Target::Live(g) => (
                    tx.execute(
                        "UPDATE projections SET checkpoint = MAX(checkpoint, ?1), \
                         high = MAX(high, ?2, ?1) WHERE name = ?3 AND generation = ?4 AND paused = 0",
                        params![position(progress.position), position(progress.high), name, g],
                    ),
                    "SELECT checkpoint FROM projections WHERE name = ?1",
                ),
                Target::Build(g) => (
                    tx.execute(
                        "UPDATE projections SET build_checkpoint = MAX(build_checkpoint, ?1) \
                         WHERE name = ?2 AND build_generation = ?3",
                        params![position(progress.position), name, g],
                    ),
                    "SELECT build_checkpoint FROM projections WHERE name = ?1",
                ),
            };
            if moved.map_err(sql_err)? == 0 {
                return Err(ReadStoreError::Superseded);
            }
            let checkpoint: i64 = tx.query_row(read, [&name], |r| r.get(0)).map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(checkpoint as u64)
        })
        .await
    }

    async fn finish_build(&self, name: &str, generation: u32) -> Result<Switch, ReadStoreError> {
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
            let Some((live_generation, live_reach, live_tables, Some(g), Some(cp), Some(v), Some(t))) =
                current
            else {
                return Err(ReadStoreError::Superseded);
            };
            if g != generation {
                return Err(ReadStoreError::Superseded);
            }
            if cp < live_reach {
                return Ok(Switch::NotYet);
            }
            let retired = recorded_generation(live_generation, &live_tables)?;
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
            tx.commit().map_err(sql_err)?;
            Ok(Switch::Done { retired })
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

    async fn advance_partitions(
        &self,
        name: &str,
        generation: u32,
        positions: &[PartitionProgress],
    ) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        let (name, positions) = (name.to_string(), positions.to_vec());
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            for p in &positions {
                tx.prepare_cached(
                    "INSERT INTO partition_progress (projection, generation, partition, position) \
                     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (projection, generation, partition) \
                     DO UPDATE SET position = MAX(position, excluded.position)",
                )
                .map_err(sql_err)?
                .execute(params![name, generation, p.partition, position(p.position)])
                .map_err(sql_err)?;
            }
            let all = tx
                .prepare_cached(
                    "SELECT partition, position FROM partition_progress \
                     WHERE projection = ?1 AND generation = ?2 ORDER BY partition",
                )
                .map_err(sql_err)?
                .query_map(params![name, generation], partition_progress)
                .map_err(sql_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
            Ok(all)
        })
        .await
    }

    async fn partitions(&self, name: &str) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT p.partition, p.position FROM partition_progress p \
                 JOIN projections r ON r.name = p.projection AND r.generation = p.generation \
                 WHERE p.projection = ?1 ORDER BY p.partition",
            )
            .map_err(sql_err)?
            .query_map([name], partition_progress)
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)
        })
        .await
    }
}

fn partition_progress(r: &rusqlite::Row<'_>) -> rusqlite::Result<PartitionProgress> {
    Ok(PartitionProgress {
        partition: r.get(0)?,
        position: r.get::<_, i64>(1)? as u64,
    })
}
