//! Carts by id, as their owners see them.

use serde::{Deserialize, Serialize};
use shopstream_domain::EventSet;
use shopstream_domain::cart::{CartEvent, CartLine};
use shopstream_domain::values::{
    CartId, CustomerId, Money, Name, OrderId, ProductId, Quantity, Sku,
};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, doc_of, encode};

pub const CART_BY_ID: &str = "cart_by_id";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartDoc {
    pub cart_id: CartId,
    pub customer_id: CustomerId,
    /// `open` or `checked_out`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<OrderId>,
    pub items: Vec<CartItem>,
    /// `None` for an empty cart; the API shows a zero amount.
    pub total: Option<Money>,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CartItem {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub unit_price: Money,
    pub quantity: Quantity,
    pub line_total: Money,
}

impl CartItem {
    pub fn of(line: &CartLine) -> Option<Self> {
        Some(Self {
            product_id: line.product_id,
            sku: line.sku.clone(),
            name: line.name.clone(),
            unit_price: line.unit_price,
            quantity: line.quantity,
            line_total: line.line_total()?,
        })
    }
}

impl CartDoc {
    fn recompute_total(&mut self) {
        self.total = self
            .items
            .iter()
            .try_fold(None::<Money>, |acc, i| match acc {
                None => Some(Some(i.line_total)),
                Some(t) => t.plus(i.line_total).map(Some),
            })
            .flatten();
    }
}

pub struct Carts;

impl Projection for Carts {
    fn name(&self) -> &'static str {
        "carts"
    }

    fn version(&self) -> u32 {
        1
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
        let mut doc = match event {
            CartEvent::CartCreated(c) => CartDoc {
                cart_id: c.cart_id,
                customer_id: c.customer_id,
                status: "open".into(),
                order_id: None,
                items: vec![],
                total: None,
                revision: env.revision,
            },
            CartEvent::CheckoutRefused(_) => return Ok(vec![]),
            other => {
                let mut doc: CartDoc = doc_of(rows.get(&key)?, &key)?;
                match other {
                    CartEvent::CartItemSet(s) => {
                        let item = CartItem::of(&s.line).ok_or_else(|| {
                            ProjectionError::Inconsistent("line total overflows".into())
                        })?;
                        match doc
                            .items
                            .iter_mut()
                            .find(|i| i.product_id == item.product_id)
                        {
                            Some(existing) => *existing = item,
                            None => doc.items.push(item),
                        }
                    }
                    CartEvent::CartItemRemoved(r) => {
                        doc.items.retain(|i| i.product_id != r.product_id)
                    }
                    CartEvent::CartCheckedOut(c) => {
                        doc.status = "checked_out".into();
                        doc.order_id = Some(c.order_id);
                    }
                    CartEvent::CartCreated(_) | CartEvent::CheckoutRefused(_) => {}
                }
                doc.recompute_total();
                doc
            }
        };
        doc.revision = env.revision;
        Ok(vec![RowWrite::upsert(
            key,
            DOC,
            encode(&doc)?,
            env.revision,
        )])
    }
}
