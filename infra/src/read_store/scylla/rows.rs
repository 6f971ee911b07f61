//! Rows: a table per logical table and generation, written without reading
//! (write timestamps do the merging), read by key and by partition.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use scylla::statement::batch::{Batch, BatchType};
use scylla::value::CqlValue;

use super::cql::{self, RowStatement};
use super::{
    BATCH_BYTES, BATCH_STATEMENTS, IN_FLIGHT, ScyllaReadStore, corrupt, execution, idempotent,
};
use crate::read_store::{Delta, ReadStoreError, Row, RowKey, RowStore};

/// Rows fetched per round trip of a scan (CQL's `LIMIT` is a 32-bit int).
const SCAN_PAGE: usize = 1000;

type Cells = Option<BTreeMap<String, String>>;

fn decode_cells(cells: Cells) -> Result<Row, ReadStoreError> {
    let mut row = Row::default();
    for (name, text) in cells.unwrap_or_default() {
        row.cells.insert(name, cql::decode_cell(&text)?);
    }
    Ok(row)
}

impl ScyllaReadStore {
    /// A row as stored (deleted ones included), or `None` when nothing
    /// was ever written to it.
    async fn stored(&self, generation: u32, key: &RowKey) -> Result<Option<Row>, ReadStoreError> {
        let table = self.inner.keyspace.rows_table(&key.table, generation)?;
        let result = self
            .execute(
                idempotent(cql::select_row(&table)),
                (&key.partition, &key.clustering),
            )
            .await?;
        let found = result
            .into_rows_result()
            .map_err(corrupt)?
            .maybe_first_row::<(Cells, Option<i64>)>()
            .map_err(corrupt)?;
        let Some((cells, deleted)) = found else {
            return Ok(None);
        };
        let mut row = decode_cells(cells)?;
        row.deleted = deleted.and_then(|d| u64::try_from(d).ok());
        Ok((row.is_live() || row.deleted.is_some()).then_some(row))
    }

    /// One unlogged batch of one partition's writes.
    async fn write_batch(&self, statements: Vec<RowStatement>) -> Result<(), ReadStoreError> {
        let session = self.session().await?;
        let mut batch = Batch::new(BatchType::Unlogged);
        let mut values: Vec<Vec<CqlValue>> = Vec::with_capacity(statements.len());
        for s in statements {
            batch.append_statement(s.cql.as_str());
            values.push(s.values);
        }
        batch.set_is_idempotent(true);
        session.batch(&batch, values).await.map_err(execution)?;
        Ok(())
    }
}

#[async_trait]
impl RowStore for ScyllaReadStore {
    async fn create_tables(
        &self,
        generation: u32,
        tables: &[String],
    ) -> Result<(), ReadStoreError> {
        let names = tables
            .iter()
            .map(|t| self.inner.keyspace.rows_table(t, generation))
            .collect::<Result<Vec<_>, _>>()?;
        for name in names {
            self.ddl(cql::create_rows_table(&name)).await?;
        }
        Ok(())
    }

    async fn drop_tables(&self, generation: u32, tables: &[String]) -> Result<(), ReadStoreError> {
        let names = tables
            .iter()
            .map(|t| self.inner.keyspace.rows_table(t, generation))
            .collect::<Result<Vec<_>, _>>()?;
        for name in names {
            self.ddl(cql::drop_rows_table(&name)).await?;
        }
        Ok(())
    }

    async fn get(&self, generation: u32, key: &RowKey) -> Result<Option<Row>, ReadStoreError> {
        Ok(self.stored(generation, key).await?.filter(Row::is_live))
    }

    async fn get_many(
        &self,
        generation: u32,
        keys: Vec<RowKey>,
    ) -> Result<Vec<Option<Row>>, ReadStoreError> {
        let reads: Vec<_> = keys
            .into_iter()
            .map(|key| async move { self.stored(generation, &key).await })
            .collect();
        futures::stream::iter(reads)
            .buffered(IN_FLIGHT)
            .try_collect()
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
        let table = self.inner.keyspace.rows_table(table, generation)?;
        let mut out = Vec::new();
        let mut after = after.map(str::to_string);
        while out.len() < limit {
            let fetch = (limit - out.len()).min(SCAN_PAGE);
            let result = match &after {
                None => {
                    self.execute(
                        idempotent(cql::scan_first(&table)),
                        (partition, fetch as i32),
                    )
                    .await?
                }
                Some(after) => {
                    self.execute(
                        idempotent(cql::scan_after(&table)),
                        (partition, after, fetch as i32),
                    )
                    .await?
                }
            };
            let rows = result.into_rows_result().map_err(corrupt)?;
            let mut fetched = 0;
            for row in rows.rows::<(String, Cells)>().map_err(corrupt)? {
                let (clustering, cells) = row.map_err(corrupt)?;
                fetched += 1;
                let row = decode_cells(cells)?;
                after = Some(clustering.clone());
                // A row whose cells were all deleted keeps only its marker.
                if row.is_live() {
                    out.push((clustering, row));
                }
            }
            if fetched < fetch {
                break;
            }
        }
        Ok(out)
    }

    async fn apply(
        &self,
        generation: u32,
        deltas: Vec<Delta>,
    ) -> Result<Vec<RowKey>, ReadStoreError> {
        // Each partition's writes go together, in batches of bounded size.
        let mut partitions: BTreeMap<(&str, &str), Vec<RowStatement>> = BTreeMap::new();
        let mut tables: BTreeMap<&str, String> = BTreeMap::new();
        for delta in &deltas {
            let table = match tables.get(delta.key.table.as_str()) {
                Some(t) => t,
                None => tables.entry(&delta.key.table).or_insert(
                    self.inner
                        .keyspace
                        .rows_table(&delta.key.table, generation)?,
                ),
            };
            partitions
                .entry((&delta.key.table, &delta.key.partition))
                .or_default()
                .extend(cql::row_statements(table, delta)?);
        }
        let batches: Vec<Vec<RowStatement>> = partitions
            .into_values()
            .flat_map(|statements| cql::batches(statements, BATCH_STATEMENTS, BATCH_BYTES))
            .collect();
        futures::stream::iter(batches.into_iter().map(|b| self.write_batch(b)))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<Vec<()>>()
            .await?;
        // Nothing was read: every row written may have changed.
        Ok(deltas.into_iter().map(|d| d.key).collect())
    }
}
