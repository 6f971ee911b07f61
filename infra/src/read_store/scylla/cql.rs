//! What the adapter says to ScyllaDB, built apart from the wire so it is
//! tested here: names, the schema, the statements, the write timestamps a
//! row's versions become, and how a cell is kept in a `map<text, text>`.

use std::collections::BTreeMap;

use scylla::value::CqlValue;
use shopstream_projections::row::{Cell, Json};

use crate::read_store::{Delta, ReadStoreError, physical};

/// The largest cell or tombstone version the store can hold: versions
/// become write timestamps twice their size (and two more), which must fit
/// a signed 64-bit integer.
pub const MAX_VERSION: u64 = (1 << 62) - 2;

/// The write timestamp of a cell written at `version`.
pub fn cell_timestamp(version: u64) -> i64 {
    (2 * version) as i64
}

/// The write timestamp of the row tombstone a delete at `version` leaves:
/// it shadows every cell written at that version or before (2v ≤ 2d + 1)
/// and none written after (2(d + 1) > 2d + 1), as the port's rule says.
pub fn tombstone_timestamp(version: u64) -> i64 {
    (2 * version + 1) as i64
}

/// The write timestamp of the `deleted` column that remembers a delete at
/// `version`: just after its own tombstone, so it survives it, and below
/// the tombstone of any later delete (2(d + 1) + 1 > 2d + 2).
pub fn marker_timestamp(version: u64) -> i64 {
    (2 * version + 2) as i64
}

fn check_version(version: u64) -> Result<(), ReadStoreError> {
    if version <= MAX_VERSION {
        Ok(())
    } else {
        Err(ReadStoreError::Invalid(format!(
            "version {version} is beyond what ScyllaDB timestamps hold ({MAX_VERSION})"
        )))
    }
}

/// A position as ScyllaDB keeps it (a signed 64-bit integer).
pub fn position(p: u64) -> i64 {
    p.min(i64::MAX as u64) as i64
}

/// A cell as a map value: its version, a colon, its JSON text. The version
/// travels with the value because ScyllaDB cannot give the write time of a
/// map entry back.
pub fn encode_cell(cell: &Cell) -> String {
    format!("{}:{}", cell.version, cell.value.get())
}

pub fn decode_cell(text: &str) -> Result<Cell, ReadStoreError> {
    let corrupt = |why: String| ReadStoreError::Corrupt(crate::error::cause(why));
    let (version, json) = text
        .split_once(':')
        .ok_or_else(|| corrupt(format!("a cell without its version: {text:?}")))?;
    let version = version
        .parse()
        .map_err(|_| corrupt(format!("a cell with a bad version: {text:?}")))?;
    let value = Json::from_text(json.to_string()).map_err(|e| corrupt(e.to_string()))?;
    Ok(Cell { value, version })
}

/// A keyspace name, checked: it is spliced into every statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyspace(String);

impl Keyspace {
    pub fn parse(name: &str) -> Result<Self, String> {
        let mut bytes = name.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        if first_ok
            && name.len() <= 48
            && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "keyspace {name:?}: up to 48 lower-case letters, digits and underscores, \
                 starting with a letter"
            ))
        }
    }

    pub fn name(&self) -> &str {
        &self.0
    }

    /// A logical table's physical table in one generation, qualified.
    pub fn rows_table(&self, table: &str, generation: u32) -> Result<String, ReadStoreError> {
        let name = physical(table, generation);
        valid_table(&name)?;
        Ok(format!("{}.{name}", self.0))
    }
}

/// Table names are spliced into statements: lower-case letters, digits and
/// underscores, at most 48 (ScyllaDB's limit, generation suffix included).
fn valid_table(name: &str) -> Result<(), ReadStoreError> {
    let ok = name.len() <= 48
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ReadStoreError::Invalid(format!(
            "invalid table name {name:?}"
        )))
    }
}

/// How many copies of the keyspace each datacenter keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replication {
    /// Copies in every datacenter (unless `datacenters` names them).
    pub factor: u32,
    /// Copies per named datacenter.
    pub datacenters: BTreeMap<String, u32>,
}

impl Replication {
    /// The replication map of `CREATE KEYSPACE`.
    pub fn to_cql(&self) -> Result<String, String> {
        let mut entries = vec!["'class': 'NetworkTopologyStrategy'".to_string()];
        if self.datacenters.is_empty() {
            if self.factor == 0 {
                return Err("the replication factor must be at least 1".into());
            }
            entries.push(format!("'replication_factor': {}", self.factor));
        }
        for (dc, n) in &self.datacenters {
            let ok = !dc.is_empty()
                && dc
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !ok || *n == 0 {
                return Err(format!("datacenter {dc:?} with {n} copies"));
            }
            entries.push(format!("'{dc}': {n}"));
        }
        Ok(format!("{{{}}}", entries.join(", ")))
    }
}

/// The keyspace, made if missing. Vnodes, not tablets: the registry's
/// lightweight transactions need them (ScyllaDB 6.0 or later reads this
/// option; an existing keyspace is used as it is).
pub fn create_keyspace(ks: &Keyspace, replication: &Replication) -> Result<String, String> {
    Ok(format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {} AND tablets = {{'enabled': false}}",
        ks.name(),
        replication.to_cql()?
    ))
}

/// The tables beside the rows: the registry, partition progress, leases,
/// dead letters.
pub fn create_shared_tables(ks: &Keyspace) -> Vec<String> {
    let ks = ks.name();
    vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.projections (
                name text PRIMARY KEY,
                registered bigint,
                version int,
                generation int,
                next_generation int,
                checkpoint bigint,
                high bigint,
                tables list<text>,
                failure text,
                paused boolean,
                build_version int,
                build_generation int,
                build_checkpoint bigint,
                build_tables list<text>
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.partition_progress (
                projection text,
                generation int,
                partition int,
                position bigint,
                PRIMARY KEY ((projection), generation, partition)
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.leases (
                name text PRIMARY KEY,
                holder text,
                expires_ms bigint,
                position bigint
            )"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.dead_letters (
                projection text,
                event_id text,
                position bigint,
                event_type text,
                error text,
                at timestamp,
                status text,
                generation int,
                PRIMARY KEY ((projection), event_id)
            )"
        ),
    ]
}

/// A generation's table of rows: one partition per partition key, rows in
/// clustering-key order, each row's cells in a map.
pub fn create_rows_table(qualified: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (
            pk text,
            ck text,
            cells map<text, text>,
            deleted bigint,
            PRIMARY KEY ((pk), ck)
        ) WITH CLUSTERING ORDER BY (ck ASC)"
    )
}

pub fn drop_rows_table(qualified: &str) -> String {
    format!("DROP TABLE IF EXISTS {qualified}")
}

pub fn select_row(qualified: &str) -> String {
    format!("SELECT cells, deleted FROM {qualified} WHERE pk = ? AND ck = ?")
}

/// A page of a partition from its first row.
pub fn scan_first(qualified: &str) -> String {
    format!("SELECT ck, cells FROM {qualified} WHERE pk = ? LIMIT ?")
}

/// A page of a partition after a clustering key.
pub fn scan_after(qualified: &str) -> String {
    format!("SELECT ck, cells FROM {qualified} WHERE pk = ? AND ck > ? LIMIT ?")
}

/// One statement of a row batch: its text and values.
#[derive(Debug, Clone, PartialEq)]
pub struct RowStatement {
    pub cql: String,
    pub values: Vec<CqlValue>,
}

impl RowStatement {
    /// Roughly how many bytes it sends (for batch sizes).
    pub fn size(&self) -> usize {
        self.values
            .iter()
            .map(|v| match v {
                CqlValue::Text(t) => t.len(),
                CqlValue::Map(m) => m
                    .iter()
                    .map(|(k, v)| match (k, v) {
                        (CqlValue::Text(k), CqlValue::Text(v)) => k.len() + v.len() + 8,
                        _ => 16,
                    })
                    .sum(),
                _ => 8,
            })
            .sum()
    }
}

/// The statements that write one row's changes, none of which reads: a
/// delete becomes a row tombstone and the `deleted` marker, each group of
/// cells written at one version becomes one map update, each with the
/// write timestamp its version gives. Written in any order, as often as
/// need be, they leave the same row.
pub fn row_statements(qualified: &str, delta: &Delta) -> Result<Vec<RowStatement>, ReadStoreError> {
    let (pk, ck) = (
        CqlValue::Text(delta.key.partition.clone()),
        CqlValue::Text(delta.key.clustering.clone()),
    );
    let mut out = Vec::new();
    if let Some(d) = delta.change.deleted {
        check_version(d)?;
        out.push(RowStatement {
            cql: format!("DELETE FROM {qualified} USING TIMESTAMP ? WHERE pk = ? AND ck = ?"),
            values: vec![
                CqlValue::BigInt(tombstone_timestamp(d)),
                pk.clone(),
                ck.clone(),
            ],
        });
        out.push(RowStatement {
            cql: format!(
                "UPDATE {qualified} USING TIMESTAMP ? SET deleted = ? WHERE pk = ? AND ck = ?"
            ),
            values: vec![
                CqlValue::BigInt(marker_timestamp(d)),
                CqlValue::BigInt(d as i64),
                pk.clone(),
                ck.clone(),
            ],
        });
    }
    let mut by_version: BTreeMap<u64, Vec<(CqlValue, CqlValue)>> = BTreeMap::new();
    for (name, cell) in &delta.change.cells {
        check_version(cell.version)?;
        by_version.entry(cell.version).or_default().push((
            CqlValue::Text(name.clone()),
            CqlValue::Text(encode_cell(cell)),
        ));
    }
    for (version, cells) in by_version {
        out.push(RowStatement {
            cql: format!(
                "UPDATE {qualified} USING TIMESTAMP ? SET cells = cells + ? WHERE pk = ? AND ck = ?"
            ),
            values: vec![
                CqlValue::BigInt(cell_timestamp(version)),
                CqlValue::Map(cells),
                pk.clone(),
                ck.clone(),
            ],
        });
    }
    Ok(out)
}

/// Splits one partition's statements into batches of at most `max_count`
/// statements and (unless one statement is larger alone) `max_bytes`.
pub fn batches(
    statements: Vec<RowStatement>,
    max_count: usize,
    max_bytes: usize,
) -> Vec<Vec<RowStatement>> {
    let mut out: Vec<Vec<RowStatement>> = Vec::new();
    let mut bytes = 0;
    for statement in statements {
        let size = statement.size();
        match out.last_mut() {
            Some(batch) if batch.len() < max_count && bytes + size <= max_bytes => {
                bytes += size;
                batch.push(statement);
            }
            _ => {
                bytes = size;
                out.push(vec![statement]);
            }
        }
    }
    out
}

/// The registry's columns, in the order its reads name them.
pub const PROJECTION_COLUMNS: &str = "name, registered, version, generation, checkpoint, high, \
     tables, failure, paused, build_version, build_generation, build_checkpoint, build_tables";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shopstream_projections::{Row, RowKey};

    fn cell(value: serde_json::Value, version: u64) -> Cell {
        Cell {
            value: value.into(),
            version,
        }
    }

    #[test]
    fn timestamps_order_cells_and_tombstones_as_versions_do() {
        for d in [0u64, 1, 7, 1 << 40, MAX_VERSION] {
            let tombstone = tombstone_timestamp(d);
            // A tombstone shadows data at or below its timestamp.
            assert!(
                cell_timestamp(d) <= tombstone,
                "a cell of the deleted version is shadowed"
            );
            if d > 0 {
                assert!(cell_timestamp(d - 1) <= tombstone);
            }
            if d < MAX_VERSION {
                assert!(cell_timestamp(d + 1) > tombstone, "a later cell is not");
                assert!(
                    tombstone_timestamp(d + 1) > marker_timestamp(d),
                    "a later delete replaces the marker"
                );
            }
            assert!(
                marker_timestamp(d) > tombstone,
                "the marker survives its own tombstone"
            );
            assert!(marker_timestamp(d) > 0);
        }
        assert_eq!(marker_timestamp(MAX_VERSION), i64::MAX - 1);
    }

    #[test]
    fn every_version_a_projection_writes_fits() {
        use shopstream_projections::timeline::first_wins;
        assert!(
            first_wins(0) <= MAX_VERSION,
            "the timeline's largest version"
        );
    }

    #[test]
    fn versions_past_the_limit_are_refused_not_wrapped() {
        let key = RowKey::single("items", "a");
        let mut change = Row::default();
        change
            .cells
            .insert("doc".into(), cell(json!(1), MAX_VERSION + 1));
        let delta = Delta {
            key,
            change,
            whole: false,
        };
        let refused = row_statements("ks.items__g1", &delta);
        assert!(
            matches!(refused, Err(ReadStoreError::Invalid(_))),
            "{refused:?}"
        );
    }

    #[test]
    fn cells_keep_their_version_beside_their_json() {
        let original = cell(json!({"a": [1, "x:y"]}), 42);
        let text = encode_cell(&original);
        assert_eq!(text, r#"42:{"a":[1,"x:y"]}"#);
        assert_eq!(decode_cell(&text).unwrap(), original);
        for bad in ["", "12", "x:1", "3:{", "-1:1"] {
            assert!(
                matches!(decode_cell(bad), Err(ReadStoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_row_change_becomes_timestamped_writes_grouped_by_version() {
        let key = RowKey::new("shelves", "red", "a");
        let mut change = Row {
            deleted: Some(3),
            ..Row::default()
        };
        change.cells.insert("doc".into(), cell(json!("A"), 5));
        change.cells.insert("stock".into(), cell(json!(2), 4));
        change.cells.insert("note".into(), cell(json!(null), 5));
        let delta = Delta {
            key,
            change,
            whole: false,
        };
        let statements = row_statements("ks.shelves__g2", &delta).unwrap();
        let text = |v: &str| CqlValue::Text(v.into());
        let (pk, ck) = (text("red"), text("a"));
        assert_eq!(
            statements,
            vec![
                RowStatement {
                    cql: "DELETE FROM ks.shelves__g2 USING TIMESTAMP ? WHERE pk = ? AND ck = ?"
                        .into(),
                    values: vec![CqlValue::BigInt(7), pk.clone(), ck.clone()],
                },
                RowStatement {
                    cql: "UPDATE ks.shelves__g2 USING TIMESTAMP ? SET deleted = ? WHERE pk = ? AND ck = ?"
                        .into(),
                    values: vec![CqlValue::BigInt(8), CqlValue::BigInt(3), pk.clone(), ck.clone()],
                },
                RowStatement {
                    cql: "UPDATE ks.shelves__g2 USING TIMESTAMP ? SET cells = cells + ? WHERE pk = ? AND ck = ?"
                        .into(),
                    values: vec![
                        CqlValue::BigInt(8),
                        CqlValue::Map(vec![(text("stock"), text("4:2"))]),
                        pk.clone(),
                        ck.clone(),
                    ],
                },
                RowStatement {
                    cql: "UPDATE ks.shelves__g2 USING TIMESTAMP ? SET cells = cells + ? WHERE pk = ? AND ck = ?"
                        .into(),
                    values: vec![
                        CqlValue::BigInt(10),
                        CqlValue::Map(vec![
                            (text("doc"), text("5:\"A\"")),
                            (text("note"), text("5:null")),
                        ]),
                        pk,
                        ck,
                    ],
                },
            ]
        );
    }

    #[test]
    fn batches_respect_count_and_size_and_keep_order() {
        let statement = |n: usize| RowStatement {
            cql: format!("s{n}"),
            values: vec![CqlValue::Text("x".repeat(n))],
        };
        let split = batches((1..=6).map(statement).collect(), 3, 6);
        let names: Vec<Vec<String>> = split
            .iter()
            .map(|b| b.iter().map(|s| s.cql.clone()).collect())
            .collect();
        assert_eq!(
            names,
            [vec!["s1", "s2", "s3"], vec!["s4"], vec!["s5"], vec!["s6"]],
            "6 bytes at most unless one statement is bigger alone"
        );
        assert!(batches(Vec::new(), 3, 6).is_empty());
    }

    #[test]
    fn names_spliced_into_statements_are_checked() {
        let ks = Keyspace::parse("shop_1").unwrap();
        assert_eq!(ks.rows_table("items", 3).unwrap(), "shop_1.items__g3");
        for bad in ["", "1shop", "Shop", "shop-1", "shop;drop", &"k".repeat(49)] {
            assert!(Keyspace::parse(bad).is_err(), "{bad:?}");
        }
        for bad in ["Items", "items\"", "", "a b", &"t".repeat(45)] {
            assert!(
                matches!(ks.rows_table(bad, 1), Err(ReadStoreError::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn replication_is_spelled_per_datacenter_or_for_all() {
        let everywhere = Replication {
            factor: 3,
            datacenters: BTreeMap::new(),
        };
        assert_eq!(
            everywhere.to_cql().unwrap(),
            "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}"
        );
        let named = Replication {
            factor: 3,
            datacenters: [("eu-west".to_string(), 3), ("us_east".to_string(), 2)].into(),
        };
        assert_eq!(
            named.to_cql().unwrap(),
            "{'class': 'NetworkTopologyStrategy', 'eu-west': 3, 'us_east': 2}"
        );
        let ks = Keyspace::parse("shop").unwrap();
        assert_eq!(
            create_keyspace(&ks, &everywhere).unwrap(),
            "CREATE KEYSPACE IF NOT EXISTS shop WITH replication = \
             {'class': 'NetworkTopologyStrategy', 'replication_factor': 3} \
             AND tablets = {'enabled': false}"
        );
        for bad in [
            Replication {
                factor: 0,
                datacenters: BTreeMap::new(),
            },
            Replication {
                factor: 1,
                datacenters: [("dc'1".to_string(), 1)].into(),
            },
            Replication {
                factor: 1,
                datacenters: [("dc1".to_string(), 0)].into(),
            },
        ] {
            assert!(bad.to_cql().is_err(), "{bad:?}");
        }
    }
}
