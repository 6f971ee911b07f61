//! The stores the settings name, opened: the event store and the read
//! side's three ports, with every projection registered.

use std::sync::Arc;

use anyhow::Context;
use shopstream_infra::event_store::{EventStore, SqliteEventStore, SqliteEventStoreOptions};
use shopstream_infra::read_store::{ReadSide, SqliteReadStore};

use crate::config::{EventStoreKind, Settings};

/// The stores the settings name: the event store and the read side's
/// three ports.
#[derive(Clone)]
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub read: ReadSide,
}

/// Opens the stores the settings name and registers every projection.
pub async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    let events: Arc<dyn EventStore> = match settings.event_store {
        EventStoreKind::Sqlite => Arc::new(
            SqliteEventStore::open(
                settings.event_store_path(),
                SqliteEventStoreOptions {
                    durability: settings.durability,
                    ..Default::default()
                },
            )
            .context("opening the event store")?,
        ),
    };
    let read = ReadSide::of(
        SqliteReadStore::open(settings.read_store_path()).context("opening the read store")?,
    );
    for p in shopstream_projections::all() {
        read.register(p.name(), p.version(), p.tables())
            .await
            .with_context(|| format!("registering projection {}", p.name()))?;
    }
    Ok(Stores { events, read })
}
