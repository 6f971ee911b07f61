//! A store that cannot be reached: the service starts anyway, goes on with
//! what the other store serves, answers what needs the missing one 503 with
//! `Retry-After`, and says what it waits for.

use serde_json::json;

use crate::helpers::{Read, product_body, spawn_app_with, spawn_app_without_admin};

#[tokio::test]
async fn without_its_event_store_the_service_serves_queries_and_refuses_commands_for_now() {
    let app = spawn_app_without_admin(&[
        ("event_store", json!("kurrentdb")),
        // Nothing listens on port 1; one discovery attempt keeps it quick.
        (
            "kurrentdb_url",
            json!("kurrentdb://admin:changeit@127.0.0.1:1?tls=false&maxDiscoverAttempts=1"),
        ),
    ])
    .await;

    let refused = app
        .post(
            "/v1/customers",
            None,
            json!({"email": "ada@example.com", "password": "password-123", "name": "Ada"}),
        )
        .await
        .expect_problem(503, "unavailable");
    assert!(refused.header("retry-after").is_some(), "{refused:#?}");
    app.post("/v1/products", None, product_body("LAMP", 300))
        .await
        .expect_problem(401, "unauthorized");
    let login = app
        .post(
            "/v1/auth/token",
            None,
            json!({"email": "admin@example.com", "password": "whatever-1"}),
        )
        .await;
    assert_eq!(login.status.as_u16(), 503, "{login:#?}");

    // Queries are served from the read models meanwhile.
    let products = app.products(&[], &Read::anyone()).await.expect(200);
    assert_eq!(products.body["items"], json!([]));

    let ready = app.get("/health/ready", None).await.expect(503);
    assert_eq!(ready.body["status"], "unavailable");
    let why = ready.body["event_store"].as_str().expect("a reason");
    assert!(why.contains("event store unavailable"), "{why}");
    app.get("/health/live", None).await.expect(200);
}

/// A read store that cannot be reached: the service starts anyway, takes
/// commands, answers queries 503 with `Retry-After`, and says what it waits
/// for.
#[tokio::test]
async fn without_its_read_store_the_service_takes_commands_and_refuses_queries_for_now() {
    let app = spawn_app_with(&[
        ("read_store", json!("scylla")),
        // Nothing listens on port 1.
        ("scylla_nodes", json!("127.0.0.1:1")),
        ("scylla.connect_timeout_ms", json!(200)),
    ])
    .await;

    let created = app
        .post("/v1/products", Some(&app.admin), product_body("LAMP", 300))
        .await;
    assert_eq!(created.status.as_u16(), 201, "{created:#?}");

    let refused = app
        .products(&[], &Read::anyone())
        .await
        .expect_problem(503, "unavailable");
    assert!(refused.header("retry-after").is_some(), "{refused:#?}");

    let ready = app.get("/health/ready", None).await.expect(503);
    assert_eq!(ready.body["status"], "unavailable");
    assert!(
        ready.body["event_store"]["head_position"].is_u64(),
        "{:#?}",
        ready.body
    );
    let why = ready.body["read_store"].as_str().expect("a reason");
    assert!(why.contains("read store unavailable"), "{why}");
}
