//! The stores the settings name, opened: the event store and the read
//! side's three ports, with every projection registered.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use shopstream_infra::event_store::{
    EventStore, KurrentDbEventStore, KurrentDbOptions, SqliteEventStore, SqliteEventStoreOptions,
    StoreError,
};
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
        EventStoreKind::Kurrentdb => Arc::new(connect_kurrentdb(settings).await?),
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

/// KurrentDB as the settings name it. A server that cannot be reached yet
/// is waited for (commands answer 503 meanwhile); one that lacks atomic
/// multi-stream appends is refused now.
async fn connect_kurrentdb(settings: &Settings) -> anyhow::Result<KurrentDbEventStore> {
    let store = KurrentDbEventStore::connect(&KurrentDbOptions {
        url: settings.kurrentdb_url.expose_secret().to_string(),
        namespace: settings.kurrentdb.namespace.clone(),
    })
    .context("the KurrentDB connection string")?;
    match store.check_server().await {
        Ok(()) => {}
        Err(e @ StoreError::Unsupported(_)) => {
            return Err(anyhow::Error::new(e).context("checking the KurrentDB server"));
        }
        Err(e) => tracing::warn!(
            error = %shopstream_infra::error::Report(&e),
            "KurrentDB cannot be reached yet; waiting for it (commands answer 503 meanwhile)"
        ),
    }
    Ok(store)
}
