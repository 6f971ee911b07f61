//! Carts, for their owners.

use std::sync::Arc;

use shopstream_infra::read_store::RowKey;
use shopstream_projections::carts::{CART_BY_ID, CartView};
use uuid::Uuid;

use super::{Answer, QueryError, QueryService, decode, doc};

pub const PROJECTION: &str = "carts";

/// `GET /v1/carts/{id}`: answered with its owner, whom the caller must be.
pub async fn cart(q: &QueryService, id: Uuid) -> Result<Arc<Answer>, QueryError> {
    q.answer(CART_BY_ID, &format!("cart/{id}"), async |r| {
        let row = r
            .get(&RowKey::single(CART_BY_ID, id.to_string()))
            .await?
            .ok_or(QueryError::NotFound("cart"))?;
        let cart: CartView = decode(doc(&row)?)?;
        Answer::json(&cart, Some(cart.customer_id.as_uuid()))
    })
    .await
}
