//! The application: what shopstream does, independent of HTTP. It is the
//! only way in: HTTP handlers, the CLI and the scale-out roles call these
//! services, and the stores behind them are private to it.
//!
//! # Layout
//! - [`commands`]: the command service (load, decide, append, retry) with
//!   its aggregate cache, and one module per area with its commands.
//! - [`queries`]: the query service (read models behind a moka cache,
//!   read-your-writes waits) and the event history (streams, exports, live
//!   tails, time travel).
//! - [`operations`]: what operators do to projections (status and lag,
//!   rebuilds, pause and resume), for the admin API and the CLI alike.
//! - [`auth`]: passwords, logging in, tokens, the first admin.
//! - [`copy`]: a shop's history copied into another event store.
//! - [`redaction`]: what of an event may leave the system.
//! - [`stores`]: the stores the settings name, opened.

pub mod auth;
pub mod commands;
pub mod copy;
pub mod export;
pub mod mailer;
pub mod operations;
pub mod queries;
pub mod redaction;
pub mod stores;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::Arc;

use anyhow::Context;
use secrecy::ExposeSecret;
use shopstream_domain::values::{Currency, Email};
use shopstream_infra::crypto::password::PasswordHasher;
use shopstream_infra::crypto::token::TokenIssuer;
use shopstream_infra::read_store::ReadStoreError;
use shopstream_infra::runner::ProjectionRunner;
use shopstream_projections::Projection;

use crate::config::Settings;
use crate::telemetry::Metrics;
use auth::AuthService;
pub use commands::CommandError;
use commands::aggregates::AggregateCache;
use commands::{CommandMetrics, CommandService, RetryPolicy};
use operations::Operations;
use queries::history::History;
use queries::{QueryError, QueryService};
pub use stores::{Stores, open_stores, open_stores_observed};

/// Everything a request handler needs, built once per process.
pub struct App {
    pub commands: CommandService,
    pub queries: Arc<QueryService>,
    pub history: History,
    pub auth: AuthService,
    pub operations: Operations,
    pub metrics: Metrics,
    /// The currency carts are created in.
    pub currency: Currency,
    /// Whether checking out needs a verified email address.
    pub checkout_requires_verified_email: bool,
    /// Events reach the projections through the relay (Kafka).
    pub relayed: bool,
    stores: Stores,
}

impl App {
    /// Opens the stores named in the settings, registers every projection
    /// and wires the services.
    pub async fn open(settings: &Settings) -> anyhow::Result<App> {
        let metrics = Metrics::new().context("registering metrics")?;
        let stores = open_stores_observed(settings, Some(metrics.group_commits())).await?;
        let aggregates = AggregateCache::new(stores.events.clone(), settings.cache.aggregates);
        let commands = CommandService::new(
            aggregates.clone(),
            RetryPolicy {
                max_attempts: settings.commands.max_attempts,
                max_backoff: std::time::Duration::from_millis(settings.commands.max_backoff_ms),
                combine: settings.commands.combine,
            },
        )
        .with_metrics(CommandMetrics {
            outcomes: metrics.commands.clone(),
            retries: metrics.command_retries.clone(),
            batches: metrics.command_batches.clone(),
        });
        let hasher =
            PasswordHasher::new(settings.passwords).context("password hashing settings")?;
        let secret = settings
            .jwt_secret_bytes()
            .context("reading or creating the token secret")?;
        let tokens = TokenIssuer::new(&secret, settings.token_ttl()).context("token settings")?;
        let currency = Currency::parse(&settings.currency).map_err(anyhow::Error::msg)?;
        let projections = shopstream_projections::all();
        let queries = Arc::new(QueryService::new(
            stores.read.rows.clone(),
            stores.read.registry.clone(),
            &projections,
            settings.cache.query_bytes,
            std::time::Duration::from_millis(settings.queries.consistency_wait_ms),
            metrics.clone(),
        ));
        match queries.refresh_routing().await {
            Ok(()) => {}
            // Read later, when the read store can be reached.
            Err(QueryError::Store(ReadStoreError::Unavailable(_))) => {}
            Err(e) => return Err(anyhow::Error::new(e).context("reading the projection registry")),
        }
        Ok(App {
            auth: AuthService::new(hasher, tokens, aggregates, settings.refresh_token_ttl()),
            commands,
            history: History::new(stores.events.clone(), queries.clone()),
            operations: Operations::new(
                stores.events.clone(),
                stores.read.clone(),
                projections,
                queries.clone(),
            ),
            queries,
            metrics,
            currency,
            checkout_requires_verified_email: settings.commands.checkout_requires_verified_email,
            relayed: settings.feed == crate::config::FeedKind::Kafka,
            stores,
        })
    }

    /// Follows the event store for what changes who may do what (roles,
    /// disabled accounts, ended sessions) and drops it from the auth
    /// caches at once, until `stop`: a change made through another node
    /// takes effect here without waiting for the caches' time bound.
    pub fn watch_security(
        &self,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        use shopstream_domain::values::{CustomerId, SessionId};
        let (events, auth) = (self.stores.events.clone(), self.auth.clone());
        let filter = shopstream_infra::event_store::EventFilter {
            types: [
                "RoleChanged",
                "CustomerDisabled",
                "CustomerEnabled",
                "SessionEnded",
            ]
            .map(String::from)
            .to_vec(),
            stream_prefix: None,
        };
        tokio::spawn(async move {
            let mut after = None;
            while !stop.is_cancelled() {
                let followed = async {
                    let from = match after {
                        Some(p) => p,
                        None => events.head_position().await?,
                    };
                    let mut sub = events.subscribe_all(from, filter.clone()).await?;
                    loop {
                        let slice = sub.next().await?;
                        for event in &slice.events {
                            let id = |prefix: &str| {
                                event
                                    .stream
                                    .strip_prefix(prefix)?
                                    .parse::<uuid::Uuid>()
                                    .ok()
                            };
                            if let Some(id) = id("customer-") {
                                auth.forget_customer(CustomerId(id)).await;
                            } else if let Some(id) = id("session-") {
                                auth.forget_session(SessionId(id)).await;
                            }
                        }
                        after = Some(slice.scanned_to);
                    }
                    #[allow(unreachable_code)]
                    Ok::<(), shopstream_infra::event_store::StoreError>(())
                };
                tokio::select! {
                    result = followed => {
                        if let Err(e) = result {
                            tracing::warn!(
                                error = %shopstream_infra::error::Report(&e),
                                "following security changes: again in a second"
                            );
                        }
                    }
                    _ = stop.cancelled() => return,
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => return,
                }
            }
        })
    }

    /// A runner for one projection, fed by the event store and reporting
    /// to the query service.
    pub fn runner(&self, projection: Arc<dyn Projection>) -> ProjectionRunner {
        ProjectionRunner::new(
            projection,
            self.stores.events.clone(),
            self.stores.read.clone(),
            self.queries.clone(),
        )
    }

    /// The mailer, sending through the configured SMTP server or, with
    /// none, into `.eml` files under `<data_dir>/mail`.
    pub fn mailer(&self, settings: &Settings) -> anyhow::Result<mailer::Mailer> {
        use shopstream_infra::mail::{FileMail, MailTransport, SmtpMail};
        let url = settings.mail.smtp_url.expose_secret();
        let transport: Arc<dyn MailTransport> = if url.trim().is_empty() {
            Arc::new(FileMail::new(settings.data_dir.join("mail")))
        } else {
            Arc::new(SmtpMail::new(url).context("the SMTP server's URL")?)
        };
        Ok(mailer::Mailer {
            events: self.stores.events.clone(),
            coordination: self.stores.read.coordination.clone(),
            commands: self.commands.clone(),
            aggregates: self.auth.aggregates(),
            tokens: self.auth.issuer(),
            transport,
            settings: mailer::MailerSettings {
                from: settings.mail.from.clone(),
                link_base: settings.mail.link_base.clone(),
                link_ttl: std::time::Duration::from_secs(settings.mail.link_ttl_secs),
                lease_ttl: std::time::Duration::from_millis(settings.mail.lease_ttl_ms),
                batch: 64,
            },
            holder: crate::roles::process_name("mailer"),
        })
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
            .context("creating the first admin")?;
        Ok(())
    }
}
