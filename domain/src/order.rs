//! Order: placed by a checkout, then `confirmed → paid → shipped`, or
//! `cancelled` before it ships.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, StatusName};
use crate::event_set;
use crate::values::{
    Carrier, CartId, CustomerId, Money, Name, OrderId, PaymentReference, ProductId, Quantity,
    ShippingAddress, Sku, Tracking,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub unit_price: Money,
    pub quantity: Quantity,
    pub line_total: Money,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPlaced {
    pub order_id: OrderId,
    pub customer_id: CustomerId,
    pub cart_id: CartId,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub shipping_address: ShippingAddress,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaymentReceived {
    pub amount: Money,
    pub reference: PaymentReference,
    /// Everything received for this order so far, this payment included.
    pub paid_total: Money,
    pub at: DateTime<Utc>,
}

/// The payments cover the total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderPaid {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// What was paid and is owed back, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refund_due: Option<Money>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderShipped {
    pub carrier: Carrier,
    pub tracking: Tracking,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of an order stream.
    pub enum OrderEvent {
        OrderPlaced = 1,
        PaymentReceived = 1,
        OrderPaid = 1,
        OrderCancelled = 1,
        OrderShipped = 1,
    }
}

#[derive(Debug, Clone)]
pub enum OrderCommand {
    Place(Box<OrderPlaced>),
    Pay {
        amount: Money,
        reference: PaymentReference,
        at: DateTime<Utc>,
    },
    Cancel {
        at: DateTime<Utc>,
    },
    Ship {
        carrier: Carrier,
        tracking: Tracking,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    Confirmed,
    Paid,
    Shipped,
    Cancelled,
}

impl StatusName for OrderStatus {
    fn status_name(&self) -> &'static str {
        match self {
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Paid => "paid",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Order {
    pub state: Option<OrderState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderState {
    pub placed: OrderPlaced,
    pub status: OrderStatus,
    pub paid: Money,
    /// Every payment taken, by reference.
    pub payments: Vec<(PaymentReference, Money)>,
    pub shipment: Option<(Carrier, Tracking)>,
    pub history: Vec<(OrderStatus, DateTime<Utc>)>,
}

impl OrderState {
    fn transition(&mut self, status: OrderStatus, at: DateTime<Utc>) {
        self.status = status;
        self.history.push((status, at));
    }

    fn invalid(&self, action: &'static str) -> DomainError {
        DomainError::InvalidState {
            entity: "order",
            state: self.status.status_name(),
            action,
        }
    }
}

impl Order {
    pub fn state(&self) -> Result<&OrderState, DomainError> {
        self.state.as_ref().ok_or(DomainError::NotFound("order"))
    }
}

impl Aggregate for Order {
    type Event = OrderEvent;
    type Command = OrderCommand;
    const CATEGORY: &'static str = "order";

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, DomainError> {
        match command {
            OrderCommand::Place(placed) => {
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists("order"));
                }
                let mut events = vec![OrderEvent::from((**placed).clone())];
                if placed.total.amount == 0 {
                    events.push(
                        OrderPaid {
                            at: placed.placed_at,
                        }
                        .into(),
                    );
                }
                Ok(events)
            }
            OrderCommand::Pay {
                amount,
                reference,
                at,
            } => {
                let order = self.state()?;
                if let Some((_, taken)) = order.payments.iter().find(|(r, _)| r == reference) {
                    // A retried payment changes nothing; a reference reused
                    // for another amount is a client error, not a repeat.
                    return if taken == amount {
                        Ok(vec![])
                    } else {
                        Err(DomainError::invalid(
                            "reference",
                            "this reference was already used for another amount",
                        ))
                    };
                }
                if order.status != OrderStatus::Confirmed {
                    return Err(order.invalid("pay"));
                }
                let total = order.placed.total;
                if amount.currency != total.currency {
                    return Err(DomainError::CurrencyMismatch(format!(
                        "the order is in {}, the payment in {}",
                        total.currency, amount.currency
                    )));
                }
                let outstanding = total.amount - order.paid.amount;
                if amount.amount <= 0 || amount.amount > outstanding {
                    return Err(DomainError::invalid(
                        "amount",
                        format!("must be between 1 and the outstanding {outstanding}"),
                    ));
                }
                let paid_total = Money {
                    amount: order.paid.amount + amount.amount,
                    currency: total.currency,
                };
                let mut events = vec![
                    PaymentReceived {
                        amount: *amount,
                        reference: reference.clone(),
                        paid_total,
                        at: *at,
                    }
                    .into(),
                ];
                if paid_total.amount == total.amount {
                    events.push(OrderPaid { at: *at }.into());
                }
                Ok(events)
            }
            OrderCommand::Cancel { at } => {
                let order = self.state()?;
                match order.status {
                    OrderStatus::Cancelled => Ok(vec![]),
                    OrderStatus::Shipped => Err(order.invalid("cancel")),
                    OrderStatus::Confirmed | OrderStatus::Paid => Ok(vec![
                        OrderCancelled {
                            refund_due: (order.paid.amount > 0).then_some(order.paid),
                            at: *at,
                        }
                        .into(),
                    ]),
                }
            }
            OrderCommand::Ship {
                carrier,
                tracking,
                at,
            } => {
                let order = self.state()?;
                match (&order.status, &order.shipment) {
                    (OrderStatus::Shipped, Some((c, t))) if c == carrier && t == tracking => {
                        Ok(vec![])
                    }
                    (OrderStatus::Paid, _) => Ok(vec![
                        OrderShipped {
                            carrier: carrier.clone(),
                            tracking: tracking.clone(),
                            at: *at,
                        }
                        .into(),
                    ]),
                    _ => Err(order.invalid("ship")),
                }
            }
        }
    }

    fn evolve(&mut self, event: &OrderEvent) {
        if let OrderEvent::OrderPlaced(e) = event {
            self.state = Some(OrderState {
                placed: e.clone(),
                status: OrderStatus::Confirmed,
                paid: Money::zero(e.total.currency),
                payments: vec![],
                shipment: None,
                history: vec![(OrderStatus::Confirmed, e.placed_at)],
            });
            return;
        }
        let Some(order) = self.state.as_mut() else {
            return;
        };
        match event {
            OrderEvent::OrderPlaced(_) => {}
            OrderEvent::PaymentReceived(e) => {
                order.paid = e.paid_total;
                order.payments.push((e.reference.clone(), e.amount));
            }
            OrderEvent::OrderPaid(e) => order.transition(OrderStatus::Paid, e.at),
            OrderEvent::OrderCancelled(e) => order.transition(OrderStatus::Cancelled, e.at),
            OrderEvent::OrderShipped(e) => {
                order.transition(OrderStatus::Shipped, e.at);
                order.shipment = Some((e.carrier.clone(), e.tracking.clone()));
            }
        }
    }
}
