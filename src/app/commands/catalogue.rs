//! The catalogue: products, their prices, and the SKUs they claim.

use serde::{Deserialize, Serialize};
use shopstream_domain::claim::{ClaimSku, SkuClaim};
use shopstream_domain::product::{NewProduct, Product, ProductCommand, ProductStatus};
use shopstream_domain::values::{Money, Name, ProductId, Sku};
use shopstream_domain::{Aggregate, stream_name};

use super::CommandError;
use super::{Command, UnitOfWork};

/// Lists a product under a SKU no other product holds. Admins only.
#[derive(Debug, Clone)]
pub struct CreateProduct(pub NewProduct);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductCreated {
    pub product_id: ProductId,
}

impl Command for CreateProduct {
    type Output = ProductCreated;
    const NAME: &'static str = "create_product";

    fn target(&self) -> String {
        stream_name::<Product>(self.0.product_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<ProductCreated, CommandError> {
        uow.require_admin()?;
        let new = &self.0;
        let claim = uow.load::<SkuClaim>(&new.sku).await?;
        let claimed = claim.state.decide(&ClaimSku {
            sku: new.sku.clone(),
            product_id: new.product_id,
            at: new.at,
        })?;
        let product = uow.create::<Product>(new.product_id);
        let created = product.state.decide(&ProductCommand::Create(new.clone()))?;
        uow.stage(&claim, claimed);
        uow.stage(&product, created);
        Ok(ProductCreated {
            product_id: new.product_id,
        })
    }
}

/// What a catalogue command answers with.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductSummary {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub price: Money,
    pub status: ProductStatus,
}

fn summary(product: &Product) -> Result<ProductSummary, CommandError> {
    let l = product.listing()?;
    Ok(ProductSummary {
        product_id: l.product_id,
        sku: l.sku.clone(),
        name: l.name.clone(),
        price: l.price,
        status: l.status,
    })
}

/// Changes a product's price. Admins only.
#[derive(Debug, Clone)]
pub struct ChangePrice {
    pub product_id: ProductId,
    pub price: Money,
}

impl Command for ChangePrice {
    type Output = ProductSummary;
    const NAME: &'static str = "change_price";

    fn target(&self) -> String {
        stream_name::<Product>(self.product_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<ProductSummary, CommandError> {
        uow.require_admin()?;
        let product = uow.load::<Product>(self.product_id).await?;
        let events = product.state.decide(&ProductCommand::ChangePrice {
            price: self.price,
            at: uow.now(),
        })?;
        summary(&uow.stage(&product, events))
    }
}

/// Takes a product off sale for good. Admins only.
#[derive(Debug, Clone)]
pub struct Discontinue {
    pub product_id: ProductId,
}

impl Command for Discontinue {
    type Output = ProductSummary;
    const NAME: &'static str = "discontinue_product";

    fn target(&self) -> String {
        stream_name::<Product>(self.product_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<ProductSummary, CommandError> {
        uow.require_admin()?;
        let product = uow.load::<Product>(self.product_id).await?;
        let events = product
            .state
            .decide(&ProductCommand::Discontinue { at: uow.now() })?;
        summary(&uow.stage(&product, events))
    }
}
