//! Building and running the service: `Application::build` opens the stores
//! and binds (port 0 in tests), `run_until_stopped` serves until the stop
//! token is cancelled (SIGTERM or Ctrl-C in `serve`, see
//! [`crate::shutdown`]), lets in-flight requests finish, and stops the
//! projection runners and listeners started with it.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{HttpServer, web};
use anyhow::Context;
use shopstream_infra::event_store::StoreError;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::api::extract::BodyLimit;
use crate::app::auth::AuthError;
use crate::app::{App, CommandError};
use crate::config::{FeedKind, Settings};
use crate::telemetry;

/// Whether an error says the event store cannot be reached (yet).
fn unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<AuthError>(),
            Some(AuthError::Command(CommandError::Store(
                StoreError::Unavailable(_)
            )))
        )
    })
}

pub struct Application {
    port: u16,
    server: Server,
    /// Runners, listeners and the task that stops the server, each ending
    /// when `stop` is cancelled.
    tasks: Vec<JoinHandle<()>>,
    stop: CancellationToken,
}

impl Application {
    /// Opens the stores, starts what runs beside the API (the projection
    /// runners, or the invalidation listener of a scaled-out node) and
    /// binds. Everything stops when `stop` is cancelled.
    pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Self> {
        let app = web::Data::new(App::open(&settings).await?);
        let mut tasks: Vec<JoinHandle<()>> = Vec::new();
        if let Err(e) = app.bootstrap_admin(&settings).await {
            if !unavailable(&e) {
                return Err(e);
            }
            // The event store is not up yet: the service starts (queries are
            // served; commands answer 503) and makes the admin once it is.
            tracing::warn!(
                error = format!("{e:#}"),
                "waiting for the event store to create the first admin"
            );
            let (app, settings, stop) = (app.clone(), settings.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop.cancelled() => return,
                    }
                    match app.bootstrap_admin(&settings).await {
                        Ok(()) => return tracing::info!("the first admin is ready"),
                        Err(e) if unavailable(&e) => continue,
                        Err(e) => {
                            return tracing::error!(
                                error = format!("{e:#}"),
                                "the first admin could not be created"
                            );
                        }
                    }
                }
            }));
        }
        tasks.extend(match settings.feed {
            // The embedded default: projections run in this process, fed by
            // the event store's own subscription.
            FeedKind::Embedded => shopstream_projections::all()
                .into_iter()
                .map(|p| tokio::spawn(app.runner(p).run(stop.clone())))
                .collect(),
            // Scaled out: workers run the projections; this node hears what
            // they changed.
            FeedKind::Kafka => {
                let (settings, queries, stop) =
                    (settings.clone(), app.queries.clone(), stop.clone());
                vec![tokio::spawn(async move {
                    while !stop.is_cancelled() {
                        if let Err(e) =
                            crate::roles::listen(&settings, queries.clone(), &stop).await
                        {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "invalidations: listening again"
                            );
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.cancelled() => {}
                            }
                        }
                    }
                })]
            }
        });
        // Role changes, disabled accounts and logouts made anywhere.
        tasks.push(app.watch_security(stop.clone()));
        // Verification mail (one process at a time sends).
        if settings.mail.enabled {
            let mailer = app.mailer(&settings)?;
            let mail_stop = stop.clone();
            tasks.push(tokio::spawn(async move { mailer.run(mail_stop).await }));
        }
        // Rebuilds by the CLI in another process switch generations in the
        // registry; look at it now and then.
        let (queries, refresh_stop) = (app.queries.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = refresh_stop.cancelled() => return,
                }
                if let Err(e) = queries.refresh_routing().await {
                    tracing::warn!(
                        error = %shopstream_infra::error::Report(&e),
                        "reading the projection registry failed"
                    );
                }
            }
        }));
        let address = settings.socket_addr()?;
        let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let metrics = web::Data::new(app.metrics.clone());
        let limit = BodyLimit {
            bytes: settings.http.max_body_bytes,
            time: Duration::from_millis(settings.http.body_timeout_ms),
        };
        let cors_origins = settings.http.cors_origins();
        let proxies = settings.http.trusted_proxies()?;
        let limits = web::Data::new(api::limits::RateLimits::new(
            settings.rate_limited(),
            &settings.limits,
            app.metrics.rate_limited.clone(),
        ));
        if settings.rate_limited() {
            let (limits, sweep_stop) = (limits.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = tick.tick() => limits.sweep(),
                        _ = sweep_stop.cancelled() => return,
                    }
                }
            }));
        } else {
            tracing::warn!("rate limits are off (rate_limits = \"off\")");
        }
        let mut server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(app.clone())
                .app_data(metrics.clone())
                .app_data(limit)
                .app_data(proxies.clone())
                .app_data(limits.clone())
                .wrap(from_fn(api::audit::middleware))
                .wrap(from_fn(api::limits::middleware))
                .wrap(api::edge::cors(&cors_origins))
                .wrap(from_fn(api::edge::finish))
                .wrap(from_fn(telemetry::http_metrics))
                .wrap(from_fn(api::correlation::middleware))
                .configure(api::routes)
        })
        // The stop token is the one signal; actix must not install its own.
        .disable_signals()
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        let server = server.listen(listener)?.run();
        let (handle, server_stop) = (server.handle(), stop.clone());
        tasks.push(tokio::spawn(async move {
            server_stop.cancelled().await;
            // Graceful: in-flight requests finish (up to the timeout).
            handle.stop(true).await;
        }));
        tracing::info!(%address, port, data_dir = %settings.data_dir.display(), "shopstream is serving");
        Ok(Self {
            port,
            server,
            tasks,
            stop,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the stop token is cancelled, then waits for the
    /// runners and listeners to stop (rows are durable before their
    /// checkpoint, so stopping anywhere is safe).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        // However the server ended, everything started with it stops.
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a background task ended abnormally");
            }
        }
        served
    }
}
