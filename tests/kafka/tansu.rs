//! The same topology end to end against a second, independent Kafka
//! implementation: the `tansu` broker (with its SQLite storage; its
//! `memory://` storage mishandles fetches from the middle of a batch and
//! `latest` offsets). `tests/run.sh` installs it; without it this test says
//! it was skipped.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use shopstream_infra::feed::kafka::KafkaSettings;

use crate::processes::{ADMIN, Topology, free_port};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn tansu_installed() -> bool {
    Command::new("tansu")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_command_travels_through_tansu_to_a_consistent_read() {
    if !tansu_installed() {
        eprintln!("SKIPPED: tansu is not installed (tests/run.sh installs it)");
        return;
    }
    let storage = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let address = format!("tcp://127.0.0.1:{port}");
    let _broker = Broker(
        Command::new("tansu")
            .arg("broker")
            .args([
                "--listener-url",
                &address,
                "--advertised-listener-url",
                &address,
            ])
            // A path relative to the broker's directory: tansu reads
            // `sqlite://` URLs with an absolute path differently.
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(storage.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts"),
    );
    // tansu is ready when it accepts connections; nothing else says so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tansu never listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let settings = KafkaSettings {
        brokers: format!("127.0.0.1:{port}"),
        topic_prefix: format!("t{}", uuid::Uuid::now_v7().simple()),
        partitions: 3,
        replication: 1,
        session_timeout: Duration::from_secs(10),
        lease_ttl: Duration::from_secs(2),
        linger: Duration::from_millis(1),
        debug: String::new(),
    };
    let topology = Topology::new(&settings);
    // The relay creates the topics through tansu's admin API.
    let _relay = topology.spawn("relay", &[], &[]);
    let (_node, node) = topology.node().await;
    let _worker = topology.spawn("project", &[], &[]);

    let admin = node.login(ADMIN.0, ADMIN.1).await;
    let created = node
        .post(
            "/v1/products",
            Some(&admin),
            json!({"sku": "TANSU-1", "name": "Tansu mug", "price": {"amount": 700, "currency": "EUR"}, "category": "kitchen"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}\n{}", topology.logs());
    let product = created.body["product_id"].as_str().unwrap().to_string();
    let stocked = node
        .post(
            "/v1/inventory/TANSU-1/receipts",
            Some(&admin),
            json!({"quantity": 5}),
        )
        .await;
    assert_eq!(stocked.status, 200, "{stocked:?}");
    let seen = node
        .get(
            &format!("/v1/products/{product}"),
            None,
            stocked.token.as_deref(),
        )
        .await;
    assert_eq!(
        seen.consistency.as_deref(),
        Some("consistent"),
        "{seen:?}\n{}",
        topology.logs()
    );
    assert_eq!(seen.body["available"], 5);
    assert_eq!(seen.body["name"], "Tansu mug");
}
