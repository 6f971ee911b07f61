//! Inventory of one SKU: stock on hand, and how much of it is reserved for
//! which order. `available = on_hand - reserved` never goes below zero.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError};
use crate::event_set;
use crate::values::{OrderId, Quantity, Sku};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockReceived {
    pub sku: Sku,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockReserved {
    pub sku: Sku,
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

/// A reservation given back: the order was cancelled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockReleased {
    pub sku: Sku,
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

/// A reservation left the warehouse: it leaves both `reserved` and `on_hand`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StockShipped {
    pub sku: Sku,
    pub order_id: OrderId,
    pub quantity: Quantity,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of an inventory stream.
    pub enum InventoryEvent {
        StockReceived = 1,
        StockReserved = 1,
        StockReleased = 1,
        StockShipped = 1,
    }
}

#[derive(Debug, Clone)]
pub enum InventoryCommand {
    Receive {
        sku: Sku,
        quantity: Quantity,
        at: DateTime<Utc>,
    },
    Reserve {
        sku: Sku,
        order_id: OrderId,
        quantity: Quantity,
        at: DateTime<Utc>,
    },
    Release {
        order_id: OrderId,
        at: DateTime<Utc>,
    },
    Ship {
        order_id: OrderId,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub sku: Option<Sku>,
    pub on_hand: u64,
    pub reserved: u64,
    pub reservations: BTreeMap<OrderId, Quantity>,
}

impl Inventory {
    pub fn available(&self) -> u64 {
        self.on_hand.saturating_sub(self.reserved)
    }

    /// An inventory stream holds one SKU for ever.
    fn check_sku(&self, sku: &Sku) -> Result<(), DomainError> {
        match &self.sku {
            Some(own) if own != sku => Err(DomainError::invalid(
                "sku",
                format!("this inventory holds {own}, not {sku}"),
            )),
            _ => Ok(()),
        }
    }

    fn reservation(&self, order_id: OrderId) -> Option<(Sku, Quantity)> {
        let quantity = *self.reservations.get(&order_id)?;
        Some((self.sku.clone()?, quantity))
    }
}

impl Aggregate for Inventory {
    type Event = InventoryEvent;
    type Command = InventoryCommand;
    const CATEGORY: &'static str = "inventory";

    fn decide(&self, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, DomainError> {
        match command {
            InventoryCommand::Receive { sku, quantity, at } => {
                self.check_sku(sku)?;
                if self
                    .on_hand
                    .checked_add(u64::from(quantity.get()))
                    .is_none_or(|total| total > i64::MAX as u64)
                {
                    return Err(DomainError::invalid(
                        "quantity",
                        "stock on hand would overflow",
                    ));
                }
                Ok(vec![
                    StockReceived {
                        sku: sku.clone(),
                        quantity: *quantity,
                        at: *at,
                    }
                    .into(),
                ])
            }
            InventoryCommand::Reserve {
                sku,
                order_id,
                quantity,
                at,
            } => {
                self.check_sku(sku)?;
                if let Some(existing) = self.reservations.get(order_id) {
                    return if existing == quantity {
                        Ok(vec![])
                    } else {
                        Err(DomainError::AlreadyExists("reservation"))
                    };
                }
                if self.available() < u64::from(quantity.get()) {
                    return Err(DomainError::InsufficientStock {
                        skus: vec![sku.clone()],
                    });
                }
                Ok(vec![
                    StockReserved {
                        sku: sku.clone(),
                        order_id: *order_id,
                        quantity: *quantity,
                        at: *at,
                    }
                    .into(),
                ])
            }
            InventoryCommand::Release { order_id, at } => Ok(self
                .reservation(*order_id)
                .map(|(sku, quantity)| {
                    StockReleased {
                        sku,
                        order_id: *order_id,
                        quantity,
                        at: *at,
                    }
                    .into()
                })
                .into_iter()
                .collect()),
            InventoryCommand::Ship { order_id, at } => {
                let (sku, quantity) = self
                    .reservation(*order_id)
                    .ok_or(DomainError::NoReservation(*order_id))?;
                Ok(vec![
                    StockShipped {
                        sku,
                        order_id: *order_id,
                        quantity,
                        at: *at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(&mut self, event: &InventoryEvent) {
        match event {
            InventoryEvent::StockReceived(e) => {
                self.sku = Some(e.sku.clone());
                self.on_hand = self.on_hand.saturating_add(u64::from(e.quantity.get()));
            }
            InventoryEvent::StockReserved(e) => {
                self.sku = Some(e.sku.clone());
                self.reserved = self.reserved.saturating_add(u64::from(e.quantity.get()));
                self.reservations.insert(e.order_id, e.quantity);
            }
            InventoryEvent::StockReleased(e) => {
                if self.reservations.remove(&e.order_id).is_some() {
                    self.reserved = self.reserved.saturating_sub(u64::from(e.quantity.get()));
                }
            }
            InventoryEvent::StockShipped(e) => {
                if self.reservations.remove(&e.order_id).is_some() {
                    let q = u64::from(e.quantity.get());
                    self.reserved = self.reserved.saturating_sub(q);
                    self.on_hand = self.on_hand.saturating_sub(q);
                }
            }
        }
    }
}
