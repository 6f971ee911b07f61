//! shopstream's ports and their adapters.
//!
//! # Layout
//! - [`event_store`]: the EventStore port (streams, revisions, `$all`,
//!   multi-stream atomic appends, catch-up subscriptions) and its embedded
//!   SQLite adapter with group commit.
//! - [`crypto`]: password hashing (argon2id) and access tokens (JWT).
//! - `sqlite`: how the embedded stores open SQLite files and pool readers.

pub mod crypto;
pub mod event_store;
mod sqlite;

pub use sqlite::Durability;
