//! The application: what shopstream does, independent of HTTP.
//!
//! # Layout
//! - [`aggregates`]: the moka cache of aggregate snapshots the command side
//!   decides on.
//! - [`commands`]: the command service (load, decide, append, retry) and
//!   one module per area with its commands.
//! - [`queries`]: the query service: read models behind a moka cache,
//!   read-your-writes waits.
//! - [`auth`]: passwords, logging in, tokens, the first admin.

pub mod aggregates;
pub mod auth;
pub mod commands;
pub mod queries;

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use shopstream_domain::values::{Currency, Email};
use shopstream_domain::{DecodeError, DomainError};
use shopstream_infra::crypto::password::PasswordHasher;
use shopstream_infra::crypto::token::TokenIssuer;
use shopstream_infra::event_store::{
    EventStore, SqliteEventStore, SqliteEventStoreOptions, StoreError,
};
use shopstream_infra::read_store::{ReadStore, SqliteReadStore};
use shopstream_infra::runner::ProjectionRunner;
use shopstream_projections::Projection;

use crate::config::{EventStoreKind, Settings};
use crate::telemetry::Metrics;
use aggregates::AggregateCache;
use auth::AuthService;
use commands::{CommandService, RetryPolicy};
use queries::QueryService;

/// The event store and read store the settings name, with every projection
/// registered in the read store.
pub async fn open_stores(
    settings: &Settings,
) -> anyhow::Result<(Arc<dyn EventStore>, Arc<dyn ReadStore>)> {
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
    let rows: Arc<dyn ReadStore> = Arc::new(
        SqliteReadStore::open(settings.read_store_path()).context("opening the read store")?,
    );
    for p in shopstream_projections::all() {
        rows.register(p.name(), p.version(), p.tables())
            .await
            .with_context(|| format!("registering projection {}", p.name()))?;
    }
    Ok((events, rows))
}

/// Everything a request handler needs, built once per process.
pub struct App {
    pub commands: CommandService,
    pub queries: Arc<QueryService>,
    pub auth: AuthService,
    pub store: Arc<dyn EventStore>,
    pub rows: Arc<dyn ReadStore>,
    pub projections: Vec<Arc<dyn Projection>>,
    /// The process's main runtime, for background work (rebuilds) that must
    /// not run on an HTTP worker's thread.
    pub background: tokio::runtime::Handle,
    /// The currency an empty cart's total is shown in.
    pub currency: Currency,
    pub metrics: Metrics,
}

impl App {
    /// Opens the stores named in the settings, registers every projection
    /// and wires the services.
    pub async fn open(settings: &Settings) -> anyhow::Result<App> {
        let (store, rows) = open_stores(settings).await?;
        let metrics = Metrics::new().context("registering metrics")?;
        let aggregates = AggregateCache::new(store.clone(), settings.cache.aggregates);
        let commands = CommandService::new(
            aggregates.clone(),
            RetryPolicy {
                max_attempts: settings.commands.max_attempts,
                max_backoff: std::time::Duration::from_millis(settings.commands.max_backoff_ms),
            },
        )
        .with_metrics(metrics.commands.clone(), metrics.command_retries.clone());
        let hasher =
            PasswordHasher::new(settings.passwords).context("password hashing settings")?;
        let secret = settings
            .jwt_secret_bytes()
            .context("reading or creating the token secret")?;
        let tokens = TokenIssuer::new(&secret, settings.token_ttl())
            .map_err(anyhow::Error::msg)
            .context("token settings")?;
        let currency = Currency::parse(&settings.currency).map_err(anyhow::Error::msg)?;
        let projections = shopstream_projections::all();
        let queries = Arc::new(QueryService::new(
            rows.clone(),
            &projections,
            settings.cache.query_bytes,
            std::time::Duration::from_millis(settings.queries.consistency_wait_ms),
            metrics.clone(),
            currency,
        ));
        queries
            .refresh_routing()
            .await
            .map_err(|e| anyhow::anyhow!("reading the projection registry: {e}"))?;
        Ok(App {
            auth: AuthService::new(hasher, tokens, aggregates),
            commands,
            queries,
            store,
            rows,
            projections,
            background: tokio::runtime::Handle::current(),
            currency,
            metrics,
        })
    }

    /// The projection of this name.
    pub fn projection(&self, name: &str) -> Option<Arc<dyn Projection>> {
        self.projections.iter().find(|p| p.name() == name).cloned()
    }

    /// A runner for one projection, reporting to the query service.
    pub fn runner(&self, projection: Arc<dyn Projection>) -> ProjectionRunner {
        ProjectionRunner::new(
            projection,
            self.store.clone(),
            self.rows.clone(),
            self.queries.clone(),
        )
    }

    /// Creates or updates the configured first admin.
    pub async fn bootstrap_admin(&self, settings: &Settings) -> anyhow::Result<()> {
        let (Some(email), Some(password)) = (&settings.admin_email, &settings.admin_password)
        else {
            return Ok(());
        };
        let email = Email::parse(email.expose_secret())
            .map_err(|e| anyhow::anyhow!("admin_email: {}", e.message))?;
        self.auth
            .ensure_admin(&self.commands, &email, password.expose_secret())
            .await
            .map_err(|e| anyhow::anyhow!("creating the first admin: {e}"))?;
        Ok(())
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A business rule refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The actor may not do this to this resource.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// `If-Match` named a revision the resource has moved past.
    #[error("the resource has changed since the revision in If-Match")]
    PreconditionFailed,
    /// Every attempt conflicted with another writer.
    #[error("the resource is too busy right now; try again")]
    Contention,
    /// An idempotency key came back with a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// Internal: an aggregate moved on while deciding; decide again.
    #[error("an aggregate moved on while deciding")]
    Stale,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored event cannot be read: {0}")]
    Decode(#[from] DecodeError),
    #[error("{0}")]
    Internal(String),
}
