//! The scaled-out topology as separate processes on this machine: API
//! nodes (`serve`), a relay and projection workers (`project`), sharing the
//! embedded SQLite stores, with a Kafka broker between them.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use shopstream_infra::feed::kafka::KafkaSettings;

/// One shopstream process, its output in a log file beside the data.
pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// How the process ended, if it has.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The environment every process of one topology shares.
pub struct Topology {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    count: std::sync::atomic::AtomicUsize,
}

pub const ADMIN: (&str, &str) = ("admin@example.com", "admin-password-1");

impl Topology {
    pub fn new(kafka: &KafkaSettings) -> Topology {
        let mut dir = tempfile::tempdir().expect("temp dir");
        // Keep logs and stores of a run for a look afterwards
        // (SHOPSTREAM_TEST_KEEP=1).
        if std::env::var_os("SHOPSTREAM_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let env = [
            ("SHOPSTREAM_DATA_DIR", dir.path().display().to_string()),
            ("SHOPSTREAM_FEED", "kafka".into()),
            ("SHOPSTREAM_RATE_LIMITS", "off".into()),
            ("SHOPSTREAM_KAFKA_BROKERS", kafka.brokers.clone()),
            ("SHOPSTREAM_KAFKA_TOPIC_PREFIX", kafka.topic_prefix.clone()),
            ("SHOPSTREAM_KAFKA__PARTITIONS", kafka.partitions.to_string()),
            (
                "SHOPSTREAM_KAFKA__SESSION_TIMEOUT_MS",
                kafka.session_timeout.as_millis().to_string(),
            ),
            (
                "SHOPSTREAM_KAFKA__LEASE_TTL_MS",
                kafka.lease_ttl.as_millis().to_string(),
            ),
            ("SHOPSTREAM_ADMIN_EMAIL", ADMIN.0.into()),
            ("SHOPSTREAM_ADMIN_PASSWORD", ADMIN.1.into()),
            ("SHOPSTREAM_PASSWORDS__MEMORY_KIB", "1024".into()),
            ("SHOPSTREAM_PASSWORDS__ITERATIONS", "1".into()),
            // SHOPSTREAM_TEST_LOG sets the processes' log filter (e.g.
            // `info,shopstream_infra::feed::kafka=debug`: every batch a
            // worker takes and every commit).
            (
                "SHOPSTREAM_LOG__FILTER",
                std::env::var("SHOPSTREAM_TEST_LOG").unwrap_or("info".into()),
            ),
            // A consumer group's rebalance takes most of a session timeout
            // on the mock cluster, and one happens whenever a worker comes
            // or goes: reads wait that long for their writes.
            ("SHOPSTREAM_QUERIES__CONSISTENCY_WAIT_MS", "20000".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Topology {
            dir,
            env,
            count: Default::default(),
        }
    }

    /// The last lines of every process's log, for a failure's message.
    pub fn logs(&self) -> String {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "log"));
        files.sort();
        files
            .iter()
            .map(|p| format!("--- {}\n{}", p.display(), tail(p)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn spawn(&self, role: &str, args: &[&str], extra: &[(&str, String)]) -> Process {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = self.dir.path().join(format!("{n:02}-{role}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_shopstream"));
        // The process dies with this test, however the test ends.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .arg(role)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("shopstream starts");
        Process { child, log }
    }

    /// An API node on a free port, answering once ready.
    pub async fn node(&self) -> (Process, Node) {
        let port = free_port();
        let process = self.spawn(
            "serve",
            &[],
            &[("SHOPSTREAM_HTTP_ADDR", format!("127.0.0.1:{port}"))],
        );
        let node = Node {
            base: format!("http://127.0.0.1:{port}"),
            http: Client::new(),
        };
        node.ready(&process.log).await;
        (process, node)
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// An API node's address and a client.
#[derive(Clone)]
pub struct Node {
    pub base: String,
    http: Client,
}

/// A reply read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub token: Option<String>,
    pub consistency: Option<String>,
    pub body: Value,
}

impl Node {
    /// Waits until the node answers `/health/ready`: a new process gives no
    /// other sign of being up, so this polls, with a deadline.
    async fn ready(&self, log: &Path) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self
                .http
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the node never became ready:\n{}",
                tail(log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        consistency: Option<&str>,
    ) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.json(&b);
        }
        if let Some(c) = consistency {
            request = request.header("x-consistency-token", c);
        }
        let response = request.send().await.expect("the node answers");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let (status, token, consistency) = (
            response.status(),
            header("x-consistency-token"),
            header("x-consistency-status"),
        );
        let body = response.json().await.unwrap_or(Value::Null);
        Reply {
            status,
            token,
            consistency,
            body,
        }
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(reqwest::Method::POST, path, token, Some(body), None)
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>, consistency: Option<&str>) -> Reply {
        self.send(reqwest::Method::GET, path, token, None, consistency)
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let reply = self
            .post(
                "/v1/auth/token",
                None,
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body["access_token"].as_str().unwrap().to_string()
    }
}

/// A shopper who keeps buying, alternating between two nodes, until told
/// to stop; returns how many orders it placed.
pub fn shop_until(
    nodes: [Node; 2],
    admin: String,
    product: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    who: usize,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let email = format!("shopper{who}@example.com");
        let registered = nodes[0]
            .post(
                "/v1/customers",
                None,
                json!({"email": email, "password": "password-123", "name": "Shopper"}),
            )
            .await;
        assert_eq!(registered.status, 201, "{registered:?}");
        let token = nodes[1].login(&email, "password-123").await;
        let mut orders = 0;
        let mut round = 0usize;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let node = &nodes[round % 2];
            round += 1;
            let cart = node.post("/v1/carts", Some(&token), json!({})).await;
            let cart = cart.body["cart_id"].as_str().unwrap().to_string();
            node.send(
                reqwest::Method::PUT,
                &format!("/v1/carts/{cart}/items/{product}"),
                Some(&token),
                Some(json!({"quantity": 1})),
                None,
            )
            .await;
            let checkout = node
                .post(
                    &format!("/v1/carts/{cart}/checkout"),
                    Some(&token),
                    json!({"shipping_address": "1 Main Street"}),
                )
                .await;
            if checkout.status == 201 {
                orders += 1;
                let order = checkout.body["order_id"].as_str().unwrap().to_string();
                if orders % 3 == 0 {
                    node.post(
                        &format!("/v1/orders/{order}/cancel"),
                        Some(&admin),
                        json!({}),
                    )
                    .await;
                }
            }
        }
        orders
    })
}
