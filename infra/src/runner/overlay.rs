//! A batch's view of a projection's rows: what the store held (fetched on
//! demand) with the batch's own writes on top, and those writes merged per
//! row so each touched row is written once per batch.

use rustc_hash::FxHashMap as HashMap;

use shopstream_projections::{ProjectionError, Row, RowKey, RowSource, RowWrite};

use crate::read_store::Delta;

#[derive(Default)]
pub(crate) struct Overlay {
    /// Rows whose stored state is known, with this batch's writes applied.
    current: HashMap<RowKey, Row>,
    /// This batch's writes, merged per row.
    delta: HashMap<RowKey, Row>,
}

impl RowSource for Overlay {
    fn get(&self, key: &RowKey) -> Result<Option<&Row>, ProjectionError> {
        match self.current.get(key) {
            Some(row) => Ok(Some(row).filter(|r| r.is_live())),
            None => Err(ProjectionError::Need(vec![key.clone()])),
        }
    }
}

impl Overlay {
    /// Whether the stored state of a row is known already.
    pub(crate) fn knows(&self, key: &RowKey) -> bool {
        self.current.contains_key(key)
    }

    /// Records a row as stored (absent when `None`), under this batch's
    /// writes to it so far.
    pub(crate) fn learn(&mut self, key: RowKey, stored: Option<Row>) {
        let mut row = stored.unwrap_or_default();
        if let Some(delta) = self.delta.get(&key) {
            row.absorb(delta);
        }
        self.current.insert(key, row);
    }

    pub(crate) fn write(&mut self, writes: Vec<RowWrite>) {
        for w in writes {
            if let Some(row) = self.current.get_mut(&w.key) {
                row.merge(&w.change);
            }
            self.delta.entry(w.key).or_default().merge(&w.change);
        }
    }

    /// The batch's changes, and the rows now known as stored.
    ///
    /// With `whole`, the writer is the only one of its tables and `base`
    /// tells the stored state of any row (`Some(None)`: absent), so every
    /// change goes out as the row's whole new state. Otherwise changes are
    /// merged by the store, which is safe beside other writers.
    pub(crate) fn finish(
        mut self,
        whole: bool,
        base: impl Fn(&RowKey) -> Option<Option<Row>>,
    ) -> (Vec<Delta>, HashMap<RowKey, Row>) {
        let mut deltas = Vec::with_capacity(self.delta.len());
        for (key, change) in self.delta {
            if !whole {
                deltas.push(Delta {
                    key,
                    change,
                    whole: false,
                });
                continue;
            }
            let row = match self.current.get(&key) {
                Some(current) => Some(current.clone()),
                None => base(&key).map(|stored| {
                    let mut row = stored.unwrap_or_default();
                    row.absorb(&change);
                    row
                }),
            };
            match row {
                Some(row) => {
                    self.current.insert(key.clone(), row.clone());
                    deltas.push(Delta {
                        key,
                        change: row,
                        whole: true,
                    });
                }
                None => deltas.push(Delta {
                    key,
                    change,
                    whole: false,
                }),
            }
        }
        (deltas, self.current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(version: u64) -> RowWrite {
        RowWrite::upsert(
            RowKey::single("t", "a"),
            "doc",
            json!(version).into(),
            version,
        )
    }

    #[test]
    fn unknown_rows_are_asked_for_and_known_ones_include_the_batch() {
        let mut overlay = Overlay::default();
        let key = RowKey::single("t", "a");
        assert!(matches!(overlay.get(&key), Err(ProjectionError::Need(_))));
        overlay.write(vec![write(2)]);
        let mut stored = Row::default();
        stored.merge(&write(1).change);
        overlay.learn(key.clone(), Some(stored));
        assert_eq!(
            overlay.get(&key).unwrap().unwrap().value("doc"),
            Some(json!(2))
        );
        overlay.write(vec![write(3)]);
        assert_eq!(
            overlay.get(&key).unwrap().unwrap().value("doc"),
            Some(json!(3))
        );
        let (deltas, known) = overlay.finish(false, |_| None);
        assert_eq!(deltas.len(), 1);
        assert!(!deltas[0].whole);
        assert_eq!(deltas[0].change.value("doc"), Some(json!(3)));
        assert_eq!(known[&key].value("doc"), Some(json!(3)));
    }

    #[test]
    fn a_sole_writer_sends_whole_rows_even_for_rows_it_only_wrote() {
        let mut overlay = Overlay::default();
        overlay.write(vec![write(2)]);
        let (deltas, known) = overlay.finish(true, |_| Some(None));
        assert!(deltas[0].whole);
        assert_eq!(deltas[0].change.value("doc"), Some(json!(2)));
        assert_eq!(
            known[&RowKey::single("t", "a")].value("doc"),
            Some(json!(2))
        );
    }
}
