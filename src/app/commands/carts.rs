//! Carts and checkout.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shopstream_domain::cart::{Cart, CartCommand, CartLine};
use shopstream_domain::inventory::Inventory;
use shopstream_domain::order::{Order, OrderStatus};
use shopstream_domain::product::Product;
use shopstream_domain::values::{CartId, Currency, OrderId, ProductId, Quantity, ShippingAddress};
use shopstream_domain::{Aggregate, DomainError, process, stream_name};
use shopstream_projections::carts::CartView;

use super::CommandError;
use super::aggregates::states;
use super::{Command, UnitOfWork};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartCreated {
    pub cart_id: CartId,
}

/// Opens a cart for the acting customer, in the shop's currency.
#[derive(Debug, Clone)]
pub struct CreateCart {
    pub cart_id: CartId,
    pub currency: Currency,
}

impl Command for CreateCart {
    type Output = CartCreated;
    const NAME: &'static str = "create_cart";

    fn target(&self) -> String {
        stream_name::<Cart>(self.cart_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<CartCreated, CommandError> {
        let customer_id = uow
            .ctx()
            .actor
            .customer_id()
            .ok_or(CommandError::Forbidden)?;
        let cart = uow.create::<Cart>(self.cart_id);
        let events = cart.state.decide(&CartCommand::Create {
            cart_id: self.cart_id,
            customer_id,
            currency: self.currency,
            at: uow.now(),
        })?;
        uow.stage(&cart, events);
        Ok(CartCreated {
            cart_id: self.cart_id,
        })
    }
}

/// Sets how many of a product the cart holds (0 removes it), at the
/// product's current price. The cart's owner only.
#[derive(Debug, Clone)]
pub struct SetCartItem {
    pub cart_id: CartId,
    pub product_id: ProductId,
    pub quantity: u32,
}

impl Command for SetCartItem {
    type Output = CartView;
    const NAME: &'static str = "set_cart_item";

    fn target(&self) -> String {
        stream_name::<Cart>(self.cart_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<CartView, CommandError> {
        let at = uow.now();
        let cart = uow.load::<Cart>(self.cart_id).await?;
        uow.ctx()
            .actor
            .may_act_for(cart.state.state()?.customer_id, false)?;
        let command = if self.quantity == 0 {
            CartCommand::RemoveItem {
                product_id: self.product_id,
                at,
            }
        } else {
            let quantity = Quantity::new(self.quantity).map_err(DomainError::from)?;
            let product = uow.read::<Product>(self.product_id).await?;
            let listing = product.state.listing()?;
            if !product.state.is_for_sale() {
                return Err(DomainError::ProductsUnavailable(vec![self.product_id]).into());
            }
            CartCommand::SetItem {
                line: CartLine {
                    product_id: self.product_id,
                    sku: listing.sku.clone(),
                    name: listing.name.clone(),
                    unit_price: listing.price,
                    quantity,
                },
                at,
            }
        };
        let events = cart.state.decide(&command)?;
        let revision = cart.revision_after(events.len()).unwrap_or(0);
        let after = uow.stage(&cart, events);
        Ok(CartView::of(after.state()?, revision)?)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckedOut {
    pub order_id: OrderId,
    pub status: OrderStatus,
}

/// Turns the cart into an order with stock reserved for every line, or
/// refuses, records why on the cart, and reserves nothing. The cart's owner
/// only.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub cart_id: CartId,
    pub order_id: OrderId,
    pub shipping_address: ShippingAddress,
}

impl Command for Checkout {
    type Output = CheckedOut;
    const NAME: &'static str = "checkout";

    fn target(&self) -> String {
        stream_name::<Cart>(self.cart_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<CheckedOut, CommandError> {
        let at = uow.now();
        let cart = uow.load::<Cart>(self.cart_id).await?;
        let lines = {
            let state = cart.state.state()?;
            uow.ctx().actor.may_act_for(state.customer_id, false)?;
            state.lines.clone()
        };
        let mut products = BTreeMap::new();
        let mut stock = BTreeMap::new();
        for line in &lines {
            let product = uow.read::<Product>(line.product_id).await?;
            products.insert(line.product_id, product.state);
            stock.insert(line.sku.clone(), uow.load::<Inventory>(&line.sku).await?);
        }
        let decided = process::checkout(
            &cart.state,
            &products,
            &states(&stock),
            self.order_id,
            self.shipping_address.clone(),
            at,
        );
        match decided {
            Ok(decision) => {
                let order = uow.create::<Order>(self.order_id);
                uow.stage(&cart, decision.cart);
                uow.stage(&order, decision.order);
                for (sku, events) in decision.stock {
                    if let Some(snapshot) = stock.get(&sku) {
                        uow.stage(snapshot, events);
                    }
                }
                Ok(CheckedOut {
                    order_id: self.order_id,
                    status: OrderStatus::Confirmed,
                })
            }
            Err(
                refusal @ (DomainError::InsufficientStock { .. }
                | DomainError::ProductsUnavailable(_)),
            ) => {
                // Refuse only on current stock; then record why on the cart.
                uow.ensure_fresh().await?;
                let recorded = cart.state.decide(&CartCommand::RecordRefusal {
                    refusal: refusal.clone(),
                    at,
                })?;
                uow.stage(&cart, recorded);
                uow.refuse_after_commit();
                Err(refusal.into())
            }
            Err(other) => Err(other.into()),
        }
    }
}
