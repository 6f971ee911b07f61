//! Product: a catalogue entry with a price, until it is discontinued.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError, StatusName};
use crate::event_set;
use crate::values::{Category, Description, Money, Name, ProductId, Sku, Tags};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductCreated {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub tags: Tags,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductPriceChanged {
    pub price: Money,
    pub previous: Money,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDiscontinued {
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of a product stream.
    pub enum ProductEvent {
        ProductCreated = 1,
        ProductPriceChanged = 1,
        ProductDiscontinued = 1,
    }
}

#[derive(Debug, Clone)]
pub enum ProductCommand {
    Create(NewProduct),
    ChangePrice { price: Money, at: DateTime<Utc> },
    Discontinue { at: DateTime<Utc> },
}

#[derive(Debug, Clone)]
pub struct NewProduct {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub tags: Tags,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProductStatus {
    Active,
    Discontinued,
}

impl StatusName for ProductStatus {
    fn status_name(&self) -> &'static str {
        match self {
            ProductStatus::Active => "active",
            ProductStatus::Discontinued => "discontinued",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Product {
    pub listing: Option<Listing>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub price: Money,
    pub status: ProductStatus,
}

impl Product {
    /// The listing, or why a command on a missing product fails.
    pub fn listing(&self) -> Result<&Listing, DomainError> {
        self.listing
            .as_ref()
            .ok_or(DomainError::NotFound("product"))
    }

    pub fn is_for_sale(&self) -> bool {
        matches!(&self.listing, Some(l) if l.status == ProductStatus::Active)
    }
}

impl Aggregate for Product {
    type Event = ProductEvent;
    type Command = ProductCommand;
    const CATEGORY: &'static str = "product";

    fn decide(&self, command: &ProductCommand) -> Result<Vec<ProductEvent>, DomainError> {
        match command {
            ProductCommand::Create(p) => {
                if self.listing.is_some() {
                    return Err(DomainError::AlreadyExists("product"));
                }
                Ok(vec![
                    ProductCreated {
                        product_id: p.product_id,
                        sku: p.sku.clone(),
                        name: p.name.clone(),
                        description: p.description.clone(),
                        price: p.price,
                        category: p.category.clone(),
                        tags: p.tags.clone(),
                        created_at: p.at,
                    }
                    .into(),
                ])
            }
            ProductCommand::ChangePrice { price, at } => {
                let listing = self.listing()?;
                if listing.status == ProductStatus::Discontinued {
                    return Err(DomainError::InvalidState {
                        entity: "product",
                        state: "discontinued",
                        action: "change the price of",
                    });
                }
                if listing.price == *price {
                    return Ok(vec![]);
                }
                Ok(vec![
                    ProductPriceChanged {
                        price: *price,
                        previous: listing.price,
                        at: *at,
                    }
                    .into(),
                ])
            }
            ProductCommand::Discontinue { at } => {
                let listing = self.listing()?;
                if listing.status == ProductStatus::Discontinued {
                    return Ok(vec![]);
                }
                Ok(vec![ProductDiscontinued { at: *at }.into()])
            }
        }
    }

    fn evolve(&mut self, event: &ProductEvent) {
        match (event, &mut self.listing) {
            (ProductEvent::ProductCreated(e), _) => {
                self.listing = Some(Listing {
                    product_id: e.product_id,
                    sku: e.sku.clone(),
                    name: e.name.clone(),
                    price: e.price,
                    status: ProductStatus::Active,
                })
            }
            (ProductEvent::ProductPriceChanged(e), Some(l)) => l.price = e.price,
            (ProductEvent::ProductDiscontinued(_), Some(l)) => {
                l.status = ProductStatus::Discontinued
            }
            (_, None) => {}
        }
    }
}
