//! Rate limits per route class: refused before any work, with the wait
//! and the policy said.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{Read, spawn_app_with};

fn limited() -> (&'static str, serde_json::Value) {
    ("rate_limits", json!("on"))
}

#[tokio::test]
async fn the_sixth_login_in_a_minute_is_refused_with_when_to_come_back() {
    let app = spawn_app_with(&[limited()]).await;
    let attempt = || app.login("admin@example.com", "wrong-password-1");
    // The harness logged the admin in once: attempts two to five fail on
    // the password, the sixth is refused before it is looked at.
    for _ in 2..5 {
        attempt().await.expect_problem(401, "unauthorized");
    }
    let fifth = attempt().await.expect_problem(401, "unauthorized");
    let standing = fifth.header("ratelimit").unwrap_or_default();
    assert!(standing.starts_with("\"auth\";r=0;t="), "{fifth:#?}");
    let sixth = attempt().await.expect_problem(429, "rate_limited");
    let wait: u64 = sixth
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(sixth.header("ratelimit-limit"), Some("5"));
    assert_eq!(sixth.header("ratelimit-policy"), Some("\"auth\";q=5;w=60"));
    // Even the right password waits: the address is out of attempts.
    app.login("admin@example.com", crate::helpers::ADMIN_PASSWORD)
        .await
        .expect_problem(429, "rate_limited");
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.body.as_str().unwrap_or("").to_string();
    assert!(
        text.contains("shopstream_rate_limited_total{class=\"auth\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn an_account_is_limited_from_every_address_at_once() {
    // Behind a trusted proxy, each attempt comes from another address.
    let app = spawn_app_with(&[limited(), ("http.trusted_proxies", json!("127.0.0.1"))]).await;
    let from = |i: u32| {
        app.request(Method::POST, "/v1/auth/token", None)
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"email": "Admin@Example.com", "password": "wrong-password-1"}))
    };
    // The harness's own login was the account's first.
    for i in 2..=5 {
        let reply = app.send(from(i)).await;
        assert_eq!(reply.status.as_u16(), 401, "attempt {i}: {reply:#?}");
    }
    app.send(from(6)).await.expect_problem(429, "rate_limited");
    // Another account from a fresh address is not held up by it.
    let other = app
        .send(
            app.request(Method::POST, "/v1/auth/token", None)
                .header("x-forwarded-for", "198.51.100.7")
                .json(&json!({"email": "someone@example.com", "password": "wrong-password-1"})),
        )
        .await;
    assert_eq!(other.status.as_u16(), 401);
}

#[tokio::test]
async fn queries_and_searches_are_limited_per_caller_health_never() {
    let app = spawn_app_with(&[
        limited(),
        ("limits.api_per_minute", json!(3)),
        ("limits.search_per_minute", json!(2)),
    ])
    .await;
    for left in ["2", "1", "0"] {
        let ok = app.products(&[], &Read::anyone()).await.expect(200);
        let standing = ok.header("ratelimit").unwrap_or_default();
        assert!(
            standing.starts_with(&format!("\"api\";r={left};t=")),
            "{ok:#?}"
        );
        assert_eq!(ok.header("ratelimit-remaining"), None, "said once");
    }
    let refused = app
        .products(&[], &Read::anyone())
        .await
        .expect_problem(429, "rate_limited");
    assert_eq!(refused.header("ratelimit-policy"), Some("\"api\";q=3;w=60"));
    for _ in 0..2 {
        app.get("/v1/products/search?q=lamp", None)
            .await
            .expect(200);
    }
    app.get("/v1/products/search?q=lamp", None)
        .await
        .expect_problem(429, "rate_limited");
    // A signed-in customer has a bucket of their own.
    app.get("/v1/customers/me", Some(&app.admin))
        .await
        .expect(200);
    for _ in 0..10 {
        app.get("/health/live", None).await.expect(200);
    }
}
