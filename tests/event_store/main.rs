//! The EventStore contract, run against every adapter, plus the embedded
//! store's crash test.
//!
//! Only the embedded SQLite store exists today, and it always runs. A
//! networked adapter adds a module below whose fixture yields `None` (and
//! says it skipped) when its server is not configured.

mod contract;
mod crash;

use std::sync::Arc;

use shopstream_infra::event_store::{EventStore, SqliteEventStore, SqliteEventStoreOptions};

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
}

mod sqlite {
    crate::event_store_contract!(crate::Fixture::sqlite().await);
}
