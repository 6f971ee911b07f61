//! What the suite's scenarios drive: the product binary
//! (`shopstream serve`, built beside this one) and the trivial handler as
//! separate processes, and the load generators (`oha` for one endpoint,
//! `shopstream-vu`, a goose load test, for virtual users), whose own
//! reports give every latency figure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// A binary built into the same directory as this one (cargo puts every
/// binary of a build in one place).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::current_exe()?.with_file_name(name);
    if !path.exists() {
        bail!(
            "{} is not built; build it with `cargo build --release -p shopstream -p shopstream-bench`",
            path.display()
        );
    }
    Ok(path)
}

/// The product binary, `shopstream`.
pub fn shopstream() -> anyhow::Result<PathBuf> {
    sibling("shopstream")
}

/// This harness, for its own subcommands in a process of their own.
pub fn harness() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

pub const ADMIN_EMAIL: &str = "bench-admin@example.com";
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
}

impl Server {
    /// `shopstream serve` on `data_dir`, ready once its projections have
    /// caught up with every event already stored.
    pub async fn serve(data_dir: &Path, port: u16) -> anyhow::Result<Self> {
        Self::serve_with(data_dir, port, &[]).await
    }

    /// [`Self::serve`] with more environment (another event store).
    pub async fn serve_with(
        data_dir: &Path,
        port: u16,
        env: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        let child = Command::new(shopstream()?)
            .arg("serve")
            // Load comes from one address: limits would refuse most of it.
            // A scenario that measures the limiter switches it on.
            .env("SHOPSTREAM_RATE_LIMITS", "off")
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("SHOPSTREAM_DATA_DIR", data_dir)
            .env("SHOPSTREAM_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("SHOPSTREAM_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("SHOPSTREAM_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("SHOPSTREAM_FEED", "embedded")
            .env("SHOPSTREAM_LOG__FILTER", "warn")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting shopstream serve")?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_for("/health/ready").await?;
        let api = Api::new(&server.base);
        let admin = api.login(ADMIN_EMAIL, ADMIN_PASSWORD).await?;
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let views = api.get_json("/v1/admin/projections", Some(&admin)).await?;
            let behind = views
                .as_array()
                .map(|v| v.iter().any(|p| p["lag_events"].as_u64() != Some(0)))
                .unwrap_or(true);
            if !behind {
                break;
            }
            if Instant::now() > deadline {
                bail!("the projections did not catch up in 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// `shopstream-bench hello`, the trivial actix-web handler.
    /// `shopstream-bench hello`, with `args` (`--body-file`…).
    pub async fn hello(port: u16, args: &[&str]) -> anyhow::Result<Self> {
        let child = Command::new(harness()?)
            .args(["hello", "--addr", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting shopstream-bench hello")?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        server.wait_for("/hello").await?;
        Ok(server)
    }

    async fn wait_for(&self, path: &str) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(r) = client.get(format!("{}{path}", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not answer {path} within 2 minutes", self.base);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident memory, in MiB.
    pub fn rss_mib(&self) -> anyhow::Result<f64> {
        self.memory_mib("VmRSS")
    }

    /// A line of `/proc/<pid>/status` in MiB: `VmRSS`, `RssAnon` (the
    /// heap: what the process itself holds) or `RssFile` (mapped files:
    /// the binary and the stores' memory-mapped pages, shared with the
    /// page cache and reclaimable).
    pub fn memory_mib(&self, field: &str) -> anyhow::Result<f64> {
        let pid = self.child.id().context("the server has exited")?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {field} in /proc/<pid>/status"))?;
        Ok(kib / 1024.0)
    }

    /// Stops with SIGTERM, as an operator would, and waits.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid of our own child and a valid signal.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??;
        Ok(())
    }
}

/// A small client of the API for preparing scenarios (never for timing
/// what a scenario measures).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("a default reqwest client"),
            base: base.to_string(),
        }
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a customer.
    pub async fn register(&self, email: &str, password: &str) -> anyhow::Result<()> {
        self.client
            .post(self.url("/v1/customers"))
            .json(&json!({"email": email, "password": password, "name": "Bench shopper"}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("registering {email}"))?;
        Ok(())
    }

    pub async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let reply: Value = self
            .client
            .post(self.url("/v1/auth/token"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("logging in {email}"))?
            .json()
            .await?;
        reply["access_token"]
            .as_str()
            .map(str::to_string)
            .context("no access_token in the answer")
    }

    pub async fn get_json(&self, path: &str, token: Option<&str>) -> anyhow::Result<Value> {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        Ok(request
            .send()
            .await?
            .error_for_status()
            .with_context(|| format!("GET {path}"))?
            .json()
            .await?)
    }

    /// Sends `body` and returns status, consistency token and answer.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Option<String>, Value)> {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let consistency = response
            .headers()
            .get("x-consistency-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, consistency, body))
    }

    /// A counter of `/metrics`, summed over the series whose labels contain
    /// every one of `labels` (e.g. `result="hit"`).
    pub async fn metric(&self, name: &str, labels: &[&str]) -> anyhow::Result<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// Every product for sale: (id, category, name), in list order.
    pub async fn products(&self) -> anyhow::Result<Vec<(String, String, String)>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/products?limit=100&cursor={c}"),
                None => "/v1/products?limit=100".to_string(),
            };
            let page = self.get_json(&path, None).await?;
            for item in page["items"].as_array().into_iter().flatten() {
                out.push((
                    item["product_id"].as_str().unwrap_or_default().to_string(),
                    item["category"].as_str().unwrap_or_default().to_string(),
                    item["name"].as_str().unwrap_or_default().to_string(),
                ));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(out),
            }
        }
    }
}

/// Latency percentiles and rate of one generator run, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Run {
    pub offered_rps: Option<f64>,
    pub connections: usize,
    pub seconds: f64,
    pub requests: u64,
    pub rps: f64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Runs `oha` against `url`: closed loop with `connections`, or open loop
/// at `rate` requests/s with latency correction (each request timed from
/// when it should have been sent, so a stalled server is not hidden by the
/// generator slowing down).
pub async fn oha(
    url: &str,
    connections: usize,
    rate: Option<u32>,
    seconds: f64,
) -> anyhow::Result<Run> {
    oha_over(&[url], connections, rate, seconds).await
}

/// [`oha`] over every URL in a file, one per line, each request to a line
/// drawn at random (uniformly: a line written k times is drawn k times as
/// often).
pub async fn oha_urls(
    urls: &Path,
    connections: usize,
    rate: Option<u32>,
    seconds: f64,
) -> anyhow::Result<Run> {
    let file = urls.display().to_string();
    oha_over(&["--urls-from-file", &file], connections, rate, seconds).await
}

async fn oha_over(
    target: &[&str],
    connections: usize,
    rate: Option<u32>,
    seconds: f64,
) -> anyhow::Result<Run> {
    let mut cmd = Command::new("oha");
    cmd.args(["--no-tui", "--output-format", "json"])
        .arg("-z")
        .arg(format!("{}ms", (seconds * 1000.0) as u64))
        .arg("-c")
        .arg(connections.to_string());
    if let Some(rate) = rate {
        cmd.arg("-q")
            .arg(rate.to_string())
            .arg("--latency-correction");
    }
    cmd.args(target);
    let output = run_tool(cmd, "oha").await?;
    let report: Value = serde_json::from_slice(&output)
        .with_context(|| format!("oha printed no JSON report: {}", lossy(&output)))?;
    parse_oha(&report, connections, rate, seconds)
}

fn parse_oha(
    report: &Value,
    connections: usize,
    rate: Option<u32>,
    seconds: f64,
) -> anyhow::Result<Run> {
    let summary = &report["summary"];
    let ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1000.0;
    let percentile = |key: &str| ms(&report["latencyPercentiles"][key]);
    let ok: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|codes| {
            codes
                .iter()
                .filter(|(code, _)| code.starts_with('2') || code.starts_with('3'))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    let bad_status: u64 = report["statusCodeDistribution"]
        .as_object()
        .map(|codes| codes.values().filter_map(Value::as_u64).sum::<u64>() - ok)
        .unwrap_or(0);
    let failed: u64 = report["errorDistribution"]
        .as_object()
        .map(|errors| {
            errors
                .iter()
                // Requests still in flight when the run's time is up are
                // not the server's errors.
                .filter(|(what, _)| !what.contains("aborted due to deadline"))
                .filter_map(|(_, n)| n.as_u64())
                .sum()
        })
        .unwrap_or(0);
    if summary.is_null() {
        bail!("oha's report has no summary: {report}");
    }
    let seconds = summary["total"]
        .as_f64()
        .filter(|t| *t > 0.0)
        .unwrap_or(seconds);
    Ok(Run {
        offered_rps: rate.map(f64::from),
        connections,
        seconds,
        requests: ok + bad_status,
        rps: (ok + bad_status) as f64 / seconds,
        errors: bad_status + failed,
        p50_ms: percentile("p50"),
        p90_ms: percentile("p90"),
        p95_ms: percentile("p95"),
        p99_ms: percentile("p99"),
        p999_ms: percentile("p99.9"),
        max_ms: ms(&summary["slowest"]),
    })
}

/// One role of the mixed workload, as goose reported it: a transaction is
/// one iteration of the role (one page; one cart filled; one order placed
/// and paid), timed from its first request to its last answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RoleRun {
    pub role: String,
    pub users: usize,
    pub transactions: u64,
    pub transactions_per_s: f64,
    pub failed_transactions: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// One run of the virtual users.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UsersRun {
    pub users: usize,
    pub seconds: f64,
    pub roles: Vec<RoleRun>,
    pub requests: u64,
    pub failed_requests: u64,
    pub rps: f64,
}

impl UsersRun {
    pub fn worst_p99_ms(&self) -> f64 {
        self.roles.iter().map(|r| r.p99_ms).fold(0.0, f64::max)
    }

    /// Failed requests and failed transactions.
    pub fn errors(&self) -> u64 {
        self.failed_requests
            + self
                .roles
                .iter()
                .map(|r| r.failed_transactions)
                .sum::<u64>()
    }
}

/// Products most popular first: a fixed shuffle of the list, so the popular
/// products are spread over categories and names, and every scenario that
/// draws by Zipf(1.0) rank draws the same products as popular.
pub fn by_popularity<T>(mut products: Vec<T>) -> Vec<T> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    products.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    products
}

/// The files `shopstream-vu` reads: tokens, products by popularity,
/// categories and search words.
pub struct VirtualUsers {
    pub dir: PathBuf,
}

impl VirtualUsers {
    pub fn write(
        dir: &Path,
        tokens: &[String],
        products: &[(String, String, String)],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut categories: Vec<&str> = products.iter().map(|p| p.1.as_str()).collect();
        categories.sort_unstable();
        categories.dedup();
        // Searches people type: two words of product names, from across
        // the whole list.
        let step = (products.len() / 1000).max(1);
        let mut searches: Vec<String> = products
            .iter()
            .step_by(step)
            .map(|p| {
                let words: Vec<&str> = p.2.split_whitespace().take(2).collect();
                words.join("+").to_lowercase()
            })
            .collect();
        searches.sort_unstable();
        searches.dedup();
        let ranked = by_popularity(products.iter().map(|p| p.0.as_str()).collect());
        std::fs::write(dir.join("tokens.txt"), tokens.join("\n"))?;
        std::fs::write(dir.join("products.txt"), ranked.join("\n"))?;
        std::fs::write(dir.join("categories.txt"), categories.join("\n"))?;
        std::fs::write(dir.join("searches.txt"), searches.join("\n"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    /// Runs `users` virtual users (80 % browse, 15 % cart, 5 % checkout)
    /// against `base` for `seconds` once all have started.
    pub async fn run(&self, base: &str, users: usize, seconds: f64) -> anyhow::Result<UsersRun> {
        let exe = sibling("shopstream-vu")?;
        let mut cmd = Command::new(&exe);
        cmd.env("SHOPSTREAM_VU_DATA", &self.dir)
            .args(["--host", base])
            .args(["--users", &users.to_string()])
            .args(["--increase-rate", &users.to_string()])
            .args([
                "--run-time",
                &format!("{}s", seconds.ceil().max(1.0) as u64),
            ])
            .args([
                "--timeout",
                "30",
                "--quiet",
                "--no-telnet",
                "--no-print-metrics",
            ])
            .arg("--no-percentiles-over-time");
        let output = run_tool(cmd, "shopstream-vu (cargo build -p shopstream-bench)").await?;
        parse_users(&String::from_utf8_lossy(&output), users)
    }
}

fn parse_users(output: &str, users: usize) -> anyhow::Result<UsersRun> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix("VU_JSON "))
        .with_context(|| {
            format!(
                "shopstream-vu printed no report: {}",
                lossy(output.as_bytes())
            )
        })?;
    let report: Value = serde_json::from_str(line)?;
    let seconds = report["seconds"].as_f64().unwrap_or(1.0);
    let roles: Vec<RoleRun> = serde_json::from_value(report["roles"].clone())?;
    let count = |key: &str| -> u64 {
        report["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r[key].as_u64())
            .sum()
    };
    let (ok, failed) = (count("ok"), count("failed"));
    Ok(UsersRun {
        users,
        seconds,
        roles,
        requests: ok + failed,
        failed_requests: failed,
        rps: (ok + failed) as f64 / seconds,
    })
}

async fn run_tool(mut cmd: Command, name: &str) -> anyhow::Result<Vec<u8>> {
    let output = cmd
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {name}: is it installed? (bench/run.sh installs it)"))?;
    if !output.status.success() {
        bail!(
            "{name} failed ({}): {}",
            output.status,
            lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).chars().take(2000).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oha_report_becomes_a_run_without_counting_deadline_aborts_as_errors() {
        let report = json!({
            "summary": {"successRate": 1.0, "slowest": 0.0123},
            "latencyPercentiles": {"p50": 0.001, "p90": 0.002, "p95": 0.0025, "p99": 0.004, "p99.9": 0.008},
            "statusCodeDistribution": {"200": 990, "503": 10},
            "errorDistribution": {"aborted due to deadline": 7, "connection closed": 2}
        });
        let run = parse_oha(&report, 64, Some(100), 10.0).unwrap();
        assert_eq!(run.requests, 1000);
        assert_eq!(run.errors, 12);
        assert!((run.rps - 100.0).abs() < 1e-9);
        assert!((run.p99_ms - 4.0).abs() < 1e-9);
        assert!((run.p999_ms - 8.0).abs() < 1e-9);
        assert!((run.max_ms - 12.3).abs() < 1e-9);
        assert_eq!(run.offered_rps, Some(100.0));
    }

    #[test]
    fn a_goose_report_becomes_a_users_run() {
        let output = concat!(
            "some log line\n",
            r#"VU_JSON {"seconds":10.0,"roles":["#,
            r#"{"role":"browse","users":8,"transactions":1000,"transactions_per_s":100.0,"failed_transactions":0,"p50_ms":1.0,"p95_ms":2.0,"p99_ms":3.0,"p999_ms":4.0,"max_ms":5.0},"#,
            r#"{"role":"checkout","users":2,"transactions":10,"transactions_per_s":1.0,"failed_transactions":1,"p50_ms":10.0,"p95_ms":20.0,"p99_ms":30.0,"p999_ms":40.0,"max_ms":50.0}],"#,
            r#""requests":[{"name":"a","ok":1000,"failed":0},{"name":"b","ok":40,"failed":2}]}"#,
            "\n"
        );
        let run = parse_users(output, 10).unwrap();
        assert_eq!(run.roles.len(), 2);
        assert_eq!(run.requests, 1042);
        assert_eq!(run.failed_requests, 2);
        assert_eq!(run.errors(), 3);
        assert!((run.rps - 104.2).abs() < 1e-9);
        assert!((run.worst_p99_ms() - 30.0).abs() < 1e-9);
        assert!(parse_users("no report here", 1).is_err());
    }
}
