//! The EventStore contract, run against every adapter, plus the crash
//! test.
//!
//! The embedded SQLite store always runs. The KurrentDB adapter runs the
//! same suite when `SHOPSTREAM_TEST_KURRENTDB` holds a server's connection
//! string (each test in a namespace of its own), and says once that it
//! skipped otherwise: no KurrentDB server runs where these tests are
//! usually run. The adapter's parts that are not the wire have unit tests
//! in `infra`.

mod contract;
mod copy;
mod crash;

use std::sync::Arc;

use shopstream_infra::event_store::{
    EventStore, KurrentDbEventStore, KurrentDbOptions, SqliteEventStore, SqliteEventStoreOptions,
};

/// A fresh, empty store for one contract test: a handle on it, a second
/// independent handle on the same store (as another process would have),
/// and whatever keeps it alive.
pub struct Fixture {
    pub store: Arc<dyn EventStore>,
    pub other: Arc<dyn EventStore>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Fixture {
    /// The embedded store in its own directory: always runs. The second
    /// handle has its own writer thread and connections.
    pub async fn sqlite() -> Option<Fixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let open = || -> Arc<dyn EventStore> {
            Arc::new(
                SqliteEventStore::open(
                    dir.path().join("events.sqlite"),
                    SqliteEventStoreOptions::default(),
                )
                .expect("the store opens"),
            )
        };
        Some(Fixture {
            store: open(),
            other: open(),
            _keep: Box::new(dir),
        })
    }

    /// A KurrentDB server named by `SHOPSTREAM_TEST_KURRENTDB`, each test in
    /// a namespace of its own; `None` (said once) when it names none.
    pub async fn kurrentdb() -> Option<Fixture> {
        let Some(url) = kurrentdb_url() else {
            shopstream_testkit::servers::say_skipped(
                "the KurrentDB contract run",
                "SHOPSTREAM_TEST_KURRENTDB",
            );
            return None;
        };
        let options = KurrentDbOptions {
            url,
            namespace: format!("contract-{}.", uuid::Uuid::now_v7().simple()),
        };
        let open = || -> Arc<dyn EventStore> {
            Arc::new(KurrentDbEventStore::connect(&options).expect("the connection string parses"))
        };
        Some(Fixture {
            store: open(),
            other: open(),
            _keep: Box::new(()),
        })
    }
}

/// The KurrentDB server the tests may use.
pub fn kurrentdb_url() -> Option<String> {
    std::env::var("SHOPSTREAM_TEST_KURRENTDB")
        .ok()
        .filter(|url| !url.is_empty())
}

mod sqlite {
    crate::event_store_contract!(crate::Fixture::sqlite().await);

    /// Beyond the contract: the embedded store recognises a repeat by its
    /// event ids whatever the expectation, says it was one, and refuses a
    /// batch that reuses some ids only.
    #[tokio::test]
    async fn the_embedded_store_tells_repeats_and_refuses_half_repeats() {
        let f = crate::Fixture::sqlite().await.expect("always runs");
        let s = &f.store;
        let batch = events(3);
        append_to(s, "customer-1", ExpectedRevision::NoStream, batch.clone())
            .await
            .unwrap();
        let again = append_to(s, "customer-1", ExpectedRevision::NoStream, batch.clone())
            .await
            .unwrap();
        assert!(again.replayed);
        let any = append_to(s, "customer-1", ExpectedRevision::Any, batch.clone())
            .await
            .unwrap();
        assert!(any.replayed, "even with `Any`");

        let mut mixed = batch[..1].to_vec();
        mixed.push(event("Happened", 9));
        let partial = append_to(s, "customer-1", ExpectedRevision::Any, mixed).await;
        assert!(
            matches!(partial, Err(AppendError::Invalid(_))),
            "{partial:?}"
        );
        let elsewhere =
            append_to(s, "customer-2", ExpectedRevision::Any, batch[..1].to_vec()).await;
        assert!(
            matches!(elsewhere, Err(AppendError::Invalid(_))),
            "{elsewhere:?}"
        );
        assert_eq!(read_all_events(s).await.len(), 3);
    }
}

mod kurrentdb {
    crate::event_store_contract!(crate::Fixture::kurrentdb().await);
}
