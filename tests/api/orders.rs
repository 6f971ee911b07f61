//! Orders: paying, shipping and cancelling, and what each does to stock.

use crate::helpers::{TestApp, spawn_app};

const SKU: &str = "KETTLE";
const PRICE: i64 = 1000;
const STOCK: u32 = 10;

/// A customer's confirmed order.
struct Order {
    token: String,
    id: String,
}

impl Order {
    fn stream(&self) -> String {
        format!("order-{}", self.id)
    }
}

/// A confirmed order for two kettles (total 2000) out of ten in stock.
async fn placed(app: &TestApp) -> Order {
    let product = app.stocked_product(SKU, PRICE, STOCK).await;
    let (_, token) = app.customer("buyer@example.com").await;
    let cart = app.create_cart(&token).await;
    app.set_item(&token, &cart, &product, 2).await.expect(200);
    let id = app
        .checkout(&token, &cart)
        .await
        .expect(201)
        .str("order_id");
    Order { token, id }
}

/// The same order, paid in full.
async fn paid(app: &TestApp) -> Order {
    let order = placed(app).await;
    app.pay(&order.token, &order.id, 2 * PRICE, "PAY-ALL")
        .await
        .expect(200);
    order
}

/// Everything the order touched: its own events and the stock's.
async fn log_of(app: &TestApp, order: &Order) -> (usize, usize) {
    (
        app.stream(&order.stream()).await.len(),
        app.stream(&format!("inventory-{SKU}")).await.len(),
    )
}

#[tokio::test]
async fn an_order_is_paid_once_payments_cover_its_total() {
    let app = spawn_app().await;
    let order = placed(&app).await;

    let partial = app
        .pay(&order.token, &order.id, 500, "PAY-1")
        .await
        .expect(200);
    assert_eq!(partial.body["status"], "confirmed");
    assert_eq!(partial.body["paid"]["amount"], 500);
    let rest = app
        .pay(&order.token, &order.id, 1500, "PAY-2")
        .await
        .expect(200);
    assert_eq!(rest.body["status"], "paid");
    assert_eq!(rest.body["paid"]["amount"], 2000);

    assert_eq!(
        app.event_types(&order.stream()).await,
        [
            "OrderPlaced",
            "PaymentReceived",
            "PaymentReceived",
            "OrderPaid"
        ]
    );
}

#[tokio::test]
async fn an_overpayment_is_refused_and_recorded_nowhere() {
    let app = spawn_app().await;
    let order = placed(&app).await;
    app.pay(&order.token, &order.id, 500, "PAY-1")
        .await
        .expect(200);
    let before = log_of(&app, &order).await;

    let refused = app
        .pay(&order.token, &order.id, 1501, "PAY-2")
        .await
        .expect_problem(422, "validation_failed");

    assert_eq!(refused.error_fields(), ["amount"]);
    assert_eq!(log_of(&app, &order).await, before);
}

#[tokio::test]
async fn only_the_owner_pays_an_order() {
    let app = spawn_app().await;
    let order = placed(&app).await;
    let (_, stranger) = app.customer("stranger@example.com").await;

    app.pay(&stranger, &order.id, 2000, "PAY-X")
        .await
        .expect_problem(403, "forbidden");

    assert_eq!(app.event_types(&order.stream()).await, ["OrderPlaced"]);
}

#[tokio::test]
async fn a_payment_repeated_under_its_reference_is_recorded_once() {
    let app = spawn_app().await;
    let order = placed(&app).await;
    let first = app
        .pay(&order.token, &order.id, 500, "PAY-1")
        .await
        .expect(200);

    let again = app
        .pay(&order.token, &order.id, 500, "PAY-1")
        .await
        .expect(200);
    assert_eq!(again.body, first.body);
    app.pay(&order.token, &order.id, 700, "PAY-1")
        .await
        .expect_problem(422, "validation_failed");

    assert_eq!(
        app.event_types(&order.stream()).await,
        ["OrderPlaced", "PaymentReceived"]
    );
}

#[tokio::test]
async fn an_unpaid_order_does_not_ship() {
    let app = spawn_app().await;
    let order = placed(&app).await;

    app.ship(&order.id)
        .await
        .expect_problem(409, "invalid_state");

    assert_eq!(app.event_types(&order.stream()).await, ["OrderPlaced"]);
    assert_eq!(app.stock(SKU).await, (10, 2));
}

#[tokio::test]
async fn only_an_admin_ships() {
    let app = spawn_app().await;
    let order = paid(&app).await;
    let before = log_of(&app, &order).await;

    app.post(
        &format!("/v1/orders/{}/ship", order.id),
        Some(&order.token),
        serde_json::json!({"carrier": "DHL", "tracking": "T-1"}),
    )
    .await
    .expect_problem(403, "forbidden");

    assert_eq!(log_of(&app, &order).await, before);
}

#[tokio::test]
async fn shipping_a_paid_order_takes_its_stock_off_hand() {
    let app = spawn_app().await;
    let order = paid(&app).await;

    let shipped = app.ship(&order.id).await.expect(200);

    assert_eq!(shipped.body["status"], "shipped");
    let events = app.stream(&order.stream()).await;
    let last = events.last().expect("order events");
    assert_eq!(last["type"], "OrderShipped");
    assert_eq!(last["data"]["carrier"], "DHL");
    assert_eq!(app.stock(SKU).await, (8, 0));
}

#[tokio::test]
async fn cancelling_a_confirmed_order_releases_its_stock() {
    let app = spawn_app().await;
    let order = placed(&app).await;

    let cancelled = app.cancel(&order.token, &order.id).await.expect(200);

    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(
        app.event_types(&order.stream()).await,
        ["OrderPlaced", "OrderCancelled"]
    );
    assert_eq!(app.stock(SKU).await, (10, 0));
}

#[tokio::test]
async fn a_shipped_order_cannot_be_cancelled() {
    let app = spawn_app().await;
    let order = paid(&app).await;
    app.ship(&order.id).await.expect(200);
    let before = log_of(&app, &order).await;

    app.cancel(&order.token, &order.id)
        .await
        .expect_problem(409, "invalid_state");

    assert_eq!(log_of(&app, &order).await, before);
    assert_eq!(app.stock(SKU).await, (8, 0));
}

#[tokio::test]
async fn an_admin_cancels_a_customers_paid_order_and_a_refund_is_due() {
    let app = spawn_app().await;
    let order = paid(&app).await;

    let cancelled = app.cancel(&app.admin, &order.id).await.expect(200);

    assert_eq!(cancelled.body["status"], "cancelled");
    let events = app.stream(&order.stream()).await;
    let last = events.last().expect("order events");
    assert_eq!(last["type"], "OrderCancelled");
    assert_eq!(last["data"]["refund_due"]["amount"], 2 * PRICE);
    assert_eq!(app.stock(SKU).await, (10, 0));
}

#[tokio::test]
async fn another_customer_cannot_cancel_an_order() {
    let app = spawn_app().await;
    let order = placed(&app).await;
    let (_, stranger) = app.customer("stranger@example.com").await;

    app.cancel(&stranger, &order.id)
        .await
        .expect_problem(403, "forbidden");

    assert_eq!(app.stock(SKU).await, (10, 2));
}

#[tokio::test]
async fn cancelling_twice_changes_nothing_the_second_time() {
    let app = spawn_app().await;
    let order = placed(&app).await;
    app.cancel(&order.token, &order.id).await.expect(200);
    let before = log_of(&app, &order).await;

    let again = app.cancel(&order.token, &order.id).await.expect(200);

    assert_eq!(again.body["status"], "cancelled");
    assert_eq!(log_of(&app, &order).await, before);
    assert_eq!(app.stock(SKU).await, (10, 0));
}
