//! The read side end to end: the ReadStore contract, the projection runner
//! against the real embedded stores, and the projections folded in memory.
//!
//! # Layout
//! - [`contract`]: the contract every ReadStore adapter passes, as a macro
//!   instantiated once per adapter (below).
//! - `shop`, `reference`, `harness` (from the `shopstream-testkit` crate):
//!   a shop's history written through the domain, the read model it should
//!   give, and live runners to watch.
//! - [`runner`]: live runs, kills and restarts, duplicates, rebuilds.
//! - [`projections`]: the projections' rules, checked through `MemoryRows`.

mod contract;
mod projections;
mod runner;

use shopstream_infra::read_store::{ReadSide, SqliteReadStore};
use shopstream_testkit::{harness, reference, shop};

/// A fresh, empty read store for one contract test, with whatever keeps it
/// alive (a temporary directory for the embedded store).
pub struct ReadStoreFixture {
    pub read: ReadSide,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl ReadStoreFixture {
    /// The embedded store: always runs.
    pub async fn sqlite() -> Option<ReadStoreFixture> {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteReadStore::open(dir.path().join("read.sqlite")).expect("store opens");
        Some(ReadStoreFixture {
            read: ReadSide::of(store),
            _keep: Box::new(dir),
        })
    }
}

mod sqlite {
    crate::read_store_contract!(crate::ReadStoreFixture::sqlite().await);
}

// ScyllaDB has no adapter yet. When it lands, add a module here whose
// fixture yields `None` after printing "SKIPPED: set SHOPSTREAM_TEST_SCYLLA"
// when that variable is unset, and otherwise opens a fresh keyspace on the
// cluster it names.
