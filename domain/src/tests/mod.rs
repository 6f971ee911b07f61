//! Given/when/then tests for every aggregate rule, and property tests.
//!
//! The helpers here build valid values from short literals with fixed times
//! and ids, so that every test is deterministic and reads like its rule.

mod cart;
mod claim;
mod customer;
mod inventory;
mod order;
mod process;
mod product;
mod properties;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::cart::CartLine;
use crate::values::{
    CartId, Currency, CustomerId, Money, Name, OrderId, PaymentReference, ProductId, Quantity,
    ShippingAddress, Sku,
};

/// A fixed instant, `n` seconds after 2023-11-14T22:13:20Z.
pub(crate) fn t(n: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + n, 0).expect("valid timestamp")
}

pub(crate) fn customer_id(n: u128) -> CustomerId {
    CustomerId(Uuid::from_u128(0xC000 + n))
}

pub(crate) fn product_id(n: u128) -> ProductId {
    ProductId(Uuid::from_u128(0xD000 + n))
}

pub(crate) fn cart_id(n: u128) -> CartId {
    CartId(Uuid::from_u128(0xCA00 + n))
}

pub(crate) fn order_id(n: u128) -> OrderId {
    OrderId(Uuid::from_u128(0x0D00 + n))
}

pub(crate) fn currency(code: &str) -> Currency {
    Currency::parse(code).expect("valid currency")
}

pub(crate) fn money(amount: i64, code: &str) -> Money {
    Money::new(amount, currency(code)).expect("valid money")
}

pub(crate) fn eur(amount: i64) -> Money {
    money(amount, "EUR")
}

pub(crate) fn usd(amount: i64) -> Money {
    money(amount, "USD")
}

pub(crate) fn sku(raw: &str) -> Sku {
    Sku::parse(raw).expect("valid sku")
}

pub(crate) fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid name")
}

pub(crate) fn qty(n: u32) -> Quantity {
    Quantity::new(n).expect("valid quantity")
}

pub(crate) fn reference(raw: &str) -> PaymentReference {
    PaymentReference::parse(raw).expect("valid reference")
}

pub(crate) fn address() -> ShippingAddress {
    serde_json::from_str(
        r#"{"name":"Ada Lovelace","line1":"1 Main St","city":"Berlin","postal_code":"10115","country":"de"}"#,
    )
    .expect("valid address")
}

/// A cart line for product `n` with SKU `SKU-n`.
pub(crate) fn line(n: u128, unit_price: Money, quantity: u32) -> CartLine {
    CartLine {
        product_id: product_id(n),
        sku: sku(&format!("SKU-{n}")),
        name: name(&format!("Product {n}")),
        unit_price,
        quantity: qty(quantity),
    }
}
