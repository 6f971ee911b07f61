//! shopstream: an event-sourced CQRS commerce backend.
//!
//! Commands become events in an event store; events are the only source of
//! truth. See `README.md` for running it and the design in brief.
//!
//! # Layout
//! - [`app`]: what shopstream does, independent of HTTP: the command
//!   service with its aggregate cache, idempotency and conflict resolution,
//!   and authentication.
//! - [`api`]: the actix-web HTTP API of `API.md`, errors as problem+json.
//! - [`config`]: settings from compiled-in defaults, a file, the environment.
//! - [`telemetry`]: logs and Prometheus metrics.
//! - [`startup`]: building and running the HTTP service.
//! - [`cli`]: the `shopstream` command line (`serve`, `relay`, `project`,
//!   `projections`).
//! - [`ops`]: operators' work on the stores (projection status, rebuilds).
//! - [`roles`]: the scale-out roles: relay and projection workers (Kafka),
//!   and API nodes hearing their invalidations.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod ops;
pub mod roles;
pub mod startup;
pub mod telemetry;
