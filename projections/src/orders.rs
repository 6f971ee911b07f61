//! Orders by id (with their status history) and by customer (newest
//! first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use shopstream_domain::EventSet;
use shopstream_domain::order::{OrderEvent, OrderLine, OrderStatus};
use shopstream_domain::values::{
    Carrier, CartId, CustomerId, Money, OrderId, ShippingAddress, Tracking,
};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, doc_of, encode};

pub const ORDER_BY_ID: &str = "order_by_id";
pub const ORDERS_BY_CUSTOMER: &str = "orders_by_customer";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderDoc {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub cart_id: CartId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub paid: Money,
    pub shipping_address: ShippingAddress,
    pub placed_at: DateTime<Utc>,
    pub history: Vec<StatusChange>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment: Option<Shipment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_due: Option<Money>,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub carrier: Carrier,
    pub tracking: Tracking,
    pub at: DateTime<Utc>,
}

impl OrderDoc {
    fn transition(&mut self, status: OrderStatus, at: DateTime<Utc>) {
        self.status = status;
        self.history.push(StatusChange { status, at });
    }

    /// Where the order sits in its customer's list: newest first.
    pub fn customer_key(&self) -> RowKey {
        RowKey::new(
            ORDERS_BY_CUSTOMER,
            self.customer_id.to_string(),
            newest_first(self.placed_at, self.order_id),
        )
    }

    fn summary(&self) -> serde_json::Value {
        json!({
            "order_id": self.order_id,
            "status": self.status,
            "total": self.total,
            "placed_at": self.placed_at,
            "revision": self.revision,
        })
    }
}

/// A clustering key that sorts later instants first.
pub fn newest_first(at: DateTime<Utc>, order_id: OrderId) -> String {
    let micros = u64::try_from(at.timestamp_micros()).unwrap_or(0);
    format!("{:016x}{order_id}", u64::MAX - micros)
}

/// Folds one order event into its document (`None` for the first).
pub fn evolve(
    doc: Option<OrderDoc>,
    event: OrderEvent,
    revision: u64,
) -> Result<OrderDoc, ProjectionError> {
    let missing = || ProjectionError::Inconsistent("order event before OrderPlaced".into());
    let mut doc = match event {
        OrderEvent::OrderPlaced(p) => OrderDoc {
            order_id: p.order_id,
            customer_id: p.customer_id,
            cart_id: p.cart_id,
            status: OrderStatus::Confirmed,
            lines: p.lines,
            total: p.total,
            paid: Money::zero(p.total.currency),
            shipping_address: p.shipping_address,
            placed_at: p.placed_at,
            history: vec![StatusChange {
                status: OrderStatus::Confirmed,
                at: p.placed_at,
            }],
            shipment: None,
            refund_due: None,
            revision,
        },
        OrderEvent::PaymentReceived(p) => OrderDoc {
            paid: p.paid_total,
            ..doc.ok_or_else(missing)?
        },
        OrderEvent::OrderPaid(p) => {
            let mut doc = doc.ok_or_else(missing)?;
            doc.transition(OrderStatus::Paid, p.at);
            doc
        }
        OrderEvent::OrderCancelled(c) => {
            let mut doc = doc.ok_or_else(missing)?;
            doc.transition(OrderStatus::Cancelled, c.at);
            doc.refund_due = c.refund_due;
            doc
        }
        OrderEvent::OrderShipped(s) => {
            let mut doc = doc.ok_or_else(missing)?;
            doc.transition(OrderStatus::Shipped, s.at);
            doc.shipment = Some(Shipment {
                carrier: s.carrier,
                tracking: s.tracking,
                at: s.at,
            });
            doc
        }
    };
    doc.revision = revision;
    Ok(doc)
}

pub struct Orders;

impl Projection for Orders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn version(&self) -> u32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[ORDER_BY_ID, ORDERS_BY_CUSTOMER]
    }

    fn reads(&self) -> &'static [&'static str] {
        &[ORDER_BY_ID]
    }

    fn event_types(&self) -> Vec<&'static str> {
        OrderEvent::TYPES.to_vec()
    }

    fn apply(
        &self,
        env: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let event: OrderEvent = env.decode()?;
        let key = RowKey::single(ORDER_BY_ID, env.stream_id());
        let before = match event {
            OrderEvent::OrderPlaced(_) => None,
            _ => Some(doc_of(rows.get(&key)?, &key)?),
        };
        let doc = evolve(before, event, env.revision)?;
        Ok(vec![
            RowWrite::upsert(
                doc.customer_key(),
                DOC,
                encode(&doc.summary())?,
                env.revision,
            ),
            RowWrite::upsert(key, DOC, encode(&doc)?, env.revision),
        ])
    }
}
