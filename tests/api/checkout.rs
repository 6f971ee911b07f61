//! Checkout: all lines reserved or none, never an oversell.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_checkouts_racing_for_ten_units_sell_exactly_ten() {
    let app = spawn_app().await;
    let product = app.stocked_product("LAST-10", 500, 10).await;

    // 64 customers, each with one unit of the product in a cart.
    let mut shoppers = Vec::new();
    for i in 0..64 {
        let (_, token) = app.customer(&format!("racer{i}@example.com")).await;
        let cart = app.create_cart(&token).await;
        app.set_item(&token, &cart, &product, 1).await.expect(200);
        shoppers.push((token, cart));
    }

    let batches = |text: &str| {
        (
            shopstream_testkit::metrics::sample(text, "shopstream_command_batch_size_count")
                .unwrap_or(0.0),
            shopstream_testkit::metrics::sample(text, "shopstream_command_batch_size_sum")
                .unwrap_or(0.0),
        )
    };
    let before = app.get("/metrics", None).await.expect(200);
    let before = batches(before.body.as_str().unwrap_or_default());
    let app = std::sync::Arc::new(app);
    let races = shoppers.into_iter().map(|(token, cart)| {
        let app = app.clone();
        tokio::spawn(async move { app.checkout(&token, &cart).await })
    });
    let replies: Vec<_> = futures::future::join_all(races)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();

    let sold = replies.iter().filter(|r| r.status == 201).count();
    let refused: Vec<_> = replies.iter().filter(|r| r.status != 201).collect();
    assert_eq!(sold, 10, "exactly the stock is sold");
    for r in &refused {
        assert_eq!(r.status, 409, "{r:#?}");
        assert_eq!(r.code(), "insufficient_stock", "{r:#?}");
        assert_eq!(r.body["skus"], json!(["LAST-10"]));
    }
    let (on_hand, reserved) = app.stock("LAST-10").await;
    assert_eq!(
        (on_hand, reserved),
        (10, 10),
        "10 reserved of 10, none oversold"
    );
    // The losers of the first race queued on the SKU and were decided
    // together: fewer appends than commands.
    let after = app.get("/metrics", None).await.expect(200);
    let after = batches(after.body.as_str().unwrap_or_default());
    let (batches, combined) = (after.0 - before.0, after.1 - before.1);
    assert!(
        batches >= 1.0 && combined > batches,
        "{combined} commands in {batches} batches"
    );
}

#[tokio::test]
async fn a_refused_checkout_reserves_nothing_and_the_log_says_why() {
    let app = spawn_app().await;
    let plenty = app.stocked_product("PLENTY", 100, 50).await;
    let scarce = app.stocked_product("SCARCE", 100, 1).await;
    let (_, token) = app.customer("shopper@example.com").await;
    let cart = app.create_cart(&token).await;
    app.set_item(&token, &cart, &plenty, 5).await.expect(200);
    app.set_item(&token, &cart, &scarce, 2).await.expect(200);

    let refused = app
        .checkout(&token, &cart)
        .await
        .expect_problem(409, "insufficient_stock");
    assert_eq!(refused.body["skus"], json!(["SCARCE"]));
    assert_eq!(
        app.stock("PLENTY").await,
        (50, 0),
        "nothing reserved for the other line"
    );
    assert_eq!(app.stock("SCARCE").await, (1, 0));

    let cart_events = app.stream(&format!("cart-{cart}")).await;
    let last = cart_events.last().expect("cart has events");
    assert_eq!(last["type"], "CheckoutRefused");
    assert_eq!(last["data"]["reason"], "insufficient_stock");
    assert_eq!(last["data"]["skus"], json!(["SCARCE"]));

    // With enough stock the same cart checks out, reserving every line.
    app.receive("SCARCE", 5).await.expect(200);
    let order = app.checkout(&token, &cart).await.expect(201);
    assert_eq!(order.body["status"], "confirmed");
    assert_eq!(app.stock("PLENTY").await, (50, 5));
    assert_eq!(app.stock("SCARCE").await, (6, 2));
}
