//! Logs (tracing: pretty for people, JSON for machines) and Prometheus
//! metrics.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry,
};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use shopstream_infra::event_store::{CommitObserver, GroupCommits};

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
        // Colours only for a terminal: a log file or a pipe gets plain text.
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_writer(std::io::stderr),
            )
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
    pub command_batches: Histogram,
    pub cache: IntCounterVec,
    pub projection_lag: HistogramVec,
    pub dead_letters: IntCounterVec,
    pub rate_limited: IntCounterVec,
    /// The embedded event store's group commits.
    pub group_commit_seconds: Histogram,
    pub group_commit_appends: Histogram,
    projections: std::sync::Arc<ProjectionGauges>,
}

/// Each projection as the registry holds it, set at every scrape (so a
/// node that runs no projection still reports them all).
struct ProjectionGauges {
    behind_events: IntGaugeVec,
    behind_seconds: GaugeVec,
    checkpoint: IntGaugeVec,
    status: IntGaugeVec,
    dead_letters: IntGaugeVec,
    partition_behind_events: IntGaugeVec,
    relay_position: IntGauge,
    relay_behind_events: IntGauge,
    /// When the figures were last read: at most once a second, however
    /// often `/metrics` (which anyone may call) is asked.
    read_at: std::sync::Mutex<Option<Instant>>,
}

impl ProjectionGauges {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauges = Self {
            behind_events: IntGaugeVec::new(
                Opts::new(
                    "projection_behind_events",
                    "Events recorded after the projection's checkpoint (counted up to a cap)",
                ),
                &["projection"],
            )?,
            behind_seconds: GaugeVec::new(
                Opts::new(
                    "projection_behind_seconds",
                    "How long the oldest event the projection has not applied has waited",
                ),
                &["projection"],
            )?,
            checkpoint: IntGaugeVec::new(
                Opts::new(
                    "projection_checkpoint",
                    "The position of the last event the projection applied",
                ),
                &["projection"],
            )?,
            status: IntGaugeVec::new(
                Opts::new(
                    "projection_status",
                    "1 with the projection's status: live, rebuilding, paused or failed",
                ),
                &["projection", "status"],
            )?,
            dead_letters: IntGaugeVec::new(
                Opts::new(
                    "projection_dead_letters",
                    "Events set aside by the projection, waiting for an operator",
                ),
                &["projection"],
            )?,
            partition_behind_events: IntGaugeVec::new(
                Opts::new(
                    "projection_partition_behind_events",
                    "With a partitioned feed (Kafka): events of $all after how far the \
                     projection has applied each partition",
                ),
                &["projection", "partition"],
            )?,
            relay_position: IntGauge::new(
                "relay_position",
                "With Kafka: the position of $all the relay has produced up to",
            )?,
            relay_behind_events: IntGauge::new(
                "relay_behind_events",
                "With Kafka: events recorded after the relay's position (counted up to a cap)",
            )?,
            read_at: std::sync::Mutex::new(None),
        };
        registry.register(Box::new(gauges.relay_position.clone()))?;
        registry.register(Box::new(gauges.relay_behind_events.clone()))?;
        registry.register(Box::new(gauges.partition_behind_events.clone()))?;
        registry.register(Box::new(gauges.behind_events.clone()))?;
        registry.register(Box::new(gauges.behind_seconds.clone()))?;
        registry.register(Box::new(gauges.checkpoint.clone()))?;
        registry.register(Box::new(gauges.status.clone()))?;
        registry.register(Box::new(gauges.dead_letters.clone()))?;
        Ok(gauges)
    }
}

struct GroupCommitMetrics {
    seconds: Histogram,
    appends: Histogram,
}

impl GroupCommits for GroupCommitMetrics {
    fn committed(&self, appends: usize, took: std::time::Duration) {
        self.seconds.observe(took.as_secs_f64());
        self.appends.observe(appends as f64);
    }
}

/// A count as an integer gauge's value (saturating).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What the projection gauges say of one projection.
pub struct ProjectionFigures<'a> {
    pub name: &'a str,
    pub status: &'a str,
    pub checkpoint: u64,
    pub behind_events: u64,
    pub behind_ms: u64,
    pub dead_letters: u64,
    /// With a partitioned feed (Kafka): events behind, per partition.
    pub partitions: Vec<(i32, u64)>,
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
        let command_batches = Histogram::with_opts(
            HistogramOpts::new(
                "command_batch_size",
                "Commands a hot stream's combining queue decided together and appended in one append",
            )
            .buckets(vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0]),
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
        let group_commit_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "event_store_commit_seconds",
                "An embedded event store group commit: its writes and its fsync",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )?;
        let group_commit_appends = Histogram::with_opts(
            HistogramOpts::new(
                "event_store_commit_appends",
                "Appends an embedded event store group commit carried",
            )
            .buckets(vec![
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ]),
        )?;
        registry.register(Box::new(group_commit_seconds.clone()))?;
        registry.register(Box::new(group_commit_appends.clone()))?;
        let projections = std::sync::Arc::new(ProjectionGauges::new(&registry)?);
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(cache.clone()))?;
        registry.register(Box::new(projection_lag.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        registry.register(Box::new(command_retries.clone()))?;
        registry.register(Box::new(command_batches.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            http_seconds,
            commands,
            command_retries,
            command_batches,
            cache,
            projection_lag,
            dead_letters,
            rate_limited,
            group_commit_seconds,
            group_commit_appends,
            projections,
        })
    }

    /// What the embedded event store tells of its group commits.
    pub fn group_commits(&self) -> CommitObserver {
        CommitObserver(std::sync::Arc::new(GroupCommitMetrics {
            seconds: self.group_commit_seconds.clone(),
            appends: self.group_commit_appends.clone(),
        }))
    }

    /// Whether the projection figures are due to be read again (and, if
    /// so, they count as read now).
    pub fn projections_due(&self) -> bool {
        let mut read_at = self
            .projections
            .read_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = read_at.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
        if due {
            *read_at = Some(Instant::now());
        }
        due
    }

    /// Sets the projection gauges from the registry's figures.
    pub fn set_projections<'a>(&self, figures: impl IntoIterator<Item = ProjectionFigures<'a>>) {
        let g = &self.projections;
        // A status left behind must not stay at 1.
        g.status.reset();
        for f in figures {
            g.behind_events
                .with_label_values(&[f.name])
                .set(gauge(f.behind_events));
            g.behind_seconds
                .with_label_values(&[f.name])
                .set(f.behind_ms as f64 / 1000.0);
            g.checkpoint
                .with_label_values(&[f.name])
                .set(gauge(f.checkpoint));
            g.dead_letters
                .with_label_values(&[f.name])
                .set(gauge(f.dead_letters));
            g.status.with_label_values(&[f.name, f.status]).set(1);
            for (partition, behind) in f.partitions {
                g.partition_behind_events
                    .with_label_values(&[f.name, &partition.to_string()])
                    .set(gauge(behind));
            }
        }
    }

    /// Where the relay stands (a node fed through Kafka reports it).
    pub fn set_relay(&self, position: u64, behind: u64) {
        self.projections.relay_position.set(gauge(position));
        self.projections.relay_behind_events.set(gauge(behind));
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
    let method = method_label(req.method());
    let response = next.call(req).await?;
    let request = response.request();
    if let Some(metrics) = request.app_data::<actix_web::web::Data<Metrics>>() {
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "unmatched".into());
        metrics
            .http_requests
            .with_label_values(&[method, &route, response.status().as_str()])
            .inc();
        metrics
            .http_seconds
            .with_label_values(&[method, &route])
            .observe(started.elapsed().as_secs_f64());
    }
    Ok(response)
}
