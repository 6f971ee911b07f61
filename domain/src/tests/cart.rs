use super::{cart_id, customer_id, eur, line, order_id, product_id, sku, t, usd};
use crate::aggregate::{Aggregate, DomainError};
use crate::cart::{
    Cart, CartCheckedOut, CartCommand, CartCreated, CartEvent, CartItemRemoved, CartItemSet,
    CartLine, CartStatus, CheckoutRefused, MAX_LINES,
};
use crate::testing::given;
use crate::values::{Currency, Money, Quantity};

fn created() -> CartEvent {
    CartCreated {
        cart_id: cart_id(1),
        customer_id: customer_id(1),
        currency: Currency::EUR,
        at: t(0),
    }
    .into()
}

fn item_set(line: CartLine) -> CartEvent {
    CartItemSet { line, at: t(1) }.into()
}

fn checked_out() -> CartEvent {
    CartCheckedOut {
        order_id: order_id(1),
        at: t(3),
    }
    .into()
}

/// A created cart with these lines.
fn cart_with(lines: impl IntoIterator<Item = CartLine>) -> Vec<CartEvent> {
    std::iter::once(created())
        .chain(lines.into_iter().map(item_set))
        .collect()
}

fn set_item(line: CartLine) -> CartCommand {
    CartCommand::SetItem { line, at: t(1) }
}

fn remove(n: u128) -> CartCommand {
    CartCommand::RemoveItem {
        product_id: product_id(n),
        at: t(2),
    }
}

fn check_out() -> CartCommand {
    CartCommand::CheckOut {
        order_id: order_id(1),
        at: t(3),
    }
}

fn record(refusal: DomainError) -> CartCommand {
    CartCommand::RecordRefusal { refusal, at: t(4) }
}

fn lines_of(cart: &Cart) -> Vec<CartLine> {
    cart.state().unwrap().lines.clone()
}

#[test]
fn creating_opens_an_empty_cart() {
    let cart = given::<Cart>([])
        .when(CartCommand::Create {
            cart_id: cart_id(1),
            customer_id: customer_id(1),
            currency: Currency::EUR,
            at: t(0),
        })
        .then([created()]);
    let state = cart.state().unwrap();
    assert_eq!(
        (state.cart_id, state.customer_id),
        (cart_id(1), customer_id(1))
    );
    assert_eq!(state.status, CartStatus::Open);
    assert!(state.lines.is_empty());
    assert_eq!(state.total(), Ok(eur(0)));
}

#[test]
fn creating_twice_is_refused() {
    given::<Cart>([created()])
        .when(CartCommand::Create {
            cart_id: cart_id(1),
            customer_id: customer_id(1),
            currency: Currency::EUR,
            at: t(0),
        })
        .then_error(DomainError::AlreadyExists("cart"));
}

#[test]
fn commands_on_a_missing_cart_find_nothing() {
    for command in [
        set_item(line(1, eur(100), 1)),
        remove(1),
        check_out(),
        record(DomainError::InsufficientStock { skus: vec![] }),
    ] {
        given::<Cart>([])
            .when(command)
            .then_error(DomainError::NotFound("cart"));
    }
}

#[test]
fn setting_an_item_adds_a_line() {
    let cart = given::<Cart>([created()])
        .when(set_item(line(1, eur(250), 2)))
        .then([item_set(line(1, eur(250), 2))]);
    assert_eq!(lines_of(&cart), [line(1, eur(250), 2)]);
    assert_eq!(cart.state().unwrap().total(), Ok(eur(500)));
}

#[test]
fn setting_an_item_again_replaces_its_line_in_place() {
    let cart = given::<Cart>(cart_with([line(1, eur(250), 2), line(2, eur(100), 1)]))
        .when(set_item(line(1, eur(250), 5)))
        .then([item_set(line(1, eur(250), 5))]);
    assert_eq!(
        lines_of(&cart),
        [line(1, eur(250), 5), line(2, eur(100), 1)]
    );
    assert_eq!(cart.state().unwrap().total(), Ok(eur(1350)));
}

#[test]
fn a_new_price_for_the_same_quantity_is_a_change() {
    given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(set_item(line(1, eur(200), 2)))
        .then([item_set(line(1, eur(200), 2))]);
}

#[test]
fn setting_an_identical_line_changes_nothing() {
    given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(set_item(line(1, eur(250), 2)))
        .then([]);
}

fn full_cart() -> Vec<CartEvent> {
    cart_with((0..MAX_LINES as u128).map(|n| line(n, eur(1), 1)))
}

#[test]
fn a_cart_holds_at_most_max_lines_products() {
    given::<Cart>(full_cart())
        .when(set_item(line(1000, eur(1), 1)))
        .then_error(DomainError::invalid(
            "product_id",
            format!("a cart holds at most {MAX_LINES} products"),
        ));
}

#[test]
fn the_last_free_line_can_be_filled() {
    let mut events = full_cart();
    events.pop();
    let cart = given::<Cart>(events)
        .when(set_item(line(1000, eur(1), 1)))
        .then([item_set(line(1000, eur(1), 1))]);
    assert_eq!(lines_of(&cart).len(), MAX_LINES);
}

#[test]
fn a_full_cart_still_changes_its_lines() {
    given::<Cart>(full_cart())
        .when(set_item(line(7, eur(1), 3)))
        .then([item_set(line(7, eur(1), 3))]);
    given::<Cart>(full_cart())
        .when(remove(7))
        .then([CartItemRemoved {
            product_id: product_id(7),
            at: t(2),
        }
        .into()]);
}

#[test]
fn a_product_in_another_currency_is_refused() {
    given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(set_item(line(2, usd(100), 1)))
        .then_error(DomainError::CurrencyMismatch(
            "the cart is in EUR, this product is priced in USD".into(),
        ));
}

#[test]
fn a_line_cannot_move_to_another_currency_while_others_remain() {
    given::<Cart>(cart_with([line(1, eur(250), 2), line(2, eur(100), 1)]))
        .when(set_item(line(1, usd(250), 2)))
        .then_error(DomainError::CurrencyMismatch(
            "the cart is in EUR, this product is priced in USD".into(),
        ));
}

#[test]
fn the_only_line_may_be_repriced_in_another_currency() {
    let cart = given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(set_item(line(1, usd(300), 2)))
        .then([item_set(line(1, usd(300), 2))]);
    assert_eq!(cart.state().unwrap().total(), Ok(usd(600)));
}

#[test]
fn a_cart_total_beyond_any_amount_is_refused() {
    // Each line is the largest price times the largest quantity: 10^18.
    let big = |n| line(n, eur(Money::MAX_AMOUNT), Quantity::MAX);
    let events = cart_with((0..9).map(big));
    given::<Cart>(events)
        .when(set_item(big(9)))
        .then_error(DomainError::invalid("quantity", "cart total is too large"));
}

#[test]
fn a_line_total_beyond_any_amount_is_refused() {
    // Money's fields are public, so an unchecked price can reach the cart.
    let huge = Money {
        amount: i64::MAX / 2,
        currency: eur(0).currency,
    };
    given::<Cart>([created()])
        .when(set_item(line(1, huge, 3)))
        .then_error(DomainError::invalid("quantity", "line total is too large"));
}

#[test]
fn removing_a_line_drops_it() {
    let cart = given::<Cart>(cart_with([line(1, eur(250), 2), line(2, eur(100), 1)]))
        .when(remove(1))
        .then([CartItemRemoved {
            product_id: product_id(1),
            at: t(2),
        }
        .into()]);
    assert_eq!(lines_of(&cart), [line(2, eur(100), 1)]);
}

#[test]
fn removing_a_product_not_in_the_cart_changes_nothing() {
    given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(remove(2))
        .then([]);
}

#[test]
fn checking_out_closes_the_cart_for_the_order() {
    let cart = given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(check_out())
        .then([checked_out()]);
    assert_eq!(
        cart.state().unwrap().status,
        CartStatus::CheckedOut {
            order_id: order_id(1)
        }
    );
}

#[test]
fn an_empty_cart_cannot_check_out() {
    let empty = DomainError::InvalidState {
        entity: "cart",
        state: "empty",
        action: "check out",
    };
    given::<Cart>([created()])
        .when(check_out())
        .then_error(empty.clone());
    let mut emptied = cart_with([line(1, eur(250), 2)]);
    emptied.push(
        CartItemRemoved {
            product_id: product_id(1),
            at: t(2),
        }
        .into(),
    );
    given::<Cart>(emptied).when(check_out()).then_error(empty);
}

#[test]
fn a_checked_out_cart_cannot_change() {
    let mut events = cart_with([line(1, eur(250), 2)]);
    events.push(checked_out());
    let closed = |action| DomainError::InvalidState {
        entity: "cart",
        state: "checked out",
        action,
    };
    given::<Cart>(events.clone())
        .when(set_item(line(2, eur(100), 1)))
        .then_error(closed("change"));
    // Even an identical line: the cart is closed before anything else.
    given::<Cart>(events.clone())
        .when(set_item(line(1, eur(250), 2)))
        .then_error(closed("change"));
    given::<Cart>(events.clone())
        .when(remove(1))
        .then_error(closed("change"));
    given::<Cart>(events.clone())
        .when(remove(2))
        .then_error(closed("change"));
    given::<Cart>(events)
        .when(check_out())
        .then_error(closed("check out"));
}

#[test]
fn a_stock_refusal_is_recorded_with_its_skus() {
    let before = Cart::fold(&cart_with([line(1, eur(250), 2)]));
    let cart = given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(record(DomainError::InsufficientStock {
            skus: vec![sku("SKU-1"), sku("SKU-2")],
        }))
        .then([CheckoutRefused {
            reason: "insufficient_stock".into(),
            skus: vec![sku("SKU-1"), sku("SKU-2")],
            products: vec![],
            at: t(4),
        }
        .into()]);
    assert_eq!(cart, before, "a refusal leaves the cart as it was");
}

#[test]
fn an_availability_refusal_is_recorded_with_its_products() {
    given::<Cart>(cart_with([line(1, eur(250), 2)]))
        .when(record(DomainError::ProductsUnavailable(vec![product_id(
            1,
        )])))
        .then([CheckoutRefused {
            reason: "products_unavailable".into(),
            skus: vec![],
            products: vec![product_id(1)],
            at: t(4),
        }
        .into()]);
}

#[test]
fn other_refusals_are_not_recorded() {
    for refusal in [
        DomainError::InvalidState {
            entity: "cart",
            state: "empty",
            action: "check out",
        },
        DomainError::NotFound("product"),
        DomainError::CurrencyMismatch("x".into()),
        DomainError::invalid("quantity", "too large"),
    ] {
        given::<Cart>([created()]).when(record(refusal)).then([]);
    }
}

#[test]
fn folding_item_events_keeps_one_line_per_product_in_first_added_order() {
    let events = [
        created(),
        item_set(line(1, eur(100), 1)),
        item_set(line(2, eur(50), 4)),
        item_set(line(1, eur(100), 3)),
    ];
    let folded = Cart::fold(&events);
    assert_eq!(
        lines_of(&folded),
        [line(1, eur(100), 3), line(2, eur(50), 4)]
    );
    assert_eq!(folded.state().unwrap().total(), Ok(eur(500)));
}

#[test]
fn cart_events_before_creation_are_ignored_by_the_fold() {
    let stray = [item_set(line(1, eur(1), 1)), checked_out()];
    assert_eq!(Cart::fold(&stray), Cart::default());
}

#[test]
fn an_empty_cart_totals_zero_in_the_currency_it_was_created_in() {
    let pounds = Currency::parse("GBP").unwrap();
    let cart = given::<Cart>([])
        .when(CartCommand::Create {
            cart_id: cart_id(1),
            customer_id: customer_id(1),
            currency: pounds,
            at: t(0),
        })
        .then([CartCreated {
            cart_id: cart_id(1),
            customer_id: customer_id(1),
            currency: pounds,
            at: t(0),
        }
        .into()]);
    assert_eq!(cart.state().unwrap().total(), Ok(Money::zero(pounds)));
    // The first line may be in another currency; the lines set the total's.
    let with_line = given::<Cart>([created()])
        .when(set_item(line(1, usd(300), 2)))
        .then([item_set(line(1, usd(300), 2))]);
    assert_eq!(with_line.state().unwrap().total(), Ok(usd(600)));
    let emptied = given::<Cart>(cart_with([line(1, usd(300), 2)]))
        .when(remove(1))
        .then([CartItemRemoved {
            product_id: product_id(1),
            at: t(2),
        }
        .into()]);
    assert_eq!(emptied.state().unwrap().total(), Ok(eur(0)));
}

#[test]
fn carts_created_before_currencies_were_recorded_are_in_euros() {
    use crate::event::EventSet;
    let v1 = format!(
        r#"{{"cart_id":"{}","customer_id":"{}","at":"2026-11-01T10:00:00Z"}}"#,
        cart_id(1),
        customer_id(1)
    );
    let CartEvent::CartCreated(created) =
        CartEvent::decode("CartCreated", 1, v1.as_bytes()).unwrap()
    else {
        panic!("a CartCreated decodes as one");
    };
    assert_eq!(created.currency, Currency::EUR);
}
