//! The expected read model: every recorded event folded in order through
//! every projection that reads its type, in memory. A store is right when it
//! holds exactly these rows, cell versions and tombstones included.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use shopstream_infra::event_store::EventFilter as Types;
use shopstream_infra::event_store::{EventFilter, EventStore, RecordedEvent};
use shopstream_infra::read_store::ReadSide;
use shopstream_projections::catalogue::{INVENTORY_BY_SKU, StockDoc};
use shopstream_projections::memory::MemoryRows;
use shopstream_projections::{DOC, Json, Projection, Row, RowKey, RowWrite};

use crate::shop::Shop;

/// Every recorded event, in `$all` order.
pub async fn history(events: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let slice = events
            .read_all(after, &EventFilter::default(), 1000)
            .await
            .expect("history readable");
        if slice.events.is_empty() {
            return out;
        }
        after = slice.scanned_to;
        out.extend(slice.events);
    }
}

pub use shopstream_infra::runner::envelope;

/// A projection and the event types the runner gives it.
pub struct Reader {
    pub projection: Arc<dyn Projection>,
    types: Types,
}

impl Reader {
    pub fn reads(&self, event: &RecordedEvent) -> bool {
        self.types.matches(&event.event_type, &event.stream)
    }

    /// Applies the event to `rows`; a projection that cannot is a failed test.
    pub fn project(&self, rows: &mut MemoryRows, event: &RecordedEvent) -> Vec<RowWrite> {
        rows.project(self.projection.as_ref(), &envelope(event))
            .unwrap_or_else(|e| {
                panic!(
                    "{} cannot apply {} at position {}: {e}",
                    self.projection.name(),
                    event.event_type,
                    event.position
                )
            })
    }
}

/// Every projection, with the event types it reads.
pub fn readers() -> Vec<Reader> {
    shopstream_projections::all()
        .into_iter()
        .map(|projection| Reader {
            types: Types {
                types: projection
                    .event_types()
                    .into_iter()
                    .map(String::from)
                    .collect(),
                stream_prefix: None,
            },
            projection,
        })
        .collect()
}

/// The read model of a history.
pub fn fold(history: &[RecordedEvent]) -> MemoryRows {
    fold_delivering_each(history, 1)
}

/// The rows only the named projections make of a history.
pub fn fold_only(history: &[RecordedEvent], names: &[&str]) -> MemoryRows {
    fold_by(
        history,
        1,
        readers()
            .into_iter()
            .filter(|r| names.contains(&r.projection.name()))
            .collect(),
    )
}

/// The read model of a history whose every event is delivered `times`
/// times in a row.
pub fn fold_delivering_each(history: &[RecordedEvent], times: usize) -> MemoryRows {
    fold_by(history, times, readers())
}

fn fold_by(history: &[RecordedEvent], times: usize, readers: Vec<Reader>) -> MemoryRows {
    let mut rows = MemoryRows::default();
    for event in history {
        for reader in readers.iter().filter(|r| r.reads(event)) {
            for _ in 0..times {
                reader.project(&mut rows, event);
            }
        }
    }
    rows
}

/// The live generation of every registered projection's tables, as the
/// registry says.
pub async fn live_generations(read: &ReadSide) -> BTreeMap<&'static str, u32> {
    let records = read
        .registry
        .projections()
        .await
        .expect("registry readable");
    let mut generations = BTreeMap::new();
    for projection in shopstream_projections::all() {
        let Some(record) = records.iter().find(|r| r.name == projection.name()) else {
            continue;
        };
        for table in projection.tables() {
            generations.insert(*table, record.generation);
        }
    }
    generations
}

fn generation_of(generations: &BTreeMap<&'static str, u32>, table: &str) -> u32 {
    *generations
        .get(table)
        .unwrap_or_else(|| panic!("the projection writing {table} is registered"))
}

/// Every live row of one partition, page by page.
pub async fn scan_partition(
    read: &ReadSide,
    generation: u32,
    table: &str,
    partition: &str,
) -> Vec<(String, Row)> {
    const PAGE: usize = 16;
    let mut out: Vec<(String, Row)> = Vec::new();
    loop {
        let after = out.last().map(|(clustering, _)| clustering.clone());
        let page = read
            .rows
            .scan(generation, table, partition, after.as_deref(), PAGE)
            .await
            .unwrap_or_else(|e| panic!("scan of {table}/{partition}: {e}"));
        let full = page.len() == PAGE;
        out.extend(page);
        if !full {
            return out;
        }
    }
}

fn clusterings(rows: &[(String, Row)]) -> Vec<&str> {
    rows.iter().map(|(c, _)| c.as_str()).collect()
}

/// How the live generations differ from the reference: each row the
/// reference wrote, read back as stored (tombstones and cell versions
/// included), and each partition it wrote, scanned in full, so rows the
/// reference does not have show up too.
pub async fn differences(read: &ReadSide, reference: &MemoryRows) -> Vec<String> {
    let generations = live_generations(read).await;
    let mut out = Vec::new();
    let keys: Vec<&RowKey> = reference.rows.keys().collect();
    for chunk in keys.chunk_by(|a, b| a.table == b.table) {
        let generation = generation_of(&generations, &chunk[0].table);
        for part in chunk.chunks(200) {
            let wanted = part.iter().map(|k| (*k).clone()).collect();
            let stored = read
                .rows
                .get_many(generation, wanted)
                .await
                .expect("rows readable");
            for (key, stored) in part.iter().zip(stored) {
                let expected = &reference.rows[*key];
                if stored.as_ref() != Some(expected) {
                    out.push(format!("{key:?}: stored {stored:?}, expected {expected:?}"));
                }
            }
        }
    }
    let partitions: BTreeSet<(&str, &str)> = reference
        .rows
        .keys()
        .map(|k| (k.table.as_str(), k.partition.as_str()))
        .collect();
    for (table, partition) in partitions {
        let scanned =
            scan_partition(read, generation_of(&generations, table), table, partition).await;
        let expected: Vec<(String, Row)> = reference
            .partition(table, partition)
            .map(|(k, r)| (k.clustering.clone(), r.clone()))
            .collect();
        if scanned != expected {
            out.push(format!(
                "{table}/{partition} scans as {:?}, expected {:?}",
                clusterings(&scanned),
                clusterings(&expected)
            ));
        }
    }
    out
}

fn assert_none(what: &str, differences: Vec<String>) {
    assert!(
        differences.is_empty(),
        "{} differences from {what}; the first:\n{}",
        differences.len(),
        differences[..differences.len().min(5)].join("\n")
    );
}

/// The store's live generations hold exactly the reference's rows.
pub async fn assert_matches(read: &ReadSide, reference: &MemoryRows) {
    assert!(
        !reference.rows.is_empty(),
        "an empty reference proves nothing"
    );
    assert_none("the reference", differences(read, reference).await);
}

fn stock_of(doc: Option<&Json>) -> Option<StockDoc> {
    doc.map(|d| d.decode().expect("stock levels decode"))
}

/// Stock levels in `inventory_by_sku` against the inventory aggregates
/// themselves: an event skipped or
/// counted twice shows here, whatever the projection's own logic.
pub async fn assert_stock_matches_domain(read: &ReadSide, shop: &Shop) {
    let generation = generation_of(&live_generations(read).await, INVENTORY_BY_SKU);
    let levels = shop.stock_levels();
    assert!(!levels.is_empty(), "the shop holds stock");
    let mut out = Vec::new();
    let mut compare = |key: RowKey, stored: Option<StockDoc>, expected: Option<StockDoc>| {
        if stored != expected {
            out.push(format!(
                "{key:?}: stored {stored:?}, the domain says {expected:?}"
            ));
        }
    };
    for (sku, expected) in &levels {
        let key = RowKey::single(INVENTORY_BY_SKU, sku.as_str());
        let row = read.rows.get(generation, &key).await.expect("row readable");
        compare(
            key,
            stock_of(row.as_ref().and_then(|r| r.cell(DOC))),
            Some(*expected),
        );
    }
    assert_none("the inventory aggregates", out);
}
