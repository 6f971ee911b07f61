//! The command service: load, decide, append, and resolve conflicts.
//!
//! Every command is a struct implementing [`Command`]. Its `decide` loads the
//! aggregates it needs through a [`UnitOfWork`], calls the pure domain, and
//! stages the resulting events. The service then appends everything staged
//! in one atomic append, every stream expected at the revision it was read
//! at. When another writer got there first the append conflicts: the service
//! brings the conflicting stream's cached copy up to date (a tail read, not a
//! replay) and decides again, a bounded number of times with jitter. A
//! refusal, or a decision to do nothing, is only given after checking that
//! every aggregate it was based on is current, so a stale cache never
//! refuses a command that would succeed.
//!
//! # Layout
//! - [`aggregates`]: the moka cache of aggregate snapshots commands decide
//!   on.
//! - [`customers`]: registration, passwords, roles, the first admin.
//! - [`catalogue`]: products and their SKU claims.
//! - [`inventory`]: stock receipts.
//! - [`carts`]: carts and checkout.
//! - [`orders`]: payment, cancellation, shipping.
//! - `context` (who acts), `service` (running a command, retries),
//!   `combining` (the queue of a hot stream: its waiting commands decided
//!   together and appended in one append),
//!   `unit_of_work` (what one attempt reads and writes), `idempotency`
//!   (recorded answers) and `error`: the machinery every command runs
//!   through.

pub mod aggregates;
pub mod carts;
pub mod catalogue;
pub mod customers;
pub mod inventory;
pub mod orders;
pub mod sessions;

mod combining;
mod context;
mod error;
mod idempotency;
mod service;
mod unit_of_work;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use context::{Actor, CommandContext};
pub use error::{CommandError, Conflict, ConflictingEvent};
pub use idempotency::IdempotencyKey;
pub use service::{CommandMetrics, CommandService, RetryPolicy};
pub use unit_of_work::UnitOfWork;

/// A command: what it addresses and how it decides.
pub trait Command: Clone + Send + Sync + 'static {
    /// What a successful command answers with; stored for idempotent replay.
    type Output: Serialize + DeserializeOwned + Send + 'static;

    /// A name for logs, metrics and idempotency records.
    const NAME: &'static str;

    /// The stream of the resource the request addresses (for a create, the
    /// created one): `If-Match` is checked against it and `ETag` reports it.
    fn target(&self) -> String;

    /// Loads, decides and stages. Its future is `Send` so commands can run
    /// on any runtime thread.
    fn decide(
        &self,
        uow: &mut UnitOfWork<'_>,
    ) -> impl std::future::Future<Output = Result<Self::Output, CommandError>> + Send;
}

/// A command's effect once durable.
#[derive(Debug, Clone)]
pub struct Committed<O> {
    pub output: O,
    /// The target stream's revision after the command.
    pub revision: Option<u64>,
    /// A position of `$all` that includes everything the command wrote.
    pub position: u64,
    /// Answered from an earlier request with the same idempotency key.
    pub replayed: bool,
}
