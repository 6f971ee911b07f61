use super::{eur, name, product_id, sku, t, usd};
use crate::aggregate::{Aggregate, DomainError};
use crate::event::{DecodeError, EventSet};
use crate::product::{
    NewProduct, Product, ProductCommand, ProductCreated, ProductDiscontinued, ProductEvent,
    ProductPriceChanged, ProductStatus,
};
use crate::testing::given;
use crate::values::{Category, Description, Money, Tags};

fn create() -> ProductCommand {
    ProductCommand::Create(NewProduct {
        product_id: product_id(1),
        sku: sku("mug-1"),
        name: name("Mug"),
        description: Description::parse("A mug.").unwrap(),
        price: eur(1299),
        category: Category::parse("Kitchen").unwrap(),
        tags: Tags::parse(&["Blue", "blue", "Ceramic"]).unwrap(),
        at: t(0),
    })
}

fn created() -> ProductEvent {
    ProductCreated {
        product_id: product_id(1),
        sku: sku("MUG-1"),
        name: name("Mug"),
        description: Description::parse("A mug.").unwrap(),
        price: eur(1299),
        category: Category::parse("Kitchen").unwrap(),
        tags: Tags::parse(&["blue", "ceramic"]).unwrap(),
        created_at: t(0),
    }
    .into()
}

fn discontinued() -> ProductEvent {
    ProductDiscontinued { at: t(1) }.into()
}

fn change_price(price: Money) -> ProductCommand {
    ProductCommand::ChangePrice { price, at: t(5) }
}

#[test]
fn creating_lists_an_active_product() {
    let state = given::<Product>([]).when(create()).then([created()]);
    let listing = state.listing().unwrap();
    assert_eq!(listing.sku.as_str(), "MUG-1");
    assert_eq!(listing.price, eur(1299));
    assert_eq!(listing.status, ProductStatus::Active);
    assert!(state.is_for_sale());
}

#[test]
fn creating_twice_is_refused() {
    given::<Product>([created()])
        .when(create())
        .then_error(DomainError::AlreadyExists("product"));
}

#[test]
fn commands_on_a_missing_product_find_nothing() {
    for command in [
        change_price(eur(1)),
        ProductCommand::Discontinue { at: t(5) },
    ] {
        given::<Product>([])
            .when(command)
            .then_error(DomainError::NotFound("product"));
    }
    assert!(!Product::default().is_for_sale());
}

#[test]
fn changing_the_price_records_the_previous_one() {
    let state = given::<Product>([created()])
        .when(change_price(eur(999)))
        .then([ProductPriceChanged {
            price: eur(999),
            previous: eur(1299),
            at: t(5),
        }
        .into()]);
    assert_eq!(state.listing().unwrap().price, eur(999));
}

#[test]
fn setting_the_same_price_changes_nothing() {
    given::<Product>([created()])
        .when(change_price(eur(1299)))
        .then([]);
}

#[test]
fn the_same_amount_in_another_currency_is_a_new_price() {
    given::<Product>([created()])
        .when(change_price(usd(1299)))
        .then([ProductPriceChanged {
            price: usd(1299),
            previous: eur(1299),
            at: t(5),
        }
        .into()]);
}

#[test]
fn a_discontinued_product_keeps_its_price() {
    given::<Product>([created(), discontinued()])
        .when(change_price(eur(999)))
        .then_error(DomainError::InvalidState {
            entity: "product",
            state: "discontinued",
            action: "change the price of",
        });
}

#[test]
fn discontinuing_takes_the_product_off_sale() {
    let state = given::<Product>([created()])
        .when(ProductCommand::Discontinue { at: t(1) })
        .then([discontinued()]);
    assert_eq!(state.listing().unwrap().status, ProductStatus::Discontinued);
    assert!(!state.is_for_sale());
}

#[test]
fn discontinuing_twice_changes_nothing() {
    given::<Product>([created(), discontinued()])
        .when(ProductCommand::Discontinue { at: t(2) })
        .then([]);
}

#[test]
fn events_before_creation_are_ignored_by_the_fold() {
    let stray = [
        discontinued(),
        ProductPriceChanged {
            price: eur(1),
            previous: eur(2),
            at: t(0),
        }
        .into(),
    ];
    assert_eq!(Product::fold(&stray), Product::default());
}

#[test]
fn decoding_refuses_unknown_types_newer_versions_and_invalid_data() {
    let event = created();
    let data = event.encode();
    assert_eq!(
        ProductEvent::TYPES,
        [
            "ProductCreated",
            "ProductPriceChanged",
            "ProductDiscontinued"
        ]
    );
    assert_eq!(event.schema_version(), 1);
    assert!(matches!(
        ProductEvent::decode("ProductRenamed", 1, &data),
        Err(DecodeError::UnknownType(t)) if t == "ProductRenamed"
    ));
    assert!(matches!(
        ProductEvent::decode("ProductCreated", 2, &data),
        Err(DecodeError::UnsupportedVersion {
            found: 2,
            known: 1,
            ..
        })
    ));
    let negative = br#"{"price":{"amount":-1,"currency":"EUR"},"previous":{"amount":1,"currency":"EUR"},"at":"2023-11-14T22:13:20Z"}"#;
    assert!(matches!(
        ProductEvent::decode("ProductPriceChanged", 1, negative),
        Err(DecodeError::Data { .. })
    ));
    // Older versions are accepted as they are.
    assert_eq!(
        ProductEvent::decode("ProductCreated", 0, &data).unwrap(),
        event
    );
}
