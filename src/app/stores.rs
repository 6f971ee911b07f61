//! The stores the settings name, opened: the event store and the read
//! side's three ports, with every projection registered.

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use shopstream_infra::event_store::{
    CommitObserver, EventStore, KurrentDbEventStore, KurrentDbOptions, SqliteEventStore,
    SqliteEventStoreOptions, StoreError,
};
use shopstream_infra::read_store::{ReadSide, ReadStoreError, ScyllaReadStore, SqliteReadStore};

use crate::config::{EventStoreKind, ReadStoreKind, Settings};

/// The stores the settings name: the event store and the read side's
/// three ports.
#[derive(Clone)]
pub struct Stores {
    pub events: Arc<dyn EventStore>,
    pub read: ReadSide,
}

/// Opens the stores the settings name and registers every projection (a
/// read store that cannot be reached yet is registered in by the runners
/// once it can).
pub async fn open_stores(settings: &Settings) -> anyhow::Result<Stores> {
    open_stores_observed(settings, None).await
}

/// The stores, the embedded event store telling `commits` how each group
/// commit went.
pub async fn open_stores_observed(
    settings: &Settings,
    commits: Option<CommitObserver>,
) -> anyhow::Result<Stores> {
    let events: Arc<dyn EventStore> = match settings.event_store {
        EventStoreKind::Sqlite => Arc::new(
            SqliteEventStore::open(
                settings.event_store_path(),
                SqliteEventStoreOptions {
                    durability: settings.durability,
                    commits,
                    ..Default::default()
                },
            )
            .context("opening the event store")?,
        ),
        EventStoreKind::Kurrentdb => Arc::new(connect_kurrentdb(settings).await?),
    };
    let read = match settings.read_store {
        ReadStoreKind::Sqlite => ReadSide::of(
            SqliteReadStore::open(settings.read_store_path()).context("opening the read store")?,
        ),
        ReadStoreKind::Scylla => ReadSide::of(connect_scylla(settings).await?),
    };
    for p in shopstream_projections::all() {
        match read.register(p.name(), p.version(), p.tables()).await {
            Ok(_) => {}
            Err(ReadStoreError::Unavailable(_)) => break,
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("registering projection {}", p.name()))
                );
            }
        }
    }
    Ok(Stores { events, read })
}

/// ScyllaDB as the settings name it. A cluster that cannot be reached yet
/// is waited for (queries answer 503 meanwhile); settings it cannot use
/// are refused now.
async fn connect_scylla(settings: &Settings) -> anyhow::Result<ScyllaReadStore> {
    let store =
        ScyllaReadStore::new(settings.scylla_options()?).context("the ScyllaDB settings")?;
    match store.connect().await {
        Ok(()) => {}
        Err(e @ ReadStoreError::Unavailable(_)) => tracing::warn!(
            error = %shopstream_infra::error::Report(&e),
            "ScyllaDB cannot be reached yet; waiting for it (queries answer 503 meanwhile)"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context("preparing the ScyllaDB keyspace")),
    }
    Ok(store)
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
