//! The contract every read store adapter passes, one suite per port:
//! rows (per-cell versions, tombstones, partition scans, tables per
//! generation), the projection registry (generations, checkpoints that
//! only move forward, rebuilds, pause and failure, partition progress) and
//! coordination (leases, dead letters). Written against what every
//! engine can promise: `apply` is durable but not atomic, and may report
//! more rows as changed than did change, never fewer.

use std::collections::BTreeSet;

use serde_json::Value;
use shopstream_infra::read_store::{Delta, ReadSide};
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

/// Writes deltas to a generation; the rows reported changed, as a set.
pub async fn apply(read: &ReadSide, generation: u32, deltas: Vec<Delta>) -> BTreeSet<RowKey> {
    read.rows
        .apply(generation, deltas)
        .await
        .expect("a batch is written")
        .into_iter()
        .collect()
}

pub fn keys<const N: usize>(keys: [&RowKey; N]) -> BTreeSet<RowKey> {
    keys.into_iter().cloned().collect()
}

/// The document of a live row.
pub async fn doc(read: &ReadSide, generation: u32, key: &RowKey) -> Option<Value> {
    read.rows
        .get(generation, key)
        .await
        .expect("get succeeds")
        .and_then(|row| row.value(DOC))
}

/// The row as stored, tombstone included.
pub async fn stored(read: &ReadSide, generation: u32, key: &RowKey) -> Option<Row> {
    read.rows
        .get_many(generation, vec![key.clone()])
        .await
        .expect("get_many succeeds")
        .remove(0)
}

/// The clustering keys of one page of a shelf in a generation.
pub async fn page(
    read: &ReadSide,
    generation: u32,
    shelf: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<String> {
    read.rows
        .scan(generation, SHELVES, shelf, after, limit)
        .await
        .expect("scan succeeds")
        .into_iter()
        .map(|(clustering, _)| clustering)
        .collect()
}

/// Instantiates every contract test for the adapter the fixture expression
/// builds. The expression yields `Option<ReadStoreFixture>` and may
/// `.await`; `None` skips the test (an adapter whose server is not
/// configured), and the fixture says so.
#[macro_export]
macro_rules! read_store_contract {
    ($fixture:expr) => {
        use std::time::Duration;

        use serde_json::json;
        use shopstream_infra::read_store::{
            BuildRecord, DeadLetter, Generation, PartitionProgress, Progress, ProjectionRecord,
            ReadSide, ReadStoreError, StartedBuild, Switch, Target,
        };

        use $crate::contract::{
            PROJECTION, SHELVES, TABLES, apply, delete, doc, item, keys, page, put, set, slot,
            stored,
        };

        async fn fixture() -> Option<$crate::ReadStoreFixture> {
            $fixture
        }

        /// A fixture with the contract projection registered and its
        /// generation-1 tables created.
        async fn registered() -> Option<$crate::ReadStoreFixture> {
            let f = fixture().await?;
            f.read
                .register(PROJECTION, 1, TABLES)
                .await
                .expect("registers");
            Some(f)
        }

        async fn record(read: &ReadSide) -> ProjectionRecord {
            read.registry
                .projection(PROJECTION)
                .await
                .expect("registry readable")
                .expect("projection registered")
        }

        fn owned(tables: &[&str]) -> Vec<String> {
            tables.iter().map(|t| t.to_string()).collect()
        }

        fn at(partition: i32, position: u64) -> PartitionProgress {
            PartitionProgress {
                partition,
                position,
            }
        }

        fn letter(projection: &str, event: &str, position: u64) -> DeadLetter {
            DeadLetter {
                projection: projection.into(),
                position,
                event_id: event.into(),
                event_type: "Happened".into(),
                error: "cannot apply".into(),
                generation: 1,
            }
        }

        // ------------------------------------------------------------ rows

        #[tokio::test]
        async fn tables_are_created_once_per_generation_and_dropped_with_it() {
            let Some(f) = fixture().await else { return };
            let r = &f.read;
            let tables = owned(TABLES);
            r.rows.create_tables(3, &tables).await.unwrap();
            apply(r, 3, vec![put(&item("a"), json!("A"), 1)]).await;
            r.rows.create_tables(3, &tables).await.unwrap();
            assert_eq!(
                doc(r, 3, &item("a")).await,
                Some(json!("A")),
                "creating existing tables keeps their rows"
            );
            assert_eq!(r.rows.get(3, &slot("red", "x")).await.unwrap(), None);

            r.rows.drop_tables(3, &tables).await.unwrap();
            let gone = r.rows.get(3, &item("a")).await;
            assert!(matches!(gone, Err(ReadStoreError::NoSuchTable(_))), "{gone:?}");
            let gone = r.rows.scan(3, SHELVES, "red", None, 10).await;
            assert!(matches!(gone, Err(ReadStoreError::NoSuchTable(_))), "{gone:?}");
            r.rows
                .drop_tables(3, &tables)
                .await
                .expect("dropping tables already gone is fine");

            let bad = r.rows.create_tables(4, &owned(&["Robert'); DROP"])).await;
            assert!(matches!(bad, Err(ReadStoreError::Invalid(_))), "{bad:?}");
        }

        #[tokio::test]
        async fn rows_are_written_and_read_back_by_key() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let (a, listed) = (item("a"), slot("red", "a"));
            let changed = apply(
                r,
                1,
                vec![put(&a, json!("A"), 1), put(&listed, json!({"n": 1}), 1)],
            )
            .await;
            assert!(changed.is_superset(&keys([&a, &listed])), "{changed:?}");
            assert_eq!(doc(r, 1, &a).await, Some(json!("A")));
            assert_eq!(doc(r, 1, &listed).await, Some(json!({"n": 1})));

            let many = r
                .rows
                .get_many(1, vec![listed.clone(), item("missing"), a.clone()])
                .await
                .unwrap();
            assert_eq!(many.len(), 3, "one answer per key, in order");
            assert_eq!(many[0].as_ref().and_then(|r| r.value("doc")), Some(json!({"n": 1})));
            assert_eq!(many[1], None);
            assert_eq!(many[2].as_ref().and_then(|r| r.value("doc")), Some(json!("A")));
        }

        #[tokio::test]
        async fn older_and_repeated_writes_change_nothing() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let a = item("a");
            let changed = apply(r, 1, vec![put(&a, json!("two"), 2)]).await;
            assert!(changed.contains(&a));
            let before = stored(r, 1, &a).await;
            // A version names one write (one event's): the same version
            // comes again only with the same value.
            for (value, version) in [("two", 2), ("one", 1), ("two", 2)] {
                apply(r, 1, vec![put(&a, json!(value), version)]).await;
                assert_eq!(
                    stored(r, 1, &a).await,
                    before,
                    "{value}@{version} is not newer than two@2"
                );
            }

            // Cells keep their own versions: an older version of another
            // cell is still news.
            let changed = apply(r, 1, vec![set(&a, "stock", json!(5), 1)]).await;
            assert!(changed.contains(&a));
            let row = r.rows.get(1, &a).await.unwrap().expect("live row");
            assert_eq!(row.value("doc"), Some(json!("two")));
            assert_eq!(row.value("stock"), Some(json!(5)));
            assert_eq!(row.version(), 2);

            let changed = apply(r, 1, vec![put(&a, json!("three"), 3)]).await;
            assert!(changed.contains(&a));
            assert_eq!(doc(r, 1, &a).await, Some(json!("three")));
        }

        #[tokio::test]
        async fn a_tombstone_hides_its_row_and_keeps_older_writes_out() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let (a, b) = (slot("red", "a"), slot("red", "b"));
            apply(r, 1, vec![put(&a, json!("A"), 1), put(&b, json!("B"), 1)]).await;

            let changed = apply(r, 1, vec![delete(&a, 2)]).await;
            assert!(changed.contains(&a), "a delete is a change: {changed:?}");
            assert_eq!(r.rows.get(1, &a).await.unwrap(), None, "get does not see it");
            assert_eq!(page(r, 1, "red", None, 10).await, ["b"], "nor does a scan");
            let tombstone = stored(r, 1, &a).await.and_then(|row| row.deleted);
            assert_eq!(tombstone, Some(2), "get_many keeps the tombstone");

            apply(r, 1, vec![put(&a, json!("A"), 1), delete(&a, 2)]).await;
            assert_eq!(
                r.rows.get(1, &a).await.unwrap(),
                None,
                "a replayed older write does not bring the row back"
            );
            let never = slot("red", "never");
            apply(r, 1, vec![delete(&never, 1)]).await;
            assert_eq!(r.rows.get(1, &never).await.unwrap(), None);
            assert_eq!(page(r, 1, "red", None, 10).await, ["b"]);

            let changed = apply(r, 1, vec![put(&a, json!("A3"), 3)]).await;
            assert!(changed.contains(&a));
            assert_eq!(doc(r, 1, &a).await, Some(json!("A3")), "a newer write revives it");
            assert_eq!(page(r, 1, "red", None, 10).await, ["a", "b"]);
        }

        #[tokio::test]
        async fn a_whole_row_is_written_as_it_is() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let a = item("a");
            let mut whole = put(&a, json!("A"), 4);
            whole.whole = true;
            assert!(apply(r, 1, vec![whole]).await.contains(&a));
            assert_eq!(stored(r, 1, &a).await.map(|row| row.version()), Some(4));
        }

        #[tokio::test]
        async fn a_scan_pages_through_live_rows_in_clustering_order() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let mut deltas: Vec<_> = ["c", "", "bb", "a", "d", "b"]
                .into_iter()
                .map(|c| put(&slot("red", c), json!(c), 1))
                .collect();
            deltas.push(put(&slot("blue", "a"), json!("other partition"), 1));
            apply(r, 1, deltas).await;
            apply(r, 1, vec![delete(&slot("red", "bb"), 2)]).await;

            assert_eq!(page(r, 1, "red", None, 2).await, ["", "a"], "the empty key is a key too");
            let next = page(r, 1, "red", Some("a"), 2).await;
            assert_eq!(next, ["b", "c"], "deleted rows are skipped");
            assert_eq!(page(r, 1, "red", Some("c"), 10).await, ["d"]);
            assert_eq!(page(r, 1, "red", Some("d"), 10).await, Vec::<String>::new());
            assert_eq!(page(r, 1, "red", Some("a0"), 1).await, ["b"], "`after` need not be a key");
            assert_eq!(page(r, 1, "red", Some(""), 1).await, ["a"], "`after` is exclusive");
            assert_eq!(page(r, 1, "green", None, 10).await, Vec::<String>::new());
            let rows = r.rows.scan(1, SHELVES, "blue", None, 10).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(rows[0].1.value("doc"), Some(json!("other partition")));
        }

        #[tokio::test]
        async fn generations_keep_their_rows_apart() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            r.rows.create_tables(2, &owned(TABLES)).await.unwrap();
            apply(r, 1, vec![put(&item("a"), json!("one"), 1)]).await;
            apply(r, 2, vec![put(&item("a"), json!("two"), 1)]).await;
            assert_eq!(doc(r, 1, &item("a")).await, Some(json!("one")));
            assert_eq!(doc(r, 2, &item("a")).await, Some(json!("two")));
        }

        // ------------------------------------------------------------ registry

        #[tokio::test]
        async fn registering_creates_generation_one_once() {
            let Some(f) = fixture().await else { return };
            let r = &f.read;
            assert_eq!(r.registry.projection(PROJECTION).await.unwrap(), None);
            let first = r.register(PROJECTION, 1, TABLES).await.unwrap();
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
                let key = shopstream_projections::RowKey::single(table, "a");
                assert_eq!(r.rows.get(1, &key).await.unwrap(), None, "{table} exists, empty");
            }
            apply(r, 1, vec![put(&item("a"), json!("A"), 1)]).await;
            r.registry
                .advance(PROJECTION, Target::Live(1), Progress::to(4))
                .await
                .unwrap();

            let again = r.register(PROJECTION, 2, TABLES).await.unwrap();
            assert_eq!(
                again,
                ProjectionRecord { checkpoint: 4, ..first },
                "registering again returns the existing record, whatever version it names"
            );
            assert_eq!(doc(r, 1, &item("a")).await, Some(json!("A")), "and keeps its rows");

            let other = r.registry.register("other", 3, &["other_rows"]).await.unwrap();
            assert_eq!((other.version, other.generation, other.checkpoint), (3, 1, 0));
            let names: Vec<String> = r
                .registry
                .projections()
                .await
                .unwrap()
                .into_iter()
                .map(|p| p.name)
                .collect();
            assert_eq!(names, [PROJECTION, "other"], "in the order they were registered");
        }

        #[tokio::test]
        async fn a_checkpoint_only_moves_forward() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let live = Target::Live(1);
            assert_eq!(r.registry.advance(PROJECTION, live, Progress::to(7)).await.unwrap(), 7);
            assert_eq!(
                r.registry.advance(PROJECTION, live, Progress::to(3)).await.unwrap(),
                7,
                "a batch delivered again from an earlier position does not move it back"
            );
            assert_eq!(record(r).await.checkpoint, 7);
            assert_eq!(r.registry.advance(PROJECTION, live, Progress::to(9)).await.unwrap(), 9);
        }

        #[tokio::test]
        async fn progress_for_a_generation_that_is_not_live_is_superseded() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let superseded = |result: Result<u64, ReadStoreError>| {
                assert!(matches!(result, Err(ReadStoreError::Superseded)), "{result:?}");
            };
            superseded(r.registry.advance(PROJECTION, Target::Live(2), Progress::to(5)).await);
            superseded(r.registry.advance(PROJECTION, Target::Build(1), Progress::to(5)).await);
            superseded(r.registry.advance("unregistered", Target::Live(1), Progress::to(5)).await);
            assert_eq!(record(r).await.checkpoint, 0);
        }

        #[tokio::test]
        async fn a_paused_projection_refuses_live_progress_until_resumed() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            r.registry.set_paused(PROJECTION, true).await.unwrap();
            assert!(record(r).await.paused);
            let paused = r.registry.advance(PROJECTION, Target::Live(1), Progress::to(5)).await;
            assert!(matches!(paused, Err(ReadStoreError::Superseded)), "{paused:?}");
            assert_eq!(record(r).await.checkpoint, 0);

            r.registry.set_paused(PROJECTION, false).await.unwrap();
            assert!(!record(r).await.paused);
            let resumed = r.registry.advance(PROJECTION, Target::Live(1), Progress::to(5)).await;
            assert_eq!(resumed.unwrap(), 5);

            r.registry
                .set_failure(PROJECTION, Some("cannot apply event 6"))
                .await
                .unwrap();
            assert_eq!(record(r).await.failure.as_deref(), Some("cannot apply event 6"));
            r.registry.set_failure(PROJECTION, None).await.unwrap();
            assert_eq!(record(r).await.failure, None);
        }

        #[tokio::test]
        async fn a_build_goes_live_once_it_has_caught_up_and_the_old_generation_goes() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let (old, new) = (item("old"), item("new"));
            apply(r, 1, vec![put(&old, json!("v1"), 1)]).await;
            r.registry
                .advance(PROJECTION, Target::Live(1), Progress::to(10))
                .await
                .unwrap();

            let g = r.start_build(PROJECTION, 2, TABLES).await.unwrap();
            assert_ne!(g, 1);
            let started = record(r).await;
            assert_eq!((started.generation, started.version), (1, 1), "the live one still serves");
            assert_eq!(
                started.build,
                Some(BuildRecord { version: 2, generation: g, checkpoint: 0 })
            );

            apply(r, g, vec![put(&new, json!("v2"), 1)]).await;
            let at = r.registry.advance(PROJECTION, Target::Build(g), Progress::to(6)).await;
            assert_eq!(at.unwrap(), 6);
            assert_eq!(
                r.registry.finish_build(PROJECTION, g).await.unwrap(),
                Switch::NotYet,
                "6 is behind the live 10"
            );
            assert_eq!(record(r).await.generation, 1);
            assert_eq!(record(r).await.build.map(|b| b.checkpoint), Some(6));

            apply(r, g, vec![put(&slot("red", "new"), json!("v2"), 1)]).await;
            r.registry
                .advance(PROJECTION, Target::Build(g), Progress::to(10))
                .await
                .unwrap();
            r.registry
                .set_failure(PROJECTION, Some("the bug the rebuild fixes"))
                .await
                .unwrap();
            assert_eq!(r.finish_build(PROJECTION, g).await.unwrap(), true);
            assert_eq!(
                record(r).await,
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
            assert_eq!(doc(r, g, &new).await, Some(json!("v2")));
            assert_eq!(page(r, g, "red", None, 10).await, ["new"]);
            let gone = r.rows.get(1, &old).await;
            assert!(
                matches!(gone, Err(ReadStoreError::NoSuchTable(_))),
                "the retired generation's tables are dropped: {gone:?}"
            );
            let late = r.registry.advance(PROJECTION, Target::Live(1), Progress::to(11)).await;
            assert!(
                matches!(late, Err(ReadStoreError::Superseded)),
                "the old generation's live runner is told it was replaced: {late:?}"
            );
            let onwards = r.registry.advance(PROJECTION, Target::Live(g), Progress::to(11)).await;
            assert_eq!(onwards.unwrap(), 11);
        }

        #[tokio::test]
        async fn finishing_a_build_names_the_generation_it_retires() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let started = r.registry.start_build(PROJECTION, 1, &["items"]).await.unwrap();
            assert_eq!(started.abandoned, None);
            assert_eq!(
                r.registry.finish_build(PROJECTION, started.generation).await.unwrap(),
                Switch::Done {
                    retired: Generation { generation: 1, tables: owned(TABLES) }
                },
                "both are at 0"
            );
            let next = r.registry.start_build(PROJECTION, 1, TABLES).await.unwrap();
            let finished = r.registry.finish_build(PROJECTION, next.generation).await.unwrap();
            assert_eq!(
                finished,
                Switch::Done {
                    retired: Generation {
                        generation: started.generation,
                        tables: owned(&["items"])
                    }
                },
                "a generation retires with the tables it was built with"
            );
        }

        #[tokio::test]
        async fn a_build_must_reach_the_furthest_any_partition_has_applied() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            // A partitioned feed: every partition past 5, one of them at 20.
            let progress = Progress { position: 5, high: 20 };
            let at = r.registry.advance(PROJECTION, Target::Live(1), progress).await;
            assert_eq!(at.unwrap(), 5);
            let g = r.start_build(PROJECTION, 1, TABLES).await.unwrap();
            r.registry
                .advance(PROJECTION, Target::Build(g), Progress::to(12))
                .await
                .unwrap();
            assert_eq!(
                r.registry.finish_build(PROJECTION, g).await.unwrap(),
                Switch::NotYet,
                "rows up to 20 are in the live generation; the build is at 12"
            );
            r.registry
                .advance(PROJECTION, Target::Build(g), Progress::to(20))
                .await
                .unwrap();
            assert!(r.finish_build(PROJECTION, g).await.unwrap());
            assert_eq!(record(r).await.checkpoint, 20);
        }

        #[tokio::test]
        async fn starting_a_build_again_replaces_the_unfinished_one() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            let no_build = r.registry.finish_build(PROJECTION, 2).await;
            assert!(matches!(no_build, Err(ReadStoreError::Superseded)), "no build runs");
            let first = r.start_build(PROJECTION, 1, TABLES).await.unwrap();
            apply(r, first, vec![put(&item("a"), json!("first"), 1)]).await;
            r.registry
                .advance(PROJECTION, Target::Build(first), Progress::to(3))
                .await
                .unwrap();

            let second = r.registry.start_build(PROJECTION, 1, TABLES).await.unwrap();
            assert_eq!(
                second,
                StartedBuild {
                    generation: second.generation,
                    abandoned: Some(Generation { generation: first, tables: owned(TABLES) }),
                }
            );
            assert!(second.generation != first && second.generation != 1);
            let late = r.registry.advance(PROJECTION, Target::Build(first), Progress::to(4)).await;
            assert!(matches!(late, Err(ReadStoreError::Superseded)), "{late:?}");
            let stale = r.registry.finish_build(PROJECTION, first).await;
            assert!(matches!(stale, Err(ReadStoreError::Superseded)), "{stale:?}");
            assert_eq!(
                record(r).await.build,
                Some(BuildRecord { version: 1, generation: second.generation, checkpoint: 0 }),
                "the new build starts from nothing"
            );

            // Through the read side, the abandoned build's tables go.
            let third = r.start_build(PROJECTION, 1, TABLES).await.unwrap();
            let gone = r.rows.get(second.generation, &item("a")).await;
            assert!(matches!(gone, Err(ReadStoreError::NoSuchTable(_))), "{gone:?}");
            assert!(r.finish_build(PROJECTION, third).await.unwrap(), "both are at 0");
            assert_eq!(record(r).await.generation, third);
        }

        #[tokio::test]
        async fn partitions_only_move_forward_each_in_its_generation() {
            let Some(f) = registered().await else { return };
            let r = &f.read;
            assert!(r.registry.partitions(PROJECTION).await.unwrap().is_empty());
            let all = r
                .registry
                .advance_partitions(PROJECTION, 1, &[at(0, 10), at(2, 4)])
                .await
                .unwrap();
            assert_eq!(all, [at(0, 10), at(2, 4)]);
            let all = r
                .registry
                .advance_partitions(PROJECTION, 1, &[at(0, 7), at(1, 3), at(2, 9)])
                .await
                .unwrap();
            assert_eq!(all, [at(0, 10), at(1, 3), at(2, 9)], "every partition, each at its furthest");
            assert_eq!(r.registry.partitions(PROJECTION).await.unwrap(), all);

            // A build's partitions are its own until it goes live.
            let g = r.start_build(PROJECTION, 1, TABLES).await.unwrap();
            let building = r
                .registry
                .advance_partitions(PROJECTION, g, &[at(0, 1)])
                .await
                .unwrap();
            assert_eq!(building, [at(0, 1)]);
            assert_eq!(r.registry.partitions(PROJECTION).await.unwrap(), all, "the live ones show");
            r.registry
                .advance(PROJECTION, Target::Build(g), Progress::to(10))
                .await
                .unwrap();
            assert!(r.finish_build(PROJECTION, g).await.unwrap());
            assert_eq!(
                r.registry.partitions(PROJECTION).await.unwrap(),
                [at(0, 1)],
                "the new generation's partitions start over"
            );
        }

        // ------------------------------------------------------------ coordination

        #[tokio::test]
        async fn one_holder_at_a_time_holds_a_lease() {
            let Some(f) = fixture().await else { return };
            let c = &f.read.coordination;
            let long = Duration::from_secs(60);
            assert!(c.acquire_lease("relay", "a", long).await.unwrap());
            assert!(!c.acquire_lease("relay", "b", long).await.unwrap(), "a holds it");
            assert!(c.acquire_lease("relay", "a", long).await.unwrap(), "a renews it");
            assert!(c.acquire_lease("other", "b", long).await.unwrap(), "leases are by name");

            c.release_lease("relay", "b").await.unwrap();
            assert!(!c.acquire_lease("relay", "b", long).await.unwrap(), "only its holder releases it");
            c.release_lease("relay", "a").await.unwrap();
            assert!(c.acquire_lease("relay", "b", long).await.unwrap(), "released, it is free at once");
        }

        #[tokio::test]
        async fn a_lease_not_renewed_runs_out() {
            let Some(f) = fixture().await else { return };
            let c = &f.read.coordination;
            assert!(c.acquire_lease("relay", "a", Duration::from_millis(20)).await.unwrap());
            // Polled, not slept: b takes it once a's time is up.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !c.acquire_lease("relay", "b", Duration::from_secs(60)).await.unwrap() {
                assert!(tokio::time::Instant::now() < deadline, "the lease never ran out");
                tokio::task::yield_now().await;
            }
            assert!(!c.acquire_lease("relay", "a", Duration::from_secs(60)).await.unwrap());
        }

        #[tokio::test]
        async fn a_position_is_kept_under_a_lease_and_only_by_its_holder() {
            let Some(f) = fixture().await else { return };
            let c = &f.read.coordination;
            let long = Duration::from_secs(60);
            assert_eq!(c.lease_position("relay").await.unwrap(), 0);
            assert!(c.acquire_lease("relay", "a", long).await.unwrap());
            assert!(c.advance_lease("relay", "a", 40).await.unwrap());
            assert!(c.advance_lease("relay", "a", 30).await.unwrap());
            assert_eq!(c.lease_position("relay").await.unwrap(), 40, "it only moves forward");
            assert!(!c.advance_lease("relay", "b", 50).await.unwrap(), "b does not hold it");
            assert!(!c.advance_lease("nobody", "a", 50).await.unwrap(), "no such lease");

            c.release_lease("relay", "a").await.unwrap();
            assert!(c.acquire_lease("relay", "b", long).await.unwrap());
            assert_eq!(c.lease_position("relay").await.unwrap(), 40, "the next holder goes on from it");
            assert!(!c.advance_lease("relay", "a", 90).await.unwrap(), "the old holder lost it");
            assert!(c.advance_lease("relay", "b", 45).await.unwrap());
            assert_eq!(c.lease_position("relay").await.unwrap(), 45);
        }

        #[tokio::test]
        async fn a_rebuild_resolves_only_open_letters_of_older_generations() {
            use shopstream_infra::read_store::LetterStatus::*;
            let Some(f) = fixture().await else { return };
            let c = &f.read.coordination;
            let at = |event: &str, generation| DeadLetter {
                generation,
                ..letter("orders", event, 4)
            };
            c.dead_letter(at("old", 1)).await.unwrap();
            c.dead_letter(at("again", 1)).await.unwrap();
            c.dead_letter(at("again", 2)).await.unwrap();
            c.dead_letter(at("skipped", 1)).await.unwrap();
            assert!(c.set_letter_status("orders", "skipped", &[Open], Skipped).await.unwrap());
            c.dead_letter(letter("carts", "old", 4)).await.unwrap();
            assert_eq!(c.resolve_letters_before("orders", 2).await.unwrap(), 1);
            let status = async |projection: &str, event: &str| {
                c.letter(projection, event).await.unwrap().unwrap().status
            };
            assert_eq!(status("orders", "old").await, Retried);
            assert_eq!(status("orders", "again").await, Open, "set aside by the rebuild");
            assert_eq!(status("orders", "skipped").await, Skipped);
            assert_eq!(status("carts", "old").await, Open, "another projection's");
        }

        #[tokio::test]
        async fn dead_letters_are_kept_once_each_and_counted_per_projection() {
            let Some(f) = fixture().await else { return };
            let c = &f.read.coordination;
            assert!(c.dead_letters().await.unwrap().is_empty());
            c.dead_letter(letter("orders", "e-1", 4)).await.unwrap();
            c.dead_letter(letter("orders", "e-1", 4)).await.unwrap();
            c.dead_letter(letter("orders", "e-2", 9)).await.unwrap();
            c.dead_letter(letter("carts", "e-1", 4)).await.unwrap();
            assert_eq!(
                c.dead_letters().await.unwrap(),
                [("carts".to_string(), 1), ("orders".to_string(), 2)]
            );
        }
    };
}
