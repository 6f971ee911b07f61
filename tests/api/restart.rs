//! A restart on the same data directory loses nothing acknowledged.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Read, TestApp, spawn_app, spawn_app_in};

const EMAIL: &str = "loyal@example.com";

/// Every stream the shopping trip wrote, with its events.
async fn snapshot(app: &TestApp, streams: &[String]) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for stream in streams {
        all.push(app.stream(stream).await);
    }
    all
}

#[tokio::test]
async fn everything_acknowledged_before_a_restart_is_there_after_it() {
    let app = spawn_app().await;
    let product = app.stocked_product("DURABLE", 400, 10).await;
    let (customer, token) = app.customer(EMAIL).await;
    let open_cart = |app: &TestApp, token: &str| {
        app.request(Method::POST, "/v1/carts", Some(token))
            .header("idempotency-key", "cart-before-restart")
    };
    let first = app.send(open_cart(&app, &token)).await.expect(201);
    let cart = first.str("cart_id");
    app.set_item(&token, &cart, &product, 3).await.expect(200);
    let order = app
        .checkout(&token, &cart)
        .await
        .expect(201)
        .str("order_id");
    app.pay(&token, &order, 1200, "PAY-1").await.expect(200);
    let streams = [
        format!("product-{product}"),
        "sku-DURABLE".to_string(),
        "inventory-DURABLE".to_string(),
        format!("customer-{customer}"),
        format!("email-{EMAIL}"),
        format!("cart-{cart}"),
        format!("order-{order}"),
    ];
    let before = snapshot(&app, &streams).await;
    assert!(before.iter().all(|events| !events.is_empty()));

    let app = spawn_app_in(app.stop().await).await;

    assert_eq!(snapshot(&app, &streams).await, before);
    assert_eq!(app.stock("DURABLE").await, (10, 3));
    let fresh = app.token(EMAIL, "password-123").await;
    app.set_item(&fresh, &cart, &product, 1)
        .await
        .expect_problem(409, "invalid_state");
    // The token signed before the restart is still good.
    let replay = app.send(open_cart(&app, &token)).await.expect(201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
    // The order carries on where it stopped.
    app.ship(&order).await.expect(200);
    assert_eq!(app.stock("DURABLE").await, (7, 0));
}

#[tokio::test]
async fn the_stop_signal_stops_the_server_and_everything_started_with_it() {
    let app = spawn_app().await;
    let created = app.create_product("STOPPED", 400).await.expect(201);
    let product = created.str("product_id");

    // `stop` returns only once the server has stopped cleanly and every
    // runner and listener it started has ended.
    let dir = app.stop().await;

    // The stores were let go of cleanly: a new process opens them and
    // serves the write, through read models that pick up where they were.
    let app = spawn_app_in(dir).await;
    let page = app
        .product(&product, &Read::anyone().after(&created))
        .await
        .expect_consistent();
    assert_eq!(page.body["sku"], "STOPPED");
}

/// The stores hold password hashes: only their owner may read them.
#[cfg(unix)]
#[tokio::test]
async fn the_stores_files_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let app = crate::helpers::spawn_app().await;
    let mut checked = 0;
    for entry in std::fs::read_dir(app.dir.path()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.contains(".sqlite") || name == "jwt-secret" {
            let mode = entry.metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode & 0o077, 0, "{name} is {mode:o}");
            checked += 1;
        }
    }
    assert!(
        checked >= 1,
        "the stores (or at least the secret) were checked"
    );
}
