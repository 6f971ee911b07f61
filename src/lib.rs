//! shopstream: an event-sourced CQRS commerce backend.
//!
//! Commands become events in an event store; events are the only source of
//! truth. See `README.md` for running it and the design in brief.
//!
//! # Layout
//! - [`app`]: what shopstream does, independent of HTTP, and the only way
//!   in: commands (aggregate cache, idempotency, conflict resolution),
//!   queries and the event history, operators' work on projections,
//!   authentication.
//! - [`api`]: the actix-web HTTP API of `API.md`, errors as problem+json.
//! - [`config`]: settings from compiled-in defaults, a file, the environment.
//! - [`telemetry`]: logs and Prometheus metrics.
//! - [`startup`]: building and running the HTTP service.
//! - [`shutdown`]: the one stop signal everything in a process obeys.
//! - [`cli`]: the `shopstream` command line (`serve`, `relay`, `project`,
//!   `projections`).
//! - [`roles`]: the scale-out roles: relay and projection workers (Kafka),
//!   and API nodes hearing their invalidations.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod roles;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
