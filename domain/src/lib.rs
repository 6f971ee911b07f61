//! shopstream's commerce domain: pure, synchronous, deterministic.
//!
//! Nothing here does I/O, reads a clock or makes an id: time and ids come in
//! with each command, so every decision can be replayed and tested exactly.
//!
//! # Layout
//! - [`values`]: value types that validate on construction (Email, Sku, Money,
//!   Quantity, bounded texts, ids, roles, addresses).
//! - [`event`]: how an aggregate's events get their wire name, schema version
//!   and JSON data ([`event_set!`]).
//! - [`aggregate`]: the `decide`/`evolve` contract every aggregate follows and
//!   the one error type the domain refuses with.
//! - [`customer`], [`product`], [`inventory`], [`cart`], [`order`]: one
//!   aggregate each, with its commands, events and rules.
//! - [`session`]: a customer's login, kept by rotating refresh tokens.
//! - [`claim`]: uniqueness of emails and SKUs through reservation streams.
//! - [`process`]: decisions spanning several aggregates (checkout, cancel,
//!   ship), appended atomically by the application.
//! - `testing` (feature `testing`): given/when/then for aggregates, for
//!   tests here and in the crates that build on the domain.

pub mod aggregate;
pub mod cart;
pub mod claim;
pub mod customer;
pub mod event;
pub mod inventory;
pub mod order;
pub mod process;
pub mod product;
pub mod session;
pub mod values;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

pub use aggregate::{Aggregate, DomainError, StatusName, stream_name};
pub use event::{DecodeError, EventSet};
