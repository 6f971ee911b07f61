//! Stock receipts.

use serde::{Deserialize, Serialize};
use shopstream_domain::claim::SkuClaim;
use shopstream_domain::inventory::{Inventory, InventoryCommand};
use shopstream_domain::values::{Quantity, Sku};
use shopstream_domain::{Aggregate, DomainError, stream_name};

use super::CommandError;
use super::{Command, UnitOfWork};

/// Stock levels of one SKU.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InventoryView {
    pub sku: Sku,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

impl InventoryView {
    pub fn of(sku: &Sku, inventory: &Inventory) -> Self {
        Self {
            sku: sku.clone(),
            on_hand: inventory.on_hand,
            reserved: inventory.reserved,
            available: inventory.available(),
        }
    }
}

/// Adds received units to a SKU's stock on hand. Admins only; the SKU must
/// belong to a product.
#[derive(Debug, Clone)]
pub struct ReceiveStock {
    pub sku: Sku,
    pub quantity: Quantity,
}

impl Command for ReceiveStock {
    type Output = InventoryView;
    const NAME: &'static str = "receive_stock";

    fn target(&self) -> String {
        stream_name::<Inventory>(&self.sku)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<InventoryView, CommandError> {
        uow.require_admin()?;
        let claim = uow.read::<SkuClaim>(&self.sku).await?;
        if claim.state.holder.is_none() {
            return Err(DomainError::NotFound("product with this SKU").into());
        }
        let inventory = uow.load::<Inventory>(&self.sku).await?;
        let events = inventory.state.decide(&InventoryCommand::Receive {
            sku: self.sku.clone(),
            quantity: self.quantity,
            at: uow.now(),
        })?;
        let after = uow.stage(&inventory, events);
        Ok(InventoryView::of(&self.sku, &after))
    }
}
