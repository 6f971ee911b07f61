//! Carts, for their owners.

use std::sync::Arc;

use serde_json::{Value, json};
use shopstream_domain::values::Money;
use shopstream_infra::read_store::RowKey;
use shopstream_projections::carts::CART_BY_ID;
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
        let mut cart: Value = decode(doc(&row)?)?;
        if cart["total"].is_null() {
            cart["total"] = json!(Money::zero(q.currency));
        }
        let owner = cart["customer_id"]
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok());
        Answer::json::<Value>(&cart, owner)
    })
    .await
}
