//! Copying a shop's history into another store (`shopstream events copy`),
//! between two embedded stores: the path a KurrentDB target takes too,
//! behind the port.

use std::ops::ControlFlow;
use std::process::Command;
use std::sync::Arc;

use shopstream::app::copy::{Copied, CopyError, copy_events};
use shopstream_infra::event_store::{
    EventStore, ExpectedRevision, RecordedEvent, SqliteEventStore, SqliteEventStoreOptions,
};
use shopstream_testkit::shop::Shop;

use crate::contract::{append_to, events, read_all_events};

fn store_in(dir: &std::path::Path) -> Arc<dyn EventStore> {
    Arc::new(
        SqliteEventStore::open(
            dir.join("events.sqlite"),
            SqliteEventStoreOptions::default(),
        )
        .expect("the store opens"),
    )
}

/// A shop's history: many streams, multi-stream appends.
async fn history(dir: &std::path::Path) -> Arc<dyn EventStore> {
    let store = store_in(dir);
    let mut shop = Shop::new(store.clone(), 31);
    shop.open().await;
    shop.rounds(30).await;
    // More events than a page of `$all`, from many customers.
    shop.import_customers(2_500, 500).await;
    store
}

/// What a copy must keep of each event, in `$all` order.
fn kept(events: &[RecordedEvent]) -> Vec<(String, u64, uuid::Uuid, String, u16, String, String)> {
    events
        .iter()
        .map(|e| {
            (
                e.stream.clone(),
                e.revision,
                e.event_id,
                e.event_type.clone(),
                e.schema_version,
                e.data.get().to_string(),
                format!("{:?}", e.metadata),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_copy_resumes_and_the_target_holds_the_same_history() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = history(a.path()).await;
    let target = store_in(b.path());
    let expected = read_all_events(&source).await;
    assert!(
        expected.len() > 4_096,
        "a history that spans pages and batches: {}",
        expected.len()
    );

    // Stopped after its first append.
    let first = copy_events(source.as_ref(), target.as_ref(), &mut |_| {
        ControlFlow::Break(())
    })
    .await
    .unwrap();
    assert!(
        first.events > 0 && first.events < expected.len() as u64,
        "{first:?}"
    );
    assert_eq!(read_all_events(&target).await.len() as u64, first.events);

    let mut reported = Vec::new();
    let done = copy_events(source.as_ref(), target.as_ref(), &mut |c: Copied| {
        reported.push(c.events);
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(
        done.resumed_after, first.events,
        "it went on after what was there"
    );
    assert_eq!(done.events, expected.len() as u64);
    assert!(
        reported.windows(2).all(|w| w[0] < w[1]),
        "progress only grows"
    );
    let copied = read_all_events(&target).await;
    assert_eq!(kept(&copied), kept(&expected));

    // Copying again finds everything there and writes nothing.
    let again = copy_events(source.as_ref(), target.as_ref(), &mut |_| {
        ControlFlow::Continue(())
    })
    .await
    .unwrap();
    assert_eq!(again.resumed_after, expected.len() as u64);
    assert_eq!(read_all_events(&target).await.len(), expected.len());
}

#[tokio::test]
async fn a_target_with_history_of_its_own_is_refused() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = store_in(a.path());
    append_to(&source, "order-1", ExpectedRevision::NoStream, events(3))
        .await
        .unwrap();
    let target = store_in(b.path());
    append_to(&target, "order-1", ExpectedRevision::NoStream, events(1))
        .await
        .unwrap();
    let refused = copy_events(source.as_ref(), target.as_ref(), &mut |_| {
        ControlFlow::Continue(())
    })
    .await;
    assert!(
        matches!(refused, Err(CopyError::Diverged(1))),
        "{refused:?}"
    );
    assert_eq!(
        read_all_events(&target).await.len(),
        1,
        "nothing was written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_copies_the_configured_store_into_another_directory() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = history(a.path()).await;
    let expected = read_all_events(&source).await;
    drop(source);
    let output = Command::new(env!("CARGO_BIN_EXE_shopstream"))
        .args(["events", "copy", "--to"])
        .arg(b.path())
        .env("SHOPSTREAM_DATA_DIR", a.path())
        .env("SHOPSTREAM_LOG__FILTER", "warn")
        .output()
        .expect("shopstream runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("copied {} events", expected.len())),
        "{stdout}"
    );
    let copied = read_all_events(&store_in(b.path())).await;
    assert_eq!(kept(&copied), kept(&expected));
}
