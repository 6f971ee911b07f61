use super::{
    address, cart_id, customer_id, eur, name, order_id, product_id, qty, reference, sku, t, usd,
};
use crate::aggregate::{Aggregate, DomainError};
use crate::order::{
    Order, OrderCancelled, OrderCommand, OrderEvent, OrderLine, OrderPaid, OrderPlaced,
    OrderShipped, OrderStatus, PaymentReceived,
};
use crate::testing::given;
use crate::values::{Carrier, Money, ShippingAddress, Tracking};

fn order_line(n: u128, unit_price: Money, quantity: u32) -> OrderLine {
    OrderLine {
        product_id: product_id(n),
        sku: sku(&format!("SKU-{n}")),
        name: name(&format!("Product {n}")),
        unit_price,
        quantity: qty(quantity),
        line_total: unit_price.times(qty(quantity)).unwrap(),
    }
}

/// An order of 2 × 3.00 + 1 × 4.00 = 10.00 EUR.
fn placement() -> OrderPlaced {
    placement_of(vec![order_line(1, eur(300), 2), order_line(2, eur(400), 1)])
}

fn placement_of(lines: Vec<OrderLine>) -> OrderPlaced {
    let total = lines
        .iter()
        .map(|l| l.line_total)
        .reduce(|a, b| a.plus(b).unwrap())
        .unwrap();
    OrderPlaced {
        order_id: order_id(1),
        customer_id: customer_id(1),
        cart_id: cart_id(1),
        lines,
        total,
        shipping_address: address(),
        placed_at: t(0),
    }
}

fn placed() -> OrderEvent {
    placement().into()
}

fn payment(amount: Money, r: &str, paid_total: Money, at: i64) -> OrderEvent {
    PaymentReceived {
        amount,
        reference: reference(r),
        paid_total,
        at: t(at),
    }
    .into()
}

fn paid(at: i64) -> OrderEvent {
    OrderPaid { at: t(at) }.into()
}

fn cancelled(refund_due: Option<Money>) -> OrderEvent {
    OrderCancelled {
        refund_due,
        at: t(5),
    }
    .into()
}

fn shipped() -> OrderEvent {
    OrderShipped {
        carrier: carrier("DHL"),
        tracking: tracking("TRACK-1"),
        at: t(6),
    }
    .into()
}

/// Placed and paid in full with reference `r1`.
fn paid_order() -> Vec<OrderEvent> {
    vec![placed(), payment(eur(1000), "r1", eur(1000), 2), paid(2)]
}

fn shipped_order() -> Vec<OrderEvent> {
    let mut events = paid_order();
    events.push(shipped());
    events
}

fn cancelled_order() -> Vec<OrderEvent> {
    vec![placed(), cancelled(None)]
}

fn carrier(raw: &str) -> Carrier {
    Carrier::parse(raw).unwrap()
}

fn tracking(raw: &str) -> Tracking {
    Tracking::parse(raw).unwrap()
}

fn place(placed: OrderPlaced) -> OrderCommand {
    OrderCommand::Place(Box::new(placed))
}

fn pay(amount: Money, r: &str, at: i64) -> OrderCommand {
    OrderCommand::Pay {
        amount,
        reference: reference(r),
        at: t(at),
    }
}

fn cancel() -> OrderCommand {
    OrderCommand::Cancel { at: t(5) }
}

fn ship(tracking_code: &str) -> OrderCommand {
    OrderCommand::Ship {
        carrier: carrier("DHL"),
        tracking: tracking(tracking_code),
        at: t(6),
    }
}

fn invalid(state: &'static str, action: &'static str) -> DomainError {
    DomainError::InvalidState {
        entity: "order",
        state,
        action,
    }
}

fn status(order: &Order) -> OrderStatus {
    order.state().unwrap().status
}

#[test]
fn placing_confirms_the_order() {
    let order = given::<Order>([]).when(place(placement())).then([placed()]);
    let state = order.state().unwrap();
    assert_eq!(state.status, OrderStatus::Confirmed);
    assert_eq!(state.paid, eur(0));
    assert_eq!(state.placed.total, eur(1000));
    assert_eq!(state.history, [(OrderStatus::Confirmed, t(0))]);
    assert!(
        matches!(state.placed.shipping_address, ShippingAddress::Structured(ref a) if a.country == "DE")
    );
}

#[test]
fn placing_twice_is_refused() {
    given::<Order>([placed()])
        .when(place(placement()))
        .then_error(DomainError::AlreadyExists("order"));
}

#[test]
fn a_zero_total_order_is_paid_at_once() {
    let free = placement_of(vec![order_line(1, eur(0), 3)]);
    let order = given::<Order>([])
        .when(place(free.clone()))
        .then([free.clone().into(), paid(0)]);
    assert_eq!(status(&order), OrderStatus::Paid);
    assert_eq!(order.state().unwrap().paid, eur(0));
    given::<Order>([free.into(), paid(0)])
        .when(pay(eur(1), "r1", 1))
        .then_error(invalid("paid", "pay"));
}

#[test]
fn commands_on_a_missing_order_find_nothing() {
    for command in [pay(eur(1), "r1", 1), cancel(), ship("TRACK-1")] {
        given::<Order>([])
            .when(command)
            .then_error(DomainError::NotFound("order"));
    }
}

#[test]
fn a_partial_payment_leaves_the_order_confirmed() {
    let order = given::<Order>([placed()])
        .when(pay(eur(400), "r1", 1))
        .then([payment(eur(400), "r1", eur(400), 1)]);
    let state = order.state().unwrap();
    assert_eq!(state.status, OrderStatus::Confirmed);
    assert_eq!(state.paid, eur(400));
    assert_eq!(state.payments, [(reference("r1"), eur(400))]);
}

#[test]
fn the_payment_that_covers_the_total_pays_the_order() {
    let order = given::<Order>([placed(), payment(eur(400), "r1", eur(400), 1)])
        .when(pay(eur(600), "r2", 2))
        .then([payment(eur(600), "r2", eur(1000), 2), paid(2)]);
    let state = order.state().unwrap();
    assert_eq!(state.status, OrderStatus::Paid);
    assert_eq!(state.paid, eur(1000));
    assert_eq!(
        state.payments,
        [(reference("r1"), eur(400)), (reference("r2"), eur(600))]
    );
    assert_eq!(
        state.history,
        [(OrderStatus::Confirmed, t(0)), (OrderStatus::Paid, t(2))]
    );
}

#[test]
fn paying_in_full_at_once_pays_the_order() {
    given::<Order>([placed()])
        .when(pay(eur(1000), "r1", 2))
        .then(paid_order()[1..].to_vec());
}

#[test]
fn paying_more_than_outstanding_is_refused() {
    given::<Order>([placed()])
        .when(pay(eur(1001), "r1", 1))
        .then_error(DomainError::invalid(
            "amount",
            "must be between 1 and the outstanding 1000",
        ));
    given::<Order>([placed(), payment(eur(400), "r1", eur(400), 1)])
        .when(pay(eur(601), "r2", 2))
        .then_error(DomainError::invalid(
            "amount",
            "must be between 1 and the outstanding 600",
        ));
}

#[test]
fn paying_nothing_is_refused() {
    given::<Order>([placed()])
        .when(pay(eur(0), "r1", 1))
        .then_error(DomainError::invalid(
            "amount",
            "must be between 1 and the outstanding 1000",
        ));
}

#[test]
fn paying_in_another_currency_is_refused() {
    given::<Order>([placed()])
        .when(pay(usd(1000), "r1", 1))
        .then_error(DomainError::CurrencyMismatch(
            "the order is in EUR, the payment in USD".into(),
        ));
}

#[test]
fn paying_with_a_reference_already_used_changes_nothing() {
    let partly_paid = [placed(), payment(eur(400), "r1", eur(400), 1)];
    given::<Order>(partly_paid.clone())
        .when(pay(eur(400), "r1", 2))
        .then([]);
    // A reference reused for another amount is refused, not taken as a repeat.
    given::<Order>(partly_paid)
        .when(pay(eur(600), "r1", 2))
        .then_error(DomainError::invalid(
            "reference",
            "this reference was already used for another amount",
        ));
    // Also once the order has moved on.
    given::<Order>(paid_order())
        .when(pay(eur(1000), "r1", 3))
        .then([]);
    given::<Order>(shipped_order())
        .when(pay(eur(1000), "r1", 7))
        .then([]);
}

#[test]
fn only_a_confirmed_order_takes_new_payments() {
    given::<Order>(paid_order())
        .when(pay(eur(1), "r2", 3))
        .then_error(invalid("paid", "pay"));
    given::<Order>(shipped_order())
        .when(pay(eur(1), "r2", 7))
        .then_error(invalid("shipped", "pay"));
    given::<Order>(cancelled_order())
        .when(pay(eur(1), "r2", 7))
        .then_error(invalid("cancelled", "pay"));
}

#[test]
fn a_paid_order_ships() {
    let order = given::<Order>(paid_order())
        .when(ship("TRACK-1"))
        .then([shipped()]);
    let state = order.state().unwrap();
    assert_eq!(state.status, OrderStatus::Shipped);
    assert_eq!(state.shipment, Some((carrier("DHL"), tracking("TRACK-1"))));
    assert_eq!(
        state.history,
        [
            (OrderStatus::Confirmed, t(0)),
            (OrderStatus::Paid, t(2)),
            (OrderStatus::Shipped, t(6)),
        ]
    );
}

#[test]
fn only_a_paid_order_ships() {
    given::<Order>([placed()])
        .when(ship("TRACK-1"))
        .then_error(invalid("confirmed", "ship"));
    given::<Order>([placed(), payment(eur(400), "r1", eur(400), 1)])
        .when(ship("TRACK-1"))
        .then_error(invalid("confirmed", "ship"));
    given::<Order>(cancelled_order())
        .when(ship("TRACK-1"))
        .then_error(invalid("cancelled", "ship"));
}

#[test]
fn shipping_again_with_the_same_tracking_changes_nothing() {
    given::<Order>(shipped_order())
        .when(ship("TRACK-1"))
        .then([]);
}

#[test]
fn shipping_again_with_another_tracking_is_refused() {
    given::<Order>(shipped_order())
        .when(ship("TRACK-2"))
        .then_error(invalid("shipped", "ship"));
    given::<Order>(shipped_order())
        .when(OrderCommand::Ship {
            carrier: carrier("UPS"),
            tracking: tracking("TRACK-1"),
            at: t(7),
        })
        .then_error(invalid("shipped", "ship"));
}

#[test]
fn cancelling_an_unpaid_order_owes_nothing() {
    let order = given::<Order>([placed()])
        .when(cancel())
        .then([cancelled(None)]);
    assert_eq!(status(&order), OrderStatus::Cancelled);
}

#[test]
fn cancelling_a_partly_paid_order_owes_back_what_was_paid() {
    given::<Order>([placed(), payment(eur(400), "r1", eur(400), 1)])
        .when(cancel())
        .then([cancelled(Some(eur(400)))]);
}

#[test]
fn cancelling_a_paid_order_owes_back_the_total() {
    let order = given::<Order>(paid_order())
        .when(cancel())
        .then([cancelled(Some(eur(1000)))]);
    assert_eq!(
        order.state().unwrap().history.last(),
        Some(&(OrderStatus::Cancelled, t(5)))
    );
}

#[test]
fn cancelling_a_free_order_owes_nothing() {
    let free = placement_of(vec![order_line(1, eur(0), 1)]);
    given::<Order>([free.into(), paid(0)])
        .when(cancel())
        .then([cancelled(None)]);
}

#[test]
fn cancelling_a_cancelled_order_changes_nothing() {
    given::<Order>(cancelled_order()).when(cancel()).then([]);
}

#[test]
fn a_shipped_order_cannot_be_cancelled() {
    given::<Order>(shipped_order())
        .when(cancel())
        .then_error(invalid("shipped", "cancel"));
}

#[test]
fn order_events_before_placement_are_ignored_by_the_fold() {
    let stray = [
        payment(eur(1), "r1", eur(1), 1),
        paid(1),
        cancelled(None),
        shipped(),
    ];
    assert_eq!(Order::fold(&stray), Order::default());
}

/// A valid price (20,000.00 EUR) times a valid quantity (a million): each
/// input is within `Money::MAX_AMOUNT`, the line total is not.
fn big_placement() -> OrderPlaced {
    let big = placement_of(vec![order_line(1, eur(2_000_000), 1_000_000)]);
    assert!(big.total.amount > Money::MAX_AMOUNT);
    big
}

#[test]
fn an_order_above_the_largest_single_amount_survives_its_stored_form() {
    // `then` decodes every event it receives and fails on a DecodeError.
    given::<Order>([])
        .when(place(big_placement()))
        .then([big_placement().into()]);
}

#[test]
fn a_paid_total_above_the_largest_single_amount_survives_its_stored_form() {
    let big = big_placement();
    let total = big.total;
    let first = eur(Money::MAX_AMOUNT);
    let rest = Money {
        amount: total.amount - first.amount,
        ..first
    };
    given::<Order>([big.into(), payment(first, "r1", first, 1)])
        .when(pay(rest, "r2", 2))
        .then([payment(rest, "r2", total, 2), paid(2)]);
}
