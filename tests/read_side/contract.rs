//! The contract every ReadStore adapter passes: rows with per-cell versions
//! and tombstones, partition scans, batches written with their checkpoint,
//! and generations that rebuilds fill and switch.

use std::sync::Arc;

use serde_json::Value;
use shopstream_infra::read_store::{Batch, Delta, ProjectionRecord, ReadStore, Target};
use shopstream_projections::{Change, DOC, Row, RowKey};

/// The projection every contract test registers.
pub const PROJECTION: &str = "contract";
/// A by-id table (one row per partition) and a list table (many rows per
/// partition), as projections have.
pub const ITEMS: &str = "items";
pub const SHELVES: &str = "shelves";
pub const TABLES: &[&str] = &[ITEMS, SHELVES];

/// A row alone in its partition of `items`.
pub fn item(id: &str) -> RowKey {
    RowKey::single(ITEMS, id)
}

/// The row at clustering key `slot` of the partition `shelf`.
pub fn slot(shelf: &str, slot: &str) -> RowKey {
    RowKey::new(SHELVES, shelf, slot)
}

/// Applies a batch; the rows it reports changed.
pub async fn applied(
    store: &Arc<dyn ReadStore>,
    batch: Batch,
) -> Result<Vec<RowKey>, shopstream_infra::read_store::ReadStoreError> {
    store.apply(batch).await.map(|a| a.changed)
}

/// A batch's change to one cell of a row.
pub fn set(key: &RowKey, cell: &str, value: Value, version: u64) -> Delta {
    let mut change = Row::default();
    change.merge(&Change::Upsert {
        cells: vec![(cell.to_string(), value.into())],
        version,
    });
    Delta {
        key: key.clone(),
        change,
        whole: false,
    }
}

/// A batch's change to a row's document.
pub fn put(key: &RowKey, value: Value, version: u64) -> Delta {
    set(key, DOC, value, version)
}

pub fn delete(key: &RowKey, version: u64) -> Delta {
    let mut change = Row::default();
    change.merge(&Change::Delete { version });
    Delta {
        key: key.clone(),
        change,
        whole: false,
    }
}

pub fn live(generation: u32, deltas: Vec<Delta>, checkpoint: u64) -> Batch {
    batch(Target::Live(generation), deltas, checkpoint)
}

pub fn build(generation: u32, deltas: Vec<Delta>, checkpoint: u64) -> Batch {
    batch(Target::Build(generation), deltas, checkpoint)
}

fn batch(target: Target, deltas: Vec<Delta>, checkpoint: u64) -> Batch {
    Batch {
        projection: PROJECTION.to_string(),
        target,
        deltas,
        checkpoint: shopstream_infra::read_store::Checkpoint::Position(checkpoint),
    }
}

pub async fn register(store: &Arc<dyn ReadStore>) -> ProjectionRecord {
    store
        .register(PROJECTION, 1, TABLES)
        .await
        .expect("registers")
}

/// The registry's record of the contract projection.
pub async fn record(store: &Arc<dyn ReadStore>) -> ProjectionRecord {
    store
        .projection(PROJECTION)
        .await
        .expect("registry readable")
        .expect("projection registered")
}

/// The document of a live row.
pub async fn doc(store: &Arc<dyn ReadStore>, generation: u32, key: &RowKey) -> Option<Value> {
    store
        .get(generation, key)
        .await
        .expect("get succeeds")
        .and_then(|row| row.value(DOC))
}

/// The clustering keys of one page of a shelf in a generation.
pub async fn page(
    store: &Arc<dyn ReadStore>,
    generation: u32,
    shelf: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    store
        .scan(generation, SHELVES, shelf, after, limit)
        .await
        .expect("scan succeeds")
        .into_iter()
        .map(|(clustering, _)| clustering)
        .collect()
}

/// The same key in another table.
pub fn in_table(key: &RowKey, table: &str) -> RowKey {
    RowKey {
        table: table.to_string(),
        ..key.clone()
    }
}

/// Keys in a stable order, for comparing what a batch reports as changed.
pub fn sorted(mut keys: Vec<RowKey>) -> Vec<RowKey> {
    keys.sort();
    keys
}

/// Instantiates every contract test for the adapter the fixture expression
/// builds. The expression yields `Option<ReadStoreFixture>` and may
/// `.await`; `None` skips the test (an adapter whose server is not
/// configured).
#[macro_export]
macro_rules! read_store_contract {
    ($fixture:expr) => {
        use serde_json::json;
        use shopstream_infra::read_store::{BuildRecord, ProjectionRecord, ReadStoreError};

        use $crate::contract::{
            PROJECTION, SHELVES, TABLES, applied, build, delete, doc, in_table, item, live, page,
            put, record, register, set, slot, sorted,
        };

        async fn fixture() -> Option<$crate::ReadStoreFixture> {
            $fixture
        }

        /// A fixture with the contract projection registered.
        async fn registered() -> Option<$crate::ReadStoreFixture> {
            let f = fixture().await?;
            register(&f.store).await;
            Some(f)
        }

        #[tokio::test]
        async fn registering_creates_generation_one_once() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            let first = register(s).await;
            assert_eq!(
                first,
                ProjectionRecord {
                    name: PROJECTION.into(),
                    version: 1,
                    generation: 1,
                    checkpoint: 0,
                    failure: None,
                    paused: false,
                    build: None,
                }
            );
            for table in TABLES {
                let empty = s.get(1, &in_table(&item("a"), table)).await;
                assert_eq!(empty, Ok(None), "{table} exists in generation 1, empty");
            }
            applied(s, live(1, vec![put(&item("a"), json!("A"), 1)], 4))
                .await
                .unwrap();

            let again = s.register(PROJECTION, 2, TABLES).await.unwrap();
            assert_eq!(
                again,
                ProjectionRecord {
                    checkpoint: 4,
                    ..first
                },
                "registering again returns the existing record, whatever version it names"
            );
            assert_eq!(
                doc(s, 1, &item("a")).await,
                Some(json!("A")),
                "and keeps its rows"
            );

            let other = s.register("other", 3, &["other_rows"]).await.unwrap();
            assert_eq!(
                (other.version, other.generation, other.checkpoint),
                (3, 1, 0)
            );
            let names: Vec<String> = s
                .projections()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect();
            assert_eq!(names, [PROJECTION, "other"]);
        }

        #[tokio::test]
        async fn a_batch_writes_its_rows_and_its_checkpoint_atomically() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let a = item("a");
            let listed = slot("red", "a");
            let changed = applied(
                s,
                live(
                    1,
                    vec![put(&a, json!("A"), 1), put(&listed, json!("A"), 1)],
                    7,
                ),
            )
            .await
            .unwrap();
            assert_eq!(sorted(changed), sorted(vec![a.clone(), listed.clone()]));
            assert_eq!(doc(s, 1, &a).await, Some(json!("A")));
            assert_eq!(doc(s, 1, &listed).await, Some(json!("A")));
            assert_eq!(record(s).await.checkpoint, 7);

            // A batch that fails part-way writes none of its rows and does
            // not move the checkpoint.
            let b = item("b");
            let broken = live(
                1,
                vec![
                    put(&b, json!("B"), 1),
                    put(&in_table(&a, "no_such_table"), json!(0), 1),
                ],
                9,
            );
            assert!(
                applied(s, broken).await.is_err(),
                "a write to a missing table fails"
            );
            assert_eq!(
                doc(s, 1, &b).await,
                None,
                "the failed batch's other rows are not written"
            );
            assert_eq!(record(s).await.checkpoint, 7);

            // Batches delivered again from an earlier position (at-least-once
            // delivery) never move the checkpoint back.
            assert_eq!(applied(s, live(1, vec![], 3)).await, Ok(vec![]));
            assert_eq!(record(s).await.checkpoint, 7);
        }

        #[tokio::test]
        async fn older_and_repeated_writes_change_nothing() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let a = item("a");
            let write = |value: &str, version| live(1, vec![put(&a, json!(value), version)], 1);
            assert_eq!(applied(s, write("two", 2)).await, Ok(vec![a.clone()]));
            assert_eq!(
                applied(s, write("two", 2)).await,
                Ok(vec![]),
                "a repeat is not a change"
            );
            let older = applied(s, write("one", 1)).await;
            assert_eq!(older, Ok(vec![]), "an older write is not a change");
            assert_eq!(
                applied(s, write("again", 2)).await,
                Ok(vec![]),
                "nor one at the same version"
            );
            assert_eq!(doc(s, 1, &a).await, Some(json!("two")));

            // Cells keep their own versions: an older version of another
            // cell is still news.
            let stock = set(&a, "stock", json!(5), 1);
            assert_eq!(
                applied(s, live(1, vec![stock], 1)).await,
                Ok(vec![a.clone()])
            );
            let stored = s.get(1, &a).await.unwrap().expect("live row");
            assert_eq!(stored.value("doc"), Some(json!("two")));
            assert_eq!(stored.value("stock"), Some(json!(5)));
            assert_eq!(stored.version(), 2);

            assert_eq!(applied(s, write("three", 3)).await, Ok(vec![a.clone()]));
            assert_eq!(doc(s, 1, &a).await, Some(json!("three")));
        }

        #[tokio::test]
        async fn a_tombstone_hides_its_row_and_keeps_older_writes_out() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let (a, b) = (slot("red", "a"), slot("red", "b"));
            applied(
                s,
                live(1, vec![put(&a, json!("A"), 1), put(&b, json!("B"), 1)], 1),
            )
            .await
            .unwrap();

            assert_eq!(
                applied(s, live(1, vec![delete(&a, 2)], 2)).await,
                Ok(vec![a.clone()])
            );
            assert_eq!(
                s.get(1, &a).await,
                Ok(None),
                "get does not see a deleted row"
            );
            assert_eq!(page(s, 1, "red", None, 10).await, ["b"], "nor does a scan");
            let stored = s.get_many(1, vec![a.clone()]).await.unwrap();
            let tombstone = stored[0].as_ref().and_then(|r| r.deleted);
            assert_eq!(tombstone, Some(2), "the tombstone is kept");

            assert_eq!(
                applied(s, live(1, vec![put(&a, json!("A"), 1)], 2)).await,
                Ok(vec![]),
                "a replayed older write does not bring the row back"
            );
            assert_eq!(s.get(1, &a).await, Ok(None));
            assert_eq!(
                applied(s, live(1, vec![delete(&a, 2)], 2)).await,
                Ok(vec![])
            );
            let never = slot("red", "never");
            assert_eq!(
                applied(s, live(1, vec![delete(&never, 1)], 2)).await,
                Ok(vec![]),
                "deleting a row nobody saw changes nothing visible"
            );

            let revived = applied(s, live(1, vec![put(&a, json!("A3"), 3)], 3)).await;
            assert_eq!(revived, Ok(vec![a.clone()]));
            assert_eq!(
                doc(s, 1, &a).await,
                Some(json!("A3")),
                "a newer write revives it"
            );
            assert_eq!(page(s, 1, "red", None, 10).await, ["a", "b"]);
        }

        #[tokio::test]
        async fn a_scan_pages_through_live_rows_in_clustering_order() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let mut deltas: Vec<_> = ["c", "", "bb", "a", "d", "b"]
                .into_iter()
                .map(|c| put(&slot("red", c), json!(c), 1))
                .collect();
            deltas.push(put(&slot("blue", "a"), json!("other partition"), 1));
            applied(s, live(1, deltas, 1)).await.unwrap();
            applied(s, live(1, vec![delete(&slot("red", "bb"), 2)], 2))
                .await
                .unwrap();

            assert_eq!(
                page(s, 1, "red", None, 2).await,
                ["", "a"],
                "the empty key is a key too"
            );
            let next = page(s, 1, "red", Some("a"), 2).await;
            assert_eq!(next, ["b", "c"], "deleted rows are skipped");
            assert_eq!(page(s, 1, "red", Some("c"), 10).await, ["d"]);
            assert_eq!(page(s, 1, "red", Some("d"), 10).await, Vec::<String>::new());
            assert_eq!(
                page(s, 1, "red", Some("a0"), 1).await,
                ["b"],
                "`after` need not be a key"
            );
            assert_eq!(page(s, 1, "green", None, 10).await, Vec::<String>::new());
            let rows = s.scan(1, SHELVES, "blue", None, 10).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].1.value("doc"), Some(json!("other partition")));
        }

        #[tokio::test]
        async fn paging_on_from_the_empty_clustering_key_moves_past_it() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let deltas = ["", "a"]
                .into_iter()
                .map(|c| put(&slot("red", c), json!(c), 1))
                .collect();
            applied(s, live(1, deltas, 1)).await.unwrap();
            assert_eq!(page(s, 1, "red", None, 1).await, [""]);
            assert_eq!(
                page(s, 1, "red", Some(""), 1).await,
                ["a"],
                "`after` is exclusive"
            );
        }

        #[tokio::test]
        async fn a_batch_for_a_generation_that_is_not_live_is_superseded_and_writes_nothing() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let a = item("a");
            let superseded = Err(ReadStoreError::Superseded);
            assert_eq!(
                applied(s, live(2, vec![put(&a, json!("A"), 1)], 5)).await,
                superseded
            );
            let no_build = applied(s, build(1, vec![put(&a, json!("A"), 1)], 5)).await;
            assert_eq!(no_build, superseded, "no build runs");
            let mut stranger = live(1, vec![put(&a, json!("A"), 1)], 5);
            stranger.projection = "unregistered".into();
            assert_eq!(applied(s, stranger).await, superseded);
            assert_eq!(doc(s, 1, &a).await, None);
            assert_eq!(record(s).await.checkpoint, 0);
        }

        #[tokio::test]
        async fn a_paused_projection_refuses_live_batches_until_resumed() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let a = item("a");
            s.set_paused(PROJECTION, true).await.unwrap();
            assert!(record(s).await.paused);
            assert_eq!(
                applied(s, live(1, vec![put(&a, json!("A"), 1)], 5)).await,
                Err(ReadStoreError::Superseded)
            );
            assert_eq!(doc(s, 1, &a).await, None);
            assert_eq!(record(s).await.checkpoint, 0);

            s.set_paused(PROJECTION, false).await.unwrap();
            let resumed = applied(s, live(1, vec![put(&a, json!("A"), 1)], 5)).await;
            assert_eq!(resumed, Ok(vec![a.clone()]));
            assert_eq!(doc(s, 1, &a).await, Some(json!("A")));

            s.set_failure(PROJECTION, Some("cannot apply event 6"))
                .await
                .unwrap();
            assert_eq!(
                record(s).await.failure.as_deref(),
                Some("cannot apply event 6")
            );
            s.set_failure(PROJECTION, None).await.unwrap();
            assert_eq!(record(s).await.failure, None);
        }

        #[tokio::test]
        async fn a_build_goes_live_once_it_has_caught_up_and_the_old_generation_goes() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let (old, new) = (item("old"), item("new"));
            applied(s, live(1, vec![put(&old, json!("v1"), 1)], 10))
                .await
                .unwrap();
            assert_eq!(doc(s, 1, &old).await, Some(json!("v1")));

            let g = s.start_build(PROJECTION, 2, TABLES).await.unwrap();
            assert_ne!(g, 1);
            let started = record(s).await;
            let serving = (started.generation, started.version);
            assert_eq!(serving, (1, 1), "the live generation still serves");
            let building = BuildRecord {
                version: 2,
                generation: g,
                checkpoint: 0,
            };
            assert_eq!(started.build, Some(building));

            applied(s, build(g, vec![put(&new, json!("v2"), 1)], 6))
                .await
                .unwrap();
            assert_eq!(
                s.finish_build(PROJECTION, g).await,
                Ok(false),
                "6 is behind the live 10"
            );
            let behind = record(s).await;
            assert_eq!(behind.generation, 1);
            assert_eq!(behind.build.map(|b| b.checkpoint), Some(6));
            assert_eq!(doc(s, 1, &old).await, Some(json!("v1")));

            applied(
                s,
                build(g, vec![put(&slot("red", "new"), json!("v2"), 1)], 10),
            )
            .await
            .unwrap();
            s.set_failure(PROJECTION, Some("the bug the rebuild fixes"))
                .await
                .unwrap();
            assert_eq!(s.finish_build(PROJECTION, g).await, Ok(true));
            assert_eq!(
                record(s).await,
                ProjectionRecord {
                    name: PROJECTION.into(),
                    version: 2,
                    generation: g,
                    checkpoint: 10,
                    failure: None,
                    paused: false,
                    build: None,
                },
                "the build is live, at its checkpoint, and the failure is cleared"
            );
            assert_eq!(doc(s, g, &new).await, Some(json!("v2")));
            assert_eq!(page(s, g, "red", None, 10).await, ["new"]);

            let gone = s.get(1, &old).await;
            assert!(
                matches!(gone, Err(ReadStoreError::NoSuchTable(_))),
                "{gone:?}"
            );
            let gone = s.scan(1, SHELVES, "red", None, 10).await;
            assert!(
                matches!(gone, Err(ReadStoreError::NoSuchTable(_))),
                "{gone:?}"
            );
            assert_eq!(
                applied(s, live(1, vec![put(&old, json!("late"), 2)], 11)).await,
                Err(ReadStoreError::Superseded),
                "the old generation's live runner is told it was replaced"
            );
            let onwards = applied(s, live(g, vec![put(&new, json!("v3"), 2)], 11)).await;
            assert_eq!(onwards, Ok(vec![new.clone()]));
            assert_eq!(record(s).await.checkpoint, 11);
        }

        #[tokio::test]
        async fn starting_a_build_again_replaces_the_unfinished_one() {
            let Some(f) = registered().await else { return };
            let s = &f.store;
            let no_build = s.finish_build(PROJECTION, 2).await;
            assert_eq!(no_build, Err(ReadStoreError::Superseded), "no build runs");
            let first = s.start_build(PROJECTION, 1, TABLES).await.unwrap();
            applied(s, build(first, vec![put(&item("a"), json!("first"), 1)], 3))
                .await
                .unwrap();

            let second = s.start_build(PROJECTION, 1, TABLES).await.unwrap();
            assert_ne!(second, first);
            assert_ne!(second, 1);
            assert_eq!(
                applied(s, build(first, vec![put(&item("a"), json!("late"), 2)], 4)).await,
                Err(ReadStoreError::Superseded)
            );
            assert_eq!(
                s.finish_build(PROJECTION, first).await,
                Err(ReadStoreError::Superseded)
            );
            assert_eq!(
                record(s).await.build,
                Some(BuildRecord {
                    version: 1,
                    generation: second,
                    checkpoint: 0
                }),
                "the new build starts from nothing"
            );
            assert_eq!(doc(s, second, &item("a")).await, None);

            assert_eq!(
                s.finish_build(PROJECTION, second).await,
                Ok(true),
                "both are at 0"
            );
            assert_eq!(record(s).await.generation, second);
        }
    };
}
