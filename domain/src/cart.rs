//! Cart: a customer's lines with the price each product had when added, in
//! one currency, until it is checked out into an order.
//!
//! A cart records the shop's currency when it is created: an empty cart's
//! total is zero in it. Its lines are all in one currency, the first
//! line's (a product priced in another currency may be the first).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, StatusName};
use crate::event_set;
use crate::values::{CartId, Currency, CustomerId, Money, Name, OrderId, ProductId, Quantity, Sku};

/// A cart holds at most this many distinct products.
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartLine {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub unit_price: Money,
    pub quantity: Quantity,
}

impl CartLine {
    /// `unit_price × quantity`; `None` only beyond any real amount.
    pub fn line_total(&self) -> Option<Money> {
        self.unit_price.times(self.quantity)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartCreated {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    /// Schema 2 on: the shop's currency when the cart was created. Carts
    /// created before (schema 1) were priced in the default, the euro.
    #[serde(default = "created_before_currencies")]
    pub currency: Currency,
    pub at: DateTime<Utc>,
}

fn created_before_currencies() -> Currency {
    Currency::EUR
}

/// The sum of some lines, or zero in `empty` when there are none: the one
/// rule for a cart's total, for the cart and for every view of it.
pub fn total(lines: &[CartLine], empty: Currency) -> Result<Money, DomainError> {
    let mut total: Option<Money> = None;
    for line in lines {
        let line_total = line
            .line_total()
            .ok_or_else(|| DomainError::invalid("quantity", "line total is too large"))?;
        total = Some(match total {
            None => line_total,
            Some(t) => t
                .plus(line_total)
                .ok_or_else(|| DomainError::invalid("quantity", "cart total is too large"))?,
        });
    }
    Ok(total.unwrap_or(Money::zero(empty)))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItemSet {
    #[serde(flatten)]
    pub line: CartLine,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItemRemoved {
    pub product_id: ProductId,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartCheckedOut {
    pub order_id: OrderId,
    pub at: DateTime<Utc>,
}

/// A checkout was refused; the cart stays open. Recorded so the event log
/// shows what customers tried and why it failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutRefused {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skus: Vec<Sku>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub products: Vec<ProductId>,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of a cart stream.
    pub enum CartEvent {
        CartCreated = 2,
        CartItemSet = 1,
        CartItemRemoved = 1,
        CartCheckedOut = 1,
        CheckoutRefused = 1,
    }
}

#[derive(Debug, Clone)]
pub enum CartCommand {
    Create {
        cart_id: CartId,
        customer_id: CustomerId,
        /// The shop's currency: an empty cart's total is zero in it.
        currency: Currency,
        at: DateTime<Utc>,
    },
    /// Sets a product's line to this quantity, adding the line if needed.
    SetItem { line: CartLine, at: DateTime<Utc> },
    RemoveItem {
        product_id: ProductId,
        at: DateTime<Utc>,
    },
    CheckOut {
        order_id: OrderId,
        at: DateTime<Utc>,
    },
    RecordRefusal {
        refusal: DomainError,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum CartStatus {
    Open,
    CheckedOut { order_id: OrderId },
}

impl StatusName for CartStatus {
    fn status_name(&self) -> &'static str {
        match self {
            CartStatus::Open => "open",
            CartStatus::CheckedOut { .. } => "checked out",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cart {
    pub state: Option<CartState>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CartState {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    /// The currency recorded at creation.
    pub currency: Currency,
    pub lines: Vec<CartLine>,
    pub status: CartStatus,
}

impl CartState {
    /// The sum of the lines, zero in the cart's currency when empty.
    pub fn total(&self) -> Result<Money, DomainError> {
        total(&self.lines, self.currency)
    }

    fn require_open(&self, action: &'static str) -> Result<(), DomainError> {
        match self.status {
            CartStatus::Open => Ok(()),
            other => Err(DomainError::InvalidState {
                entity: "cart",
                state: other.status_name(),
                action,
            }),
        }
    }
}

impl Cart {
    pub fn state(&self) -> Result<&CartState, DomainError> {
        self.state.as_ref().ok_or(DomainError::NotFound("cart"))
    }
}

impl Aggregate for Cart {
    type Event = CartEvent;
    type Command = CartCommand;
    const CATEGORY: &'static str = "cart";

    fn decide(&self, command: &CartCommand) -> Result<Vec<CartEvent>, DomainError> {
        match command {
            CartCommand::Create {
                cart_id,
                customer_id,
                currency,
                at,
            } => {
                if self.state.is_some() {
                    return Err(DomainError::AlreadyExists("cart"));
                }
                Ok(vec![
                    CartCreated {
                        cart_id: *cart_id,
                        customer_id: *customer_id,
                        currency: *currency,
                        at: *at,
                    }
                    .into(),
                ])
            }
            CartCommand::SetItem { line, at } => {
                let cart = self.state()?;
                cart.require_open("change")?;
                let existing = cart.lines.iter().find(|l| l.product_id == line.product_id);
                if existing == Some(line) {
                    return Ok(vec![]);
                }
                if existing.is_none() && cart.lines.len() >= MAX_LINES {
                    return Err(DomainError::invalid(
                        "product_id",
                        format!("a cart holds at most {MAX_LINES} products"),
                    ));
                }
                if let Some(other) = cart
                    .lines
                    .iter()
                    .find(|l| l.product_id != line.product_id)
                    .filter(|l| l.unit_price.currency != line.unit_price.currency)
                {
                    return Err(DomainError::CurrencyMismatch(format!(
                        "the cart is in {}, this product is priced in {}",
                        other.unit_price.currency, line.unit_price.currency
                    )));
                }
                let mut after = cart.clone();
                after.lines.retain(|l| l.product_id != line.product_id);
                after.lines.push(line.clone());
                after.total()?;
                Ok(vec![
                    CartItemSet {
                        line: line.clone(),
                        at: *at,
                    }
                    .into(),
                ])
            }
            CartCommand::RemoveItem { product_id, at } => {
                let cart = self.state()?;
                cart.require_open("change")?;
                if !cart.lines.iter().any(|l| l.product_id == *product_id) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    CartItemRemoved {
                        product_id: *product_id,
                        at: *at,
                    }
                    .into(),
                ])
            }
            CartCommand::CheckOut { order_id, at } => {
                let cart = self.state()?;
                cart.require_open("check out")?;
                if cart.lines.is_empty() {
                    return Err(DomainError::InvalidState {
                        entity: "cart",
                        state: "empty",
                        action: "check out",
                    });
                }
                Ok(vec![
                    CartCheckedOut {
                        order_id: *order_id,
                        at: *at,
                    }
                    .into(),
                ])
            }
            CartCommand::RecordRefusal { refusal, at } => {
                self.state()?;
                let (reason, skus, products) = match refusal {
                    DomainError::InsufficientStock { skus } => {
                        ("insufficient_stock", skus.clone(), vec![])
                    }
                    DomainError::ProductsUnavailable(products) => {
                        ("products_unavailable", vec![], products.clone())
                    }
                    _ => return Ok(vec![]),
                };
                Ok(vec![
                    CheckoutRefused {
                        reason: reason.to_string(),
                        skus,
                        products,
                        at: *at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(&mut self, event: &CartEvent) {
        if let CartEvent::CartCreated(e) = event {
            self.state = Some(CartState {
                cart_id: e.cart_id,
                customer_id: e.customer_id,
                currency: e.currency,
                lines: vec![],
                status: CartStatus::Open,
            });
            return;
        }
        let Some(cart) = self.state.as_mut() else {
            return;
        };
        match event {
            CartEvent::CartCreated(_) | CartEvent::CheckoutRefused(_) => {}
            CartEvent::CartItemSet(e) => {
                match cart
                    .lines
                    .iter_mut()
                    .find(|l| l.product_id == e.line.product_id)
                {
                    Some(line) => *line = e.line.clone(),
                    None => cart.lines.push(e.line.clone()),
                }
            }
            CartEvent::CartItemRemoved(e) => cart.lines.retain(|l| l.product_id != e.product_id),
            CartEvent::CartCheckedOut(e) => {
                cart.status = CartStatus::CheckedOut {
                    order_id: e.order_id,
                }
            }
        }
    }
}
