//! Logs (tracing: pretty for people, JSON for machines) and Prometheus
//! metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings};

/// Installs the global subscriber once; later calls do nothing (tests build
/// many applications in one process).
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
}

/// The process's metrics.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_seconds: HistogramVec,
    pub commands: IntCounterVec,
    pub command_retries: IntCounterVec,
    pub cache: IntCounterVec,
    pub projection_lag: HistogramVec,
    pub dead_letters: IntCounterVec,
    pub rate_limited: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("shopstream".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )?;
        let http_seconds = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                    0.5, 1.0, 2.5,
                ],
            ),
            &["method", "route"],
        )?;
        let commands = IntCounterVec::new(
            Opts::new("commands_total", "Commands by name and outcome"),
            &["command", "outcome"],
        )?;
        let command_retries = IntCounterVec::new(
            Opts::new(
                "command_retries_total",
                "Attempts a command made again after another writer got there first",
            ),
            &["command"],
        )?;
        let cache = IntCounterVec::new(
            Opts::new("query_cache_total", "Query cache lookups by result"),
            &["result"],
        )?;
        let projection_lag = HistogramVec::new(
            HistogramOpts::new(
                "projection_lag_seconds",
                "From an event's commit to its read model rows being queryable",
            )
            .buckets(vec![
                0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ]),
            &["projection"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "projection_dead_letters_total",
                "Events a projection could not apply and set aside",
            ),
            &["projection"],
        )?;
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_total",
                "Requests refused 429 by route class (auth, search, api)",
            ),
            &["class"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(projection_lag.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(command_retries.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_seconds,
            commands,
            command_retries,
            cache,
            projection_lag,
            dead_letters,
            rate_limited,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// A request method as a metric label: the standard ones by name, any
/// other as `OTHER`, so made-up methods cannot grow the label space.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Counts and times every request by its route pattern (not its path, so
/// ids do not explode the label space), into the [`Metrics`] the server
/// holds as application data.
pub async fn http_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req.app_data::<actix_web::web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let response = next.call(req).await?;
    if let Some(metrics) = metrics {
        let route = response
            .request()
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        let status = response.status().as_u16().to_string();
        metrics
            .http_requests
            .with_label_values(&[method, &route, &status])
            .inc();
        metrics
            .http_seconds
            .with_label_values(&[method, &route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
