//! What every command shares: `If-Match`, `Idempotency-Key`, problem
//! responses, correlation ids, and the operational endpoints.

use std::future::Future;

use reqwest::{Method, RequestBuilder};
use serde_json::json;

use crate::helpers::{Reply, TestApp, instant, product_body, spawn_app, spawn_app_with};

/// A price change for `product` carrying one extra header.
async fn change_price_with(
    app: &TestApp,
    product: &str,
    price: i64,
    header: (&str, &str),
) -> Reply {
    let request = app
        .request(
            Method::PUT,
            &format!("/v1/products/{product}/price"),
            Some(&app.admin),
        )
        .header(header.0, header.1)
        .json(&json!({"price": {"amount": price, "currency": "EUR"}}));
    app.send(request).await
}

async fn product_event_types(app: &TestApp, product: &str) -> Vec<String> {
    app.event_types(&format!("product-{product}")).await
}

/// `request` with an `Idempotency-Key`.
fn keyed(request: RequestBuilder, key: &str) -> RequestBuilder {
    request.header("idempotency-key", key)
}

/// The admin listing a product under an `Idempotency-Key`.
fn keyed_new_product(app: &TestApp, sku: &str, key: &str) -> RequestBuilder {
    keyed(
        app.request(Method::POST, "/v1/products", Some(&app.admin))
            .json(&product_body(sku, 100)),
        key,
    )
}

/// A customer opening a cart under an `Idempotency-Key`.
fn keyed_new_cart(app: &TestApp, token: &str, key: &str) -> RequestBuilder {
    keyed(app.request(Method::POST, "/v1/carts", Some(token)), key)
}

fn replayed(reply: &Reply) -> bool {
    reply.header("idempotent-replayed") == Some("true")
}

/// How many times a command was carried out (not replayed, not refused).
async fn commands_done(app: &TestApp, command: &str) -> u64 {
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.body.as_str().unwrap_or_default().to_string();
    let series = format!("shopstream_commands_total{{command=\"{command}\",outcome=\"done\"}}");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Sends sixteen copies of a request at once.
async fn sixteen_at_once<F, Fut>(send: F) -> Vec<Reply>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Reply>,
{
    futures::future::join_all((0..16).map(|_| send())).await
}

/// Every reply has `status` and the same body, and only one of them was
/// carried out rather than replayed; returns that body.
#[track_caller]
fn all_the_same(replies: &[Reply], status: u16) -> serde_json::Value {
    for reply in replies {
        assert_eq!(reply.status.as_u16(), status, "{reply:#?}");
        assert_eq!(reply.body, replies[0].body, "{reply:#?}");
    }
    assert_eq!(
        replies.iter().filter(|r| !replayed(r)).count(),
        1,
        "exactly one request is carried out, the rest replay it"
    );
    replies[0].body.clone()
}

// ---- If-Match

#[tokio::test]
async fn if_match_with_the_current_revision_lets_the_command_through() {
    let app = spawn_app().await;
    let product = app.create_product("IFM-1", 100).await.expect(201);
    let (id, etag) = (product.str("product_id"), product.header("etag"));
    assert_eq!(etag, Some("\"0\""));

    let changed = change_price_with(&app, &id, 777, ("if-match", "\"0\""))
        .await
        .expect(200);

    assert_eq!(changed.header("etag"), Some("\"1\""));
    let discontinue = app
        .request(
            Method::POST,
            &format!("/v1/products/{id}/discontinue"),
            Some(&app.admin),
        )
        .header("if-match", "\"1\"");
    let discontinued = app.send(discontinue).await.expect(200);
    assert_eq!(discontinued.header("etag"), Some("\"2\""));
    assert_eq!(
        product_event_types(&app, &id).await,
        [
            "ProductCreated",
            "ProductPriceChanged",
            "ProductDiscontinued"
        ]
    );
}

#[tokio::test]
async fn a_stale_if_match_is_refused_and_appends_nothing() {
    let app = spawn_app().await;
    let id = app
        .create_product("IFM-2", 100)
        .await
        .expect(201)
        .str("product_id");
    app.change_price(&id, 200).await.expect(200);

    for stale in ["\"0\"", "\"7\""] {
        change_price_with(&app, &id, 777, ("if-match", stale))
            .await
            .expect_problem(412, "precondition_failed");
    }
    // Also when the command itself would change nothing.
    change_price_with(&app, &id, 200, ("if-match", "\"0\""))
        .await
        .expect_problem(412, "precondition_failed");

    assert_eq!(
        product_event_types(&app, &id).await,
        ["ProductCreated", "ProductPriceChanged"]
    );
}

/// The conflict members of a 409 or 412: the stream, the revisions, and
/// the types and revisions of the events listed, each checked for shape.
fn conflict_of(refused: &Reply, stream: &str) -> (Option<u64>, u64, Vec<(String, u64)>) {
    let body = &refused.body;
    assert_eq!(body["stream"], stream, "{body}");
    let current = body["current_revision"]
        .as_u64()
        .expect("a current revision");
    let events: Vec<(String, u64)> = body["conflicting_events"]
        .as_array()
        .expect("conflicting events")
        .iter()
        .map(|e| {
            instant(&e["recorded_at"]);
            assert!(
                e["actor"]
                    .as_str()
                    .is_some_and(|a| a.starts_with("customer:")),
                "{e}"
            );
            (
                e["type"].as_str().unwrap().to_string(),
                e["revision"].as_u64().unwrap(),
            )
        })
        .collect();
    (body["expected_revision"].as_u64(), current, events)
}

#[tokio::test]
async fn a_stale_if_match_is_told_what_changed_since() {
    let app = spawn_app().await;
    let id = app
        .create_product("IFM-5", 100)
        .await
        .expect(201)
        .str("product_id");
    app.change_price(&id, 200).await.expect(200);
    app.change_price(&id, 300).await.expect(200);
    let stream = format!("product-{id}");
    let changed = |revision: u64| ("ProductPriceChanged".to_string(), revision);

    let refused = change_price_with(&app, &id, 777, ("if-match", "\"0\""))
        .await
        .expect_problem(412, "precondition_failed");
    assert_eq!(
        conflict_of(&refused, &stream),
        (Some(0), 2, vec![changed(1), changed(2)])
    );
    // Also when the command itself would change nothing.
    let refused = change_price_with(&app, &id, 300, ("if-match", "\"1\""))
        .await
        .expect_problem(412, "precondition_failed");
    assert_eq!(
        conflict_of(&refused, &stream),
        (Some(1), 2, vec![changed(2)])
    );
}

#[tokio::test]
async fn a_conflict_after_the_last_attempt_shows_the_winning_events() {
    // One attempt each: racing writers lose at once instead of retrying.
    let app = spawn_app_with(&[("commands.max_attempts", json!(1))]).await;
    let id = app
        .create_product("RACE-1", 100)
        .await
        .expect(201)
        .str("product_id");
    let stream = format!("product-{id}");
    let (mut accepted, mut refusals) = (0, Vec::new());
    // Rounds of 16 writers at once until one loses (the first round, all
    // but surely).
    for round in 0..20 {
        let replies = futures::future::join_all(
            (0..16).map(|i| app.change_price(&id, 1000 + round * 100 + i)),
        )
        .await;
        for reply in replies {
            match reply.status.as_u16() {
                200 => accepted += 1,
                _ => refusals.push(reply.expect_problem(409, "conflict")),
            }
        }
        if !refusals.is_empty() {
            break;
        }
    }
    assert!(!refusals.is_empty(), "no writer lost a race in 20 rounds");
    for refused in &refusals {
        assert!(refused.header("retry-after").is_some());
        let (expected, current, events) = conflict_of(refused, &stream);
        let expected = expected.expect("the revision the attempt read");
        assert!(!events.is_empty(), "{:?}", refused.body);
        for (event_type, revision) in &events {
            assert_eq!(event_type, "ProductPriceChanged");
            assert!(*revision > expected && *revision <= current);
        }
    }
    // A refusal appended nothing: one price change per accepted command.
    let changes = product_event_types(&app, &id)
        .await
        .iter()
        .filter(|t| *t == "ProductPriceChanged")
        .count();
    assert_eq!(changes, accepted);
}

#[tokio::test]
async fn an_if_match_ahead_of_the_stream_is_refused_even_when_nothing_would_change() {
    let app = spawn_app().await;
    let id = app
        .create_product("IFM-4", 100)
        .await
        .expect(201)
        .str("product_id");

    change_price_with(&app, &id, 100, ("if-match", "\"5\""))
        .await
        .expect_problem(412, "precondition_failed");

    assert_eq!(product_event_types(&app, &id).await, ["ProductCreated"]);
}

#[tokio::test]
async fn a_malformed_if_match_is_a_bad_request() {
    let app = spawn_app().await;
    let id = app
        .create_product("IFM-3", 100)
        .await
        .expect(201)
        .str("product_id");

    for malformed in ["0", "\"zero\"", "\"-1\""] {
        change_price_with(&app, &id, 777, ("if-match", malformed))
            .await
            .expect_problem(400, "malformed_request");
    }

    assert_eq!(product_event_types(&app, &id).await, ["ProductCreated"]);
}

// ---- Idempotency-Key

#[tokio::test]
async fn a_repeated_key_replays_the_first_response_and_appends_nothing() {
    let app = spawn_app().await;
    let create = || keyed_new_product(&app, "IDEM-1", "create-idem-1");

    let first = app.send(create()).await.expect(201);
    let second = app.send(create()).await.expect(201);

    assert!(!replayed(&first));
    assert!(replayed(&second), "{second:#?}");
    assert_eq!(second.body, first.body);
    for header in ["etag", "x-consistency-token", "location"] {
        assert_eq!(second.header(header), first.header(header), "{header}");
    }
    assert_eq!(app.stream("sku-IDEM-1").await.len(), 1);
    assert_eq!(commands_done(&app, "create_product").await, 1);
    // Without the key the same request is a new one, and refused.
    app.create_product("IDEM-1", 100)
        .await
        .expect_problem(409, "sku_taken");
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused() {
    let app = spawn_app().await;
    let create = |sku: &str| keyed_new_product(&app, sku, "create-a-product");
    app.send(create("IDEM-A")).await.expect(201);

    let refused = app
        .send(create("IDEM-B"))
        .await
        .expect_problem(422, "validation_failed");

    assert_eq!(refused.error_fields(), ["Idempotency-Key"]);
    assert!(app.stream("sku-IDEM-B").await.is_empty());
}

#[tokio::test]
async fn a_key_must_be_visible_ascii() {
    let app = spawn_app().await;
    let (_, token) = app.customer("sloppy@example.com").await;

    for key in ["has space", &"k".repeat(256)] {
        let refused = app
            .send(keyed_new_cart(&app, &token, key))
            .await
            .expect_problem(422, "validation_failed");
        assert_eq!(refused.error_fields(), ["Idempotency-Key"]);
    }
    assert_eq!(commands_done(&app, "create_cart").await, 0);
}

#[tokio::test]
async fn keys_belong_to_the_customer_who_sends_them() {
    let app = spawn_app().await;
    let (_, alice) = app.customer("alice@example.com").await;
    let (_, bob) = app.customer("bob@example.com").await;
    let open_cart = |token: &str| keyed_new_cart(&app, token, "my-first-cart");

    let alices = app.send(open_cart(&alice)).await.expect(201);
    let bobs = app.send(open_cart(&bob)).await.expect(201);

    assert!(!replayed(&bobs), "{bobs:#?}");
    assert_ne!(alices.str("cart_id"), bobs.str("cart_id"));
    for cart in [alices.str("cart_id"), bobs.str("cart_id")] {
        assert_eq!(
            app.event_types(&format!("cart-{cart}")).await,
            ["CartCreated"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_identical_creations_at_once_make_one_cart() {
    let app = spawn_app().await;
    let (_, token) = app.customer("eager@example.com").await;

    let replies =
        sixteen_at_once(|| app.send(keyed_new_cart(&app, &token, "one-cart-please"))).await;

    let body = all_the_same(&replies, 201);
    let cart = body["cart_id"].as_str().unwrap_or_default();
    assert_eq!(
        app.event_types(&format!("cart-{cart}")).await,
        ["CartCreated"]
    );
    assert_eq!(commands_done(&app, "create_cart").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_identical_checkouts_at_once_place_one_order() {
    let app = spawn_app().await;
    let product = app.stocked_product("RACE-1", 100, 50).await;
    let (_, token) = app.customer("clicker@example.com").await;
    let cart = app.create_cart(&token).await;
    app.set_item(&token, &cart, &product, 2).await.expect(200);

    let replies = sixteen_at_once(|| {
        app.send(keyed(
            app.request(
                Method::POST,
                &format!("/v1/carts/{cart}/checkout"),
                Some(&token),
            )
            .json(&json!({"shipping_address": "1 Main Street"})),
            "checkout-once",
        ))
    })
    .await;

    // One effect...
    let checked_out = app.event_types(&format!("cart-{cart}")).await;
    assert_eq!(
        checked_out
            .iter()
            .filter(|t| *t == "CartCheckedOut")
            .count(),
        1
    );
    assert_eq!(app.stock("RACE-1").await, (50, 2));
    // ...and sixteen times the same answer.
    all_the_same(&replies, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_identical_product_creations_at_once_list_one_product() {
    let app = spawn_app().await;

    let replies =
        sixteen_at_once(|| app.send(keyed_new_product(&app, "RACE-2", "list-it-once"))).await;

    // One effect...
    assert_eq!(app.stream("sku-RACE-2").await.len(), 1);
    assert_eq!(commands_done(&app, "create_product").await, 1);
    // ...and sixteen times the same answer.
    all_the_same(&replies, 201);
}

// ---- Problems

/// A registration with a raw body and content type.
async fn register_raw(app: &TestApp, content_type: Option<&str>, body: Vec<u8>) -> Reply {
    let mut request = app.request(Method::POST, "/v1/customers", None).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    app.send(request).await
}

const VALID_REGISTRATION: &str =
    r#"{"email": "raw@example.com", "password": "password-123", "name": "Raw"}"#;

#[tokio::test]
async fn bodies_that_are_not_the_expected_json_are_refused_before_anything_happens() {
    let app = spawn_app().await;
    let json = Some("application/json");
    let oversized = format!(
        r#"{{"email": "raw@example.com", "password": "password-123", "name": "{}"}}"#,
        "x".repeat(65 * 1024)
    );

    register_raw(&app, json, b"{not json".to_vec())
        .await
        .expect_problem(400, "malformed_request");
    register_raw(
        &app,
        json,
        br#"{"email": 5, "password": [], "name": {}}"#.to_vec(),
    )
    .await
    .expect_problem(400, "malformed_request");
    register_raw(&app, None, VALID_REGISTRATION.into())
        .await
        .expect_problem(415, "unsupported_media_type");
    register_raw(&app, Some("text/plain"), VALID_REGISTRATION.into())
        .await
        .expect_problem(415, "unsupported_media_type");
    register_raw(&app, json, oversized.into())
        .await
        .expect_problem(413, "payload_too_large");

    assert!(app.stream("email-raw@example.com").await.is_empty());
    // The same body, well sent, is accepted.
    register_raw(&app, json, VALID_REGISTRATION.into())
        .await
        .expect(201);
}

#[tokio::test]
async fn an_unknown_route_is_a_not_found_problem() {
    let app = spawn_app().await;

    for path in ["/v1/nothing-here", "/nope", "/v1/products/x/y/z"] {
        app.get(path, None).await.expect_problem(404, "not_found");
    }
}

#[tokio::test]
async fn a_clients_correlation_id_is_echoed_and_recorded_on_every_event() {
    let app = spawn_app().await;
    let register = app
        .request(Method::POST, "/v1/customers", None)
        .header("x-correlation-id", "trace-4711")
        .json(&json!({"email": "traced@example.com", "password": "password-123", "name": "T"}));

    let registered = app.send(register).await.expect(201);

    assert_eq!(registered.header("x-correlation-id"), Some("trace-4711"));
    let id = registered.str("customer_id");
    let mut events = app.stream(&format!("customer-{id}")).await;
    events.extend(app.stream("email-traced@example.com").await);
    assert_eq!(events.len(), 3);
    for event in events {
        assert_eq!(
            event["metadata"]["correlation_id"], "trace-4711",
            "{event:#?}"
        );
    }
}

#[tokio::test]
async fn a_problem_carries_the_clients_correlation_id_and_an_unusable_one_is_replaced() {
    let app = spawn_app().await;
    let refused = |correlation_id: &str| {
        app.request(Method::POST, "/v1/products", None)
            .header("x-correlation-id", correlation_id)
            .json(&product_body("X", 1))
    };

    let problem = app
        .send(refused("trace-4712"))
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(problem.body["correlation_id"], "trace-4712");

    let unusable = "has spaces in it";
    let problem = app
        .send(refused(unusable))
        .await
        .expect_problem(401, "unauthorized");
    assert_ne!(problem.body["correlation_id"], unusable);
}

// ---- Operations

#[tokio::test]
async fn health_and_metrics_answer() {
    let app = spawn_app().await;

    let live = app.get("/health/live", None).await.expect(200);
    assert_eq!(live.body["status"], "live");
    let ready = app.get("/health/ready", None).await.expect(200);
    assert_eq!(ready.body["status"], "ready");
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.body.as_str().unwrap_or_default();
    assert!(text.contains("shopstream_http_requests_total{"), "{text}");
    assert!(text.contains(r#"route="/health/live""#), "{text}");
}

/// The value of an unlabelled sample in a Prometheus text exposition.
fn sample(text: &str, name: &str) -> f64 {
    shopstream_testkit::metrics::sample(text, name).unwrap_or_else(|| panic!("no {name} in {text}"))
}

#[tokio::test]
async fn every_group_commit_is_counted_with_its_appends_and_duration() {
    let app = spawn_app().await;
    let before = app.get("/metrics", None).await.expect(200);
    let before = before.body.as_str().unwrap_or_default().to_string();
    let (commits, appends) = (
        sample(&before, "shopstream_event_store_commit_seconds_count"),
        sample(&before, "shopstream_event_store_commit_appends_sum"),
    );
    app.stocked_product("METRIC-1", 100, 5).await;
    let after = app.get("/metrics", None).await.expect(200);
    let after = after.body.as_str().unwrap_or_default();
    // Creating a product and receiving stock: two commands, each one
    // append (alone, they form groups of one); the mailer may have
    // recorded something meanwhile.
    let groups = sample(after, "shopstream_event_store_commit_seconds_count") - commits;
    let carried = sample(after, "shopstream_event_store_commit_appends_sum") - appends;
    assert!(groups >= 2.0, "{after}");
    assert!(carried >= groups, "every group carries an append: {after}");
    assert!(sample(after, "shopstream_event_store_commit_seconds_sum") > 0.0);
}
