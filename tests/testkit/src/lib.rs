//! What shopstream's integration tests share (the read-side and Kafka test
//! binaries): stores in a fresh directory, a shop's history written through
//! the domain, and the read model that history should give.
//!
//! # Layout
//! - [`shop`]: a shop's history written through the domain's decisions into
//!   a real event store.
//! - [`reference`]: the expected read model (every recorded event folded
//!   through every projection in memory) and how a store is compared to it.
//! - [`harness`]: a pair of embedded stores, live runners that report their
//!   progress over a channel, and waiting for them.
//! - [`metrics`]: samples read from a `/metrics` answer.
//! - [`servers`]: the ScyllaDB cluster the tests may use, and saying when
//!   they skip it.

pub mod harness;
pub mod metrics;
pub mod reference;
pub mod servers;
pub mod shop;
