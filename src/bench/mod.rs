//! Measurements the CLI runs (`shopstream bench …`).
//!
//! # Layout
//! - [`append`]: durable append throughput beside the disk's fsync rate.
//! - [`seed`]: fills a data directory through the real write path.
//! - [`lag`]: commit → queryable delay.
//! - [`cache`]: the query cache's hit ratio under Zipf popularity.
//! - [`hello`]: the trivial handler the query path is compared with.
//! - [`suite`]: every scenario of the benchmark plan, driving processes of
//!   this binary with external load generators ([`load`]), and [`chart`].

pub mod append;
pub mod cache;
pub mod chart;
pub mod hello;
pub mod lag;
pub mod load;
pub mod seed;
pub mod suite;
