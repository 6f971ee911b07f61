//! The EventStore contract, run against every adapter, plus the embedded
//! store's crash test.
//!
//! The embedded SQLite store always runs. A KurrentDB adapter runs the same
//! suite when `SHOPSTREAM_TEST_KURRENTDB` names a server.

mod contract;
mod crash;

use std::sync::Arc;

use shopstream_infra::event_store::{EventStore, SqliteEventStore, SqliteEventStoreOptions};

/// A fresh embedded store in its own directory, kept alive with the store.
pub struct Fixture {
    pub store: Arc<dyn EventStore>,
    pub dir: Arc<tempfile::TempDir>,
}

impl Fixture {
    pub fn sqlite() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteEventStore::open(
            dir.path().join("events.sqlite"),
            SqliteEventStoreOptions::default(),
        )
        .expect("store opens");
        Fixture {
            store: Arc::new(store),
            dir: Arc::new(dir),
        }
    }

    /// A second, independent handle on the same file: its own writer thread
    /// and connections, exactly as another process would have.
    pub fn second_handle(&self) -> Arc<dyn EventStore> {
        Arc::new(
            SqliteEventStore::open(
                self.dir.path().join("events.sqlite"),
                SqliteEventStoreOptions::default(),
            )
            .expect("second handle opens"),
        )
    }
}

mod sqlite {
    crate::event_store_contract!(crate::Fixture::sqlite());
}
