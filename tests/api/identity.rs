//! Identity: registration, tokens, roles, and what the event log keeps of
//! them.

use reqwest::Method;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Reply, TestApp, product_body, spawn_app};

const PASSWORD: &str = "password-123";

/// Tries to list a product as whoever `token` names.
async fn try_create_product(app: &TestApp, token: Option<&str>, sku: &str) -> Reply {
    app.post("/v1/products", token, product_body(sku, 100))
        .await
}

/// Whether a stream exists, as seen by the admin.
async fn exists(app: &TestApp, stream: &str) -> bool {
    !app.stream(stream).await.is_empty()
}

#[tokio::test]
async fn registration_answers_with_the_id_and_records_the_customer_and_the_claim() {
    let app = spawn_app().await;

    let id = app
        .register("Alice@Example.com", PASSWORD, "Alice")
        .await
        .expect(201)
        .str("customer_id");

    uuid::Uuid::parse_str(&id).expect("customer_id is a UUID");
    let customer = app.stream(&format!("customer-{id}")).await;
    assert_eq!(customer[0]["type"], "CustomerRegistered");
    assert_eq!(customer[0]["data"]["email"], "alice@example.com");
    assert_eq!(customer[0]["data"]["role"], "customer");
    assert_eq!(customer[1]["type"], "PasswordSet");
    let claim = app.stream("email-alice@example.com").await;
    assert_eq!(claim.len(), 1);
    assert_eq!(claim[0]["data"]["customer_id"], id.as_str());
}

#[tokio::test]
async fn an_email_is_taken_whatever_its_case_and_the_claim_keeps_its_holder() {
    let app = spawn_app().await;
    let (first, _) = app.customer("bob@example.com").await;

    app.register("BOB@example.COM", "another-password", "Other Bob")
        .await
        .expect_problem(409, "email_taken");

    let claim = app.stream("email-bob@example.com").await;
    assert_eq!(claim.len(), 1, "no second claim: {claim:#?}");
    assert_eq!(claim[0]["data"]["customer_id"], first.as_str());
    // The first owner's password still works; the second one's never did.
    app.login("bob@example.com", PASSWORD).await.expect(200);
    app.login("bob@example.com", "another-password")
        .await
        .expect_problem(401, "unauthorized");
}

#[tokio::test]
async fn an_invalid_registration_names_every_bad_field_and_claims_nothing() {
    let app = spawn_app().await;

    let refused = app
        .register("not-an-email", "short", "")
        .await
        .expect_problem(422, "validation_failed");

    assert_eq!(refused.error_fields(), ["email", "name", "password"]);

    let refused = app
        .register("julia@example.com", "short", "Julia")
        .await
        .expect_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["password"]);
    assert!(!exists(&app, "email-julia@example.com").await);
    app.register("julia@example.com", PASSWORD, "Julia")
        .await
        .expect(201);
}

#[tokio::test]
async fn logging_in_gives_a_bearer_token_that_expires() {
    let app = spawn_app().await;
    app.customer("carol@example.com").await;

    let token = app.login("CAROL@example.com", PASSWORD).await.expect(200);

    assert_eq!(token.body["token_type"], "Bearer");
    assert!(
        token.body["expires_in"].as_i64().unwrap_or(0) > 0,
        "{token:#?}"
    );
    assert_eq!(token.str("access_token").split('.').count(), 3, "a JWT");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_are_both_unauthorized() {
    let app = spawn_app().await;
    app.customer("dave@example.com").await;

    for (email, password) in [
        ("dave@example.com", "wrong-password"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ] {
        let refused = app
            .login(email, password)
            .await
            .expect_problem(401, "unauthorized");
        assert!(refused.body.get("access_token").is_none());
    }
}

#[tokio::test]
async fn a_forged_or_garbage_bearer_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let (_, customer) = app.customer("eve@example.com").await;
    // The admin's claims under the customer's signature, and the admin's
    // claims unsigned.
    let admin_claims = app.admin.split('.').nth(1).expect("JWT payload");
    let parts: Vec<&str> = customer.split('.').collect();
    let spliced = format!("{}.{admin_claims}.{}", parts[0], parts[2]);
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{admin_claims}.");

    for token in [spliced.as_str(), unsigned.as_str(), "garbage"] {
        try_create_product(&app, Some(token), "FORGED-1")
            .await
            .expect_problem(401, "unauthorized");
    }
    let wrong_scheme = app
        .request(Method::POST, "/v1/carts", None)
        .header("authorization", format!("Basic {customer}"));
    app.send(wrong_scheme)
        .await
        .expect_problem(401, "unauthorized");
    assert!(!exists(&app, "sku-FORGED-1").await);
}

#[tokio::test]
async fn the_configured_admin_logs_in_like_anyone_and_may_list_products() {
    let app = spawn_app().await;

    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.expect(200);
    assert_eq!(login.body["token_type"], "Bearer");

    let token = login.str("access_token");
    try_create_product(&app, Some(&token), "ADMIN-1")
        .await
        .expect(201);
    assert!(exists(&app, "sku-ADMIN-1").await);
}

#[tokio::test]
async fn an_analyst_made_by_the_admin_reads_streams_at_once_but_lists_nothing() {
    let app = spawn_app().await;
    let (id, old_token) = app.customer("fiona@example.com").await;
    let stream_path = format!("/v1/streams/customer-{id}");

    let changed = app
        .change_role(&app.admin, &id, "analyst")
        .await
        .expect(200);
    assert_eq!(changed.body["role"], "analyst");
    let last = app.stream(&format!("customer-{id}")).await.pop();
    let last = last.expect("customer events");
    assert_eq!(last["type"], "RoleChanged");
    assert_eq!(last["data"]["role"], "analyst");
    assert_eq!(last["data"]["previous"], "customer");

    // What a token may do follows the role its customer has now: the one
    // issued before the change reads streams already.
    let events = app.get(&stream_path, Some(&old_token)).await.expect(200);
    assert_eq!(events.body["items"].as_array().map(Vec::len), Some(3));
    let analyst = app.token("fiona@example.com", PASSWORD).await;
    app.get(&stream_path, Some(&analyst)).await.expect(200);
    try_create_product(&app, Some(&analyst), "ANALYST-1")
        .await
        .expect_problem(403, "forbidden");
    assert!(!exists(&app, "sku-ANALYST-1").await);
}

#[tokio::test]
async fn a_customer_cannot_change_roles_not_even_their_own() {
    let app = spawn_app().await;
    let (id, token) = app.customer("gina@example.com").await;
    let before = app.stream(&format!("customer-{id}")).await;

    app.change_role(&token, &id, "admin")
        .await
        .expect_problem(403, "forbidden");

    assert_eq!(app.stream(&format!("customer-{id}")).await, before);
    // Still a customer: the admin-only endpoint stays closed.
    let token = app.token("gina@example.com", PASSWORD).await;
    try_create_product(&app, Some(&token), "GINA-1")
        .await
        .expect_problem(403, "forbidden");
}

#[tokio::test]
async fn a_role_change_names_a_known_role_and_a_known_customer() {
    let app = spawn_app().await;
    let (id, _) = app.customer("hank@example.com").await;

    app.change_role(&app.admin, &id, "superuser")
        .await
        .expect_problem(400, "malformed_request");
    app.change_role(&app.admin, &uuid::Uuid::now_v7().to_string(), "analyst")
        .await
        .expect_problem(404, "not_found");

    assert_eq!(
        app.event_types(&format!("customer-{id}")).await,
        ["CustomerRegistered", "PasswordSet"]
    );
}

#[tokio::test]
async fn password_hashes_never_leave_through_the_streams_endpoint() {
    let app = spawn_app().await;
    let (id, _) = app.customer("ivan@example.com").await;

    let reply = app
        .get(&format!("/v1/streams/customer-{id}"), Some(&app.admin))
        .await
        .expect(200);

    let items = reply.body["items"].as_array().expect("items");
    let password_set = items
        .iter()
        .find(|e| e["type"] == "PasswordSet")
        .expect("a PasswordSet event");
    assert_eq!(password_set["data"]["password_hash"], "[redacted]");
    assert!(
        !reply.body.to_string().contains("$argon2"),
        "no hash anywhere: {reply:#?}"
    );
}
