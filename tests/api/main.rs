//! End-to-end tests of the HTTP API: each starts the real application on a
//! random port with a fresh data directory.

mod helpers;

mod carts;
mod catalogue;
mod checkout;
mod identity;
mod orders;
mod restart;
mod semantics;
