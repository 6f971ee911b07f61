use std::collections::BTreeMap;

use super::{
    address, cart_id, customer_id, eur, line, name, order_id, product_id, qty, reference, sku, t,
};
use crate::aggregate::{Aggregate, DomainError};
use crate::cart::{Cart, CartCheckedOut, CartCreated, CartEvent, CartItemSet, CartStatus};
use crate::event::EventSet;
use crate::inventory::{
    Inventory, InventoryEvent, StockReceived, StockReleased, StockReserved, StockShipped,
};
use crate::order::{
    Order, OrderCancelled, OrderCommand, OrderEvent, OrderLine, OrderPaid, OrderPlaced,
    OrderShipped, OrderStatus,
};
use crate::process::{
    CheckoutDecision, OrderDecision, cancel_order, checkout, order_skus, ship_order,
};
use crate::product::{Product, ProductCreated, ProductDiscontinued, ProductEvent};
use crate::values::{
    Carrier, Category, Currency, Description, Money, ProductId, Sku, Tags, Tracking,
};

/// Folds events onto a state after a trip through their stored form, as the
/// application does when it reads a stream back.
fn apply<A: Aggregate>(state: &mut A, events: &[A::Event]) {
    for e in events {
        let decoded = A::Event::decode(e.event_type(), e.schema_version(), &e.encode())
            .expect("event decodes");
        state.evolve(&decoded);
    }
}

fn sku_of(n: u128) -> Sku {
    sku(&format!("SKU-{n}"))
}

fn product(n: u128, price: Money) -> Product {
    Product::fold(&[ProductEvent::from(ProductCreated {
        product_id: product_id(n),
        sku: sku_of(n),
        name: name(&format!("Product {n}")),
        description: Description::parse("").unwrap(),
        price,
        category: Category::parse("Things").unwrap(),
        tags: Tags::default(),
        created_at: t(0),
    })])
}

fn received(n: u128, on_hand: u32) -> InventoryEvent {
    StockReceived {
        sku: sku_of(n),
        quantity: qty(on_hand),
        at: t(0),
    }
    .into()
}

fn reserved(n: u128, quantity: u32) -> InventoryEvent {
    StockReserved {
        sku: sku_of(n),
        order_id: order_id(1),
        quantity: qty(quantity),
        at: t(10),
    }
    .into()
}

fn released(n: u128, quantity: u32) -> InventoryEvent {
    StockReleased {
        sku: sku_of(n),
        order_id: order_id(1),
        quantity: qty(quantity),
        at: t(20),
    }
    .into()
}

fn stock_shipped(n: u128, quantity: u32) -> InventoryEvent {
    StockShipped {
        sku: sku_of(n),
        order_id: order_id(1),
        quantity: qty(quantity),
        at: t(20),
    }
    .into()
}

fn carrier() -> Carrier {
    Carrier::parse("DHL").unwrap()
}

fn tracking() -> Tracking {
    Tracking::parse("TRACK-1").unwrap()
}

/// A cart, the catalogue and the stock of every SKU, and the order once the
/// cart is checked out.
struct Shop {
    cart: Cart,
    products: BTreeMap<ProductId, Product>,
    stock: BTreeMap<Sku, Inventory>,
    order: Order,
}

impl Shop {
    /// A cart of product `n` lines `(n, unit price, quantity)`, every product
    /// for sale, and `(n, on hand)` stock.
    fn new(lines: &[(u128, Money, u32)], on_hand: &[(u128, u32)]) -> Self {
        let mut cart_events: Vec<CartEvent> = vec![
            CartCreated {
                cart_id: cart_id(1),
                customer_id: customer_id(1),
                currency: Currency::EUR,
                at: t(0),
            }
            .into(),
        ];
        cart_events.extend(lines.iter().map(|&(n, price, quantity)| {
            CartItemSet {
                line: line(n, price, quantity),
                at: t(1),
            }
            .into()
        }));
        Shop {
            cart: Cart::fold(&cart_events),
            products: lines
                .iter()
                .map(|&(n, price, _)| (product_id(n), product(n, price)))
                .collect(),
            stock: on_hand
                .iter()
                .map(|&(n, q)| (sku_of(n), Inventory::fold(&[received(n, q)])))
                .collect(),
            order: Order::default(),
        }
    }

    /// Two lines, 2 × 2.50 of product 1 and 3 × 1.00 of product 2, with
    /// 5 and 3 in stock.
    fn standard() -> Self {
        Shop::new(&[(1, eur(250), 2), (2, eur(100), 3)], &[(1, 5), (2, 3)])
    }

    fn checkout(&self) -> Result<CheckoutDecision, DomainError> {
        checkout(
            &self.cart,
            &self.products,
            &self.stock,
            order_id(1),
            address(),
            t(10),
        )
    }

    fn apply_stock(&mut self, stock: &[(Sku, Vec<InventoryEvent>)]) {
        for (sku, events) in stock {
            apply(self.stock.entry(sku.clone()).or_default(), events);
        }
    }

    /// Checks the cart out and applies the decision everywhere.
    fn checked_out(mut self) -> Self {
        let decision = self.checkout().expect("checkout accepted");
        apply(&mut self.cart, &decision.cart);
        apply(&mut self.order, &decision.order);
        self.apply_stock(&decision.stock);
        self
    }

    fn apply_order(&mut self, decision: &OrderDecision) {
        apply(&mut self.order, &decision.order);
        self.apply_stock(&decision.stock);
    }

    fn paid(mut self) -> Self {
        let total = self.order.state().unwrap().placed.total;
        let events = self
            .order
            .decide(&OrderCommand::Pay {
                amount: total,
                reference: reference("r1"),
                at: t(15),
            })
            .unwrap();
        apply(&mut self.order, &events);
        self
    }

    fn cancel(&self) -> Result<OrderDecision, DomainError> {
        cancel_order(&self.order, &self.stock, t(20))
    }

    fn ship(&self) -> Result<OrderDecision, DomainError> {
        ship_order(&self.order, &self.stock, carrier(), tracking(), t(20))
    }

    fn discontinue(&mut self, n: u128) {
        let product = self.products.get_mut(&product_id(n)).unwrap();
        apply(product, &[ProductDiscontinued { at: t(5) }.into()]);
    }

    /// `(on_hand, reserved, available)` of product `n`'s SKU.
    fn stock_of(&self, n: u128) -> (u64, u64, u64) {
        let i = &self.stock[&sku_of(n)];
        (i.on_hand, i.reserved, i.available())
    }
}

fn order_line(n: u128, unit_price: Money, quantity: u32, line_total: Money) -> OrderLine {
    OrderLine {
        product_id: product_id(n),
        sku: sku_of(n),
        name: name(&format!("Product {n}")),
        unit_price,
        quantity: qty(quantity),
        line_total,
    }
}

fn standard_placement() -> OrderPlaced {
    OrderPlaced {
        order_id: order_id(1),
        customer_id: customer_id(1),
        cart_id: cart_id(1),
        lines: vec![
            order_line(1, eur(250), 2, eur(500)),
            order_line(2, eur(100), 3, eur(300)),
        ],
        total: eur(800),
        shipping_address: address(),
        placed_at: t(10),
    }
}

fn cart_closed() -> DomainError {
    DomainError::InvalidState {
        entity: "cart",
        state: "checked out",
        action: "check out",
    }
}

#[test]
fn checkout_closes_the_cart_places_the_order_and_reserves_every_line() {
    let shop = Shop::standard();
    assert_eq!(
        shop.checkout(),
        Ok(CheckoutDecision {
            cart: vec![
                CartCheckedOut {
                    order_id: order_id(1),
                    at: t(10),
                }
                .into()
            ],
            order: vec![standard_placement().into()],
            stock: vec![
                (sku_of(1), vec![reserved(1, 2)]),
                (sku_of(2), vec![reserved(2, 3)])
            ],
            placed: standard_placement(),
        })
    );
    let shop = shop.checked_out();
    assert_eq!(
        shop.cart.state().unwrap().status,
        CartStatus::CheckedOut {
            order_id: order_id(1)
        }
    );
    assert_eq!(shop.order.state().unwrap().status, OrderStatus::Confirmed);
    assert_eq!(shop.stock_of(1), (5, 2, 3));
    assert_eq!(shop.stock_of(2), (3, 3, 0));
}

#[test]
fn checkout_names_every_sku_short_of_stock() {
    // SKU-2 has too little, SKU-3 has never been received, SKU-1 is fine.
    let shop = Shop::new(
        &[
            (1, eur(100), 1),
            (2, eur(100), 4),
            (3, eur(100), 1),
            (4, eur(100), 2),
        ],
        &[(1, 1), (2, 3), (4, 2)],
    );
    assert_eq!(
        shop.checkout(),
        Err(DomainError::InsufficientStock {
            skus: vec![sku_of(2), sku_of(3)],
        })
    );
}

#[test]
fn checkout_counts_stock_reserved_by_other_orders() {
    let mut shop = Shop::standard();
    let other = StockReserved {
        sku: sku_of(1),
        order_id: order_id(2),
        quantity: qty(4),
        at: t(5),
    };
    apply(shop.stock.get_mut(&sku_of(1)).unwrap(), &[other.into()]);
    assert_eq!(
        shop.checkout(),
        Err(DomainError::InsufficientStock {
            skus: vec![sku_of(1)],
        })
    );
}

#[test]
fn checkout_names_every_product_no_longer_sold() {
    let mut shop = Shop::new(
        &[(1, eur(100), 1), (2, eur(100), 1), (3, eur(100), 1)],
        &[(1, 9), (2, 9), (3, 9)],
    );
    shop.discontinue(1);
    shop.products.remove(&product_id(3));
    assert_eq!(
        shop.checkout(),
        Err(DomainError::ProductsUnavailable(vec![
            product_id(1),
            product_id(3)
        ]))
    );
}

#[test]
fn unavailable_products_are_reported_before_missing_stock() {
    let mut shop = Shop::new(&[(1, eur(100), 1), (2, eur(100), 5)], &[(1, 9), (2, 1)]);
    shop.discontinue(1);
    assert_eq!(
        shop.checkout(),
        Err(DomainError::ProductsUnavailable(vec![product_id(1)]))
    );
}

#[test]
fn a_checked_out_cart_cannot_check_out_again() {
    let shop = Shop::standard().checked_out();
    assert_eq!(shop.checkout(), Err(cart_closed()));
}

#[test]
fn an_empty_or_missing_cart_cannot_check_out() {
    assert_eq!(
        Shop::new(&[], &[]).checkout(),
        Err(DomainError::InvalidState {
            entity: "cart",
            state: "empty",
            action: "check out",
        })
    );
    let mut missing = Shop::standard();
    missing.cart = Cart::default();
    assert_eq!(missing.checkout(), Err(DomainError::NotFound("cart")));
}

#[test]
fn a_free_cart_checks_out_into_a_paid_order() {
    let shop = Shop::new(&[(1, eur(0), 2)], &[(1, 2)]);
    let decision = shop.checkout().unwrap();
    assert_eq!(
        decision.order,
        [
            OrderEvent::from(decision.placed.clone()),
            OrderPaid { at: t(10) }.into()
        ]
    );
    assert_eq!(decision.placed.total, eur(0));
    let shop = shop.checked_out();
    assert_eq!(shop.order.state().unwrap().status, OrderStatus::Paid);
}

#[test]
fn a_retried_checkout_reuses_a_matching_reservation() {
    let mut shop = Shop::standard();
    apply(shop.stock.get_mut(&sku_of(1)).unwrap(), &[reserved(1, 2)]);
    let decision = shop.checkout().unwrap();
    assert_eq!(
        decision.stock,
        [(sku_of(1), vec![]), (sku_of(2), vec![reserved(2, 3)])]
    );
}

#[test]
fn checkout_refuses_a_conflicting_reservation_for_the_same_order() {
    let mut shop = Shop::standard();
    apply(shop.stock.get_mut(&sku_of(1)).unwrap(), &[reserved(1, 1)]);
    assert_eq!(
        shop.checkout(),
        Err(DomainError::AlreadyExists("reservation"))
    );
}

#[test]
fn cancelling_releases_every_reservation() {
    let mut shop = Shop::standard().checked_out();
    let decision = shop.cancel().unwrap();
    assert_eq!(
        decision,
        OrderDecision {
            order: vec![
                OrderCancelled {
                    refund_due: None,
                    at: t(20),
                }
                .into()
            ],
            stock: vec![
                (sku_of(1), vec![released(1, 2)]),
                (sku_of(2), vec![released(2, 3)])
            ],
        }
    );
    shop.apply_order(&decision);
    assert_eq!(shop.order.state().unwrap().status, OrderStatus::Cancelled);
    assert_eq!(shop.stock_of(1), (5, 0, 5));
    assert_eq!(shop.stock_of(2), (3, 0, 3));
}

#[test]
fn cancelling_a_paid_order_owes_a_refund_and_releases_stock() {
    let shop = Shop::standard().checked_out().paid();
    let decision = shop.cancel().unwrap();
    assert_eq!(
        decision.order,
        [OrderCancelled {
            refund_due: Some(eur(800)),
            at: t(20),
        }
        .into()]
    );
    assert_eq!(
        decision.stock,
        [
            (sku_of(1), vec![released(1, 2)]),
            (sku_of(2), vec![released(2, 3)])
        ]
    );
}

#[test]
fn cancelling_releases_only_what_is_still_reserved() {
    let mut shop = Shop::standard().checked_out();
    apply(shop.stock.get_mut(&sku_of(2)).unwrap(), &[released(2, 3)]);
    shop.stock.remove(&sku_of(1));
    assert_eq!(
        shop.cancel().unwrap().stock,
        [(sku_of(1), vec![]), (sku_of(2), vec![])]
    );
}

#[test]
fn cancelling_a_cancelled_order_changes_nothing_anywhere() {
    let mut shop = Shop::standard().checked_out();
    let decision = shop.cancel().unwrap();
    shop.apply_order(&decision);
    assert_eq!(
        shop.cancel(),
        Ok(OrderDecision {
            order: vec![],
            stock: vec![],
        })
    );
}

#[test]
fn a_shipped_order_cannot_be_cancelled() {
    let mut shop = Shop::standard().checked_out().paid();
    let decision = shop.ship().unwrap();
    shop.apply_order(&decision);
    assert_eq!(
        shop.cancel(),
        Err(DomainError::InvalidState {
            entity: "order",
            state: "shipped",
            action: "cancel",
        })
    );
}

#[test]
fn shipping_moves_reserved_stock_out_of_on_hand() {
    let mut shop = Shop::standard().checked_out().paid();
    let decision = shop.ship().unwrap();
    assert_eq!(
        decision,
        OrderDecision {
            order: vec![
                OrderShipped {
                    carrier: carrier(),
                    tracking: tracking(),
                    at: t(20),
                }
                .into()
            ],
            stock: vec![
                (sku_of(1), vec![stock_shipped(1, 2)]),
                (sku_of(2), vec![stock_shipped(2, 3)])
            ],
        }
    );
    shop.apply_order(&decision);
    assert_eq!(shop.order.state().unwrap().status, OrderStatus::Shipped);
    assert_eq!(shop.stock_of(1), (3, 0, 3));
    assert_eq!(shop.stock_of(2), (0, 0, 0));
}

#[test]
fn an_unpaid_order_does_not_ship() {
    let shop = Shop::standard().checked_out();
    assert_eq!(
        shop.ship(),
        Err(DomainError::InvalidState {
            entity: "order",
            state: "confirmed",
            action: "ship",
        })
    );
}

#[test]
fn shipping_again_with_the_same_tracking_changes_nothing_anywhere() {
    let mut shop = Shop::standard().checked_out().paid();
    let decision = shop.ship().unwrap();
    shop.apply_order(&decision);
    assert_eq!(
        shop.ship(),
        Ok(OrderDecision {
            order: vec![],
            stock: vec![],
        })
    );
}

#[test]
fn shipping_requires_every_reservation() {
    let mut shop = Shop::standard().checked_out().paid();
    apply(shop.stock.get_mut(&sku_of(2)).unwrap(), &[released(2, 3)]);
    assert_eq!(shop.ship(), Err(DomainError::NoReservation(order_id(1))));
}

#[test]
fn order_skus_lists_the_lines_skus() {
    let shop = Shop::standard().checked_out();
    assert_eq!(order_skus(&shop.order), Ok(vec![sku_of(1), sku_of(2)]));
    assert_eq!(
        order_skus(&Order::default()),
        Err(DomainError::NotFound("order"))
    );
    assert_eq!(
        Shop::standard().cancel(),
        Err(DomainError::NotFound("order"))
    );
    assert_eq!(Shop::standard().ship(), Err(DomainError::NotFound("order")));
}

#[test]
fn a_large_accepted_checkout_can_be_read_back() {
    // 20,000.00 EUR × 1,000,000: each input is valid, the total is not.
    let shop = Shop::new(&[(1, eur(2_000_000), 1_000_000)], &[(1, 1_000_000)]);
    let decision = shop.checkout().expect("checkout accepted");
    assert!(decision.placed.total.amount > Money::MAX_AMOUNT);
    shop.checked_out(); // decodes every event it applies
}
