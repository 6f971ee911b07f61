//! Rows: one rowid table per logical table and generation, with a unique
//! index on the row's key, each row's cells as JSON.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::{SqliteReadStore, corrupt, sql_err, valid_table};
use crate::read_store::{Delta, ReadStoreError, Row, RowKey, RowStore, physical};

fn decode_row(text: &str) -> Result<Row, ReadStoreError> {
    serde_json::from_str(text).map_err(corrupt)
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
impl RowStore for SqliteReadStore {
    async fn create_tables(
        &self,
        generation: u32,
        tables: &[String],
    ) -> Result<(), ReadStoreError> {
        for table in tables {
            valid_table(table)?;
        }
        let tables = tables.to_vec();
        self.write(move |conn| {
            // A rowid table with a unique key index rather than WITHOUT
            // ROWID: documents run to kilobytes, and SQLite keeps large rows
            // better in a rowid table, with only the small keys in the index.
            for table in tables {
                let name = physical(&table, generation);
                conn.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{name}\" (
                        pk   TEXT    NOT NULL,
                        ck   TEXT    NOT NULL,
                        row  TEXT    NOT NULL,
                        live INTEGER NOT NULL
                    );
                    CREATE UNIQUE INDEX IF NOT EXISTS \"{name}__key\" ON \"{name}\" (pk, ck);"
                ))
                .map_err(sql_err)?;
            }
            Ok(())
        })
        .await
    }

    async fn drop_tables(&self, generation: u32, tables: &[String]) -> Result<(), ReadStoreError> {
        for table in tables {
            valid_table(table)?;
        }
        let tables = tables.to_vec();
        self.write(move |conn| {
            for table in tables {
                conn.execute_batch(&format!(
                    "DROP TABLE IF EXISTS \"{}\"",
                    physical(&table, generation)
                ))
                .map_err(sql_err)?;
            }
            Ok(())
        })
        .await
    }

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
        // `ck >= ''` on a first page: the empty clustering key is a key too.
        let bound = if after.is_some() { ">" } else { ">=" };
        let sql = format!(
            "SELECT ck, row FROM \"{}\" WHERE pk = ?1 AND ck {bound} ?2 AND live = 1 \
             ORDER BY ck LIMIT ?3",
            physical(table, generation)
        );
        let partition = partition.to_string();
        let after = after.unwrap_or("").to_string();
        let limit = limit.min(i64::MAX as usize) as i64;
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
            let rows = stmt
                .query_map(params![partition, after, limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(sql_err)?;
            let mut out = Vec::new();
            for row in rows {
                let (ck, text) = row.map_err(sql_err)?;
                out.push((ck, decode_row(&text)?));
            }
            Ok(out)
        })
        .await
    }

    async fn apply(
        &self,
        generation: u32,
        mut deltas: Vec<Delta>,
    ) -> Result<Vec<RowKey>, ReadStoreError> {
        for delta in &deltas {
            valid_table(&delta.key.table)?;
        }
        // Off the one writer connection: rows in key order (each table's
        // B-tree then takes them page by page, not at random), whole rows
        // already encoded, and one statement text per table.
        // Stable: of two changes to one row, the later still wins.
        deltas.sort_by(|a, b| a.key.cmp(&b.key));
        let mut by_table: Vec<(String, Vec<(Delta, Option<String>)>)> = Vec::new();
        for delta in deltas {
            let text = delta
                .whole
                .then(|| serde_json::to_string(&delta.change).map_err(corrupt))
                .transpose()?;
            match by_table.last_mut() {
                Some((_, rows)) if rows[0].0.key.table == delta.key.table => {
                    rows.push((delta, text));
                }
                _ => by_table.push((
                    format!(
                        "INSERT INTO \"{}\" (pk, ck, row, live) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (pk, ck) DO UPDATE SET row = excluded.row, live = excluded.live",
                        physical(&delta.key.table, generation)
                    ),
                    vec![(delta, text)],
                )),
            }
        }
        self.write(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sql_err)?;
            let mut changed = Vec::new();
            for (sql, rows) in by_table {
                let mut upsert = tx.prepare_cached(&sql).map_err(sql_err)?;
                for (delta, text) in rows {
                    let (text, live, was_live) = match text {
                        Some(text) => (text, delta.change.is_live(), true),
                        None => {
                            let mut row = get_row(&tx, generation, &delta.key)?.unwrap_or_default();
                            let was_live = row.is_live();
                            if !row.absorb(&delta.change) {
                                continue;
                            }
                            let text = serde_json::to_string(&row).map_err(corrupt)?;
                            (text, row.is_live(), was_live)
                        }
                    };
                    upsert
                        .execute(params![
                            delta.key.partition,
                            delta.key.clustering,
                            text,
                            live
                        ])
                        .map_err(sql_err)?;
                    if was_live || live {
                        changed.push(delta.key);
                    }
                }
            }
            tx.commit().map_err(sql_err)?;
            Ok(changed)
        })
        .await
    }
}
