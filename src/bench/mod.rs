//! Measurements the CLI runs (`shopstream bench …`).
//!
//! # Layout
//! - [`append`]: durable append throughput beside the disk's fsync rate.

pub mod append;
