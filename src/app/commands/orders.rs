//! Paying, cancelling and shipping orders.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shopstream_domain::inventory::Inventory;
use shopstream_domain::order::{Order, OrderCommand, OrderStatus};
use shopstream_domain::process::{self, OrderDecision};
use shopstream_domain::values::{Carrier, Money, OrderId, PaymentReference, Tracking};
use shopstream_domain::{Aggregate, stream_name};

use super::CommandError;
use super::aggregates::{Snapshot, states};
use super::{Command, UnitOfWork};
use shopstream_domain::values::Sku;

/// An order's state after a command.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OrderSummary {
    pub order_id: OrderId,
    pub status: OrderStatus,
    pub total: Money,
    pub paid: Money,
}

fn summary(order: &Order) -> Result<OrderSummary, CommandError> {
    let state = order.state()?;
    Ok(OrderSummary {
        order_id: state.placed.order_id,
        status: state.status,
        total: state.placed.total,
        paid: state.paid,
    })
}

/// Records a payment; the order is paid once payments cover its total. The
/// order's owner only.
#[derive(Debug, Clone)]
pub struct PayOrder {
    pub order_id: OrderId,
    pub amount: Money,
    pub reference: PaymentReference,
}

impl Command for PayOrder {
    type Output = OrderSummary;
    const NAME: &'static str = "pay_order";

    fn target(&self) -> String {
        stream_name::<Order>(self.order_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<OrderSummary, CommandError> {
        let order = uow.load::<Order>(self.order_id).await?;
        uow.ctx()
            .actor
            .may_act_for(order.state.state()?.placed.customer_id, false)?;
        let events = order.state.decide(&OrderCommand::Pay {
            amount: self.amount,
            reference: self.reference.clone(),
            at: uow.now(),
        })?;
        summary(&uow.stage(&order, events))
    }
}

/// Cancels an order before it ships and releases its stock. The owner or an
/// admin.
#[derive(Debug, Clone)]
pub struct CancelOrder {
    pub order_id: OrderId,
}

impl Command for CancelOrder {
    type Output = OrderSummary;
    const NAME: &'static str = "cancel_order";

    fn target(&self) -> String {
        stream_name::<Order>(self.order_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<OrderSummary, CommandError> {
        let order = uow.load::<Order>(self.order_id).await?;
        uow.ctx()
            .actor
            .may_act_for(order.state.state()?.placed.customer_id, true)?;
        let stock = load_stock(uow, &order).await?;
        let decision = process::cancel_order(&order.state, &states(&stock), uow.now())?;
        stage_order_decision(uow, &order, &stock, decision)
    }
}

/// Ships a paid order: its reserved stock leaves the warehouse. Admins only.
#[derive(Debug, Clone)]
pub struct ShipOrder {
    pub order_id: OrderId,
    pub carrier: Carrier,
    pub tracking: Tracking,
}

impl Command for ShipOrder {
    type Output = OrderSummary;
    const NAME: &'static str = "ship_order";

    fn target(&self) -> String {
        stream_name::<Order>(self.order_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<OrderSummary, CommandError> {
        uow.require_admin()?;
        let order = uow.load::<Order>(self.order_id).await?;
        let stock = load_stock(uow, &order).await?;
        let decision = process::ship_order(
            &order.state,
            &states(&stock),
            self.carrier.clone(),
            self.tracking.clone(),
            uow.now(),
        )?;
        stage_order_decision(uow, &order, &stock, decision)
    }
}

async fn load_stock(
    uow: &mut UnitOfWork<'_>,
    order: &Snapshot<Order>,
) -> Result<BTreeMap<Sku, Snapshot<Inventory>>, CommandError> {
    let mut stock = BTreeMap::new();
    for sku in process::order_skus(&order.state)? {
        let snapshot = uow.load::<Inventory>(&sku).await?;
        stock.insert(sku, snapshot);
    }
    Ok(stock)
}

fn stage_order_decision(
    uow: &mut UnitOfWork<'_>,
    order: &Snapshot<Order>,
    stock: &BTreeMap<Sku, Snapshot<Inventory>>,
    decision: OrderDecision,
) -> Result<OrderSummary, CommandError> {
    let after = uow.stage(order, decision.order);
    for (sku, events) in decision.stock {
        if let Some(snapshot) = stock.get(&sku) {
            uow.stage(snapshot, events);
        }
    }
    summary(&after)
}
