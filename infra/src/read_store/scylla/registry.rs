//! The projection registry: one row per projection in `projections`, only
//! ever written by lightweight transactions, so two processes (a worker and
//! the CLI's rebuild) never both switch a projection; each partition's
//! progress in `partition_progress`, largest position winning by timestamp.

use async_trait::async_trait;
use scylla::statement::batch::{Batch, BatchType};

use super::cql::{PROJECTION_COLUMNS, position};
use super::{
    Named, ScyllaReadStore, execution, idempotent, named_rows, now_micros, outcome, transaction,
};
use crate::read_store::{
    BuildRecord, Generation, PartitionProgress, Progress, ProjectionRecord, ProjectionRegistry,
    ReadStoreError, StartedBuild, Switch, Target,
};

/// Rounds of a read-then-decide step before giving up (each lost round
/// means another process moved the record meanwhile).
const ROUNDS: usize = 64;

fn corrupt_record(name: &str) -> ReadStoreError {
    ReadStoreError::Corrupt(crate::error::cause(format!(
        "the registry row of {name} lacks a column"
    )))
}

/// A registry row as a record; `None` for an absent row.
fn record(row: &Named) -> Result<Option<ProjectionRecord>, ReadStoreError> {
    let Some(name) = row.text("name") else {
        return Ok(None);
    };
    let missing = || corrupt_record(&name);
    let build = match (
        row.int("build_version"),
        row.int("build_generation"),
        row.bigint("build_checkpoint"),
    ) {
        (Some(version), Some(generation), Some(checkpoint)) => Some(BuildRecord {
            version,
            generation,
            checkpoint,
        }),
        _ => None,
    };
    Ok(Some(ProjectionRecord {
        version: row.int("version").ok_or_else(missing)?,
        generation: row.int("generation").ok_or_else(missing)?,
        checkpoint: row.bigint("checkpoint").ok_or_else(missing)?,
        failure: row.text("failure"),
        paused: row.boolean("paused").unwrap_or(false),
        build,
        name,
    }))
}

/// How far the live generation reaches: its checkpoint, or further where
/// some partition applied beyond it.
fn reach(row: &Named) -> u64 {
    row.bigint("checkpoint")
        .unwrap_or(0)
        .max(row.bigint("high").unwrap_or(0))
}

fn texts(tables: &[&str]) -> Vec<String> {
    tables.iter().map(|t| t.to_string()).collect()
}

impl ScyllaReadStore {
    /// A projection's registry row, as a serial read (it sees every
    /// transaction decided before it).
    async fn registry_row(&self, name: &str) -> Result<Named, ReadStoreError> {
        self.serial_row(
            format!(
                "SELECT {PROJECTION_COLUMNS}, next_generation FROM {}.projections WHERE name = ?",
                self.ks()
            ),
            name,
        )
        .await
    }

    async fn generation_progress(
        &self,
        name: &str,
        generation: u32,
    ) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        let result = self
            .execute(
                idempotent(format!(
                    "SELECT partition, position FROM {}.partition_progress \
                     WHERE projection = ? AND generation = ?",
                    self.ks()
                )),
                (name, generation as i32),
            )
            .await?;
        let rows = result.into_rows_result().map_err(super::corrupt)?;
        rows.rows::<(i32, i64)>()
            .map_err(super::corrupt)?
            .map(|row| {
                let (partition, position) = row.map_err(super::corrupt)?;
                Ok(PartitionProgress {
                    partition,
                    position: position.max(0) as u64,
                })
            })
            .collect()
    }
}

#[async_trait]
impl ProjectionRegistry for ScyllaReadStore {
    async fn projections(&self) -> Result<Vec<ProjectionRecord>, ReadStoreError> {
        let result = self
            .execute(
                idempotent(format!(
                    "SELECT {PROJECTION_COLUMNS} FROM {}.projections",
                    self.ks()
                )),
                (),
            )
            .await?;
        let mut rows: Vec<(u64, ProjectionRecord)> = Vec::new();
        for row in named_rows(result)? {
            if let Some(r) = record(&row)? {
                rows.push((row.bigint("registered").unwrap_or(0), r));
            }
        }
        // In the order they were registered, as the port promises.
        rows.sort_by(|a, b| (a.0, &a.1.name).cmp(&(b.0, &b.1.name)));
        Ok(rows.into_iter().map(|(_, r)| r).collect())
    }

    async fn projection(&self, name: &str) -> Result<Option<ProjectionRecord>, ReadStoreError> {
        let result = self
            .execute(
                idempotent(format!(
                    "SELECT {PROJECTION_COLUMNS} FROM {}.projections WHERE name = ?",
                    self.ks()
                )),
                (name,),
            )
            .await?;
        match named_rows(result)?.first() {
            Some(row) => record(row),
            None => Ok(None),
        }
    }

    async fn register(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<ProjectionRecord, ReadStoreError> {
        for table in tables {
            self.inner.keyspace.rows_table(table, 1)?;
        }
        let result = self
            .execute(
                transaction(format!(
                    "INSERT INTO {}.projections (name, registered, version, generation, next_generation, \
                     checkpoint, high, tables, paused) VALUES (?, ?, ?, 1, 2, 0, 0, ?, false) IF NOT EXISTS",
                    self.ks()
                )),
                (name, now_micros(), version as i32, texts(tables)),
            )
            .await?;
        let (applied, existing) = outcome(result)?;
        if applied {
            return Ok(ProjectionRecord {
                name: name.to_string(),
                version,
                generation: 1,
                checkpoint: 0,
                failure: None,
                paused: false,
                build: None,
            });
        }
        match record(&existing)? {
            Some(r) => Ok(r),
            // Cassandra leaves the existing row out: read it.
            None => record(&self.registry_row(name).await?)?.ok_or_else(|| corrupt_record(name)),
        }
    }

    async fn start_build(
        &self,
        name: &str,
        version: u32,
        tables: &[&str],
    ) -> Result<StartedBuild, ReadStoreError> {
        for table in tables {
            self.inner.keyspace.rows_table(table, 1)?;
        }
        let mut row = self.registry_row(name).await?;
        for _ in 0..ROUNDS {
            let Some(next) = row.int("next_generation") else {
                return Err(ReadStoreError::Invalid(format!(
                    "projection {name} is not registered"
                )));
            };
            let abandoned = row.int("build_generation").map(|generation| Generation {
                generation,
                tables: row.texts("build_tables"),
            });
            let result = self
                .execute(
                    transaction(format!(
                        "UPDATE {}.projections SET next_generation = ?, build_version = ?, \
                         build_generation = ?, build_checkpoint = 0, build_tables = ? \
                         WHERE name = ? IF next_generation = ?",
                        self.ks()
                    )),
                    (
                        (next + 1) as i32,
                        version as i32,
                        next as i32,
                        texts(tables),
                        name,
                        next as i32,
                    ),
                )
                .await?;
            if outcome(result)?.0 {
                return Ok(StartedBuild {
                    generation: next,
                    abandoned,
                });
            }
            row = self.registry_row(name).await?;
        }
        Err(contended(name))
    }

    async fn advance(
        &self,
        name: &str,
        target: Target,
        progress: Progress,
    ) -> Result<u64, ReadStoreError> {
        let ks = self.ks();
        let (statement, values) = match target {
            Target::Live(g) => (
                format!(
                    "UPDATE {ks}.projections SET checkpoint = ? WHERE name = ? \
                     IF generation = ? AND paused = false AND checkpoint < ?"
                ),
                (
                    position(progress.position),
                    name,
                    g as i32,
                    position(progress.position),
                ),
            ),
            Target::Build(g) => (
                format!(
                    "UPDATE {ks}.projections SET build_checkpoint = ? WHERE name = ? \
                     IF build_generation = ? AND build_checkpoint < ?"
                ),
                (
                    position(progress.position),
                    name,
                    g as i32,
                    position(progress.position),
                ),
            ),
        };
        let (applied, _) = outcome(self.execute(transaction(statement), values).await?)?;
        let checkpoint = if applied {
            progress.position
        } else {
            // Not applied: either the target is gone, or the checkpoint
            // is already there.
            let row = self.registry_row(name).await?;
            let current = match target {
                Target::Live(g) => (row.int("generation") == Some(g)
                    && row.boolean("paused") == Some(false))
                .then(|| row.bigint("checkpoint")),
                Target::Build(g) => {
                    (row.int("build_generation") == Some(g)).then(|| row.bigint("build_checkpoint"))
                }
            };
            current.flatten().ok_or(ReadStoreError::Superseded)?
        };
        if let Target::Live(g) = target
            && progress.high > progress.position
        {
            // Some partition applied beyond the checkpoint: remember how far.
            self.execute(
                transaction(format!(
                    "UPDATE {ks}.projections SET high = ? WHERE name = ? IF generation = ? AND high < ?"
                )),
                (position(progress.high), name, g as i32, position(progress.high)),
            )
            .await?;
        }
        Ok(checkpoint)
    }

    async fn finish_build(&self, name: &str, generation: u32) -> Result<Switch, ReadStoreError> {
        for _ in 0..ROUNDS {
            let row = self.registry_row(name).await?;
            let (Some(live), Some(version), Some(g), Some(cp)) = (
                row.int("generation"),
                row.int("build_version"),
                row.int("build_generation"),
                row.bigint("build_checkpoint"),
            ) else {
                return Err(ReadStoreError::Superseded);
            };
            if g != generation {
                return Err(ReadStoreError::Superseded);
            }
            if cp < reach(&row) {
                return Ok(Switch::NotYet);
            }
            let retired = Generation {
                generation: live,
                tables: row.texts("tables"),
            };
            // Only if nothing moved since the read: the live generation's
            // progress included, or the build might not have caught up.
            let result = self
                .execute(
                    transaction(format!(
                        "UPDATE {}.projections SET version = ?, generation = ?, checkpoint = ?, high = ?, \
                         tables = ?, failure = null, build_version = null, build_generation = null, \
                         build_checkpoint = null, build_tables = null \
                         WHERE name = ? IF generation = ? AND checkpoint = ? AND high = ? \
                         AND build_generation = ? AND build_checkpoint = ?",
                        self.ks()
                    )),
                    (
                        version as i32,
                        g as i32,
                        position(cp),
                        position(cp),
                        row.texts("build_tables"),
                        name,
                        live as i32,
                        position(row.bigint("checkpoint").unwrap_or(0)),
                        position(row.bigint("high").unwrap_or(0)),
                        g as i32,
                        position(cp),
                    ),
                )
                .await?;
            if outcome(result)?.0 {
                // A partitioned feed's partitions start over in the new
                // generation; older generations' progress goes.
                self.execute(
                    idempotent(format!(
                        "DELETE FROM {}.partition_progress WHERE projection = ? AND generation < ?",
                        self.ks()
                    )),
                    (name, g as i32),
                )
                .await?;
                return Ok(Switch::Done { retired });
            }
        }
        Err(contended(name))
    }

    async fn set_failure(&self, name: &str, failure: Option<&str>) -> Result<(), ReadStoreError> {
        self.execute(
            transaction(format!(
                "UPDATE {}.projections SET failure = ? WHERE name = ? IF EXISTS",
                self.ks()
            )),
            (failure, name),
        )
        .await?;
        Ok(())
    }

    async fn set_paused(&self, name: &str, paused: bool) -> Result<(), ReadStoreError> {
        self.execute(
            transaction(format!(
                "UPDATE {}.projections SET paused = ? WHERE name = ? IF EXISTS",
                self.ks()
            )),
            (paused, name),
        )
        .await?;
        Ok(())
    }

    async fn advance_partitions(
        &self,
        name: &str,
        generation: u32,
        positions: &[PartitionProgress],
    ) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        if !positions.is_empty() {
            let session = self.session().await?;
            let cql = format!(
                "UPDATE {}.partition_progress USING TIMESTAMP ? SET position = ? \
                 WHERE projection = ? AND generation = ? AND partition = ?",
                self.ks()
            );
            let mut batch = Batch::new(BatchType::Unlogged);
            let mut values = Vec::with_capacity(positions.len());
            for p in positions {
                batch.append_statement(cql.as_str());
                let at = position(p.position);
                values.push((at, at, name, generation as i32, p.partition));
            }
            batch.set_is_idempotent(true);
            session.batch(&batch, values).await.map_err(execution)?;
        }
        self.generation_progress(name, generation).await
    }

    async fn partitions(&self, name: &str) -> Result<Vec<PartitionProgress>, ReadStoreError> {
        match self.projection(name).await? {
            Some(record) => self.generation_progress(name, record.generation).await,
            None => Ok(Vec::new()),
        }
    }
}

fn contended(name: &str) -> ReadStoreError {
    ReadStoreError::Unavailable(crate::error::cause(format!(
        "the registry row of {name} kept changing under a transaction"
    )))
}

#[cfg(test)]
mod tests {
    use scylla::value::CqlValue;

    use super::*;

    fn row(columns: &[(&str, CqlValue)]) -> Named {
        Named(
            columns
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn a_registry_row_reads_as_a_record_with_its_build() {
        let live = [
            ("name", CqlValue::Text("orders".into())),
            ("version", CqlValue::Int(3)),
            ("generation", CqlValue::Int(4)),
            ("checkpoint", CqlValue::BigInt(90)),
            ("high", CqlValue::BigInt(120)),
            ("paused", CqlValue::Boolean(true)),
        ];
        let r = record(&row(&live)).unwrap().unwrap();
        assert_eq!(
            (r.version, r.generation, r.checkpoint, r.paused, r.build),
            (3, 4, 90, true, None)
        );
        assert_eq!(
            reach(&row(&live)),
            120,
            "a partition went further than the checkpoint"
        );

        let mut building = live.to_vec();
        building.extend([
            ("build_version", CqlValue::Int(4)),
            ("build_generation", CqlValue::Int(6)),
            ("build_checkpoint", CqlValue::BigInt(7)),
            ("failure", CqlValue::Text("boom".into())),
        ]);
        let r = record(&row(&building)).unwrap().unwrap();
        assert_eq!(
            r.build,
            Some(BuildRecord {
                version: 4,
                generation: 6,
                checkpoint: 7
            })
        );
        assert_eq!(r.failure.as_deref(), Some("boom"));

        assert_eq!(
            record(&Named::default()).unwrap(),
            None,
            "no row, no record"
        );
        let broken = row(&[("name", CqlValue::Text("orders".into()))]);
        assert!(matches!(record(&broken), Err(ReadStoreError::Corrupt(_))));
    }
}
