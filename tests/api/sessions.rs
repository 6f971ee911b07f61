//! Sessions and tokens: refresh tokens are spent when used, a stolen one
//! ends its session, logout ends it, and what a token may do follows its
//! customer's current state (role, enabled) on every node.

use std::time::Duration;

use serde_json::json;
use shopstream_domain::values::{CustomerId, Role};
use shopstream_infra::crypto::token::TokenIssuer;

use crate::helpers::{TestApp, spawn_app, spawn_app_in};

const PASSWORD: &str = "password-123";

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::helpers::Reply {
    app.post(
        "/v1/auth/refresh",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

#[tokio::test]
async fn a_refresh_token_is_spent_once_and_a_replay_ends_the_session() {
    let app = spawn_app().await;
    app.register("ada@example.com", PASSWORD, "Ada")
        .await
        .expect(201);
    let login = app.login("ada@example.com", PASSWORD).await.expect(200);
    assert_eq!(login.header("cache-control"), Some("no-store"));
    let first = login.str("refresh_token");
    assert!(login.body["refresh_expires_in"].as_i64().unwrap() > 0);

    let renewed = refresh(&app, &first).await.expect(200);
    let (second, access) = (renewed.str("refresh_token"), renewed.str("access_token"));
    assert_ne!(second, first, "a new refresh token each time");
    app.get("/v1/customers/me", Some(&access)).await.expect(200);

    // The spent token comes back: someone else holds a copy. The session
    // ends, for the thief and the owner alike.
    refresh(&app, &first)
        .await
        .expect_problem(401, "unauthorized");
    refresh(&app, &second)
        .await
        .expect_problem(401, "unauthorized");
    app.get("/v1/customers/me", Some(&access))
        .await
        .expect_problem(401, "unauthorized");

    // A new login is a new session.
    let again = app.login("ada@example.com", PASSWORD).await.expect(200);
    refresh(&app, &again.str("refresh_token")).await.expect(200);
    for garbage in ["", "nonsense", "0190e6c2-0000-7000-8000-000000000000.abc"] {
        refresh(&app, garbage)
            .await
            .expect_problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn logging_out_ends_the_session_and_its_tokens() {
    let app = spawn_app().await;
    app.register("bo@example.com", PASSWORD, "Bo")
        .await
        .expect(201);
    let login = app.login("bo@example.com", PASSWORD).await.expect(200);
    let (refresh_token, access) = (login.str("refresh_token"), login.str("access_token"));
    app.get("/v1/customers/me", Some(&access)).await.expect(200);

    let out = app
        .post(
            "/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await;
    assert_eq!(out.status.as_u16(), 204, "{out:#?}");
    refresh(&app, &refresh_token)
        .await
        .expect_problem(401, "unauthorized");
    app.get("/v1/customers/me", Some(&access))
        .await
        .expect_problem(401, "unauthorized");
    // Logging out again changes nothing.
    let again = app
        .post(
            "/v1/auth/logout",
            None,
            json!({ "refresh_token": refresh_token }),
        )
        .await;
    assert_eq!(again.status.as_u16(), 204);
}

#[tokio::test]
async fn a_demoted_admin_loses_admin_rights_with_the_token_they_hold() {
    let app = spawn_app().await;
    let (id, _) = app.customer("cleo@example.com").await;
    app.change_role(&app.admin, &id, "admin").await.expect(200);
    let cleo = app.token("cleo@example.com", PASSWORD).await;
    app.get("/v1/admin/projections", Some(&cleo))
        .await
        .expect(200);

    app.change_role(&app.admin, &id, "customer")
        .await
        .expect(200);
    app.get("/v1/admin/projections", Some(&cleo))
        .await
        .expect_problem(403, "forbidden");
    app.get("/v1/customers/me", Some(&cleo)).await.expect(200);
}

#[tokio::test]
async fn a_disabled_account_can_neither_log_in_nor_use_its_tokens() {
    let app = spawn_app().await;
    let (id, token) = app.customer("dan@example.com").await;
    app.post_empty(&format!("/v1/admin/customers/{id}/disable"), Some(&token))
        .await
        .expect_problem(403, "forbidden");
    let disabled = app
        .post_empty(
            &format!("/v1/admin/customers/{id}/disable"),
            Some(&app.admin),
        )
        .await
        .expect(200);
    assert_eq!(disabled.body["enabled"], false);
    app.get("/v1/customers/me", Some(&token))
        .await
        .expect_problem(401, "unauthorized");
    app.login("dan@example.com", PASSWORD)
        .await
        .expect_problem(401, "unauthorized");

    app.post_empty(
        &format!("/v1/admin/customers/{id}/enable"),
        Some(&app.admin),
    )
    .await
    .expect(200);
    let back = app.token("dan@example.com", PASSWORD).await;
    app.get("/v1/customers/me", Some(&back)).await.expect(200);
}

#[tokio::test]
async fn a_validly_signed_token_for_nobody_is_refused() {
    let app = spawn_app().await;
    let secret = std::fs::read_to_string(app.dir.path().join("jwt-secret")).unwrap();
    let issuer = TokenIssuer::new(secret.trim().as_bytes(), Duration::from_secs(900)).unwrap();
    let (forged, _) = issuer
        .issue(
            CustomerId(uuid::Uuid::now_v7()),
            Role::Admin,
            None,
            chrono::Utc::now(),
        )
        .unwrap();
    app.get("/v1/admin/projections", Some(&forged))
        .await
        .expect_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_role_change_made_through_one_node_reaches_another() {
    let first = spawn_app().await;
    let second = spawn_app_in(first.dir.clone()).await;
    let (id, _) = first.customer("eve@example.com").await;
    first
        .change_role(&first.admin, &id, "admin")
        .await
        .expect(200);
    let eve = first.token("eve@example.com", PASSWORD).await;
    second
        .get("/v1/admin/projections", Some(&eve))
        .await
        .expect(200);

    first
        .change_role(&first.admin, &id, "customer")
        .await
        .expect(200);
    // The other node hears of it through the event store (within the
    // caches' five-second bound at worst).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = second.get("/v1/admin/projections", Some(&eve)).await;
        if reply.status.as_u16() == 403 {
            break;
        }
        assert_eq!(reply.status.as_u16(), 200, "{reply:#?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the demotion never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
