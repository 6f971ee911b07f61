//! Decisions that span aggregates: checkout, cancelling and shipping an order.
//!
//! Each function takes the current state of every aggregate involved and
//! returns the events for each of them, or one refusal. The application
//! appends all of them in one atomic multi-stream append, expecting every
//! stream at the revision these states were read at, so stock is reserved for
//! every line or for none, and a concurrent change to any of those streams
//! makes the whole decision be taken again on fresh state.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::aggregate::{Aggregate, DomainError};
use crate::cart::{Cart, CartCommand, CartEvent};
use crate::inventory::{Inventory, InventoryCommand, InventoryEvent};
use crate::order::{Order, OrderCommand, OrderEvent, OrderLine, OrderPlaced};
use crate::product::Product;
use crate::values::{Carrier, OrderId, ProductId, ShippingAddress, Sku, Tracking};

/// Events for the order's stream and for each SKU's inventory stream.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderDecision {
    pub order: Vec<OrderEvent>,
    pub stock: Vec<(Sku, Vec<InventoryEvent>)>,
}

/// A checkout: the cart closes, the order is placed, stock is reserved.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckoutDecision {
    pub cart: Vec<CartEvent>,
    pub order: Vec<OrderEvent>,
    pub stock: Vec<(Sku, Vec<InventoryEvent>)>,
    pub placed: OrderPlaced,
}

/// Checks a cart out into a new order, reserving stock for every line.
///
/// Refuses with `ProductsUnavailable` naming every discontinued product, or
/// with `InsufficientStock` naming every SKU short of stock, so a customer
/// learns everything wrong with the cart at once.
pub fn checkout(
    cart: &Cart,
    products: &BTreeMap<ProductId, Product>,
    stock: &BTreeMap<Sku, Inventory>,
    order_id: OrderId,
    shipping_address: ShippingAddress,
    at: DateTime<Utc>,
) -> Result<CheckoutDecision, DomainError> {
    let cart_events = cart.decide(&CartCommand::CheckOut { order_id, at })?;
    let state = cart.state()?;

    let unavailable: Vec<ProductId> = state
        .lines
        .iter()
        .filter(|l| {
            !products
                .get(&l.product_id)
                .is_some_and(Product::is_for_sale)
        })
        .map(|l| l.product_id)
        .collect();
    if !unavailable.is_empty() {
        return Err(DomainError::ProductsUnavailable(unavailable));
    }

    let empty = Inventory::default();
    let mut short = Vec::new();
    let mut reservations = Vec::with_capacity(state.lines.len());
    for line in &state.lines {
        let inventory = stock.get(&line.sku).unwrap_or(&empty);
        let reserve = InventoryCommand::Reserve {
            sku: line.sku.clone(),
            order_id,
            quantity: line.quantity,
            at,
        };
        match inventory.decide(&reserve) {
            Ok(events) => reservations.push((line.sku.clone(), events)),
            Err(DomainError::InsufficientStock { skus }) => short.extend(skus),
            Err(other) => return Err(other),
        }
    }
    if !short.is_empty() {
        return Err(DomainError::InsufficientStock { skus: short });
    }

    let mut lines = Vec::with_capacity(state.lines.len());
    for line in &state.lines {
        lines.push(OrderLine {
            product_id: line.product_id,
            sku: line.sku.clone(),
            name: line.name.clone(),
            unit_price: line.unit_price,
            quantity: line.quantity,
            line_total: line
                .line_total()
                .ok_or_else(|| DomainError::invalid("quantity", "line total is too large"))?,
        });
    }
    // The cart refuses to check out when empty, so the total is the lines'.
    let total = state.total()?;
    let placed = OrderPlaced {
        order_id,
        customer_id: state.customer_id,
        cart_id: state.cart_id,
        lines,
        total,
        shipping_address,
        placed_at: at,
    };
    let order_events = Order::default().decide(&OrderCommand::Place(Box::new(placed.clone())))?;
    Ok(CheckoutDecision {
        cart: cart_events,
        order: order_events,
        stock: reservations,
        placed,
    })
}

/// The SKUs whose inventory an order's cancel or shipment touches.
pub fn order_skus(order: &Order) -> Result<Vec<Sku>, DomainError> {
    Ok(order
        .state()?
        .placed
        .lines
        .iter()
        .map(|l| l.sku.clone())
        .collect())
}

/// Cancels an order and releases every reservation it holds.
pub fn cancel_order(
    order: &Order,
    stock: &BTreeMap<Sku, Inventory>,
    at: DateTime<Utc>,
) -> Result<OrderDecision, DomainError> {
    with_stock(order, stock, &OrderCommand::Cancel { at }, |order_id| {
        InventoryCommand::Release { order_id, at }
    })
}

/// Ships an order: its reserved stock leaves the warehouse.
pub fn ship_order(
    order: &Order,
    stock: &BTreeMap<Sku, Inventory>,
    carrier: Carrier,
    tracking: Tracking,
    at: DateTime<Utc>,
) -> Result<OrderDecision, DomainError> {
    let ship = OrderCommand::Ship {
        carrier,
        tracking,
        at,
    };
    with_stock(order, stock, &ship, |order_id| InventoryCommand::Ship {
        order_id,
        at,
    })
}

/// An order command and, if it changes the order, the matching inventory
/// command for every line.
fn with_stock(
    order: &Order,
    stock: &BTreeMap<Sku, Inventory>,
    command: &OrderCommand,
    per_sku: impl Fn(OrderId) -> InventoryCommand,
) -> Result<OrderDecision, DomainError> {
    let order_events = order.decide(command)?;
    let stock_events = if order_events.is_empty() {
        vec![]
    } else {
        per_line(order, stock, per_sku)?
    };
    Ok(OrderDecision {
        order: order_events,
        stock: stock_events,
    })
}

fn per_line(
    order: &Order,
    stock: &BTreeMap<Sku, Inventory>,
    command: impl Fn(OrderId) -> InventoryCommand,
) -> Result<Vec<(Sku, Vec<InventoryEvent>)>, DomainError> {
    let state = order.state()?;
    let empty = Inventory::default();
    state
        .placed
        .lines
        .iter()
        .map(|line| {
            let inventory = stock.get(&line.sku).unwrap_or(&empty);
            let events = inventory.decide(&command(state.placed.order_id))?;
            Ok((line.sku.clone(), events))
        })
        .collect()
}
