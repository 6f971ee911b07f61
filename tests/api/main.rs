//! End-to-end tests of the HTTP API: each starts the real application on a
//! random port with a fresh data directory.

mod helpers;

mod admin;
mod authorization;
mod carts;
mod catalogue;
mod checkout;
mod edge;
mod events;
mod identity;
mod limits;
mod mail;
mod orders;
mod queries;
mod reports;
mod restart;
mod semantics;
mod sessions;
mod unavailable;
