//! Kafka between the event store and the projections.
//!
//! The broker is librdkafka's own mock cluster, hosted in this test process
//! (separate shopstream processes reach it over TCP at its random ports);
//! a smoke run against the `tansu` broker runs when `tansu` is installed
//! (`tests/run.sh` installs it). Neither broker is Apache Kafka, so the
//! tests assert on what was delivered, never on how fast.

use shopstream_testkit::{harness, reference, shop};

mod broker;
mod in_process;
mod processes;
mod tansu;
mod topology;
