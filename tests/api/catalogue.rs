//! Catalogue and inventory: listing products, pricing, discontinuing and
//! receiving stock.

use serde_json::json;

use crate::helpers::{TestApp, product_body, spawn_app};

/// A fresh app with one product listed at 100: (app, product id).
async fn app_with_product(sku: &str) -> (TestApp, String) {
    let app = spawn_app().await;
    let id = app
        .create_product(sku, 100)
        .await
        .expect(201)
        .str("product_id");
    (app, id)
}

fn product_stream(id: &str) -> String {
    format!("product-{id}")
}

#[tokio::test]
async fn an_admin_lists_a_product_under_an_upper_cased_sku() {
    let app = spawn_app().await;

    let created = app.create_product("lamp-1", 1999).await.expect(201);

    let id = created.str("product_id");
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/products/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"0\""));
    assert!(
        !created
            .header("x-consistency-token")
            .unwrap_or("")
            .is_empty()
    );
    let events = app.stream(&product_stream(&id)).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "ProductCreated");
    assert_eq!(events[0]["data"]["sku"], "LAMP-1");
    assert_eq!(
        events[0]["data"]["price"],
        json!({"amount": 1999, "currency": "EUR"})
    );
    let claim = app.stream("sku-LAMP-1").await;
    assert_eq!(claim[0]["data"]["product_id"], id.as_str());
}

#[tokio::test]
async fn only_an_admin_may_list_products() {
    let app = spawn_app().await;
    let (_, customer) = app.customer("shopper@example.com").await;

    app.post("/v1/products", Some(&customer), product_body("NOPE-1", 100))
        .await
        .expect_problem(403, "forbidden");
    app.post("/v1/products", None, product_body("NOPE-1", 100))
        .await
        .expect_problem(401, "unauthorized");

    assert!(app.stream("sku-NOPE-1").await.is_empty());
}

#[tokio::test]
async fn a_sku_is_taken_whatever_its_case() {
    let (app, first) = app_with_product("Chair-9").await;

    app.create_product("chair-9", 100)
        .await
        .expect_problem(409, "sku_taken");

    let claim = app.stream("sku-CHAIR-9").await;
    assert_eq!(claim.len(), 1);
    assert_eq!(claim[0]["data"]["product_id"], first.as_str());
}

#[tokio::test]
async fn an_invalid_product_names_every_bad_field_and_claims_nothing() {
    let app = spawn_app().await;
    let mut body = product_body("has space", -1);
    body["name"] = json!("");
    body["tags"] = json!((0..21).map(|i| format!("tag{i}")).collect::<Vec<_>>());

    let refused = app
        .post("/v1/products", Some(&app.admin), body)
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["name", "price", "sku", "tags"]);

    let mut body = product_body("GOOD-1", 100);
    body["price"]["currency"] = json!("EURO");
    let refused = app
        .post("/v1/products", Some(&app.admin), body)
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["price"]);
    assert!(app.stream("sku-GOOD-1").await.is_empty());
}

#[tokio::test]
async fn a_new_price_is_recorded_and_the_same_price_again_changes_nothing() {
    let (app, id) = app_with_product("PRICED-1").await;

    let changed = app.change_price(&id, 250).await.expect(200);
    assert_eq!(changed.body["price"]["amount"], 250);
    assert_eq!(changed.header("etag"), Some("\"1\""));
    let events = app.stream(&product_stream(&id)).await;
    assert_eq!(events[1]["type"], "ProductPriceChanged");
    assert_eq!(events[1]["data"]["price"]["amount"], 250);
    assert_eq!(events[1]["data"]["previous"]["amount"], 100);

    let again = app.change_price(&id, 250).await.expect(200);
    assert_eq!(again.header("etag"), Some("\"1\""));
    assert_eq!(app.stream(&product_stream(&id)).await, events);
}

#[tokio::test]
async fn discontinuing_is_recorded_once_and_freezes_the_price() {
    let (app, id) = app_with_product("OLD-1").await;

    let discontinued = app.discontinue(&id).await.expect(200);
    assert_eq!(discontinued.body["status"], "discontinued");
    let events = app.event_types(&product_stream(&id)).await;
    assert_eq!(events, ["ProductCreated", "ProductDiscontinued"]);

    app.discontinue(&id).await.expect(200);
    app.change_price(&id, 50)
        .await
        .expect_problem(409, "invalid_state");
    assert_eq!(app.event_types(&product_stream(&id)).await, events);
}

#[tokio::test]
async fn unknown_and_malformed_product_ids_are_not_found() {
    let app = spawn_app().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    for id in [unknown.as_str(), "not-a-uuid"] {
        app.change_price(id, 100)
            .await
            .expect_problem(404, "not_found");
        app.discontinue(id).await.expect_problem(404, "not_found");
    }
    assert!(app.stream(&product_stream(&unknown)).await.is_empty());
}

#[tokio::test]
async fn receipts_add_to_stock_on_hand() {
    let (app, _) = app_with_product("BOLT-1").await;

    let first = app.receive("BOLT-1", 5).await.expect(200);
    assert_eq!(
        first.body,
        json!({"sku": "BOLT-1", "on_hand": 5, "reserved": 0, "available": 5})
    );
    // The path's SKU is as case-insensitive as the product's.
    let second = app.receive("bolt-1", 7).await.expect(200);
    assert_eq!(second.body["on_hand"], 12);
    assert_eq!(second.body["available"], 12);
    assert_eq!(app.stock("BOLT-1").await, (12, 0));
}

#[tokio::test]
async fn receipts_need_a_listed_sku_and_a_positive_quantity() {
    let (app, _) = app_with_product("NUT-1").await;

    app.receive("NO-SUCH-SKU", 5)
        .await
        .expect_problem(404, "not_found");
    app.receive("not a sku!", 5)
        .await
        .expect_problem(404, "not_found");
    let refused = app
        .receive("NUT-1", 0)
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["quantity"]);

    assert!(app.stream("inventory-NO-SUCH-SKU").await.is_empty());
    assert!(app.stream("inventory-NUT-1").await.is_empty());
}
