//! `shopstream bench suite`: every scenario of the benchmark plan, run
//! against release processes of this binary on copies of one seeded data
//! set, each beside its same-run baseline. Prints a table, writes one JSON
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

use super::load::{self, Api, Run, Server, VirtualUsers, oha};
use super::seed;

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
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    Ceiling,
    OpenLoop,
    Connections,
    Mixed,
    Stress,
    Spike,
    HotSku,
    Appends,
    Lag,
    Export,
    Rebuild,
    Memory,
    Soak,
}

const ALL: [Scenario; 13] = [
    Scenario::Appends,
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
    Scenario::HotSku,
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
            Self::HotSku => "hot-sku",
            Self::Appends => "appends",
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
    scenario: &'static str,
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
    let scenarios: Vec<Scenario> = if args.only.is_empty() {
        ALL.to_vec()
    } else {
        ALL.into_iter().filter(|s| args.only.contains(s)).collect()
    };
    std::fs::create_dir_all(&args.out)?;
    let machine = machine();
    println!("machine: {machine}");
    let (seeded, seeded_events) = seed_once(&plan, &args.data).await?;
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
        let outcome = suite
            .run(scenario)
            .await
            .with_context(|| format!("scenario {}", scenario.name()))?;
        println!(
            "{}: {}  (goal: {}; baseline: {}) [{:.0} s]",
            outcome.scenario,
            outcome.result,
            outcome.goal,
            outcome.baseline,
            started.elapsed().as_secs_f64()
        );
        let file = suite.args.out.join(format!("{}.json", scenario.name()));
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
        .filter_map(|&s| {
            let bytes = std::fs::read(suite.args.out.join(format!("{}.json", s.name()))).ok()?;
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
        super::chart::latency_versus_load(&open_loop, &chart)?;
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
    let seeded = dir.join("seeded");
    let marker = seeded.join("bench-seed.json");
    let wanted =
        json!({"products": plan.products, "customers": plan.customers, "orders": plan.orders});
    if let Ok(found) = std::fs::read(&marker)
        && let Ok(found) = serde_json::from_slice::<Value>(&found)
        && found["params"] == wanted
    {
        let events = found["events"].as_u64().unwrap_or(0);
        println!("data set: {} ({events} events, reused)", seeded.display());
        return Ok((seeded, events));
    }
    let _ = std::fs::remove_dir_all(&seeded);
    std::fs::create_dir_all(&seeded)?;
    let started = Instant::now();
    let status = Command::new(std::env::current_exe()?)
        .args(["bench", "seed"])
        .args(["--products", &plan.products.to_string()])
        .args(["--customers", &plan.customers.to_string()])
        .args(["--orders", &plan.orders.to_string()])
        .env("SHOPSTREAM_DATA_DIR", &seeded)
        .env("SHOPSTREAM_LOG__FILTER", "warn")
        .status()
        .await?;
    if !status.success() {
        bail!("seeding failed: {status}");
    }
    // Build the read models once, so every copy starts caught up.
    let server = Server::serve(&seeded, free_port()?).await?;
    let head = Api::new(&server.base)
        .get_json("/health/ready", None)
        .await?["event_store"]["head_position"]
        .as_u64()
        .unwrap_or(0);
    server.stop().await?;
    std::fs::write(
        &marker,
        serde_json::to_vec_pretty(&json!({"params": wanted, "events": head}))?,
    )?;
    println!(
        "data set: {} ({head} events, seeded in {:.0} s)",
        seeded.display(),
        started.elapsed().as_secs_f64()
    );
    Ok((seeded, head))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A fresh copy of the seeded data set for one scenario.
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
        format!("bench/run.sh{smoke} --only {}", scenario.name())
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
            Scenario::HotSku => self.hot_sku().await?,
            Scenario::Appends => self.appends().await?,
            Scenario::Lag => self.lag().await?,
            Scenario::Export => self.export().await?,
            Scenario::Rebuild => self.rebuild().await?,
            Scenario::Memory => self.memory().await?,
            Scenario::Soak => self.soak().await?,
        };
        outcome.command = command;
        Ok(outcome)
    }

    async fn server(&self, scenario: Scenario) -> anyhow::Result<Server> {
        let dir = fresh_copy(&self.seeded, scenario.name())?;
        Server::serve(&dir, free_port()?).await
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

    async fn ceiling(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Ceiling).await?;
        let hello = Server::hello(free_port()?).await?;
        let url = self.product_url(&server).await?;
        let secs = self.plan.seconds;
        let baseline = oha(&format!("{}/hello", hello.base), 256, None, secs).await?;
        let product = oha(&url, 256, None, secs).await?;
        let ratio = product.rps / baseline.rps;
        self.ceiling_rps = Some(product.rps);
        Ok(Outcome {
            scenario: "query ceiling: GET /v1/products/{id}, cache hit, 256 connections",
            command: String::new(),
            result: format!(
                "{} req/s, p50 {}, p99 {}, p99.9 {}, {} errors → **{ratio:.2}×**",
                thousands(product.rps),
                ms(product.p50_ms),
                ms(product.p99_ms),
                ms(product.p999_ms),
                product.errors
            ),
            goal: "≥ 0.6× the trivial handler".into(),
            met: Some(ratio >= 0.6 && product.errors == 0),
            baseline: format!(
                "trivial actix-web handler: {} req/s, p99 {}",
                thousands(baseline.rps),
                ms(baseline.p99_ms)
            ),
            details: json!({"product": product, "hello": baseline, "ratio": ratio}),
        })
    }

    async fn open_loop(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::OpenLoop).await?;
        let url = self.product_url(&server).await?;
        let mut runs: Vec<Run> = Vec::new();
        let mut knee = None;
        for &rate in &self.plan.rates {
            let run = oha(&url, 256, Some(rate), self.plan.seconds).await?;
            println!(
                "  offered {rate:>7}/s: achieved {:>8.0}/s  p50 {}  p99 {}  p99.9 {}  errors {}",
                run.rps,
                ms(run.p50_ms),
                ms(run.p99_ms),
                ms(run.p999_ms),
                run.errors
            );
            let saturated = run.p99_ms > 10.0 || run.rps < 0.9 * f64::from(rate);
            runs.push(run);
            if saturated {
                knee = Some(rate);
                break;
            }
        }
        let first = runs.first().context("no rate was measured")?;
        let first_rate = self.plan.rates[0];
        let goal_rate = if self.plan.smoke { first_rate } else { 10_000 };
        let at_goal = runs
            .iter()
            .find(|r| r.offered_rps == Some(f64::from(goal_rate)))
            .unwrap_or(first);
        let knee_text = match knee {
            Some(rate) => format!(
                "p99 passes 10 ms (or the rate is not kept) at {} req/s",
                thousands(f64::from(rate))
            ),
            None => format!(
                "p99 stays under 10 ms up to {} req/s, the highest rate offered",
                thousands(f64::from(*self.plan.rates.last().unwrap_or(&0)))
            ),
        };
        Ok(Outcome {
            scenario: "open loop: GET /v1/products/{id}, fixed rate, latency-corrected",
            command: String::new(),
            result: format!(
                "at {} req/s: p50 {}, **p99 {}**, p99.9 {}; {knee_text}",
                thousands(f64::from(goal_rate)),
                ms(at_goal.p50_ms),
                ms(at_goal.p99_ms),
                ms(at_goal.p999_ms)
            ),
            goal: "p99 ≤ 1 ms at 10k req/s; report the knee".into(),
            met: Some(at_goal.p99_ms <= 1.0),
            baseline: "the closed-loop ceiling above".into(),
            details: json!({"runs": runs, "knee_rps": knee}),
        })
    }

    async fn connections(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Connections).await?;
        let url = self.product_url(&server).await?;
        let idle = server.rss_mib()?;
        let server = Arc::new(server);
        let (c, rate) = (self.plan.many_connections, self.plan.many_connections_rate);
        let peak_rss = Arc::new(std::sync::Mutex::new(0.0f64));
        let run = {
            let watcher = {
                let server = server.clone();
                let peak_rss = peak_rss.clone();
                tokio::spawn(async move {
                    loop {
                        if let Ok(rss) = server.rss_mib() {
                            let mut peak = peak_rss.lock().expect("unpoisoned");
                            *peak = peak.max(rss);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let run = oha(&url, c, Some(rate), self.plan.seconds.max(5.0)).await;
            watcher.abort();
            run?
        };
        let peak = *peak_rss.lock().expect("unpoisoned");
        Ok(Outcome {
            scenario: "10,000 concurrent users: keep-alive connections, 20k req/s total",
            command: String::new(),
            result: format!(
                "{} connections at {} req/s offered: {} req/s, p50 {}, **p99 {}**, {} errors, RSS {peak:.0} MiB (idle {idle:.0} MiB)",
                thousands(c as f64),
                thousands(f64::from(rate)),
                thousands(run.rps),
                ms(run.p50_ms),
                ms(run.p99_ms),
                run.errors
            ),
            goal: "p99 ≤ 20 ms, 0 errors".into(),
            met: Some(run.p99_ms <= 20.0 && run.errors == 0),
            baseline: format!("the same server idle: {idle:.0} MiB"),
            details: json!({"run": run, "rss_peak_mib": peak, "rss_idle_mib": idle}),
        })
    }

    /// Tokens of logged-in customers and the data files of the virtual users.
    async fn virtual_users(
        &self,
        server: &Server,
        scenario: Scenario,
        users: usize,
    ) -> anyhow::Result<VirtualUsers> {
        let api = Api::new(&server.base);
        let logins = users.min(self.plan.customers).max(1);
        let tokens: Vec<String> = futures::future::try_join_all((0..logins).map(|i| {
            let api = api.clone();
            async move { api.login(&seed::email(i), seed::PASSWORD).await }
        }))
        .await?;
        let products = api.products().await?;
        let dir = self.args.data.join("users").join(scenario.name());
        VirtualUsers::write(&dir, &tokens, &products)
    }

    async fn mixed(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Mixed).await?;
        let users = self
            .virtual_users(&server, Scenario::Mixed, self.plan.users)
            .await?;
        let api = Api::new(&server.base);
        let (hits0, misses0) = cache_counts(&api).await?;
        let run = users
            .run(
                &server.base,
                self.plan.users,
                self.plan.seconds.max(3.0) * 3.0,
            )
            .await?;
        let (hits1, misses1) = cache_counts(&api).await?;
        let hit_ratio = (hits1 - hits0) / ((hits1 - hits0) + (misses1 - misses0)).max(1.0);
        let rss = server.rss_mib()?;
        let heap = server.memory_mib("RssAnon")?;
        let errors = run.errors();
        let error_rate = errors as f64 / run.requests.max(1) as f64;
        let text = run
            .roles
            .iter()
            .map(|r| {
                format!(
                    "{} {:.0} tx/s (p95 {}, p99 {})",
                    r.role,
                    r.transactions_per_s,
                    ms(r.p95_ms),
                    ms(r.p99_ms)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Outcome {
            scenario: "mixed commerce workload: browse 80 %, carts 15 %, checkout + pay 5 %, Zipf(1.0)",
            command: String::new(),
            result: format!(
                "{} users, {} products: {text}; {} req/s in all, errors {:.3} %, cache hit {:.1} %, RSS {rss:.0} MiB (heap {heap:.0})",
                self.plan.users,
                thousands(self.plan.products as f64),
                thousands(run.rps),
                error_rate * 100.0,
                hit_ratio * 100.0
            ),
            goal: "0 errors; RSS ≤ 150 MiB".into(),
            met: Some(errors == 0 && rss <= 150.0),
            baseline: "the query ceiling above".into(),
            details: json!({"run": run, "cache_hit_ratio": hit_ratio, "rss_mib": rss, "heap_mib": heap, "error_rate": error_rate}),
        })
    }

    async fn stress(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Stress).await?;
        let most = *self.plan.stress_users.last().unwrap_or(&1);
        let users = self.virtual_users(&server, Scenario::Stress, most).await?;
        let mut steps = Vec::new();
        let mut knee = None;
        for &n in &self.plan.stress_users {
            let run = users.run(&server.base, n, self.plan.seconds).await?;
            let (p99, errors, rps) = (run.worst_p99_ms(), run.errors(), run.rps);
            println!(
                "  {n:>5} users: {rps:>8.0} req/s, worst p99 {}, errors {errors}",
                ms(p99)
            );
            steps.push(
                json!({"users": n, "rps": rps, "worst_p99_ms": p99, "errors": errors, "run": run}),
            );
            if p99 > 200.0 || errors > 0 {
                knee = Some(n);
                break;
            }
        }
        let last = steps.last().cloned().unwrap_or(Value::Null);
        let result = match knee {
            Some(n) => format!(
                "knee at {n} users: worst p99 {}, {} errors ({} req/s)",
                ms(last["worst_p99_ms"].as_f64().unwrap_or(0.0)),
                last["errors"],
                thousands(last["rps"].as_f64().unwrap_or(0.0))
            ),
            None => format!(
                "no knee up to {most} users: worst p99 {}, 0 errors ({} req/s)",
                ms(last["worst_p99_ms"].as_f64().unwrap_or(0.0)),
                thousands(last["rps"].as_f64().unwrap_or(0.0))
            ),
        };
        Ok(Outcome {
            scenario: "stress: mixed-workload users doubled until p99 > 200 ms or errors",
            command: String::new(),
            result,
            goal: "report the knee".into(),
            met: None,
            baseline: "—".into(),
            details: json!({"steps": steps, "knee_users": knee}),
        })
    }

    async fn spike(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Spike).await?;
        let url = self.product_url(&server).await?;
        let ceiling = match self.ceiling_rps {
            Some(rps) => rps,
            None => oha(&url, 256, None, self.plan.seconds.min(3.0)).await?.rps,
        };
        // The base load is a tenth of the ceiling: the spike is all of it.
        let base = ((ceiling / 10.0) as u32).max(100);
        let before = oha(&url, 256, Some(base), self.plan.seconds).await?;
        let spike = oha(&url, 1024, Some(base * 10), self.plan.spike_seconds).await?;
        let ended = Instant::now();
        let settled = before.p99_ms * 2.0 + 0.5;
        let mut probes = Vec::new();
        let recovery = loop {
            let probe = oha(&url, 256, Some(base), 1.0).await?;
            let ok = probe.p99_ms <= settled && probe.errors == 0;
            probes.push(probe);
            if ok {
                break Some(ended.elapsed().as_secs_f64());
            }
            if probes.len() >= 60 {
                break None;
            }
        };
        let errors = spike.errors + probes.iter().map(|p| p.errors).sum::<u64>();
        Ok(Outcome {
            scenario: "spike: 10× the base load for 30 s (GET /v1/products/{id}, open loop)",
            command: String::new(),
            result: format!(
                "base {} req/s (p99 {}); spike {} req/s offered, {} kept, p99 {}, **{errors} errors**; recovered (p99 ≤ {}) {} after the spike",
                thousands(f64::from(base)),
                ms(before.p99_ms),
                thousands(f64::from(base * 10)),
                thousands(spike.rps),
                ms(spike.p99_ms),
                ms(settled),
                recovery.map_or("not within 60 s".into(), |s| format!("{s:.1} s"))
            ),
            goal: "0 errors, quick recovery".into(),
            met: Some(errors == 0 && recovery.is_some()),
            baseline: format!("the base load before the spike: p99 {}", ms(before.p99_ms)),
            details: json!({"before": before, "spike": spike, "probes": probes, "recovery_s": recovery}),
        })
    }

    async fn hot_sku(&mut self) -> anyhow::Result<Outcome> {
        const SHOPPERS: usize = 64;
        const STOCK: u32 = 10;
        let server = self.server(Scenario::HotSku).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let tokens: Vec<String> = futures::future::try_join_all((0..SHOPPERS).map(|i| {
            let api = api.clone();
            let customers = self.plan.customers;
            async move { api.login(&seed::email(i % customers), seed::PASSWORD).await }
        }))
        .await?;
        let retries_before = api
            .metric(
                "shopstream_command_retries_total",
                &["command=\"checkout\""],
            )
            .await?;
        let (mut latencies, mut sold, mut oversold, mut refused, mut failed) =
            (Vec::new(), 0u64, 0i64, 0u64, 0u64);
        for round in 0..self.plan.hot_rounds {
            let sku = format!(
                "HOT-{round}-{}",
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            let (status, _, created) = api
                .send(
                    reqwest::Method::POST,
                    "/v1/products",
                    &admin,
                    Some(json!({"sku": sku, "name": "Hot item", "description": "Everyone wants it",
                        "price": {"amount": 999, "currency": "EUR"}, "category": "hot", "tags": ["hot"]})),
                )
                .await?;
            if status != 201 {
                bail!("creating the hot product: {status} {created}");
            }
            let product = created["product_id"]
                .as_str()
                .context("no product_id")?
                .to_string();
            api.send(
                reqwest::Method::POST,
                &format!("/v1/inventory/{sku}/receipts"),
                &admin,
                Some(json!({"quantity": STOCK})),
            )
            .await?;
            let mut carts = Vec::new();
            for token in &tokens {
                let (_, _, cart) = api
                    .send(reqwest::Method::POST, "/v1/carts", token, None)
                    .await?;
                let cart = cart["cart_id"].as_str().context("no cart_id")?.to_string();
                let (status, _, _) = api
                    .send(
                        reqwest::Method::PUT,
                        &format!("/v1/carts/{cart}/items/{product}"),
                        token,
                        Some(json!({"quantity": 1})),
                    )
                    .await?;
                if status != 200 {
                    bail!("filling a cart: {status}");
                }
                carts.push(cart);
            }
            let gate = Arc::new(tokio::sync::Barrier::new(SHOPPERS));
            let checkouts = carts.iter().zip(&tokens).map(|(cart, token)| {
                let (api, gate) = (api.clone(), gate.clone());
                async move {
                    gate.wait().await;
                    let started = Instant::now();
                    let answer = api
                        .send(
                            reqwest::Method::POST,
                            &format!("/v1/carts/{cart}/checkout"),
                            token,
                            Some(json!({"shipping_address": "1 Main Street, 10115 Berlin"})),
                        )
                        .await;
                    (started.elapsed().as_secs_f64() * 1000.0, answer)
                }
            });
            let mut consistency = Vec::new();
            for (took, answer) in futures::future::join_all(checkouts).await {
                latencies.push(took);
                match answer? {
                    (201, token, _) => {
                        sold += 1;
                        consistency.extend(token);
                    }
                    (409, _, body) if body["code"] == "insufficient_stock" => refused += 1,
                    (status, _, body) => {
                        failed += 1;
                        tracing::warn!(status, %body, "checkout failed");
                    }
                }
            }
            // The inventory as the read model has it once it reflects every
            // successful checkout.
            let mut inventory = Value::Null;
            for token in &consistency {
                let request = api
                    .client()
                    .get(api.url(&format!("/v1/inventory/{sku}")))
                    .header("X-Consistency-Token", token);
                inventory = request.send().await?.json().await?;
            }
            let reserved = inventory["reserved"].as_i64().unwrap_or(0);
            let on_hand = inventory["on_hand"].as_i64().unwrap_or(i64::from(STOCK));
            oversold += (reserved - on_hand).max(0);
        }
        oversold += (sold as i64 - (self.plan.hot_rounds as i64 * i64::from(STOCK))).max(0);
        let retries_after = api
            .metric(
                "shopstream_command_retries_total",
                &["command=\"checkout\""],
            )
            .await?;
        let attempts = (SHOPPERS * self.plan.hot_rounds) as f64;
        let retries = (retries_after - retries_before) / attempts;
        latencies.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        Ok(Outcome {
            scenario: "hot SKU: 64 concurrent checkouts of one SKU with 10 in stock",
            command: String::new(),
            result: format!(
                "{} rounds: sold {sold}, refused {refused}, failed {failed}, **oversold {oversold}**; {retries:.2} retries per checkout; p50 {}, **p99 {}**",
                self.plan.hot_rounds,
                ms(p50),
                ms(p99)
            ),
            goal: "oversell 0; p99 ≤ 50 ms".into(),
            met: Some(oversold == 0 && failed == 0 && p99 <= 50.0),
            baseline: "—".into(),
            details: json!({"rounds": self.plan.hot_rounds, "sold": sold, "refused": refused, "failed": failed,
                "oversold": oversold, "retries_per_checkout": retries, "p50_ms": p50, "p99_ms": p99,
                "latencies_ms": latencies}),
        })
    }

    async fn appends(&mut self) -> anyhow::Result<Outcome> {
        let dir = self.args.data.join("appends");
        let file = self.args.out.join("appends.raw.json");
        let status = Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "append",
                "--seconds",
                &self.plan.append_seconds.to_string(),
            ])
            .arg("--dir")
            .arg(&dir)
            .arg("--json")
            .arg(&file)
            .status()
            .await?;
        if !status.success() {
            bail!("bench append failed: {status}");
        }
        let runs: Vec<Value> = serde_json::from_slice(&std::fs::read(&file)?)?;
        let _ = std::fs::remove_file(&file);
        let find = |pred: &dyn Fn(&Value) -> bool| {
            runs.iter()
                .find(|r| pred(r))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let one_fsync = find(&|r| {
            r["scenario"]
                .as_str()
                .is_some_and(|s| s.contains("one transaction"))
        });
        let raw = find(&|r| {
            r["scenario"]
                .as_str()
                .is_some_and(|s| s.contains("fdatasync"))
        });
        let grouped = |w: u64| {
            find(&|r| {
                r["writers"] == w
                    && !r["scenario"]
                        .as_str()
                        .is_some_and(|s| s.contains("one transaction") || s.contains("fdatasync"))
            })
        };
        let (one, many) = (grouped(1), grouped(64));
        let events = |v: &Value| v["events_per_sec"].as_f64().unwrap_or(0.0);
        let ratio = events(&many) / events(&one_fsync).max(1.0);
        Ok(Outcome {
            scenario: "durable appends (fsync on), 1 and 64 writers",
            command: String::new(),
            result: format!(
                "1 writer {} events/s; **64 writers {} events/s** (p99 {}) = **{ratio:.1}×** one fsync per append",
                thousands(events(&one)),
                thousands(events(&many)),
                ms(many["p99_ms"].as_f64().unwrap_or(0.0))
            ),
            goal: "≥ 20,000 events/s and ≥ 50× one-fsync".into(),
            met: Some(events(&many) >= 20_000.0 && ratio >= 50.0),
            baseline: format!(
                "one fsync per append through the store: {}/s; raw write + fdatasync: {}/s",
                thousands(events(&one_fsync)),
                thousands(events(&raw))
            ),
            details: json!({"runs": runs, "ratio_to_one_fsync": ratio}),
        })
    }

    async fn lag(&mut self) -> anyhow::Result<Outcome> {
        let dir = self.args.data.join("lag");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let file = self.args.out.join("lag.raw.json");
        let status = Command::new(std::env::current_exe()?)
            .args([
                "bench",
                "lag",
                "--commands",
                &self.plan.lag_commands.to_string(),
            ])
            .arg("--json")
            .arg(&file)
            .env("SHOPSTREAM_DATA_DIR", &dir)
            .status()
            .await?;
        if !status.success() {
            bail!("bench lag failed: {status}");
        }
        let lag: Value = serde_json::from_slice(&std::fs::read(&file)?)?;
        let _ = std::fs::remove_file(&file);
        let p99 = lag["p99_ms"].as_f64().unwrap_or(f64::NAN);
        Ok(Outcome {
            scenario: "commit → queryable (embedded)",
            command: String::new(),
            result: format!(
                "p50 {}, **p99 {}**, max {}, {} stale of {}",
                ms(lag["p50_ms"].as_f64().unwrap_or(0.0)),
                ms(p99),
                ms(lag["max_ms"].as_f64().unwrap_or(0.0)),
                lag["stale"],
                lag["commands"]
            ),
            goal: "p99 ≤ 20 ms".into(),
            met: Some(p99 <= 20.0),
            baseline: "—".into(),
            details: lag,
        })
    }

    async fn export(&mut self) -> anyhow::Result<Outcome> {
        use futures::StreamExt;
        let server = self.server(Scenario::Export).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let started = Instant::now();
        let response = api
            .client()
            .get(api.url("/v1/events"))
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?;
        let mut body = response.bytes_stream();
        let (mut lines, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = lines as f64 / secs;
        if lines < self.seeded_events {
            bail!("the export gave {lines} events of {}", self.seeded_events);
        }
        Ok(Outcome {
            scenario: "export: every event as NDJSON over GET /v1/events",
            command: String::new(),
            result: format!(
                "{} events ({:.0} MiB) in {secs:.2} s = **{} events/s**",
                thousands(lines as f64),
                bytes as f64 / 1048576.0,
                thousands(rate)
            ),
            goal: "≥ 500,000 events/s".into(),
            met: Some(rate >= 500_000.0),
            baseline: "—".into(),
            details: json!({"events": lines, "bytes": bytes, "seconds": secs, "events_per_s": rate}),
        })
    }

    async fn rebuild(&mut self) -> anyhow::Result<Outcome> {
        let dir = fresh_copy(&self.seeded, Scenario::Rebuild.name())?;
        let started = Instant::now();
        let status = Command::new(std::env::current_exe()?)
            .args(["projections", "rebuild", "all"])
            .env("SHOPSTREAM_DATA_DIR", &dir)
            .env("SHOPSTREAM_LOG__FILTER", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("the rebuild failed: {status}");
        }
        let secs = started.elapsed().as_secs_f64();
        let per_million = secs * 1e6 / self.seeded_events.max(1) as f64;
        Ok(Outcome {
            scenario: "rebuild every projection from the first event",
            command: String::new(),
            result: format!(
                "{} events in **{secs:.1} s** ({} events/s; {per_million:.1} s per million)",
                thousands(self.seeded_events as f64),
                thousands(self.seeded_events as f64 / secs)
            ),
            goal: "≤ 10 s for 1M events".into(),
            met: Some(per_million <= 10.0),
            baseline: "—".into(),
            details: json!({"events": self.seeded_events, "seconds": secs}),
        })
    }

    async fn memory(&mut self) -> anyhow::Result<Outcome> {
        use futures::StreamExt;
        let server = self.server(Scenario::Memory).await?;
        let idle = server.rss_mib()?;
        let idle_parts = (server.memory_mib("RssAnon")?, server.memory_mib("RssFile")?);
        // Every product's answer, once, into the query cache.
        let api = Api::new(&server.base);
        let products = api.products().await?;
        futures::stream::iter(products.iter().map(|(id, _, _)| {
            let api = api.clone();
            async move {
                api.client()
                    .get(api.url(&format!("/v1/products/{id}")))
                    .send()
                    .await?
                    .error_for_status()?;
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        let cached = server.rss_mib()?;
        let cached_parts = (server.memory_mib("RssAnon")?, server.memory_mib("RssFile")?);
        Ok(Outcome {
            scenario: "memory: resident set idle after start, and with every product cached",
            command: String::new(),
            result: format!(
                "idle **{idle:.0} MiB** (heap {:.0}, mapped files {:.0}); with {} products read once through the cache **{cached:.0} MiB** (heap {:.0}, mapped files {:.0})",
                idle_parts.0,
                idle_parts.1,
                thousands(products.len() as f64),
                cached_parts.0,
                cached_parts.1
            ),
            goal: "idle ≤ 64 MiB; ≤ 150 MiB with 100k products cached".into(),
            met: Some(idle <= 64.0 && cached <= 150.0),
            baseline: "—".into(),
            details: json!({"idle_mib": idle, "cached_mib": cached, "products": products.len(),
                "idle_anon_mib": idle_parts.0, "idle_file_mib": idle_parts.1,
                "cached_anon_mib": cached_parts.0, "cached_file_mib": cached_parts.1}),
        })
    }

    async fn soak(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Soak).await?;
        let users = self
            .virtual_users(&server, Scenario::Soak, self.plan.users)
            .await?;
        let mut minutes = Vec::new();
        for segment in 0..self.plan.soak_segments {
            let run = users
                .run(
                    &server.base,
                    self.plan.users,
                    self.plan.soak_segment_seconds,
                )
                .await?;
            let (p99, errors) = (run.worst_p99_ms(), run.errors());
            let rss = server.rss_mib()?;
            let heap = server.memory_mib("RssAnon")?;
            println!(
                "  segment {:>3}: worst p99 {}, errors {errors}, RSS {rss:.0} MiB (heap {heap:.0})",
                segment + 1,
                ms(p99)
            );
            minutes.push(
                json!({"segment": segment + 1, "worst_p99_ms": p99, "errors": errors,
                "rss_mib": rss, "heap_mib": heap, "run": run}),
            );
        }
        let get = |i: usize, key: &str| minutes[i][key].as_f64().unwrap_or(f64::NAN);
        let last = minutes.len() - 1;
        let errors: u64 = minutes
            .iter()
            .map(|m| m["errors"].as_u64().unwrap_or(0))
            .sum();
        let (heap_drift, p99_drift) = (
            get(last, "heap_mib") / get(0, "heap_mib"),
            get(last, "worst_p99_ms") / get(0, "worst_p99_ms"),
        );
        Ok(Outcome {
            scenario: "soak: the mixed workload, minute by minute",
            command: String::new(),
            result: format!(
                "{} segments of {:.0} s: heap {:.0} → {:.0} MiB (×{heap_drift:.2}; RSS with mapped files {:.0} → {:.0} MiB), worst p99 {} → {} (×{p99_drift:.2}), {errors} errors",
                minutes.len(),
                self.plan.soak_segment_seconds,
                get(0, "heap_mib"),
                get(last, "heap_mib"),
                get(0, "rss_mib"),
                get(last, "rss_mib"),
                ms(get(0, "worst_p99_ms")),
                ms(get(last, "worst_p99_ms"))
            ),
            goal: "no drift: heap and p99 of the last minute within 1.2× of the first".into(),
            met: Some(heap_drift <= 1.2 && p99_drift <= 1.2 && errors == 0),
            baseline: "the first minute".into(),
            details: json!({"segments": minutes}),
        })
    }
}

async fn cache_counts(api: &Api) -> anyhow::Result<(f64, f64)> {
    Ok((
        api.metric("shopstream_query_cache_total", &["result=\"hit\""])
            .await?,
        api.metric("shopstream_query_cache_total", &["result=\"miss\""])
            .await?,
    ))
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
            scenario: "x",
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
