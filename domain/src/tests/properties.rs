//! Properties over random command sequences: every accepted decision's events,
//! read back from their stored form, fold to exactly the state the decisions
//! saw, and each aggregate's invariants hold after every step.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::{
    address, cart_id, customer_id, eur, line, name, order_id, product_id, qty, reference, sku, t,
    usd,
};
use crate::aggregate::{Aggregate, DomainError};
use crate::cart::{Cart, CartCommand, CartStatus, MAX_LINES};
use crate::event::EventSet;
use crate::inventory::{Inventory, InventoryCommand};
use crate::order::{Order, OrderCommand, OrderLine, OrderPlaced, OrderStatus};
use crate::values::{Carrier, Currency, Money, Tracking};

/// What one step did: the state before, the decision, and the state after
/// the accepted events were applied.
struct Step<'a, A: Aggregate> {
    before: &'a A,
    command: &'a A::Command,
    result: &'a Result<Vec<A::Event>, DomainError>,
    after: &'a A,
}

/// Decides each command on the running state, applies the accepted events,
/// checks `invariant` after every step, and finally checks that all emitted
/// events, through encode → decode, fold from the default state to the
/// running state.
fn run<A>(
    commands: &[A::Command],
    mut invariant: impl FnMut(Step<'_, A>) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError>
where
    A: Aggregate + PartialEq,
    A::Event: PartialEq,
{
    let mut state = A::default();
    let mut emitted = Vec::new();
    for command in commands {
        let before = state.clone();
        let result = state.decide(command);
        if let Ok(events) = &result {
            for e in events {
                state.evolve(e);
            }
            emitted.extend(events.iter().cloned());
        } else {
            prop_assert_eq!(&state, &before, "a refusal changes nothing");
        }
        invariant(Step {
            before: &before,
            command,
            result: &result,
            after: &state,
        })?;
    }
    let mut decoded = Vec::with_capacity(emitted.len());
    for e in &emitted {
        match A::Event::decode(e.event_type(), e.schema_version(), &e.encode()) {
            Ok(d) => decoded.push(d),
            Err(err) => return Err(TestCaseError::fail(format!("{e:?} does not decode: {err}"))),
        }
    }
    prop_assert_eq!(&decoded, &emitted, "events survive their stored form");
    prop_assert_eq!(
        A::fold(&decoded),
        state,
        "the fold reproduces the running state"
    );
    Ok(())
}

// ---------------------------------------------------------------- inventory

#[derive(Debug, Clone)]
enum StockOp {
    Receive(u32),
    Reserve(u128, u32),
    Release(u128),
    Ship(u128),
}

fn stock_op() -> impl Strategy<Value = StockOp> {
    let order = 0..4u128;
    prop_oneof![
        (1..=5u32).prop_map(StockOp::Receive),
        (order.clone(), 1..=5u32).prop_map(|(o, q)| StockOp::Reserve(o, q)),
        order.clone().prop_map(StockOp::Release),
        order.prop_map(StockOp::Ship),
    ]
}

fn stock_command(i: usize, op: &StockOp) -> InventoryCommand {
    let at = t(i as i64);
    match *op {
        StockOp::Receive(q) => InventoryCommand::Receive {
            sku: sku("MUG-1"),
            quantity: qty(q),
            at,
        },
        StockOp::Reserve(o, q) => InventoryCommand::Reserve {
            sku: sku("MUG-1"),
            order_id: order_id(o),
            quantity: qty(q),
            at,
        },
        StockOp::Release(o) => InventoryCommand::Release {
            order_id: order_id(o),
            at,
        },
        StockOp::Ship(o) => InventoryCommand::Ship {
            order_id: order_id(o),
            at,
        },
    }
}

fn check_stock(step: Step<'_, Inventory>) -> Result<(), TestCaseError> {
    let s = step.after;
    let sum: u64 = s.reservations.values().map(|q| u64::from(q.get())).sum();
    prop_assert!(
        s.reserved <= s.on_hand,
        "reserved {} > on hand {}",
        s.reserved,
        s.on_hand
    );
    prop_assert_eq!(s.reserved, sum, "reserved is the sum of reservations");
    prop_assert_eq!(s.available(), s.on_hand - s.reserved);
    let before = step.before;
    match (step.command, step.result) {
        (
            InventoryCommand::Reserve {
                order_id, quantity, ..
            },
            Ok(events),
        ) => {
            if events.is_empty() {
                prop_assert_eq!(before.reservations.get(order_id), Some(quantity));
            } else {
                prop_assert!(before.available() >= u64::from(quantity.get()));
            }
        }
        (
            InventoryCommand::Reserve {
                order_id, quantity, ..
            },
            Err(e),
        ) => match e {
            DomainError::InsufficientStock { .. } => {
                prop_assert!(!before.reservations.contains_key(order_id));
                prop_assert!(before.available() < u64::from(quantity.get()));
            }
            DomainError::AlreadyExists(_) => {
                prop_assert!(before.reservations.contains_key(order_id));
            }
            other => prop_assert!(false, "unexpected refusal {other:?}"),
        },
        (InventoryCommand::Release { order_id, .. }, Ok(events)) => {
            prop_assert_eq!(
                events.is_empty(),
                !before.reservations.contains_key(order_id)
            );
            prop_assert!(!s.reservations.contains_key(order_id));
            prop_assert_eq!(s.on_hand, before.on_hand);
        }
        (InventoryCommand::Ship { order_id, .. }, Ok(_)) => {
            let q = u64::from(before.reservations[order_id].get());
            prop_assert_eq!(s.on_hand, before.on_hand - q);
            prop_assert_eq!(s.available(), before.available());
        }
        (InventoryCommand::Ship { order_id, .. }, Err(e)) => {
            prop_assert_eq!(e, &DomainError::NoReservation(*order_id));
            prop_assert!(!before.reservations.contains_key(order_id));
        }
        (InventoryCommand::Receive { quantity, .. }, Ok(_)) => {
            prop_assert_eq!(s.on_hand, before.on_hand + u64::from(quantity.get()));
        }
        (command, Err(e)) => prop_assert!(false, "{command:?} refused with {e:?}"),
    }
    Ok(())
}

// --------------------------------------------------------------------- cart

#[derive(Debug, Clone)]
enum CartOp {
    Set {
        product: u128,
        price: i64,
        in_usd: bool,
        quantity: u32,
    },
    Remove(u128),
    CheckOut,
    Refuse,
}

fn cart_op() -> impl Strategy<Value = CartOp> {
    let product = 0..6u128;
    prop_oneof![
        6 => (product.clone(), 0..=500i64, prop::bool::weighted(0.1), 1..=5u32).prop_map(
            |(product, price, in_usd, quantity)| CartOp::Set { product, price, in_usd, quantity }
        ),
        2 => product.prop_map(CartOp::Remove),
        1 => Just(CartOp::CheckOut),
        1 => Just(CartOp::Refuse),
    ]
}

fn cart_command(i: usize, op: &CartOp) -> CartCommand {
    let at = t(i as i64);
    match *op {
        CartOp::Set {
            product,
            price,
            in_usd,
            quantity,
        } => {
            let price = if in_usd { usd(price) } else { eur(price) };
            CartCommand::SetItem {
                line: line(product, price, quantity),
                at,
            }
        }
        CartOp::Remove(product) => CartCommand::RemoveItem {
            product_id: product_id(product),
            at,
        },
        CartOp::CheckOut => CartCommand::CheckOut {
            order_id: order_id(i as u128),
            at,
        },
        CartOp::Refuse => CartCommand::RecordRefusal {
            refusal: DomainError::InsufficientStock {
                skus: vec![sku("SKU-1")],
            },
            at,
        },
    }
}

fn cart_commands(ops: &[CartOp]) -> Vec<CartCommand> {
    let create = CartCommand::Create {
        cart_id: cart_id(1),
        customer_id: customer_id(1),
        currency: Currency::parse("GBP").unwrap(),
        at: t(0),
    };
    std::iter::once(create)
        .chain(
            ops.iter()
                .enumerate()
                .map(|(i, op)| cart_command(i + 1, op)),
        )
        .collect()
}

fn check_cart(step: Step<'_, Cart>) -> Result<(), TestCaseError> {
    let Some(cart) = &step.after.state else {
        return Err(TestCaseError::fail("the cart was created first"));
    };
    prop_assert!(cart.lines.len() <= MAX_LINES);
    let mut products: Vec<_> = cart.lines.iter().map(|l| l.product_id).collect();
    products.sort();
    products.dedup();
    prop_assert_eq!(products.len(), cart.lines.len(), "one line per product");
    if let Some(first) = cart.lines.first() {
        let currency = first.unit_price.currency;
        prop_assert!(cart.lines.iter().all(|l| l.unit_price.currency == currency));
        let sum: i64 = cart
            .lines
            .iter()
            .map(|l| l.line_total().unwrap().amount)
            .sum();
        prop_assert_eq!(
            cart.total(),
            Ok(Money {
                amount: sum,
                currency
            })
        );
    } else {
        prop_assert_eq!(cart.total(), Ok(Money::zero(cart.currency)));
    }
    if let Some(before) = &step.before.state {
        if before.status != CartStatus::Open {
            prop_assert_eq!(&before.lines, &cart.lines, "a checked-out cart is frozen");
            prop_assert_eq!(before.status, cart.status);
        }
        if let (CartCommand::CheckOut { order_id, .. }, Ok(_)) = (step.command, step.result) {
            prop_assert!(!before.lines.is_empty());
            prop_assert_eq!(
                cart.status,
                CartStatus::CheckedOut {
                    order_id: *order_id
                }
            );
        }
    }
    Ok(())
}

// -------------------------------------------------------------------- order

#[derive(Debug, Clone)]
enum OrderOp {
    Pay {
        amount: i64,
        reference: u8,
        in_usd: bool,
    },
    Cancel,
    Ship(u8),
}

fn order_op() -> impl Strategy<Value = OrderOp> {
    prop_oneof![
        6 => (0..=12i64, 0..4u8, prop::bool::weighted(0.1)).prop_map(
            |(amount, reference, in_usd)| OrderOp::Pay { amount, reference, in_usd }
        ),
        1 => Just(OrderOp::Cancel),
        2 => (0..2u8).prop_map(OrderOp::Ship),
    ]
}

fn placement(total: i64) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id(1),
        customer_id: customer_id(1),
        cart_id: cart_id(1),
        lines: vec![OrderLine {
            product_id: product_id(1),
            sku: sku("SKU-1"),
            name: name("Product 1"),
            unit_price: eur(total),
            quantity: qty(1),
            line_total: eur(total),
        }],
        total: eur(total),
        shipping_address: address(),
        placed_at: t(0),
    }
}

fn order_commands(total: i64, ops: &[OrderOp]) -> Vec<OrderCommand> {
    let place = OrderCommand::Place(Box::new(placement(total)));
    std::iter::once(place)
        .chain(ops.iter().enumerate().map(|(i, op)| {
            let at = t(i as i64 + 1);
            match *op {
                OrderOp::Pay {
                    amount,
                    reference: r,
                    in_usd,
                } => OrderCommand::Pay {
                    amount: if in_usd { usd(amount) } else { eur(amount) },
                    reference: reference(&format!("r{r}")),
                    at,
                },
                OrderOp::Cancel => OrderCommand::Cancel { at },
                OrderOp::Ship(n) => OrderCommand::Ship {
                    carrier: Carrier::parse("DHL").unwrap(),
                    tracking: Tracking::parse(&format!("T{n}")).unwrap(),
                    at,
                },
            }
        }))
        .collect()
}

fn check_order(step: Step<'_, Order>) -> Result<(), TestCaseError> {
    let Some(order) = &step.after.state else {
        return Err(TestCaseError::fail("the order was placed first"));
    };
    let total = order.placed.total;
    prop_assert_eq!(order.paid.currency, total.currency);
    prop_assert!(0 <= order.paid.amount && order.paid.amount <= total.amount);
    let mut refs: Vec<_> = order.payments.iter().map(|(r, _)| r.clone()).collect();
    refs.sort();
    refs.dedup();
    prop_assert_eq!(refs.len(), order.payments.len(), "a reference pays once");
    prop_assert_eq!(order.history.last().map(|h| h.0), Some(order.status));
    prop_assert_eq!(
        order.history.first().map(|h| h.0),
        Some(OrderStatus::Confirmed)
    );
    match order.status {
        OrderStatus::Confirmed => prop_assert!(order.paid.amount < total.amount),
        OrderStatus::Paid => prop_assert_eq!(order.paid, total),
        OrderStatus::Shipped => {
            prop_assert_eq!(order.paid, total);
            prop_assert!(order.shipment.is_some());
        }
        OrderStatus::Cancelled => prop_assert!(order.shipment.is_none()),
    }
    if let Some(before) = &step.before.state
        && matches!(before.status, OrderStatus::Cancelled | OrderStatus::Shipped)
    {
        prop_assert_eq!(before, order, "cancelled and shipped orders are final");
    }
    Ok(())
}

proptest! {
    #[test]
    fn inventory_decisions_fold_back_and_keep_stock_consistent(
        ops in prop::collection::vec(stock_op(), 0..60)
    ) {
        let commands: Vec<_> = ops.iter().enumerate().map(|(i, op)| stock_command(i, op)).collect();
        run::<Inventory>(&commands, check_stock)?;
    }

    #[test]
    fn cart_decisions_fold_back_and_keep_one_currency(
        ops in prop::collection::vec(cart_op(), 0..40)
    ) {
        run::<Cart>(&cart_commands(&ops), check_cart)?;
    }

    #[test]
    fn order_decisions_fold_back_and_never_overpay(
        total in 0..=20i64,
        ops in prop::collection::vec(order_op(), 0..30)
    ) {
        run::<Order>(&order_commands(total, &ops), check_order)?;
    }
}
