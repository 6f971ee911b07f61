//! What every answer gets at the edge, whatever the route: problem bodies,
//! 405 with `Allow`, authentication headers, browser safety, CORS, and
//! requests that would hold the service up.

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Read, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_known_path_with_another_method_is_405_with_allow() {
    let app = spawn_app().await;
    let wrong = app
        .send(app.request(Method::DELETE, "/v1/products", None))
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET, POST"));
    let wrong = app
        .send(app.request(
            Method::PUT,
            "/v1/orders/0190e6c2-0000-7000-8000-000000000000",
            None,
        ))
        .await
        .expect_problem(405, "method_not_allowed");
    assert_eq!(wrong.header("allow"), Some("GET"));
    app.get("/v1/nothing-here", None)
        .await
        .expect_problem(404, "not_found");
}

#[tokio::test]
async fn made_up_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..20 {
        let method = Method::from_bytes(format!("MADEUP{i:0>40}").as_bytes()).unwrap();
        let reply = app.send(app.request(method, "/v1/products", None)).await;
        assert_eq!(reply.status.as_u16(), 405);
    }
    let metrics = app.get("/metrics", None).await.expect(200);
    let text = metrics.body.as_str().expect("metrics are text").to_string();
    assert!(!text.contains("MADEUP"), "methods are not labels as sent");
    assert!(
        text.contains("method=\"OTHER\""),
        "they are counted as OTHER"
    );
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_401_says_which_to_use() {
    let app = spawn_app().await;
    let upper = app
        .send(
            app.request(Method::GET, "/v1/customers/me", None)
                .header("authorization", format!("BEARER {}", app.admin)),
        )
        .await;
    assert_eq!(upper.status.as_u16(), 200, "{upper:#?}");
    let refused = app
        .get("/v1/customers/me", None)
        .await
        .expect_problem(401, "unauthorized");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Bearer realm=\"shopstream\"")
    );
    assert_eq!(refused.header("x-content-type-options"), Some("nosniff"));
    let ok = app.products(&[], &Read::anyone()).await.expect(200);
    assert_eq!(ok.header("x-content-type-options"), Some("nosniff"));
}

#[tokio::test]
async fn a_consistency_token_past_every_event_is_refused_at_once() {
    let app = spawn_app().await;
    let forged = Read::anyone().with_consistency_token("c1.ffffffffffff");
    app.products(&[], &forged)
        .await
        .expect_problem(400, "malformed_request");
}

#[tokio::test]
async fn a_body_that_stalls_is_cut_off_with_a_problem() {
    let app = spawn_app_with(&[("http.body_timeout_ms", json!(300))]).await;
    let address = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/customers HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"email\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // The rest never comes; the answer does.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
}

#[tokio::test]
async fn browsers_may_call_from_the_configured_origins_only() {
    let app = spawn_app_with(&[("http.cors_origins", json!("https://shop.example.com"))]).await;
    let preflight = |origin: &'static str| {
        app.request(Method::OPTIONS, "/v1/products", None)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
    };
    let allowed = app.send(preflight("https://shop.example.com")).await;
    assert_eq!(allowed.status.as_u16(), 200, "{allowed:#?}");
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    let other = app.send(preflight("https://evil.example.com")).await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        None,
        "{other:#?}"
    );

    let simple = app
        .send(
            app.request(Method::GET, "/v1/products", None)
                .header("origin", "https://shop.example.com"),
        )
        .await
        .expect(200);
    assert_eq!(
        simple.header("access-control-allow-origin"),
        Some("https://shop.example.com")
    );
    assert!(
        simple
            .header("access-control-expose-headers")
            .is_some_and(|h| h.to_ascii_lowercase().contains("x-consistency-token")),
        "{simple:#?}"
    );
    assert!(
        simple.header("vary").is_some_and(|v| v.contains("Origin")),
        "{simple:#?}"
    );

    // A client that is not a browser gets no CORS headers, only the Vary
    // that keeps caches from serving its answer to a browser.
    let plain = app.get("/v1/products", None).await.expect(200);
    assert_eq!(
        plain.header("access-control-expose-headers"),
        None,
        "{plain:#?}"
    );
    assert_eq!(
        plain.header("access-control-allow-origin"),
        None,
        "{plain:#?}"
    );
    assert_eq!(plain.header("vary"), Some("Origin"), "{plain:#?}");
}

#[tokio::test]
async fn malformed_command_headers_and_positions_get_the_documented_problems() {
    let app = spawn_app().await;
    let doc = app.get("/v1/openapi.json", None).await.expect(200).body;
    let documented = |method: &str, path: &str, status: u16| {
        let listed = doc["paths"][path][method]["responses"]
            .get(status.to_string())
            .is_some();
        assert!(listed, "{method} {path} does not document {status}");
    };
    let created = app.create_product("HDR-1", 1000).await.expect(201);
    let product = created.str("product_id");
    let price = format!("/v1/products/{product}/price");
    let body = json!({"price": {"amount": 1200, "currency": "EUR"}});
    let change = |name: &'static str, value: Vec<u8>| {
        app.request(Method::PUT, &price, Some(&app.admin))
            .header(name, value)
            .json(&body)
    };

    for revision in ["3", "\"three\"", "W/\"3\"", "\"-1\""] {
        app.send(change("if-match", revision.into()))
            .await
            .expect_problem(400, "malformed_request");
    }
    documented("put", "/v1/products/{id}/price", 400);
    app.send(change("idempotency-key", "é".as_bytes().to_vec()))
        .await
        .expect_problem(400, "malformed_request");
    app.send(change("idempotency-key", vec![b'k'; 256]))
        .await
        .expect_problem(422, "validation_failed");
    documented("put", "/v1/products/{id}/price", 422);
    for verification in ["/v1/customers/me/verification", "/v1/orders/{id}/cancel"] {
        documented("post", verification, 400);
        documented("post", verification, 422);
    }

    let analyst = app.analyst("ana@example.com").await;
    for position in ["-1", "abc", "1.5"] {
        let live = app.request_with(
            Method::GET,
            "/v1/events/live",
            &[("from_position", position)],
            Some(&analyst),
        );
        app.send(live)
            .await
            .expect_problem(400, "malformed_request");
    }
    documented("get", "/v1/events/live", 400);
    // Nothing above reached the product.
    let unchanged = app
        .product(&product, &Read::anyone().after(&created))
        .await
        .expect(200);
    assert_eq!(unchanged.body["price"]["amount"], 1000);
}
