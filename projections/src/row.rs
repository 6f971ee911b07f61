//! Rows as the read store keeps them, shaped like ScyllaDB's: a table, a
//! partition key, a clustering key (rows of one partition are ordered by
//! it), and named cells.
//!
//! Every cell remembers the version that wrote it: the revision of the
//! event's stream. A write whose version is not newer than the cell's is
//! ignored, so replayed and duplicated events change nothing. Each cell is
//! written by one stream only (a product's `doc` by its product stream, its
//! `stock` by its inventory stream), so versions are always comparable. A
//! delete leaves a tombstone with its version, so a replayed older write
//! cannot bring the row back. This is ScyllaDB's per-cell last-write-wins
//! with event revisions as write timestamps.
//!
//! A version names one write: the same version comes again only as a
//! replay of the same event, with the same value. Two different values
//! under one version would be a projection's bug, and stores may keep
//! either (ScyllaDB breaks such a tie by comparing the values).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// A cell's value: JSON text, kept as text. Rows are written and read as
/// text and answers are sent as text, so the value is parsed only where
/// its fields are needed, and copying a row copies bytes, not a tree.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

impl Json {
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Json, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(Json)
    }

    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }

    /// JSON text as it is, checked but not parsed into a tree (a store
    /// reading back what it kept).
    pub fn from_text(text: String) -> Result<Json, serde_json::Error> {
        RawValue::from_string(text).map(Json)
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.get() == other.get()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.get())
    }
}

impl From<Value> for Json {
    fn from(value: Value) -> Json {
        // A Value always serialises.
        Json(serde_json::value::to_raw_value(&value).unwrap_or_else(|_| {
            serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
        }))
    }
}

/// Where a row lives: a logical table (the store maps it to the live
/// generation's physical table), its partition and clustering keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RowKey {
    pub table: String,
    pub partition: String,
    pub clustering: String,
}

impl RowKey {
    pub fn new(table: &str, partition: impl Into<String>, clustering: impl Into<String>) -> Self {
        Self {
            table: table.to_string(),
            partition: partition.into(),
            clustering: clustering.into(),
        }
    }

    /// A row that is alone in its partition.
    pub fn single(table: &str, partition: impl Into<String>) -> Self {
        Self::new(table, partition, "")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    #[serde(rename = "v")]
    pub value: Json,
    #[serde(rename = "r")]
    pub version: u64,
}

/// A row's state: its cells, and how far it has been deleted. Cells are
/// kept only when newer than the deletion, so a row deleted at version 2
/// and written again at version 5 holds just what version 5 wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Row {
    #[serde(rename = "c", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cells: BTreeMap<String, Cell>,
    /// Every cell up to this version is deleted (a tombstone).
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

impl Row {
    /// Whether reads see this row.
    pub fn is_live(&self) -> bool {
        !self.cells.is_empty()
    }

    pub fn cell(&self, name: &str) -> Option<&Json> {
        self.cells.get(name).map(|c| &c.value)
    }

    /// A cell's value parsed (for inspection; readers decode typed).
    pub fn value(&self, name: &str) -> Option<Value> {
        self.cell(name).and_then(|j| j.decode().ok())
    }

    /// The newest version of any cell (or the tombstone).
    pub fn version(&self) -> u64 {
        self.cells
            .values()
            .map(|c| c.version)
            .chain(self.deleted)
            .max()
            .unwrap_or(0)
    }

    /// Applies a write; returns whether anything changed.
    pub fn merge(&mut self, change: &Change) -> bool {
        match change {
            Change::Upsert { cells, version } => {
                if self.deleted.is_some_and(|d| *version <= d) {
                    return false;
                }
                let mut changed = false;
                for (name, value) in cells {
                    match self.cells.get(name) {
                        Some(existing) if existing.version >= *version => {}
                        _ => {
                            self.cells.insert(
                                name.clone(),
                                Cell {
                                    value: value.clone(),
                                    version: *version,
                                },
                            );
                            changed = true;
                        }
                    }
                }
                changed
            }
            Change::Delete { version } => {
                if self.deleted.is_some_and(|d| d >= *version) {
                    return false;
                }
                self.deleted = Some(*version);
                self.cells.retain(|_, c| c.version > *version);
                true
            }
        }
    }
}

impl Row {
    /// Folds another row's cells and tombstone into this one, keeping the
    /// newer version of everything: the merge of a stored row with a
    /// batch's changes to it. Returns whether anything changed.
    pub fn absorb(&mut self, other: &Row) -> bool {
        let mut changed = false;
        if let Some(t) = other.deleted {
            changed |= self.merge(&Change::Delete { version: t });
        }
        for (name, cell) in &other.cells {
            changed |= self.merge(&Change::Upsert {
                cells: vec![(name.clone(), cell.value.clone())],
                version: cell.version,
            });
        }
        changed
    }
}

/// What a write does to its row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Change {
    /// Sets these cells, each unless it holds a newer version already.
    Upsert {
        cells: Vec<(String, Json)>,
        version: u64,
    },
    /// Removes the row's cells up to this version and leaves a tombstone.
    Delete { version: u64 },
}

/// One row write of a projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowWrite {
    pub key: RowKey,
    pub change: Change,
}

impl RowWrite {
    pub fn upsert(key: RowKey, cell: &str, value: Json, version: u64) -> Self {
        Self {
            key,
            change: Change::Upsert {
                cells: vec![(cell.to_string(), value)],
                version,
            },
        }
    }

    pub fn delete(key: RowKey, version: u64) -> Self {
        Self {
            key,
            change: Change::Delete { version },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn upsert(value: i64, version: u64) -> Change {
        Change::Upsert {
            cells: vec![("doc".into(), json!(value).into())],
            version,
        }
    }

    #[test]
    fn older_and_repeated_writes_change_nothing() {
        let mut row = Row::default();
        assert!(row.merge(&upsert(1, 3)));
        assert!(!row.merge(&upsert(9, 3)), "a repeat is ignored");
        assert!(!row.merge(&upsert(9, 2)), "an older write is ignored");
        assert_eq!(row.value("doc"), Some(json!(1)));
        assert!(row.merge(&upsert(2, 4)));
        assert_eq!(row.value("doc"), Some(json!(2)));
    }

    #[test]
    fn cells_keep_their_own_versions() {
        let mut row = Row::default();
        row.merge(&upsert(1, 10));
        row.merge(&Change::Upsert {
            cells: vec![("stock".into(), json!(5).into())],
            version: 2,
        });
        assert_eq!(row.value("stock"), Some(json!(5)));
        assert_eq!(row.value("doc"), Some(json!(1)));
        assert_eq!(row.version(), 10);
    }

    #[test]
    fn a_tombstone_keeps_older_writes_out_and_lets_newer_ones_in() {
        let mut row = Row::default();
        row.merge(&upsert(1, 1));
        assert!(row.merge(&Change::Delete { version: 2 }));
        assert!(!row.is_live());
        assert!(!row.merge(&upsert(1, 1)), "a replayed create stays deleted");
        assert!(!row.merge(&Change::Delete { version: 2 }));
        assert!(row.merge(&upsert(3, 5)), "a newer write revives it");
        assert!(row.is_live());
        assert_eq!(row.value("doc"), Some(json!(3)));
    }

    #[test]
    fn absorbing_a_batch_delta_equals_applying_its_changes() {
        let changes = [
            upsert(1, 1),
            Change::Delete { version: 3 },
            Change::Upsert {
                cells: vec![("stock".into(), json!(9).into())],
                version: 4,
            },
            upsert(2, 2),
        ];
        // The stored row's `other` cell (version 2) is deleted by the
        // batch's delete at 3 even though the batch then revives the row.
        let mut stored = Row::default();
        stored.merge(&upsert(5, 3));
        stored.merge(&Change::Upsert {
            cells: vec![("other".into(), json!(1).into())],
            version: 2,
        });
        let mut direct = stored.clone();
        let mut delta = Row::default();
        for c in &changes {
            direct.merge(c);
            delta.merge(c);
        }
        stored.absorb(&delta);
        assert_eq!(stored, direct);
    }

    #[test]
    fn rows_round_trip_through_their_stored_form() {
        let mut row = Row::default();
        row.merge(&upsert(7, 2));
        let stored = serde_json::to_string(&row).unwrap();
        assert_eq!(serde_json::from_str::<Row>(&stored).unwrap(), row);
    }
}
