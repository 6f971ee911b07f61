//! Orders, for their owners and admins: now, as they stood at an instant,
//! and a customer's list.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use shopstream_domain::order::OrderEvent;
use shopstream_infra::event_store::{Direction, EventStore};
use shopstream_infra::read_store::RowKey;
use shopstream_projections::orders::{ORDER_BY_ID, ORDERS_BY_CUSTOMER, OrderDoc, evolve};
use uuid::Uuid;

use super::{Answer, QueryError, QueryService, doc, page};

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

/// `GET /v1/orders/{id}?as_of=`: the order folded from its own events up to
/// that instant (by when they were recorded), straight from the event
/// store, through the same code that builds the read model.
pub async fn order_as_of(
    events: &dyn EventStore,
    id: Uuid,
    as_of: DateTime<Utc>,
) -> Result<Answer, QueryError> {
    let stream = format!("order-{id}");
    let mut order: Option<OrderDoc> = None;
    let mut from = 0;
    'read: loop {
        let page = events
            .read_stream(&stream, Some(from), Direction::Forward, 512)
            .await?;
        for recorded in &page {
            if recorded.recorded_at > as_of {
                break 'read;
            }
            let event: OrderEvent = shopstream_domain::EventSet::decode(
                &recorded.event_type,
                recorded.schema_version,
                recorded.data.get().as_bytes(),
            )
            .map_err(|e| QueryError::Internal(e.to_string()))?;
            order = Some(
                evolve(order, event, recorded.revision)
                    .map_err(|e| QueryError::Internal(e.to_string()))?,
            );
            from = recorded.revision + 1;
        }
        if page.len() < 512 {
            break;
        }
    }
    let order = order.ok_or(QueryError::NotFound("order at that time"))?;
    Answer::json(&order, Some(order.customer_id.as_uuid()))
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
