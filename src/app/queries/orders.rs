//! Orders, for their owners and admins, and a customer's list. (An order
//! as it stood at an instant is folded from its events: see
//! [`super::history`].)

use std::sync::Arc;

use shopstream_infra::read_store::RowKey;
use shopstream_projections::orders::{ORDER_BY_ID, ORDERS_BY_CUSTOMER};
use uuid::Uuid;

use super::paging::page;
use super::{Answer, QueryError, QueryService, doc};

pub const PROJECTION: &str = "orders";

/// Whose order a stored document is.
fn owner_of(order: &shopstream_projections::Json) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct Owner {
        customer_id: Uuid,
    }
    order.decode::<Owner>().ok().map(|o| o.customer_id)
}

/// `GET /v1/orders/{id}`: answered with its owner.
pub async fn order(q: &QueryService, id: Uuid) -> Result<Arc<Answer>, QueryError> {
    q.answer(ORDER_BY_ID, &format!("order/{id}"), async |r| {
        let row = r
            .get(&RowKey::single(ORDER_BY_ID, id.to_string()))
            .await?
            .ok_or(QueryError::NotFound("order"))?;
        let order = doc(&row)?;
        Answer::json(order, owner_of(order))
    })
    .await
}

/// `GET /v1/customers/me/orders`: newest first.
pub async fn of_customer(
    q: &QueryService,
    customer: Uuid,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Arc<Answer>, QueryError> {
    let partition = customer.to_string();
    let key = format!("orders-of/{customer}/{}/{limit}", cursor.unwrap_or(""));
    q.answer(ORDERS_BY_CUSTOMER, &key, async |r| {
        Answer::json(
            &page(r, ORDERS_BY_CUSTOMER, &partition, cursor, limit).await?,
            Some(customer),
        )
    })
    .await
}
