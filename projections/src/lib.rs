//! shopstream's read models: pure functions from recorded events to row
//! writes, one module per projection, one table per query.
//!
//! A projection asks for its own rows when it needs them (an order's
//! customer when the order is paid) and never reads anything else, so
//! applying the same events to the same rows always gives the same writes.
//!
//! # Layout
//! - [`row`]: rows, cells and writes, with per-cell versions that make
//!   replays harmless.
//! - [`projection`]: the `Projection` contract and the event envelope.
//! - [`memory`]: rows in memory (tests, on-demand folds, batch overlays).
//! - [`text`]: search tokens.
//! - [`catalogue`], [`carts`], [`orders`], [`customers`], [`sales`]: the
//!   projections behind the API's queries.
//! - [`timeline`]: the first position of every minute, which maps time
//!   ranges onto `$all` for any event store.

pub mod carts;
pub mod catalogue;
pub mod customers;
pub mod memory;
pub mod orders;
pub mod projection;
pub mod row;
pub mod sales;
pub mod text;
pub mod timeline;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use projection::{Envelope, Projection, ProjectionError, RowSource};
pub use row::{Cell, Change, Json, Row, RowKey, RowWrite};

/// The cell most tables keep their document in.
pub const DOC: &str = "doc";

/// Every projection, in the order they are listed to operators.
pub fn all() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(catalogue::Catalogue),
        Arc::new(carts::Carts),
        Arc::new(orders::Orders),
        Arc::new(customers::Customers),
        Arc::new(sales::Sales),
        Arc::new(timeline::Timeline),
    ]
}

/// The document of a row the projection relies on existing.
pub(crate) fn doc_of<T: DeserializeOwned>(
    row: Option<&Row>,
    key: &RowKey,
) -> Result<T, ProjectionError> {
    let doc = row
        .and_then(|r| r.cell(DOC))
        .ok_or_else(|| ProjectionError::Inconsistent(format!("no row at {key:?}")))?;
    doc.decode()
        .map_err(|e| ProjectionError::Inconsistent(format!("row at {key:?}: {e}")))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Json, ProjectionError> {
    Json::encode(value).map_err(|e| ProjectionError::Inconsistent(e.to_string()))
}
