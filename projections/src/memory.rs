//! Rows in memory: the source for tests, for folding one stream on demand
//! (an order as it stood at some instant), and the runner's batch overlay.

use std::collections::BTreeMap;

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{Row, RowKey, RowWrite};

/// Every row a projection wrote, absent rows known to be absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemoryRows {
    pub rows: BTreeMap<RowKey, Row>,
}

impl RowSource for MemoryRows {
    fn get(&self, key: &RowKey) -> Result<Option<&Row>, ProjectionError> {
        Ok(self.rows.get(key))
    }
}

impl MemoryRows {
    pub fn write(&mut self, writes: &[RowWrite]) {
        for w in writes {
            self.rows.entry(w.key.clone()).or_default().merge(&w.change);
        }
    }

    /// Applies one event through a projection.
    pub fn project(
        &mut self,
        projection: &dyn Projection,
        event: &Envelope<'_>,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let writes = projection.apply(event, self)?;
        self.write(&writes);
        Ok(writes)
    }

    /// The live rows of one table's partition, in clustering order.
    pub fn partition<'a>(
        &'a self,
        table: &'a str,
        partition: &'a str,
    ) -> impl Iterator<Item = (&'a RowKey, &'a Row)> + 'a {
        self.rows
            .iter()
            .filter(move |(k, r)| k.table == table && k.partition == partition && r.is_live())
    }

    /// A live row.
    pub fn live(&self, key: &RowKey) -> Option<&Row> {
        self.rows.get(key).filter(|r| r.is_live())
    }
}
