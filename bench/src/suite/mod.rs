//! `shopstream-bench suite`: every scenario of the benchmark plan, run
//! against release processes of the product binary on copies of one
//! seeded data set, each beside its same-run baseline. Prints a table, writes one JSON
//! file per scenario and `summary.md` (the rows of BENCHMARKS.md) under
//! `--out`, and the query path's latency-versus-load chart.
//!
//! `--smoke` runs every scenario for a second or two on a tiny data set: it
//! proves the harness still works and measures nothing worth keeping.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::load::{self, Api, Run, Server, VirtualUsers, oha, oha_urls};
use crate::seed;

mod operations;
mod reads;
mod users;
mod writes;

#[derive(Args, Debug, Clone)]
pub struct SuiteArgs {
    /// Scenarios to run (comma-separated); every one by default.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<Scenario>,
    /// A second or two per scenario on a tiny data set, to prove the
    /// harness works; its numbers mean nothing.
    #[arg(long)]
    pub smoke: bool,
    /// Where results go.
    #[arg(long, default_value = "bench/results")]
    pub out: PathBuf,
    /// Where the seeded data set and each scenario's copy of it are kept.
    #[arg(long, default_value = "data/bench")]
    pub data: PathBuf,
    /// How long the soak runs.
    #[arg(long, default_value_t = 10)]
    pub soak_minutes: u64,
    /// Measure the appends, hot-SKU and lag scenarios on this KurrentDB
    /// server (`kurrentdb://admin:changeit@host:2113?tls=false`), each run
    /// in a namespace of its own; their results are kept apart from the
    /// embedded store's (`<scenario>-kurrentdb.json`).
    #[arg(long)]
    pub event_store: Option<String>,
    /// Measure the query ceiling, open-loop, lag and rebuild scenarios
    /// with the read models in this ScyllaDB cluster
    /// (`scylla://host:9042[,host:9042…]`), each run in a keyspace of its
    /// own with one copy; their results are kept apart
    /// (`<scenario>-scylla.json`).
    #[arg(long)]
    pub read_store: Option<String>,
}

/// The scenarios that run on a KurrentDB server as well.
const ON_KURRENTDB: [Scenario; 3] = [Scenario::Appends, Scenario::HotSku, Scenario::Lag];

/// The scenarios that run with the read models in ScyllaDB as well.
const ON_SCYLLA: [Scenario; 4] = [
    Scenario::Ceiling,
    Scenario::OpenLoop,
    Scenario::Lag,
    Scenario::Rebuild,
];

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Ceiling,
    OpenLoop,
    Connections,
    Mixed,
    Stress,
    Spike,
    CatalogueSize,
    HotSku,
    HotSkuAmple,
    Appends,
    Postgres,
    Lag,
    Export,
    Rebuild,
    Memory,
    Soak,
}

const ALL: [Scenario; 16] = [
    Scenario::Appends,
    Scenario::Postgres,
    Scenario::Lag,
    Scenario::Export,
    Scenario::Rebuild,
    Scenario::Memory,
    Scenario::Ceiling,
    Scenario::OpenLoop,
    Scenario::Connections,
    Scenario::Mixed,
    Scenario::Stress,
    Scenario::Spike,
    Scenario::CatalogueSize,
    Scenario::HotSku,
    Scenario::HotSkuAmple,
    Scenario::Soak,
];

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling",
            Self::OpenLoop => "open-loop",
            Self::Connections => "connections",
            Self::Mixed => "mixed",
            Self::Stress => "stress",
            Self::Spike => "spike",
            Self::CatalogueSize => "catalogue-size",
            Self::HotSku => "hot-sku",
            Self::HotSkuAmple => "hot-sku-ample",
            Self::Appends => "appends",
            Self::Postgres => "postgres",
            Self::Lag => "lag",
            Self::Export => "export",
            Self::Rebuild => "rebuild",
            Self::Memory => "memory",
            Self::Soak => "soak",
        }
    }
}

/// How big and how long: the full plan or the smoke run.
#[derive(Debug, Clone, Serialize)]
struct Plan {
    smoke: bool,
    seconds: f64,
    products: usize,
    customers: usize,
    orders: usize,
    users: usize,
    rates: Vec<u32>,
    many_connections: usize,
    many_connections_rate: u32,
    stress_users: Vec<usize>,
    spike_seconds: f64,
    hot_rounds: usize,
    /// Carts each of 64 shoppers checks out in the ample-stock scenario.
    ample_carts: usize,
    /// Rounds of the limiter's on/off comparison in the ceiling scenario.
    limiter_rounds: usize,
    /// Catalogue sizes of the catalogue-size scenario, smallest first.
    catalogue_sizes: Vec<usize>,
    /// Its open-loop rate of product pages, requests/s.
    catalogue_rate: u32,
    append_seconds: f64,
    lag_commands: usize,
    soak_segments: u64,
    soak_segment_seconds: f64,
}

impl Plan {
    fn new(args: &SuiteArgs) -> Self {
        if args.smoke {
            Self {
                smoke: true,
                seconds: 1.5,
                products: 300,
                customers: 64,
                orders: 100,
                users: 20,
                rates: vec![500, 1000],
                many_connections: 200,
                many_connections_rate: 1000,
                stress_users: vec![8, 16],
                spike_seconds: 1.5,
                hot_rounds: 1,
                ample_carts: 2,
                limiter_rounds: 1,
                catalogue_sizes: vec![100, 300],
                catalogue_rate: 500,
                append_seconds: 0.5,
                lag_commands: 200,
                soak_segments: 2,
                soak_segment_seconds: 1.5,
            }
        } else {
            Self {
                smoke: false,
                seconds: 10.0,
                products: 100_000,
                customers: 2_000,
                orders: 60_000,
                users: 200,
                rates: (1..=12).map(|k| k * 10_000).collect(),
                many_connections: 10_000,
                many_connections_rate: 20_000,
                stress_users: vec![100, 200, 400, 800, 1600, 3200, 6400],
                spike_seconds: 30.0,
                hot_rounds: 20,
                ample_carts: 100,
                limiter_rounds: 4,
                catalogue_sizes: vec![10_000, 100_000, 1_000_000],
                catalogue_rate: 10_000,
                append_seconds: 5.0,
                lag_commands: 8000,
                soak_segments: args.soak_minutes.max(1),
                soak_segment_seconds: 60.0,
            }
        }
    }
}

/// One scenario's row: what was measured, against what goal, beside what.
#[derive(Debug, Clone, Serialize)]
struct Outcome {
    scenario: String,
    command: String,
    result: String,
    goal: String,
    /// Whether the goal was met; `None` where there is no goal.
    met: Option<bool>,
    baseline: String,
    details: Value,
}

struct Suite {
    plan: Plan,
    args: SuiteArgs,
    seeded: PathBuf,
    seeded_events: u64,
    /// The query ceiling, once measured, sizes the spike.
    ceiling_rps: Option<f64>,
}

pub async fn run(args: SuiteArgs) -> anyhow::Result<()> {
    let plan = Plan::new(&args);
    let (candidates, flag): (Vec<Scenario>, &str) = match (&args.event_store, &args.read_store) {
        (Some(_), Some(_)) => bail!("measure one production engine at a time"),
        (Some(_), None) => (ON_KURRENTDB.to_vec(), "--event-store"),
        (None, Some(_)) => (ON_SCYLLA.to_vec(), "--read-store"),
        (None, None) => (ALL.to_vec(), ""),
    };
    if let Some(other) = args.only.iter().find(|s| !candidates.contains(s)) {
        let names: Vec<&str> = candidates.iter().map(|s| s.name()).collect();
        bail!(
            "{} does not run with {flag} (only {} do)",
            other.name(),
            names.join(", ")
        );
    }
    let scenarios: Vec<Scenario> = if args.only.is_empty() {
        candidates
    } else {
        candidates
            .into_iter()
            .filter(|s| args.only.contains(s))
            .collect()
    };
    std::fs::create_dir_all(&args.out)?;
    let machine = machine();
    println!("machine: {machine}");
    // The KurrentDB scenarios bring their own data; the others share one
    // seeded data set.
    let (seeded, seeded_events) = match args.event_store {
        Some(_) => (PathBuf::new(), 0),
        None => seed_once(&plan, &args.data).await?,
    };
    let mut suite = Suite {
        plan,
        args,
        seeded,
        seeded_events,
        ceiling_rps: None,
    };
    let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
    for scenario in scenarios {
        println!("\n== {} ==", scenario.name());
        let started = Instant::now();
        let outcome = suite.run(scenario).await;
        // A scenario's copies of the data set go with it: a full run would
        // otherwise leave one per scenario, over a gigabyte each.
        remove_copies(&suite.seeded);
        let outcome = outcome.with_context(|| format!("scenario {}", scenario.name()))?;
        println!(
            "{}: {}  (goal: {}; baseline: {}) [{:.0} s]",
            outcome.scenario,
            outcome.result,
            outcome.goal,
            outcome.baseline,
            started.elapsed().as_secs_f64()
        );
        let file = suite
            .args
            .out
            .join(format!("{}.json", suite.file_name(scenario)));
        let record = json!({
            "date": date, "machine": machine, "plan": suite.plan, "outcome": outcome,
        });
        std::fs::write(&file, serde_json::to_vec_pretty(&record)?)?;
    }
    // The chart and the table are drawn from the latest result of every
    // scenario run into this directory, this run's or an earlier one's,
    // each with its own date.
    let records: Vec<(Scenario, Value)> = ALL
        .iter()
        .flat_map(|&s| {
            [
                (s, s.name().to_string()),
                (s, format!("{}-kurrentdb", s.name())),
                (s, format!("{}-scylla", s.name())),
            ]
        })
        .filter_map(|(s, name)| {
            let bytes = std::fs::read(suite.args.out.join(format!("{name}.json"))).ok()?;
            Some((s, serde_json::from_slice(&bytes).ok()?))
        })
        .collect();
    let open_loop: Vec<Run> = records
        .iter()
        .find(|(s, _)| *s == Scenario::OpenLoop)
        .and_then(|(_, record)| {
            serde_json::from_value(record["outcome"]["details"]["runs"].clone()).ok()
        })
        .unwrap_or_default();
    if !open_loop.is_empty() {
        let chart = suite.args.out.join("query-latency.svg");
        crate::chart::latency_versus_load(&open_loop, &chart)?;
        println!("\nchart: {}", chart.display());
    }
    let records: Vec<Value> = records.into_iter().map(|(_, record)| record).collect();
    let summary = summary_table(&records);
    std::fs::write(suite.args.out.join("summary.md"), &summary)?;
    println!("\n{summary}");
    Ok(())
}

/// The rows of BENCHMARKS.md from the scenarios' result files.
fn summary_table(records: &[Value]) -> String {
    let mut out = String::from(
        "| scenario | command | date | machine | result | goal | same-run baseline |\n|---|---|---|---|---|---|---|\n",
    );
    for record in records {
        let o = &record["outcome"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let verdict = match o["met"].as_bool() {
            Some(true) => " (met)",
            Some(false) => " (**missed**)",
            None => "",
        };
        out.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {}{} | {} |\n",
            text(&o["scenario"]),
            text(&o["command"]),
            text(&record["date"]),
            text(&record["machine"]),
            text(&o["result"]),
            text(&o["goal"]),
            verdict,
            text(&o["baseline"])
        ));
    }
    out
}

/// Cores, memory and CPU of this machine.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {gib:.0} GiB, {model}")
}

/// Seeds the data set once; later runs with the same plan reuse it.
async fn seed_once(plan: &Plan, data: &Path) -> anyhow::Result<(PathBuf, u64)> {
    let dir = data.join(if plan.smoke { "smoke" } else { "full" });
    let set = seed_set(&dir, plan.products, plan.customers, plan.orders).await?;
    Ok((set.dir, set.events))
}

/// A seeded data set under `<dir>/seeded`, read models built.
struct SeededSet {
    dir: PathBuf,
    events: u64,
    /// How long seeding and the first build of the read models took.
    seconds: f64,
}

/// Seeds `<dir>/seeded` with the real write path and builds its read
/// models once, so every copy starts caught up; a set seeded earlier with
/// the same sizes is reused.
async fn seed_set(
    dir: &Path,
    products: usize,
    customers: usize,
    orders: usize,
) -> anyhow::Result<SeededSet> {
    let seeded = dir.join("seeded");
    let marker = seeded.join("bench-seed.json");
    let wanted = json!({"products": products, "customers": customers, "orders": orders});
    if let Ok(found) = std::fs::read(&marker)
        && let Ok(found) = serde_json::from_slice::<Value>(&found)
        && found["params"] == wanted
    {
        let events = found["events"].as_u64().unwrap_or(0);
        let seconds = found["seconds"].as_f64().unwrap_or(f64::NAN);
        println!("data set: {} ({events} events, reused)", seeded.display());
        return Ok(SeededSet {
            dir: seeded,
            events,
            seconds,
        });
    }
    let _ = std::fs::remove_dir_all(&seeded);
    std::fs::create_dir_all(&seeded)?;
    let started = Instant::now();
    let status = Command::new(load::harness()?)
        .arg("seed")
        .args(["--products", &products.to_string()])
        .args(["--customers", &customers.to_string()])
        .args(["--orders", &orders.to_string()])
        .env("SHOPSTREAM_DATA_DIR", &seeded)
        .env("SHOPSTREAM_LOG__FILTER", "warn")
        .status()
        .await?;
    if !status.success() {
        bail!("seeding failed: {status}");
    }
    let server = Server::serve(&seeded, free_port()?).await?;
    let events = Api::new(&server.base)
        .get_json("/health/ready", None)
        .await?["event_store"]["head_position"]
        .as_u64()
        .unwrap_or(0);
    server.stop().await?;
    let seconds = started.elapsed().as_secs_f64();
    std::fs::write(
        &marker,
        serde_json::to_vec_pretty(
            &json!({"params": wanted, "events": events, "seconds": seconds}),
        )?,
    )?;
    println!(
        "data set: {} ({events} events, seeded in {seconds:.0} s)",
        seeded.display(),
    );
    Ok(SeededSet {
        dir: seeded,
        events,
        seconds,
    })
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh copy of the seeded data set for one scenario.
/// Removes every copy [`fresh_copy`] made beside the seeded data set.
fn remove_copies(seeded: &Path) {
    let Some(parent) = seeded.parent() else {
        return;
    };
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        if entry.path() != seeded && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn fresh_copy(seeded: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = seeded.with_file_name(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(seeded)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name()))?;
        }
    }
    Ok(dir)
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn thousands(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

impl Suite {
    fn command(&self, scenario: Scenario) -> String {
        let smoke = if self.plan.smoke { " --smoke" } else { "" };
        let store = match (&self.args.event_store, &self.args.read_store) {
            (Some(_), _) => " --event-store kurrentdb://…",
            (_, Some(_)) => " --read-store scylla://…",
            _ => "",
        };
        format!("bench/run.sh{smoke}{store} --only {}", scenario.name())
    }

    /// The name of a scenario's result file: apart for KurrentDB's and
    /// ScyllaDB's.
    fn file_name(&self, scenario: Scenario) -> String {
        match (&self.args.event_store, &self.args.read_store) {
            (Some(_), _) => format!("{}-kurrentdb", scenario.name()),
            (_, Some(_)) => format!("{}-scylla", scenario.name()),
            _ => scenario.name().to_string(),
        }
    }

    /// The environment that puts a process's read models in the ScyllaDB
    /// cluster, in a fresh keyspace (none without `--read-store`).
    fn read_store_env(&self, scenario: Scenario) -> Vec<(&'static str, String)> {
        match &self.args.read_store {
            Some(url) => vec![
                ("SHOPSTREAM_READ_STORE", "scylla".into()),
                (
                    "SHOPSTREAM_SCYLLA_NODES",
                    url.trim_start_matches("scylla://").to_string(),
                ),
                (
                    "SHOPSTREAM_SCYLLA_KEYSPACE",
                    format!(
                        "bench_{}_{}",
                        scenario.name().replace('-', "_"),
                        &uuid::Uuid::new_v4().simple().to_string()[..12]
                    ),
                ),
                ("SHOPSTREAM_SCYLLA__REPLICATION_FACTOR", "1".into()),
            ],
            None => vec![],
        }
    }

    /// The environment that points a process at the KurrentDB server, in
    /// a fresh namespace (none without `--event-store`).
    fn event_store_env(&self, scenario: Scenario) -> Vec<(&'static str, String)> {
        match &self.args.event_store {
            Some(url) => vec![
                ("SHOPSTREAM_EVENT_STORE", "kurrentdb".into()),
                ("SHOPSTREAM_KURRENTDB_URL", url.clone()),
                (
                    "SHOPSTREAM_KURRENTDB__NAMESPACE",
                    format!(
                        "bench-{}-{}.",
                        scenario.name(),
                        uuid::Uuid::now_v7().simple()
                    ),
                ),
            ],
            None => vec![],
        }
    }

    async fn run(&mut self, scenario: Scenario) -> anyhow::Result<Outcome> {
        let command = self.command(scenario);
        let mut outcome = match scenario {
            Scenario::Ceiling => self.ceiling().await?,
            Scenario::OpenLoop => self.open_loop().await?,
            Scenario::Connections => self.connections().await?,
            Scenario::Mixed => self.mixed().await?,
            Scenario::Stress => self.stress().await?,
            Scenario::Spike => self.spike().await?,
            Scenario::CatalogueSize => self.catalogue_size().await?,
            Scenario::HotSku => self.hot_sku().await?,
            Scenario::HotSkuAmple => self.hot_sku_ample().await?,
            Scenario::Appends => self.appends().await?,
            Scenario::Postgres => self.appends_beside_postgres().await?,
            Scenario::Lag => self.lag().await?,
            Scenario::Export => self.export().await?,
            Scenario::Rebuild => self.rebuild().await?,
            Scenario::Memory => self.memory().await?,
            Scenario::Soak => self.soak().await?,
        };
        outcome.command = command;
        if self.args.event_store.is_some() {
            outcome.scenario = format!("{} — KurrentDB", outcome.scenario);
        }
        if self.args.read_store.is_some() {
            outcome.scenario = format!("{} — ScyllaDB", outcome.scenario);
        }
        Ok(outcome)
    }

    async fn server(&self, scenario: Scenario) -> anyhow::Result<Server> {
        let dir = fresh_copy(&self.seeded, scenario.name())?;
        // With the read models in ScyllaDB, the server projects the seeded
        // history into a fresh keyspace before it counts as started.
        Server::serve_with(&dir, free_port()?, &self.read_store_env(scenario)).await
    }

    /// A product's URL, its answer already cached.
    async fn product_url(&self, server: &Server) -> anyhow::Result<String> {
        let api = Api::new(&server.base);
        let page = api.get_json("/v1/products?limit=1", None).await?;
        let id = page["items"][0]["product_id"]
            .as_str()
            .context("the data set has no product")?;
        let url = api.url(&format!("/v1/products/{id}"));
        api.client().get(&url).send().await?.error_for_status()?;
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_for_people() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(0.456), "0.46 ms");
        assert_eq!(ms(123.4), "123 ms");
    }

    #[test]
    fn percentiles_take_the_nearest_rank() {
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_summary_marks_missed_goals() {
        let outcome = Outcome {
            scenario: "x".into(),
            command: "bench/run.sh --only x".into(),
            result: "r".into(),
            goal: "g".into(),
            met: Some(false),
            baseline: "b".into(),
            details: Value::Null,
        };
        let record = json!({"date": "2026-01-01", "machine": "2 cores", "outcome": outcome});
        let table = summary_table(&[record]);
        assert!(table.contains(
            "| x | `bench/run.sh --only x` | 2026-01-01 | 2 cores | r | g (**missed**) | b |"
        ));
    }
}
