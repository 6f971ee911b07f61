//! Building and running the service: `Application::build` opens the stores
//! and binds (port 0 in tests), `run_until_stopped` serves until SIGTERM or
//! SIGINT, then lets in-flight requests finish.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{HttpServer, web};
use anyhow::Context;

use crate::api;
use crate::api::extract::BodyLimit;
use crate::app::App;
use crate::config::{FeedKind, Settings};
use crate::telemetry;

pub struct Application {
    port: u16,
    server: Server,
    app: web::Data<App>,
    runners: Vec<tokio::task::JoinHandle<()>>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let app = App::open(&settings).await?;
        app.bootstrap_admin(&settings).await?;
        let mut runners: Vec<_> = match settings.feed {
            // The embedded default: projections run in this process, fed by
            // the event store's own subscription.
            FeedKind::Embedded => app
                .projections
                .iter()
                .map(|p| tokio::spawn(app.runner(p.clone()).run()))
                .collect(),
            // Scaled out: workers run the projections; this node hears what
            // they changed.
            FeedKind::Kafka => {
                let (settings, queries) = (settings.clone(), app.queries.clone());
                let (_stop, stop_rx) = tokio::sync::watch::channel(false);
                vec![tokio::spawn(async move {
                    let _keep = _stop;
                    loop {
                        if let Err(e) =
                            crate::roles::listen(&settings, queries.clone(), stop_rx.clone()).await
                        {
                            tracing::warn!(error = %e, "invalidations: listening again");
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                })]
            }
        };
        // Rebuilds by the CLI in another process switch generations in the
        // registry; look at it now and then.
        let queries = app.queries.clone();
        runners.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(2));
            loop {
                tick.tick().await;
                if let Err(e) = queries.refresh_routing().await {
                    tracing::warn!(error = %e, "reading the projection registry failed");
                }
            }
        }));
        let address = settings.socket_addr()?;
        let listener = TcpListener::bind(address).with_context(|| format!("binding {address}"))?;
        let port = listener.local_addr()?.port();
        let app = web::Data::new(app);
        let data = app.clone();
        let limit = BodyLimit(settings.http.max_body_bytes);
        let mut server = HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .app_data(limit)
                .wrap(from_fn(telemetry::http_metrics))
                .wrap(from_fn(api::correlation::middleware))
                .configure(api::routes)
        })
        .shutdown_timeout(settings.http.shutdown_timeout_secs);
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(%address, port, data_dir = %settings.data_dir.display(), "shopstream is serving");
        Ok(Self {
            port,
            server,
            app,
            runners,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The application behind the server (for tests and embedding).
    pub fn app(&self) -> web::Data<App> {
        self.app.clone()
    }

    /// Stops the server from elsewhere (graceful when asked).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; then stops the projection runners (each batch
    /// they write is atomic, so stopping between or during batches is safe).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        for runner in &self.runners {
            runner.abort();
        }
        served
    }
}
