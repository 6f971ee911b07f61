//! Carts: what they hold, who may change them, and checking out.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, product_body, spawn_app};

/// A customer with an empty cart: (token, cart id).
async fn shopper(app: &TestApp, email: &str) -> (String, String) {
    let (_, token) = app.customer(email).await;
    let cart = app.create_cart(&token).await;
    (token, cart)
}

fn cart_stream(cart: &str) -> String {
    format!("cart-{cart}")
}

fn eur(amount: i64) -> Value {
    json!({"amount": amount, "currency": "EUR"})
}

#[tokio::test]
async fn a_customer_opens_a_cart_of_their_own() {
    let app = spawn_app().await;
    let (customer, token) = app.customer("opener@example.com").await;

    let created = app
        .send(app.request(Method::POST, "/v1/carts", Some(&token)))
        .await
        .expect(201);

    let cart = created.str("cart_id");
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/carts/{cart}").as_str())
    );
    let events = app.stream(&cart_stream(&cart)).await;
    assert_eq!(events[0]["type"], "CartCreated");
    assert_eq!(events[0]["data"]["customer_id"], customer.as_str());
    app.send(app.request(Method::POST, "/v1/carts", None))
        .await
        .expect_problem(401, "unauthorized");
}

#[tokio::test]
async fn setting_items_answers_with_line_totals_and_the_cart_total() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let bulb = app.stocked_product("BULB", 100, 10).await;
    let (token, cart) = shopper(&app, "lines@example.com").await;

    app.set_item(&token, &cart, &lamp, 1).await.expect(200);
    app.set_item(&token, &cart, &bulb, 2).await.expect(200);
    let view = app.set_item(&token, &cart, &lamp, 3).await.expect(200);

    assert_eq!(view.body["cart_id"], cart.as_str());
    let lamp_line = &view.body["items"][0];
    assert_eq!(lamp_line["product_id"], lamp.as_str());
    assert_eq!(lamp_line["sku"], "LAMP");
    assert_eq!(lamp_line["unit_price"], eur(250));
    assert_eq!(lamp_line["quantity"], 3);
    assert_eq!(lamp_line["line_total"], eur(750));
    assert_eq!(view.body["items"][1]["line_total"], eur(200));
    assert_eq!(view.body["total"], eur(950));
    assert_eq!(
        app.event_types(&cart_stream(&cart)).await,
        ["CartCreated", "CartItemSet", "CartItemSet", "CartItemSet"]
    );
}

#[tokio::test]
async fn quantity_zero_removes_a_line_and_removing_an_absent_one_changes_nothing() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let bulb = app.stocked_product("BULB", 100, 10).await;
    let (token, cart) = shopper(&app, "remover@example.com").await;
    app.set_item(&token, &cart, &lamp, 1).await.expect(200);
    app.set_item(&token, &cart, &bulb, 2).await.expect(200);

    let view = app.set_item(&token, &cart, &lamp, 0).await.expect(200);

    assert_eq!(view.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(view.body["items"][0]["product_id"], bulb.as_str());
    assert_eq!(view.body["total"], eur(200));
    let events = app.event_types(&cart_stream(&cart)).await;
    assert_eq!(events.last().map(String::as_str), Some("CartItemRemoved"));
    app.set_item(&token, &cart, &lamp, 0).await.expect(200);
    assert_eq!(app.event_types(&cart_stream(&cart)).await, events);
}

#[tokio::test]
async fn another_customers_cart_is_off_limits() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let (owner, cart) = shopper(&app, "owner@example.com").await;
    app.set_item(&owner, &cart, &lamp, 1).await.expect(200);
    let (_, intruder) = app.customer("intruder@example.com").await;
    let before = app.stream(&cart_stream(&cart)).await;

    app.set_item(&intruder, &cart, &lamp, 5)
        .await
        .expect_problem(403, "forbidden");
    app.checkout(&intruder, &cart)
        .await
        .expect_problem(403, "forbidden");

    assert_eq!(app.stream(&cart_stream(&cart)).await, before);
    assert_eq!(app.stock("LAMP").await, (10, 0));
}

#[tokio::test]
async fn only_products_for_sale_in_the_carts_currency_go_in() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let old = app.stocked_product("OLD", 100, 10).await;
    app.discontinue(&old).await.expect(200);
    let mut dollars = product_body("DOLLAR", 300);
    dollars["price"]["currency"] = json!("USD");
    let dollar = app
        .post("/v1/products", Some(&app.admin), dollars)
        .await
        .expect(201)
        .str("product_id");
    let (token, cart) = shopper(&app, "picky@example.com").await;
    app.set_item(&token, &cart, &lamp, 1).await.expect(200);
    let before = app.stream(&cart_stream(&cart)).await;

    let refused = app
        .set_item(&token, &cart, &old, 1)
        .await
        .expect_problem(409, "invalid_state");
    assert_eq!(refused.body["products"], json!([old]));
    let unknown = uuid::Uuid::now_v7().to_string();
    app.set_item(&token, &cart, &unknown, 1)
        .await
        .expect_problem(404, "not_found");
    let refused = app
        .set_item(&token, &cart, &dollar, 1)
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["currency"]);

    assert_eq!(app.stream(&cart_stream(&cart)).await, before);
}

#[tokio::test]
async fn an_empty_cart_cannot_check_out() {
    let app = spawn_app().await;
    let (token, cart) = shopper(&app, "empty@example.com").await;

    app.checkout(&token, &cart)
        .await
        .expect_problem(409, "invalid_state");

    assert_eq!(app.event_types(&cart_stream(&cart)).await, ["CartCreated"]);
}

#[tokio::test]
async fn a_checked_out_cart_is_closed_to_changes_and_to_a_second_checkout() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let (token, cart) = shopper(&app, "closer@example.com").await;
    app.set_item(&token, &cart, &lamp, 2).await.expect(200);
    let order = app.checkout(&token, &cart).await.expect(201);
    assert_eq!(order.body["status"], "confirmed");
    let after_checkout = app.stream(&cart_stream(&cart)).await;

    app.set_item(&token, &cart, &lamp, 3)
        .await
        .expect_problem(409, "invalid_state");
    app.checkout(&token, &cart)
        .await
        .expect_problem(409, "invalid_state");

    assert_eq!(app.stream(&cart_stream(&cart)).await, after_checkout);
    assert_eq!(app.stock("LAMP").await, (10, 2), "reserved once");
}

#[tokio::test]
async fn a_structured_shipping_address_goes_on_the_order_and_a_bad_one_is_refused() {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", 250, 10).await;
    let (token, cart) = shopper(&app, "postal@example.com").await;
    app.set_item(&token, &cart, &lamp, 1).await.expect(200);
    let address = |country: &str| {
        json!({
            "name": "Erika Mustermann",
            "line1": "Heidestraße 17",
            "city": "Köln",
            "postal_code": "51147",
            "country": country,
        })
    };

    let refused = app
        .checkout_to(&token, &cart, address("Germany"))
        .await
        .expect_problem(422, "validation_failed");
    let fields = refused.error_fields();
    assert!(
        fields.len() == 1 && fields[0].starts_with("shipping_address"),
        "{refused:#?}"
    );
    assert_eq!(app.stock("LAMP").await, (10, 0));

    let order = app
        .checkout_to(&token, &cart, address("de"))
        .await
        .expect(201)
        .str("order_id");
    let placed = app.stream(&format!("order-{order}")).await;
    assert_eq!(placed[0]["type"], "OrderPlaced");
    assert_eq!(placed[0]["data"]["shipping_address"], address("DE"));
}
