//! shopstream's ports and their adapters.
//!
//! # Layout
//! - [`event_store`]: the EventStore port (streams, revisions, `$all`,
//!   multi-stream atomic appends, catch-up subscriptions) and its adapters:
//!   embedded SQLite with group commit, KurrentDB.
//! - [`feed`]: the EventFeed port: the event store's own subscription, or
//!   Kafka (relay, consumer groups, dead letters, invalidations).
//! - [`read_store`]: the read side's ports, split by concern (rows, the
//!   projection registry, coordination), ScyllaDB-shaped, and their
//!   adapters: embedded SQLite, ScyllaDB.
//! - [`runner`]: the projection runner: events through projections into the
//!   read store, checkpointed, live and rebuilding.
//! - [`crypto`]: password hashing (argon2id) and access tokens (JWT).
//! - [`error`]: what the ports' errors share: causes kept as sources.
//! - `sqlite`: how the embedded stores open SQLite files and pool readers.
//! - [`files`]: files and directories only their owner may read.
//! - [`mail`]: mail leaving the system (SMTP, or `.eml` files).

pub mod crypto;
pub mod error;
pub mod event_store;
pub mod feed;
pub mod files;
pub mod mail;
pub mod read_store;
pub mod runner;
mod sqlite;

pub use sqlite::Durability;
