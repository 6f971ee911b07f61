//! Carts by id, as their owners see them.

use serde::{Deserialize, Serialize};
use shopstream_domain::cart::{Cart, CartEvent, CartLine, CartState, CartStatus};
use shopstream_domain::values::{CartId, Currency, CustomerId, Money, OrderId};
use shopstream_domain::{Aggregate, DomainError, EventSet};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, doc_of, encode};

pub const CART_BY_ID: &str = "cart_by_id";

/// The cell that keeps the currency a cart was created in, beside its
/// view: the view's total shows it while the cart is empty.
const CURRENCY: &str = "currency";

/// A cart as its owner sees it: the read model's document, and what the
/// commands that change a cart answer with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartView {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    /// `open` or `checked_out`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub items: Vec<CartItem>,
    pub total: Money,
    pub revision: u64,
}

/// A line of the cart with its total.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItem {
    #[serde(flatten)]
    pub line: CartLine,
    pub line_total: Money,
}

fn items(lines: &[CartLine]) -> Result<Vec<CartItem>, DomainError> {
    lines
        .iter()
        .map(|line| {
            Ok(CartItem {
                line: line.clone(),
                line_total: line
                    .line_total()
                    .ok_or_else(|| DomainError::invalid("quantity", "line total is too large"))?,
            })
        })
        .collect()
}

impl CartView {
    /// The view of a cart's state at a revision of its stream.
    pub fn of(cart: &CartState, revision: u64) -> Result<Self, DomainError> {
        let (status, order_id) = match cart.status {
            CartStatus::Open => ("open", None),
            CartStatus::CheckedOut { order_id } => ("checked_out", Some(order_id)),
        };
        Ok(Self {
            cart_id: cart.cart_id,
            customer_id: cart.customer_id,
            status: status.to_string(),
            order_id,
            items: items(&cart.lines)?,
            total: cart.total()?,
            revision,
        })
    }

    /// The cart's state, as far as a view holds it.
    fn state(&self, currency: Currency) -> CartState {
        CartState {
            cart_id: self.cart_id,
            customer_id: self.customer_id,
            currency,
            lines: self.items.iter().map(|i| i.line.clone()).collect(),
            status: match self.order_id {
                Some(order_id) => CartStatus::CheckedOut { order_id },
                None => CartStatus::Open,
            },
        }
    }
}

pub struct Carts;

impl Projection for Carts {
    fn name(&self) -> &'static str {
        "carts"
    }

    fn version(&self) -> u32 {
        // 2: a cart's total is never null (zero in its currency when empty).
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CART_BY_ID]
    }

    fn event_types(&self) -> Vec<&'static str> {
        CartEvent::TYPES.to_vec()
    }

    fn apply(
        &self,
        env: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let event: CartEvent = env.decode()?;
        let key = RowKey::single(CART_BY_ID, env.stream_id());
        if let CartEvent::CheckoutRefused(_) = event {
            return Ok(vec![]);
        }
        // The cart is folded through the domain's own evolve, from the
        // state the stored view and currency hold.
        let mut cart = Cart::default();
        let mut writes = Vec::with_capacity(2);
        if let CartEvent::CartCreated(created) = &event {
            writes.push(RowWrite::upsert(
                key.clone(),
                CURRENCY,
                encode(&created.currency)?,
                env.revision,
            ));
        } else {
            let row = rows.get(&key)?;
            let view: CartView = doc_of(row, &key)?;
            let currency: Currency = match row.and_then(|r| r.cell(CURRENCY)) {
                Some(c) => c
                    .decode()
                    .map_err(|e| ProjectionError::Inconsistent(e.to_string()))?,
                None => view.total.currency,
            };
            cart.state = Some(view.state(currency));
        }
        cart.evolve(&event);
        let state = cart.state.as_ref().ok_or_else(|| {
            ProjectionError::Inconsistent("a cart event before CartCreated".into())
        })?;
        let view = CartView::of(state, env.revision)
            .map_err(|e| ProjectionError::Inconsistent(e.to_string()))?;
        writes.push(RowWrite::upsert(key, DOC, encode(&view)?, env.revision));
        Ok(writes)
    }
}
