//! The servers the tests may use besides the embedded stores, named by
//! environment variables; when one is not named, the tests that need it
//! say once that they were skipped.

use std::time::Duration;

use shopstream_infra::read_store::ScyllaOptions;
use shopstream_infra::read_store::scylla::Replication;

/// Says (once per `what`, straight to stderr: the test harness keeps what
/// `eprintln!` says to itself unless a test fails) that a run was skipped.
pub fn say_skipped(what: &'static str, variable: &'static str) {
    use std::collections::HashSet;
    use std::io::Write;
    use std::sync::Mutex;
    static SAID: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if said.get_or_insert_with(HashSet::new).insert(what) {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {what} (set {variable} to run it)"
        );
    }
}

/// The ScyllaDB nodes `SHOPSTREAM_TEST_SCYLLA` names (`host:port`, comma
/// separated), if any.
pub fn scylla_nodes() -> Option<Vec<String>> {
    let nodes: Vec<String> = std::env::var("SHOPSTREAM_TEST_SCYLLA")
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    (!nodes.is_empty()).then_some(nodes)
}

/// A keyspace name for one test: `prefix` and something unique.
pub fn test_keyspace(prefix: &str) -> String {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &unique[..16])
}

/// Options for the test cluster, in a keyspace of one's own (one copy: a
/// test cluster may be a single node).
pub fn scylla_options(nodes: Vec<String>, keyspace: String) -> ScyllaOptions {
    ScyllaOptions {
        replication: Replication {
            factor: 1,
            datacenters: Default::default(),
        },
        request_timeout: Duration::from_secs(10),
        ..ScyllaOptions::new(nodes, keyspace)
    }
}
