//! Queries: every command's effect read back at once when its consistency
//! token is sent back, conditional answers, pages, who may read what, and
//! orders as they stood.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::helpers::{Read, Reply, TestApp, instant, money, spawn_app};

const PRICE: i64 = 250;

/// A product body in `category`, named `name`.
fn product_named(sku: &str, name: &str, category: &str) -> Value {
    json!({
        "sku": sku,
        "name": name,
        "description": "A thing",
        "price": {"amount": PRICE, "currency": "EUR"},
        "category": category,
        "tags": [],
    })
}

/// Creates every product; the last one's reply, whose token covers them all.
async fn create_all(app: &TestApp, products: &[Value]) -> Reply {
    let mut last = None;
    for body in products {
        last = Some(app.create_product_from(body.clone()).await.expect(201));
    }
    last.expect("at least one product")
}

/// A stocked lamp (ten of them) and a customer: (app, lamp id, token).
async fn shop() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let lamp = app.stocked_product("LAMP", PRICE, 10).await;
    let (_, token) = app.customer("ada@example.com").await;
    (app, lamp, token)
}

/// The statuses an order went through, oldest first.
fn statuses(order: &Reply) -> Vec<String> {
    order.body["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|change| change["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn eur(amount: i64) -> Value {
    money(amount, "EUR")
}

// ---- every command, read back

#[tokio::test]
async fn a_new_product_its_stock_and_its_new_price_are_read_back_at_once() {
    let app = spawn_app().await;
    let mut body = product_named("MUG-1", "Mug", "kitchen");
    body["tags"] = json!(["mug", "gift"]);
    let created = app.create_product_from(body).await.expect(201);
    let id = created.str("product_id");

    let product = app
        .product(&id, &Read::anyone().after(&created))
        .await
        .expect_consistent();
    assert_eq!(
        product.body,
        json!({
            "product_id": id,
            "sku": "MUG-1",
            "name": "Mug",
            "description": "A thing",
            "price": eur(PRICE),
            "category": "kitchen",
            "tags": ["mug", "gift"],
            "status": "active",
            "revision": 0,
            "available": 0,
        })
    );
    let never_stocked = app
        .inventory("MUG-1", &Read::anyone().after(&created))
        .await
        .expect_consistent();
    assert_eq!(
        never_stocked.body,
        json!({"sku": "MUG-1", "on_hand": 0, "reserved": 0, "available": 0})
    );

    let received = app.receive("MUG-1", 7).await.expect(200);
    let product = app
        .product(&id, &Read::anyone().after(&received))
        .await
        .expect_consistent();
    assert_eq!(product.body["available"], 7);
    assert_eq!(product.body["revision"], 0, "stock is not the product's");
    let stock = app
        .inventory("mug-1", &Read::anyone().after(&received))
        .await
        .expect_consistent();
    assert_eq!(
        stock.body,
        json!({"sku": "MUG-1", "on_hand": 7, "reserved": 0, "available": 7})
    );

    let repriced = app.change_price(&id, 1499).await.expect(200);
    let product = app
        .product(&id, &Read::anyone().after(&repriced))
        .await
        .expect_consistent();
    assert_eq!(product.body["price"], eur(1499));
    assert_eq!(product.body["revision"], 1);
    assert_eq!(product.body["available"], 7);
}

#[tokio::test]
async fn lists_show_one_category_or_all_of_them_by_name_whatever_its_case() {
    let app = spawn_app().await;
    let last = create_all(
        &app,
        &[
            product_named("FRUIT-B", "banana", "fruit"),
            product_named("FRUIT-A", "Apple", "fruit"),
            product_named("VEG-A", "Aubergine", "vegetables"),
            product_named("FRUIT-C", "cherry", "fruit"),
        ],
    )
    .await;
    let read = Read::anyone().after(&last);

    let fruit = app
        .products(&[("category", "fruit")], &read)
        .await
        .expect_consistent();
    assert_eq!(fruit.item_fields("name"), ["Apple", "banana", "cherry"]);
    assert_eq!(fruit.body["next_cursor"], Value::Null);
    let first = &fruit.items()[0];
    assert_eq!(first["sku"], "FRUIT-A");
    assert_eq!(first["price"], eur(PRICE));
    assert_eq!(first["category"], "fruit");

    let everything = app.products(&[], &read).await.expect_consistent();
    assert_eq!(
        everything.item_fields("name"),
        ["Apple", "Aubergine", "banana", "cherry"]
    );
}

#[tokio::test]
async fn search_finds_products_matching_every_word_in_name_description_or_tags() {
    let app = spawn_app().await;
    let mut blue_mug = product_named("BLUE-MUG", "Blue Mug", "kitchen");
    blue_mug["description"] = json!("Stoneware, 350 ml");
    blue_mug["tags"] = json!(["kitchen"]);
    let mut red_mug = product_named("RED-MUG", "Red mug", "kitchen");
    red_mug["description"] = json!("STONEWARE");
    red_mug["tags"] = json!(["Kitchen", "gift"]);
    let mut blue_plate = product_named("BLUE-PLATE", "Blue Plate", "kitchen");
    blue_plate["description"] = json!("Porcelain");
    blue_plate["tags"] = json!(["kitchen"]);
    let last = create_all(&app, &[blue_mug, red_mug, blue_plate]).await;
    let read = Read::anyone().after(&last);

    for (q, expected) in [
        ("blue mug", vec!["BLUE-MUG"]),
        ("MUG stoneware", vec!["BLUE-MUG", "RED-MUG"]),
        ("kitchen BLUE", vec!["BLUE-MUG", "BLUE-PLATE"]),
        ("gift mug", vec!["RED-MUG"]),
        ("blue teapot", vec![]),
    ] {
        let found = app.search(q, &read).await.expect_consistent();
        let mut skus = found.item_fields("sku");
        skus.sort();
        assert_eq!(skus, expected, "q={q}");
    }
}

#[tokio::test]
async fn search_pages_through_sparse_matches_without_losing_or_repeating_any() {
    let app = spawn_app().await;
    // 260 products: every one says "lamp", one in thirteen also "brass".
    let products: Vec<Value> = (0..260)
        .map(|i| {
            let name = if i % 13 == 0 {
                "Brass lamp"
            } else {
                "Paper lamp"
            };
            product_named(&format!("LAMP-{i:03}"), name, "lighting")
        })
        .collect();
    let last = create_all(&app, &products).await;
    let read = Read::anyone().after(&last);

    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut params = vec![("q", "lamp brass"), ("limit", "3")];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let page = app
            .query("/v1/products/search", &params, &read)
            .await
            .expect_consistent();
        found.extend(page.item_fields("sku"));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..260)
        .filter(|i| i % 13 == 0)
        .map(|i| format!("LAMP-{i:03}"))
        .collect();
    assert_eq!(found, expected, "every match once, in creation order");
}

#[tokio::test]
async fn a_cart_is_read_back_empty_with_a_zero_total_then_with_its_lines() {
    let (app, lamp, token) = shop().await;
    let opened = app.open_cart(&token).await;
    let cart = opened.str("cart_id");

    let empty = app
        .cart(&cart, &Read::by(&token).after(&opened))
        .await
        .expect_consistent();
    assert_eq!(empty.body["cart_id"], cart.as_str());
    assert_eq!(empty.body["items"], json!([]));
    assert_eq!(empty.body["total"], eur(0));

    let set = app.set_item(&token, &cart, &lamp, 3).await.expect(200);
    let filled = app
        .cart(&cart, &Read::by(&token).after(&set))
        .await
        .expect_consistent();
    assert_eq!(
        filled.body["items"],
        json!([{
            "product_id": lamp,
            "sku": "LAMP",
            "name": "Product LAMP",
            "unit_price": eur(PRICE),
            "quantity": 3,
            "line_total": eur(3 * PRICE),
        }])
    );
    assert_eq!(filled.body["total"], eur(3 * PRICE));

    let removed = app.set_item(&token, &cart, &lamp, 0).await.expect(200);
    let emptied = app
        .cart(&cart, &Read::by(&token).after(&removed))
        .await
        .expect_consistent();
    assert_eq!(emptied.body["items"], json!([]));
    assert_eq!(emptied.body["total"], eur(0));
}

#[tokio::test]
async fn an_order_is_read_back_with_its_history_as_it_is_paid_and_shipped() {
    let (app, lamp, token) = shop().await;
    let placed = app.place_order(&token, &[(&lamp, 2)]).await;
    let id = placed.str("order_id");

    let order = app
        .order(&id, &Read::by(&token).after(&placed))
        .await
        .expect_consistent();
    assert_eq!(order.body["status"], "confirmed");
    assert_eq!(statuses(&order), ["confirmed"]);
    assert_eq!(order.body["total"], eur(2 * PRICE));
    assert_eq!(order.body["lines"][0]["product_id"], lamp.as_str());
    assert_eq!(order.body["lines"][0]["quantity"], 2);
    assert_eq!(order.body["history"][0]["at"], order.body["placed_at"]);
    let stock = app
        .inventory("LAMP", &Read::anyone().after(&placed))
        .await
        .expect_consistent();
    assert_eq!(
        (&stock.body["reserved"], &stock.body["available"]),
        (&json!(2), &json!(8))
    );

    let paid = app.pay(&token, &id, 2 * PRICE, "PAY-1").await.expect(200);
    let order = app
        .order(&id, &Read::by(&token).after(&paid))
        .await
        .expect_consistent();
    assert_eq!(statuses(&order), ["confirmed", "paid"]);

    let shipped = app.ship(&id).await.expect(200);
    let order = app
        .order(&id, &Read::by(&token).after(&shipped))
        .await
        .expect_consistent();
    assert_eq!(order.body["status"], "shipped");
    assert_eq!(statuses(&order), ["confirmed", "paid", "shipped"]);
    let stock = app
        .inventory("LAMP", &Read::anyone().after(&shipped))
        .await
        .expect_consistent();
    assert_eq!(
        stock.body,
        json!({"sku": "LAMP", "on_hand": 8, "reserved": 0, "available": 8})
    );
}

#[tokio::test]
async fn my_orders_come_newest_first_with_a_cancellation_shown() {
    let (app, lamp, token) = shop().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let placed = app.place_order(&token, &[(&lamp, 1)]).await;
        ids.push(placed.str("order_id"));
    }
    let cancelled = app.cancel(&token, &ids[1]).await.expect(200);

    let mine = app
        .my_orders(&Read::by(&token).after(&cancelled))
        .await
        .expect_consistent();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(mine.item_fields("order_id"), newest_first);
    assert_eq!(
        mine.item_fields("status"),
        ["confirmed", "cancelled", "confirmed"]
    );
    assert_eq!(mine.items()[0]["total"], eur(PRICE));
    let (_, other) = app.customer("grace@example.com").await;
    let theirs = app
        .my_orders(&Read::by(&other).after(&cancelled))
        .await
        .expect_consistent();
    assert_eq!(theirs.items(), Vec::<Value>::new());
}

#[tokio::test]
async fn the_profile_is_read_back_after_registering_and_after_a_role_change() {
    let app = spawn_app().await;
    let registered = app
        .register("Ada@Example.com", "password-123", "Ada")
        .await
        .expect(201);
    let id = registered.str("customer_id");
    let token = app.token("ada@example.com", "password-123").await;

    let profile = app
        .me(&Read::by(&token).after(&registered))
        .await
        .expect_consistent();
    assert_eq!(profile.body["customer_id"], id.as_str());
    assert_eq!(profile.body["email"], "ada@example.com");
    assert_eq!(profile.body["name"], "Ada");
    assert_eq!(profile.body["role"], "customer");
    assert_eq!(profile.body["email_verified"], false);

    let promoted = app
        .change_role(&app.admin, &id, "analyst")
        .await
        .expect(200);
    let profile = app
        .me(&Read::by(&token).after(&promoted))
        .await
        .expect_consistent();
    assert_eq!(profile.body["role"], "analyst");
}

// ---- consistency and conditional answers

#[tokio::test]
async fn only_a_query_sending_a_token_says_how_its_wait_went() {
    let app = spawn_app().await;
    let created = app.create_product("TOKEN-1", PRICE).await.expect(201);
    let id = created.str("product_id");

    app.product(&id, &Read::anyone().after(&created))
        .await
        .expect_consistent();
    let plain = app.product(&id, &Read::anyone()).await.expect(200);
    assert_eq!(plain.consistency(), None);
    assert_eq!(plain.body["sku"], "TOKEN-1");

    for malformed in ["not-a-token", "c1.zz", "c2.10", ""] {
        let read = Read::anyone().with_consistency_token(malformed);
        app.product(&id, &read)
            .await
            .expect_problem(400, "malformed_request");
    }
}

#[tokio::test]
async fn an_etag_answers_304_until_the_price_changes_and_the_new_price_is_served() {
    let app = spawn_app().await;
    let created = app.create_product("ETAG-1", PRICE).await.expect(201);
    let id = created.str("product_id");
    let first = app
        .product(&id, &Read::anyone().after(&created))
        .await
        .expect_consistent();
    let etag = first
        .header("etag")
        .expect("queries send an ETag")
        .to_string();
    let listed = app.products(&[], &Read::anyone()).await.expect(200);
    assert_eq!(listed.items()[0]["price"], eur(PRICE));

    let unchanged = app
        .product(&id, &Read::anyone().if_none_match(&etag))
        .await
        .expect(304);
    assert_eq!(unchanged.body, Value::Null, "a 304 has no body");
    assert_eq!(unchanged.header("etag"), Some(etag.as_str()));

    let repriced = app.change_price(&id, 999).await.expect(200);
    let changed = app
        .product(&id, &Read::anyone().after(&repriced).if_none_match(&etag))
        .await
        .expect_consistent();
    assert_eq!(changed.body["price"], eur(999));
    let new_etag = changed.header("etag").expect("an ETag").to_string();
    assert_ne!(new_etag, etag);
    // The read model has the new price now: no query, cached or not, may
    // serve the old one.
    let again = app.product(&id, &Read::anyone()).await.expect(200);
    assert_eq!(again.body["price"], eur(999));
    assert_eq!(again.header("etag"), Some(new_etag.as_str()));
    let listed = app.products(&[], &Read::anyone()).await.expect(200);
    assert_eq!(listed.items()[0]["price"], eur(999));
    app.product(&id, &Read::anyone().if_none_match(&new_etag))
        .await
        .expect(304);
}

#[tokio::test]
async fn a_weak_form_of_the_etag_is_not_modified_too() {
    let app = spawn_app().await;
    let created = app.create_product("WEAK-1", PRICE).await.expect(201);
    let id = created.str("product_id");
    let first = app
        .product(&id, &Read::anyone().after(&created))
        .await
        .expect_consistent();
    let etag = first.header("etag").expect("an ETag");

    // What a proxy that compresses the body hands back.
    let weak = format!("W/{etag}");
    app.product(&id, &Read::anyone().if_none_match(&weak))
        .await
        .expect(304);
}

// ---- pages

#[tokio::test]
async fn pages_of_ten_walk_a_category_of_25_products_once_each_in_order() {
    let app = spawn_app().await;
    // Names alternate in case, so only a case-insensitive order is sorted.
    let bodies: Vec<Value> = (0..25)
        .map(|i| {
            let name = if i % 2 == 0 {
                format!("item {i:02}")
            } else {
                format!("ITEM {i:02}")
            };
            product_named(&format!("PAGE-{i:02}"), &name, "paged")
        })
        .collect();
    let last = create_all(&app, &bodies).await;
    let read = Read::anyone().after(&last);

    let mut skus = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut params = vec![("category", "paged"), ("limit", "10")];
        if let Some(c) = &cursor {
            params.push(("cursor", c));
        }
        let page = app.products(&params, &read).await.expect_consistent();
        pages += 1;
        assert!(page.items().len() <= 10, "{page:#?}");
        skus.extend(page.item_fields("sku"));
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
        assert!(pages < 10, "the pages never end: {skus:?}");
    }

    let expected: Vec<String> = (0..25).map(|i| format!("PAGE-{i:02}")).collect();
    assert_eq!(skus, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn a_limit_outside_1_to_100_or_a_garbage_cursor_is_malformed() {
    let app = spawn_app().await;
    let created = app.create_product("LIMITS-1", PRICE).await.expect(201);
    let read = Read::anyone().after(&created);

    for params in [
        vec![("limit", "0")],
        vec![("limit", "101")],
        vec![("limit", "ten")],
        vec![("cursor", "not-a-cursor")],
        vec![("category", "things"), ("cursor", "zz")],
    ] {
        app.products(&params, &read)
            .await
            .expect_problem(400, "malformed_request");
    }
    for limit in ["1", "100"] {
        let page = app
            .products(&[("limit", limit)], &read)
            .await
            .expect_consistent();
        assert_eq!(page.item_fields("sku"), ["LIMITS-1"]);
    }
}

// ---- discontinued products

#[tokio::test]
async fn a_discontinued_product_leaves_lists_and_search_but_keeps_its_page() {
    let app = spawn_app().await;
    let old = app
        .create_product_from(product_named("OLD-1", "Old lamp", "lamps"))
        .await
        .expect(201)
        .str("product_id");
    app.create_product_from(product_named("NEW-1", "New lamp", "lamps"))
        .await
        .expect(201);

    let discontinued = app.discontinue(&old).await.expect(200);
    let read = Read::anyone().after(&discontinued);

    let lamps = app
        .products(&[("category", "lamps")], &read)
        .await
        .expect_consistent();
    assert_eq!(lamps.item_fields("sku"), ["NEW-1"]);
    let everything = app.products(&[], &read).await.expect_consistent();
    assert_eq!(everything.item_fields("sku"), ["NEW-1"]);
    let found = app.search("lamp", &read).await.expect_consistent();
    assert_eq!(found.item_fields("sku"), ["NEW-1"]);
    let page = app.product(&old, &read).await.expect_consistent();
    assert_eq!(page.body["status"], "discontinued");
    assert_eq!(page.body["sku"], "OLD-1");
}

// ---- who reads what

#[tokio::test]
async fn carts_and_orders_are_their_owners_and_any_order_is_an_admins() {
    let (app, lamp, owner) = shop().await;
    let placed = app.place_order(&owner, &[(&lamp, 1)]).await;
    let order = placed.str("order_id");
    let opened = app.open_cart(&owner).await;
    let cart = opened.str("cart_id");
    let (_, stranger) = app.customer("mallory@example.com").await;

    app.cart(&cart, &Read::by(&stranger).after(&opened))
        .await
        .expect_problem(403, "forbidden");
    app.order(&order, &Read::by(&stranger).after(&placed))
        .await
        .expect_problem(403, "forbidden");
    app.cart(&cart, &Read::anyone().after(&opened))
        .await
        .expect_problem(401, "unauthorized");
    app.order(&order, &Read::anyone().after(&placed))
        .await
        .expect_problem(401, "unauthorized");
    for path in ["/v1/customers/me", "/v1/customers/me/orders"] {
        app.query(path, &[], &Read::anyone())
            .await
            .expect_problem(401, "unauthorized");
    }

    let seen_by_admin = app
        .order(&order, &Read::by(&app.admin).after(&placed))
        .await
        .expect_consistent();
    assert_eq!(seen_by_admin.body["order_id"], order.as_str());
    // A cart is its owner's alone.
    app.cart(&cart, &Read::by(&app.admin).after(&opened))
        .await
        .expect_problem(403, "forbidden");
    app.cart(&cart, &Read::by(&owner).after(&opened))
        .await
        .expect_consistent();
}

#[tokio::test]
async fn unknown_ids_and_skus_are_not_found() {
    let (app, _, token) = shop().await;
    let unknown = uuid::Uuid::now_v7().to_string();

    for reply in [
        app.product(&unknown, &Read::anyone()).await,
        app.product("not-a-uuid", &Read::anyone()).await,
        app.inventory("NO-SUCH-SKU", &Read::anyone()).await,
        app.cart(&unknown, &Read::by(&token)).await,
        app.order(&unknown, &Read::by(&token)).await,
        app.order(&unknown, &Read::by(&app.admin)).await,
        app.order_as_of(&unknown, &Utc::now().to_rfc3339(), &Read::by(&token))
            .await,
    ] {
        reply.expect_problem(404, "not_found");
    }
}

// ---- orders as they stood

/// When an order's event of this type was recorded.
async fn recorded_at(app: &TestApp, order: &str, event_type: &str) -> DateTime<Utc> {
    let events = app.stream(&format!("order-{order}")).await;
    let event = events
        .iter()
        .find(|e| e["type"] == event_type)
        .unwrap_or_else(|| panic!("no {event_type} in {events:#?}"));
    instant(&event["recorded_at"])
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
async fn an_order_as_of_a_past_instant_is_shown_as_it_stood_then() {
    let (app, lamp, token) = shop().await;
    let order = app.place_order(&token, &[(&lamp, 1)]).await.str("order_id");
    app.pay(&token, &order, PRICE, "PAY-1").await.expect(200);
    let shipped = app.ship(&order).await.expect(200);
    let placed_at = recorded_at(&app, &order, "OrderPlaced").await;
    let paid_at = recorded_at(&app, &order, "OrderPaid").await;
    let shipped_at = recorded_at(&app, &order, "OrderShipped").await;
    assert!(paid_at < shipped_at, "{paid_at} < {shipped_at}");
    let between = paid_at + (shipped_at - paid_at) / 2;

    let then = app
        .order_as_of(&order, &rfc3339(between), &Read::by(&token))
        .await
        .expect(200);
    assert_eq!(then.body["status"], "paid");
    assert_eq!(statuses(&then), ["confirmed", "paid"]);
    let now = app
        .order(&order, &Read::by(&token).after(&shipped))
        .await
        .expect_consistent();
    assert_eq!(now.body["status"], "shipped");

    let before = placed_at - chrono::Duration::microseconds(1);
    app.order_as_of(&order, &rfc3339(before), &Read::by(&token))
        .await
        .expect_problem(404, "not_found");
    for malformed in ["yesterday", "2026-13-01T00:00:00Z", "1700000000"] {
        app.order_as_of(&order, malformed, &Read::by(&token))
            .await
            .expect_problem(400, "malformed_request");
    }
    let (_, stranger) = app.customer("eve@example.com").await;
    app.order_as_of(&order, &rfc3339(between), &Read::by(&stranger))
        .await
        .expect_problem(403, "forbidden");
}

// ---- the contract document

#[tokio::test]
async fn the_openapi_document_describes_every_read_endpoint() {
    let app = spawn_app().await;
    let document = app.get("/v1/openapi.json", None).await.expect(200);

    let missing: Vec<String> = [
        ("get", "/v1/products"),
        ("get", "/v1/products/search"),
        ("get", "/v1/products/{id}"),
        ("get", "/v1/inventory/{sku}"),
        ("get", "/v1/carts/{id}"),
        ("get", "/v1/orders/{id}"),
        ("get", "/v1/customers/me"),
        ("get", "/v1/customers/me/orders"),
        ("get", "/v1/reports/sales"),
        ("get", "/v1/events"),
        ("get", "/v1/events/live"),
        ("get", "/v1/admin/projections"),
        ("post", "/v1/admin/projections/{name}/rebuild"),
    ]
    .into_iter()
    .filter(|(method, path)| !document.body["paths"][path][method].is_object())
    .map(|(method, path)| format!("{method} {path}"))
    .collect();
    assert_eq!(missing, Vec::<String>::new());
}
