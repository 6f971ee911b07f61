//! The catalogue read model: products by id, by SKU, by category (ordered
//! by name) and by search token, and stock levels by SKU.
//!
//! Every row is written by events of one stream only (a product's rows by
//! its product stream, stock rows by the SKU's inventory stream): a feed
//! that keeps order only per stream (Kafka partitions) may deliver a SKU's
//! stock before its product, and no row may depend on that order. A
//! product's page therefore reads its stock from `inventory_by_sku`.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shopstream_domain::EventSet;
use shopstream_domain::inventory::InventoryEvent;
use shopstream_domain::product::{ProductEvent, ProductStatus};
use shopstream_domain::values::{Category, Description, Money, Name, ProductId, Sku, Tags};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::text::{MAX_TOKENS, tokens};
use crate::{DOC, doc_of, encode};

pub const PRODUCT_BY_ID: &str = "product_by_id";
pub const PRODUCT_BY_SKU: &str = "product_by_sku";
pub const PRODUCTS_BY_CATEGORY: &str = "products_by_category";
/// Every product for sale, by name, in one partition named [`ALL`].
pub const PRODUCTS_BY_NAME: &str = "products_by_name";
pub const ALL: &str = "all";
pub const PRODUCT_SEARCH: &str = "product_search";
pub const INVENTORY_BY_SKU: &str = "inventory_by_sku";

/// A product as `GET /v1/products/{id}` shows it (with `available` from its
/// SKU's row in `inventory_by_sku`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductDoc {
    pub product_id: ProductId,
    pub sku: Sku,
    pub name: Name,
    pub description: Description,
    pub price: Money,
    pub category: Category,
    pub tags: Tags,
    pub status: ProductStatus,
    pub revision: u64,
}

impl ProductDoc {
    /// What lists show of a product.
    fn summary(&self) -> Value {
        json!({
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "price": self.price,
            "category": self.category,
            "status": self.status,
        })
    }

    fn category_key(&self) -> RowKey {
        RowKey::new(
            PRODUCTS_BY_CATEGORY,
            self.category.as_str(),
            category_clustering(&self.name, self.product_id),
        )
    }

    fn search_keys(&self) -> Vec<RowKey> {
        let text = format!(
            "{} {} {}",
            self.name,
            self.tags.as_slice().join(" "),
            self.description
        );
        tokens(&text)
            .into_iter()
            .take(MAX_TOKENS)
            .map(|t| RowKey::new(PRODUCT_SEARCH, t, self.product_id.to_string()))
            .collect()
    }

    /// Every list row of the product.
    fn list_keys(&self) -> Vec<RowKey> {
        let mut keys = self.search_keys();
        keys.push(self.category_key());
        keys.push(RowKey::new(
            PRODUCTS_BY_NAME,
            ALL,
            category_clustering(&self.name, self.product_id),
        ));
        keys
    }
}

/// Products in a list sort by name, case-insensitively, then by id.
pub fn category_clustering(name: &Name, id: ProductId) -> String {
    format!("{}\u{1f}{id}", name.as_str().to_lowercase())
}

/// Stock levels of a SKU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockDoc {
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
}

pub struct Catalogue;

impl Projection for Catalogue {
    fn name(&self) -> &'static str {
        "catalogue"
    }

    /// 2: stock no longer copied into `product_by_id`.
    fn version(&self) -> u32 {
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            PRODUCT_BY_ID,
            PRODUCT_BY_SKU,
            PRODUCTS_BY_CATEGORY,
            PRODUCTS_BY_NAME,
            PRODUCT_SEARCH,
            INVENTORY_BY_SKU,
        ]
    }

    fn reads(&self) -> &'static [&'static str] {
        &[PRODUCT_BY_ID, INVENTORY_BY_SKU]
    }

    fn event_types(&self) -> Vec<&'static str> {
        [ProductEvent::TYPES, InventoryEvent::TYPES].concat()
    }

    fn apply(
        &self,
        event: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        match event.category() {
            "product" => product(event.decode()?, event, rows),
            "inventory" => stock(event.decode()?, event, rows),
            _ => Ok(vec![]),
        }
    }
}

fn product(
    e: ProductEvent,
    env: &Envelope<'_>,
    rows: &dyn RowSource,
) -> Result<Vec<RowWrite>, ProjectionError> {
    let v = env.revision;
    let current = || -> Result<ProductDoc, ProjectionError> {
        let key = RowKey::single(PRODUCT_BY_ID, env.stream_id());
        let mut doc: ProductDoc = doc_of(rows.get(&key)?, &key)?;
        doc.revision = v;
        Ok(doc)
    };
    match e {
        ProductEvent::ProductCreated(c) => {
            let doc = ProductDoc {
                product_id: c.product_id,
                sku: c.sku,
                name: c.name,
                description: c.description,
                price: c.price,
                category: c.category,
                tags: c.tags,
                status: ProductStatus::Active,
                revision: v,
            };
            let mut writes = vec![RowWrite::upsert(
                RowKey::single(PRODUCT_BY_SKU, doc.sku.as_str()),
                DOC,
                encode(&json!({ "product_id": doc.product_id }))?,
                v,
            )];
            writes.extend(product_rows(&doc, v)?);
            Ok(writes)
        }
        ProductEvent::ProductPriceChanged(p) => {
            let mut doc = current()?;
            doc.price = p.price;
            product_rows(&doc, v)
        }
        ProductEvent::ProductDiscontinued(_) => {
            let mut doc = current()?;
            doc.status = ProductStatus::Discontinued;
            // Discontinued products leave every list; their page stays.
            let mut writes = vec![RowWrite::upsert(
                RowKey::single(PRODUCT_BY_ID, doc.product_id.to_string()),
                DOC,
                encode(&doc)?,
                v,
            )];
            writes.extend(doc.list_keys().into_iter().map(|k| RowWrite::delete(k, v)));
            Ok(writes)
        }
    }
}

/// The product's own row and every list row showing it.
fn product_rows(doc: &ProductDoc, v: u64) -> Result<Vec<RowWrite>, ProjectionError> {
    let summary = encode(&doc.summary())?;
    let mut writes = vec![RowWrite::upsert(
        RowKey::single(PRODUCT_BY_ID, doc.product_id.to_string()),
        DOC,
        encode(doc)?,
        v,
    )];
    writes.extend(
        doc.list_keys()
            .into_iter()
            .map(|k| RowWrite::upsert(k, DOC, summary.clone(), v)),
    );
    Ok(writes)
}

fn stock(
    e: InventoryEvent,
    env: &Envelope<'_>,
    rows: &dyn RowSource,
) -> Result<Vec<RowWrite>, ProjectionError> {
    let v = env.revision;
    let sku = match &e {
        InventoryEvent::StockReceived(x) => &x.sku,
        InventoryEvent::StockReserved(x) => &x.sku,
        InventoryEvent::StockReleased(x) => &x.sku,
        InventoryEvent::StockShipped(x) => &x.sku,
    };
    let inventory_key = RowKey::single(INVENTORY_BY_SKU, sku.as_str());
    let mut levels: StockDoc = match rows.get(&inventory_key)?.and_then(|r| r.cell(DOC)) {
        Some(doc) => doc
            .decode()
            .map_err(|e| ProjectionError::Inconsistent(format!("stock row: {e}")))?,
        None => StockDoc::default(),
    };
    match &e {
        InventoryEvent::StockReceived(x) => levels.on_hand += u64::from(x.quantity.get()),
        InventoryEvent::StockReserved(x) => levels.reserved += u64::from(x.quantity.get()),
        InventoryEvent::StockReleased(x) => {
            levels.reserved = levels.reserved.saturating_sub(u64::from(x.quantity.get()))
        }
        InventoryEvent::StockShipped(x) => {
            let q = u64::from(x.quantity.get());
            levels.reserved = levels.reserved.saturating_sub(q);
            levels.on_hand = levels.on_hand.saturating_sub(q);
        }
    }
    levels.available = levels.on_hand.saturating_sub(levels.reserved);
    let inventory_doc = json!({
        "sku": sku,
        "on_hand": levels.on_hand,
        "reserved": levels.reserved,
        "available": levels.available,
    });
    let writes = vec![RowWrite::upsert(
        inventory_key,
        DOC,
        encode(&inventory_doc)?,
        v,
    )];
    Ok(writes)
}
