//! Crash safety: a child process appends under load and is killed with
//! SIGKILL; after reopening, every append it had acknowledged is there,
//! whole, and no append is half-written. The store is the embedded one, or
//! the KurrentDB server `SHOPSTREAM_TEST_KURRENTDB` names (in a namespace
//! of the test's own).
//!
//! The child is this very test binary, started again to run only
//! [`writer`] (an ignored test, so it never runs on its own), with the
//! store's directory in [`WRITER_DIR`] and namespace in [`NAMESPACE`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use serde_json::Value;
use shopstream_infra::event_store::{
    EventFilter, EventStore, ExpectedRevision, KurrentDbEventStore, KurrentDbOptions,
    SqliteEventStore, SqliteEventStoreOptions,
};
use uuid::Uuid;

const EVENTS_PER_APPEND: usize = 3;
const WRITERS: usize = 8;

/// Where the writer keeps its store; set only in the child.
const WRITER_DIR: &str = "SHOPSTREAM_CRASH_WRITER_DIR";
/// The writer's namespace on a KurrentDB server.
const NAMESPACE: &str = "SHOPSTREAM_CRASH_NAMESPACE";

/// The store the test writes: KurrentDB when configured, else the
/// embedded store in `dir`.
fn open(dir: &std::path::Path, namespace: &str) -> Arc<dyn EventStore> {
    match crate::kurrentdb_url() {
        Some(url) => Arc::new(
            KurrentDbEventStore::connect(&KurrentDbOptions {
                url,
                namespace: namespace.to_string(),
            })
            .expect("the connection string parses"),
        ),
        None => Arc::new(
            SqliteEventStore::open(
                dir.join("events.sqlite"),
                SqliteEventStoreOptions::default(),
            )
            .expect("the store opens"),
        ),
    }
}

/// The child's work: appends batches of [`EVENTS_PER_APPEND`] events from
/// [`WRITERS`] concurrent writers for ever, printing each one as it is
/// acknowledged (`ack <stream> <revision> <batch id>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the crash test's writer: it runs in the child process the crash test starts"]
async fn writer() {
    let dir = std::env::var_os(WRITER_DIR).expect("started by the crash test");
    let namespace = std::env::var(NAMESPACE).unwrap_or_default();
    let store = open(std::path::Path::new(&dir), &namespace);
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = format!("crash-{w}-{}", Uuid::now_v7());
                let mut revision: Option<u64> = None;
                loop {
                    let batch = Uuid::now_v7();
                    let events = (0..EVENTS_PER_APPEND)
                        .map(|index| {
                            let mut e = crate::contract::event("CrashTestEventAppended", 0);
                            e.data =
                                format!(r#"{{"batch":"{batch}","index":{index}}}"#).into_bytes();
                            e
                        })
                        .collect();
                    let done = store
                        .append(vec![crate::contract::write(
                            &stream,
                            ExpectedRevision::at(revision),
                            events,
                        )])
                        .await
                        .expect("the append is acknowledged");
                    revision = done.streams[0].revision;
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "ack {stream} {} {batch}", revision.unwrap_or(0))
                        .expect("stdout is open");
                    out.flush().expect("stdout is open");
                }
            })
        })
        .collect();
    // The writers run until the process is killed.
    futures::future::try_join_all(tasks)
        .await
        .expect("no writer fails");
}

struct Ack {
    stream: String,
    revision: u64,
    batch: String,
}

/// Starts an appending child, reads `acks` acknowledgements, kills it.
fn append_until_killed(dir: &std::path::Path, namespace: &str, acks: usize) -> Vec<Ack> {
    let mut child = Command::new(std::env::current_exe().expect("this test binary"))
        .args(["crash::writer", "--exact", "--ignored", "--nocapture"])
        .env(WRITER_DIR, dir)
        .env(NAMESPACE, namespace)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the appending child starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut seen = Vec::with_capacity(acks);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("a line from the child");
        // The test harness prints its own lines too.
        if !line.starts_with("ack ") {
            continue;
        }
        let parts: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(parts.len(), 4, "ack line {line:?}");
        seen.push(Ack {
            stream: parts[1].to_string(),
            revision: parts[2].parse().expect("revision"),
            batch: parts[3].to_string(),
        });
        if seen.len() >= acks {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("the child is reaped");
    assert_eq!(
        seen.len(),
        acks,
        "the child acknowledged appends before dying"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_append_survives_sigkill_and_none_is_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let namespace = format!("crash-{}.", Uuid::now_v7().simple());
    let mut acks = Vec::new();
    for _ in 0..3 {
        acks.extend(append_until_killed(dir.path(), &namespace, 400));
    }

    let store = open(dir.path(), &namespace);
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let slice = store
            .read_all(after, &EventFilter::default(), 5000)
            .await
            .unwrap();
        if slice.events.is_empty() {
            break;
        }
        after = slice.scanned_to;
        events.extend(slice.events);
    }

    // Every batch present is whole: all its events, consecutive, in one stream.
    let mut batches: HashMap<String, Vec<(String, u64, u64)>> = HashMap::new();
    for e in &events {
        let data: Value = serde_json::from_str(e.data.get()).unwrap();
        let batch = data["batch"].as_str().unwrap().to_string();
        let index = data["index"].as_u64().unwrap();
        batches
            .entry(batch)
            .or_default()
            .push((e.stream.clone(), e.revision, index));
    }
    for (batch, members) in &batches {
        assert_eq!(
            members.len(),
            EVENTS_PER_APPEND,
            "batch {batch} is half-written: {members:?}"
        );
        let first = &members[0];
        for (i, (stream, revision, index)) in members.iter().enumerate() {
            assert_eq!(stream, &first.0);
            assert_eq!(*revision, first.1 + i as u64);
            assert_eq!(*index, i as u64);
        }
    }

    // Every acknowledged batch is there, where it was acknowledged.
    for ack in &acks {
        let members = batches
            .get(&ack.batch)
            .unwrap_or_else(|| panic!("acknowledged batch {} was lost", ack.batch));
        assert_eq!(members[0].0, ack.stream);
        assert_eq!(members[EVENTS_PER_APPEND - 1].1, ack.revision);
    }
}
