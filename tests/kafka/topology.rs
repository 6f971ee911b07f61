//! Two API nodes, a relay and two projection workers as separate processes
//! over the mock cluster: commands on either node are read, consistently,
//! on the other; a worker killed mid-stream, a relay restarted and a broker
//! taken down for a few seconds lose nothing, and every read model ends as
//! a from-scratch rebuild would make it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use shopstream_infra::event_store::{SqliteEventStore, SqliteEventStoreOptions};
use shopstream_infra::read_store::{ReadSide, SqliteReadStore};
use shopstream_testkit::metrics::sample;

use crate::broker::Broker;
use crate::processes::{ADMIN, Node, Topology, shop_until};
use crate::reference;

/// The position of the last event, as a node reports it.
async fn head(node: &Node) -> u64 {
    let ready = node.get("/health/ready", None, None).await;
    ready.body["event_store"]["head_position"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the shop has written `events` more events: the shoppers'
/// progress shows nowhere else, so this polls, with a deadline.
async fn trading_on(node: &Node, events: u64) {
    let target = head(node).await + events;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while head(node).await < target {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shop stopped trading"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every projection has applied every event written so far,
/// as the admin view says (a worker in another process gives no other sign).
async fn caught_up(node: &Node, admin: &str, logs: &str) {
    let target = head(node).await;
    served_to(node, admin, target, logs).await;
}

/// Waits until every projection has applied every event up to `target`.
async fn served_to(node: &Node, admin: &str, target: u64, logs: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let view = node.get("/v1/admin/projections", Some(admin), None).await;
        let behind: Vec<String> = view
            .body
            .as_array()
            .map(|all| {
                all.iter()
                    .filter(|p| p["checkpoint"].as_u64().unwrap_or(0) < target)
                    .map(|p| format!("{} at {}", p["name"], p["checkpoint"]))
                    .collect()
            })
            .unwrap_or_else(|| vec![format!("{:?}", view.body)]);
        if behind.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projections never caught up with {target}: {behind:?}\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn separate_processes_over_kafka_lose_nothing_through_kills_restarts_and_an_outage() {
    let broker = Broker::start();
    broker.coordinate_groups_on_broker_3();
    let topology = Topology::new(&broker.settings);
    let (_node_a, a) = topology.node().await;
    let (_node_b, b) = topology.node().await;
    let relay = topology.spawn("relay", &[], &[]);
    let worker_one = topology.spawn("project", &[], &[]);
    let worker_two = topology.spawn("project", &[], &[]);

    // A command on one node is read on the other with its token.
    let admin = a.login(ADMIN.0, ADMIN.1).await;
    let created = a
        .post(
            "/v1/products",
            Some(&admin),
            json!({"sku": "KAFKA-1", "name": "Relayed mug", "price": {"amount": 900, "currency": "EUR"}, "category": "kitchen"}),
        )
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let product = created.body["product_id"].as_str().unwrap().to_string();
    let stocked = a
        .post(
            "/v1/inventory/KAFKA-1/receipts",
            Some(&admin),
            json!({"quantity": 100000}),
        )
        .await;
    let seen = b
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
    assert_eq!(seen.body["available"], 100000);

    let stop = Arc::new(AtomicBool::new(false));
    let shoppers: Vec<_> = (0..3)
        .map(|i| {
            shop_until(
                [a.clone(), b.clone()],
                admin.clone(),
                product.clone(),
                stop.clone(),
                i,
            )
        })
        .collect();
    trading_on(&a, 150).await;
    // Every group has settled (the mock cluster can hang a group whose
    // leader dies in the middle of its first rebalance; Kafka does not).
    caught_up(&a, &admin, &topology.logs()).await;

    // A worker dies mid-stream; the other takes its partitions. How long
    // that takes is printed (`-- --nocapture`), not asserted: it is the
    // session timeout plus the mock cluster's rebalance.
    let killed = tokio::time::Instant::now();
    worker_one.kill();
    // Events after this one are written once the worker is dead: only
    // the survivor can apply them, on every partition (watermarks).
    let after_kill = head(&a).await + 1;
    served_to(&a, &admin, after_kill, &topology.logs()).await;
    eprintln!(
        "failover: a killed worker's partitions served again {:.1} s after the kill",
        killed.elapsed().as_secs_f64()
    );
    trading_on(&a, 150).await;

    // The relay dies; a new one takes the lease and carries on.
    relay.kill();
    let relay = topology.spawn("relay", &[], &[]);
    trading_on(&a, 150).await;

    // A broker that leads partitions goes away for a few seconds (the
    // outage is the test's subject, so this pause is its length, not a wait
    // for something).
    broker.cluster.broker_down(1).expect("broker down");
    trading_on(&a, 100).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.cluster.broker_up(1).expect("broker up");

    stop.store(true, Ordering::SeqCst);
    let mut orders = 0;
    for shopper in shoppers {
        orders += shopper.await.expect("shopper");
    }
    assert!(orders > 0, "the shoppers bought something");

    let mut relay = relay;
    let mut worker_two = worker_two;
    let ended = format!(
        "relay ended: {:?}, worker ended: {:?}",
        relay.exited(),
        worker_two.exited()
    );
    caught_up(&a, &admin, &format!("{ended}\n{}", topology.logs())).await;

    // The last write, on B, is read on A with its token.
    let repriced = b
        .send(
            reqwest::Method::PUT,
            &format!("/v1/products/{product}/price"),
            Some(&admin),
            Some(json!({"price": {"amount": 950, "currency": "EUR"}})),
            None,
        )
        .await;
    assert_eq!(repriced.status, 200, "{repriced:?}");
    let seen = a
        .get(
            &format!("/v1/products/{product}"),
            None,
            repriced.token.as_deref(),
        )
        .await;
    assert_eq!(
        seen.consistency.as_deref(),
        Some("consistent"),
        "{seen:?}\n{}",
        topology.logs()
    );
    assert_eq!(seen.body["price"]["amount"], 950);

    // Every read model is what a from-scratch rebuild makes of the events.
    let events = SqliteEventStore::open(
        topology.dir.path().join("events.sqlite"),
        SqliteEventStoreOptions::default(),
    )
    .expect("event store");
    let read = ReadSide::of(
        SqliteReadStore::open(topology.dir.path().join("read.sqlite")).expect("read store"),
    );
    let history = reference::history(&events).await;
    let differences = reference::differences(&read, &reference::fold(&history)).await;
    let registry = read
        .registry
        .projections()
        .await
        .expect("registry readable");
    assert!(
        differences.is_empty(),
        "{} differences from the reference; the first: {:#?}\nregistry: {registry:#?}\n{}",
        differences.len(),
        &differences[..differences.len().min(5)],
        topology.logs()
    );

    // /metrics says where the relay stands: at the head, nothing behind.
    relay_reported_at(&a, head(&a).await).await;
}

/// Polls /metrics (refreshed at most once a second, and the relay records
/// its position after producing) until the relay is reported at `head`.
async fn relay_reported_at(node: &Node, head: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = reqwest::get(format!("{}/metrics", node.base))
            .await
            .expect("the node answers")
            .text()
            .await
            .expect("a text body");
        let (position, behind) = (
            sample(&text, "shopstream_relay_position"),
            sample(&text, "shopstream_relay_behind_events"),
        );
        if position == Some(head as f64) && behind == Some(0.0) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay reported at {position:?}, {behind:?} behind; the head is {head}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
