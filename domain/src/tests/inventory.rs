use super::{order_id, qty, sku, t};
use crate::aggregate::{Aggregate, DomainError};
use crate::inventory::{
    Inventory, InventoryCommand, InventoryEvent, StockReceived, StockReleased, StockReserved,
    StockShipped,
};
use crate::testing::given;
use crate::values::OrderId;

fn received(n: u32) -> InventoryEvent {
    StockReceived {
        sku: sku("MUG-1"),
        quantity: qty(n),
        at: t(0),
    }
    .into()
}

fn reserved(order: u128, n: u32) -> InventoryEvent {
    StockReserved {
        sku: sku("MUG-1"),
        order_id: order_id(order),
        quantity: qty(n),
        at: t(1),
    }
    .into()
}

fn released(order: u128, n: u32) -> InventoryEvent {
    StockReleased {
        sku: sku("MUG-1"),
        order_id: order_id(order),
        quantity: qty(n),
        at: t(2),
    }
    .into()
}

fn shipped(order: u128, n: u32) -> InventoryEvent {
    StockShipped {
        sku: sku("MUG-1"),
        order_id: order_id(order),
        quantity: qty(n),
        at: t(2),
    }
    .into()
}

fn receive(n: u32) -> InventoryCommand {
    InventoryCommand::Receive {
        sku: sku("MUG-1"),
        quantity: qty(n),
        at: t(0),
    }
}

fn reserve(order: u128, n: u32) -> InventoryCommand {
    InventoryCommand::Reserve {
        sku: sku("MUG-1"),
        order_id: order_id(order),
        quantity: qty(n),
        at: t(1),
    }
}

fn release(order: u128) -> InventoryCommand {
    InventoryCommand::Release {
        order_id: order_id(order),
        at: t(2),
    }
}

fn ship(order: u128) -> InventoryCommand {
    InventoryCommand::Ship {
        order_id: order_id(order),
        at: t(2),
    }
}

fn assert_stock(state: &Inventory, on_hand: u64, reserved: u64, available: u64) {
    assert_eq!(
        (state.on_hand, state.reserved, state.available()),
        (on_hand, reserved, available),
        "(on_hand, reserved, available)"
    );
}

#[test]
fn receiving_adds_to_stock_on_hand() {
    let state = given::<Inventory>([]).when(receive(5)).then([received(5)]);
    assert_eq!(state.sku, Some(sku("MUG-1")));
    assert_stock(&state, 5, 0, 5);
    let state = given::<Inventory>([received(5)])
        .when(receive(3))
        .then([received(3)]);
    assert_stock(&state, 8, 0, 8);
}

#[test]
fn receiving_beyond_the_largest_stock_is_refused() {
    let full = Inventory {
        sku: Some(sku("MUG-1")),
        on_hand: i64::MAX as u64,
        ..Inventory::default()
    };
    assert_eq!(
        full.decide(&receive(1)),
        Err(DomainError::invalid(
            "quantity",
            "stock on hand would overflow"
        ))
    );
    let almost = Inventory {
        on_hand: i64::MAX as u64 - 1,
        ..full
    };
    assert!(almost.decide(&receive(1)).is_ok());
}

#[test]
fn reserving_holds_stock_for_the_order() {
    let state = given::<Inventory>([received(5)])
        .when(reserve(1, 2))
        .then([reserved(1, 2)]);
    assert_stock(&state, 5, 2, 3);
    assert_eq!(state.reservations.get(&order_id(1)), Some(&qty(2)));
}

#[test]
fn reserving_everything_available_is_allowed() {
    let state = given::<Inventory>([received(5), reserved(1, 2)])
        .when(reserve(2, 3))
        .then([reserved(2, 3)]);
    assert_stock(&state, 5, 5, 0);
    assert_eq!(state.reservations.len(), 2);
}

#[test]
fn reserving_more_than_available_names_the_sku() {
    given::<Inventory>([received(5), reserved(1, 2)])
        .when(reserve(2, 4))
        .then_error(DomainError::InsufficientStock {
            skus: vec![sku("MUG-1")],
        });
}

#[test]
fn reserving_stock_never_received_is_refused() {
    given::<Inventory>([])
        .when(reserve(1, 1))
        .then_error(DomainError::InsufficientStock {
            skus: vec![sku("MUG-1")],
        });
}

#[test]
fn reserving_again_for_the_same_order_and_quantity_changes_nothing() {
    // Idempotent even though nothing is available any more.
    given::<Inventory>([received(2), reserved(1, 2)])
        .when(reserve(1, 2))
        .then([]);
}

#[test]
fn reserving_another_quantity_for_a_reserved_order_is_refused() {
    for n in [1, 3] {
        given::<Inventory>([received(5), reserved(1, 2)])
            .when(reserve(1, n))
            .then_error(DomainError::AlreadyExists("reservation"));
    }
}

#[test]
fn releasing_gives_the_reserved_quantity_back() {
    let state = given::<Inventory>([received(5), reserved(1, 2), reserved(2, 1)])
        .when(release(1))
        .then([released(1, 2)]);
    assert_stock(&state, 5, 1, 4);
    assert!(!state.reservations.contains_key(&order_id(1)));
}

#[test]
fn releasing_a_reservation_that_does_not_exist_changes_nothing() {
    given::<Inventory>([]).when(release(1)).then([]);
    given::<Inventory>([received(5), reserved(2, 1)])
        .when(release(1))
        .then([]);
    given::<Inventory>([received(5), reserved(1, 2), released(1, 2)])
        .when(release(1))
        .then([]);
}

#[test]
fn shipping_takes_the_reservation_out_of_stock_on_hand() {
    let state = given::<Inventory>([received(5), reserved(1, 2), reserved(2, 1)])
        .when(ship(1))
        .then([shipped(1, 2)]);
    assert_stock(&state, 3, 1, 2);
    assert!(!state.reservations.contains_key(&order_id(1)));
}

#[test]
fn shipping_requires_a_reservation() {
    let no_reservation = DomainError::NoReservation(order_id(1));
    given::<Inventory>([received(5)])
        .when(ship(1))
        .then_error(no_reservation.clone());
    given::<Inventory>([received(5), reserved(1, 2), released(1, 2)])
        .when(ship(1))
        .then_error(no_reservation.clone());
    given::<Inventory>([received(5), reserved(1, 2), shipped(1, 2)])
        .when(ship(1))
        .then_error(no_reservation);
}

#[test]
fn a_released_order_can_reserve_again() {
    given::<Inventory>([received(5), reserved(1, 2), released(1, 2)])
        .when(reserve(1, 4))
        .then([reserved(1, 4)]);
}

#[test]
fn available_never_goes_negative() {
    // A state no decision produces, but `available` must still not wrap.
    let odd = Inventory {
        on_hand: 1,
        reserved: 3,
        ..Inventory::default()
    };
    assert_eq!(odd.available(), 0);
    // Shipping everything leaves nothing, not less than nothing.
    let state = given::<Inventory>([received(3), reserved(1, 3)])
        .when(ship(1))
        .then([shipped(1, 3)]);
    assert_stock(&state, 0, 0, 0);
    given::<Inventory>([received(3), reserved(1, 3), shipped(1, 3)])
        .when(reserve(2, 1))
        .then_error(DomainError::InsufficientStock {
            skus: vec![sku("MUG-1")],
        });
}

#[test]
fn stray_release_and_ship_events_are_ignored_by_the_fold() {
    let state = Inventory::fold(&[received(5), released(1, 2), shipped(2, 3)]);
    assert_stock(&state, 5, 0, 5);
}

#[test]
fn reservations_are_kept_per_order() {
    let state = Inventory::fold(&[received(10), reserved(1, 2), reserved(2, 3), reserved(3, 4)]);
    let orders: Vec<OrderId> = state.reservations.keys().copied().collect();
    assert_eq!(orders, [order_id(1), order_id(2), order_id(3)]);
    assert_stock(&state, 10, 9, 1);
}

#[test]
fn an_inventory_stream_holds_one_sku_for_ever() {
    let other = || sku("CUP-9");
    let refusal = || DomainError::invalid("sku", "this inventory holds MUG-1, not CUP-9");
    given::<Inventory>([received(5)])
        .when(InventoryCommand::Receive {
            sku: other(),
            quantity: qty(1),
            at: t(1),
        })
        .then_error(refusal());
    given::<Inventory>([received(5)])
        .when(InventoryCommand::Reserve {
            sku: other(),
            order_id: order_id(1),
            quantity: qty(1),
            at: t(1),
        })
        .then_error(refusal());
}
