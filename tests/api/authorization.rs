//! Who may call what, as one table: every operation of the OpenAPI document
//! against every kind of caller (anonymous, the owner of the resource,
//! another customer, an analyst, an admin). The table must list exactly the
//! document's operations, so a new route cannot ship without a row.
//!
//! Refused calls run first, all of them, and must append nothing; then the
//! allowed calls run, in table order, and must get past authorization (a
//! 409 from a state an earlier row left is still "allowed").

use std::collections::BTreeSet;

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Read, TestApp, money, product_body, spawn_app};

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Access {
    /// Anyone, and every caller gets the same answer.
    Public,
    /// Any signed-in caller, whatever the role.
    SignedIn,
    /// Only the customer who owns the resource.
    Owner,
    /// The owner, or an admin.
    OwnerOrAdmin,
    /// Analysts and admins.
    Staff,
    /// Admins only.
    Admin,
}

use Access::*;

const CALLERS: [Caller; 5] = [
    Caller::Anonymous,
    Caller::Owner,
    Caller::Other,
    Caller::Analyst,
    Caller::Admin,
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    Owner,
    Other,
    Analyst,
    Admin,
}

impl Access {
    fn allows(self, caller: Caller) -> bool {
        match self {
            Public => true,
            SignedIn => caller != Caller::Anonymous,
            Owner => caller == Caller::Owner,
            OwnerOrAdmin => matches!(caller, Caller::Owner | Caller::Admin),
            Staff => matches!(caller, Caller::Analyst | Caller::Admin),
            Admin => caller == Caller::Admin,
        }
    }
}

/// Every operation, in the order the allowed calls run: what consumes state
/// (checkout, cancel, discontinue) comes after what needs it.
const ROUTES: &[(&str, &str, Access)] = &[
    ("GET", "/health/live", Public),
    ("GET", "/health/ready", Public),
    ("GET", "/metrics", Public),
    ("GET", "/v1/openapi.json", Public),
    ("POST", "/v1/customers", Public),
    ("POST", "/v1/auth/token", Public),
    ("POST", "/v1/auth/refresh", Public),
    ("POST", "/v1/auth/logout", Public),
    ("POST", "/v1/customers/verify-email", Public),
    ("GET", "/v1/products", Public),
    ("GET", "/v1/products/search", Public),
    ("GET", "/v1/products/{id}", Public),
    ("GET", "/v1/inventory/{sku}", Public),
    ("GET", "/v1/customers/me", SignedIn),
    ("GET", "/v1/customers/me/orders", SignedIn),
    ("POST", "/v1/customers/me/verification", SignedIn),
    ("POST", "/v1/carts", SignedIn),
    ("GET", "/v1/carts/{id}", Owner),
    ("PUT", "/v1/carts/{id}/items/{product_id}", Owner),
    ("POST", "/v1/carts/{id}/checkout", Owner),
    ("GET", "/v1/orders/{id}", OwnerOrAdmin),
    ("POST", "/v1/orders/{id}/payments", Owner),
    ("POST", "/v1/orders/{id}/ship", Admin),
    ("POST", "/v1/orders/{id}/cancel", OwnerOrAdmin),
    ("GET", "/v1/streams/{stream}", Staff),
    ("GET", "/v1/events", Staff),
    ("GET", "/v1/events/live", Staff),
    ("GET", "/v1/reports/sales", Staff),
    ("POST", "/v1/products", Admin),
    ("PUT", "/v1/products/{id}/price", Admin),
    ("POST", "/v1/inventory/{sku}/receipts", Admin),
    ("POST", "/v1/products/{id}/discontinue", Admin),
    ("PUT", "/v1/admin/customers/{id}/role", Admin),
    ("POST", "/v1/admin/customers/{id}/disable", Admin),
    ("POST", "/v1/admin/customers/{id}/enable", Admin),
    ("GET", "/v1/admin/projections", Admin),
    ("POST", "/v1/admin/projections/{name}/pause", Admin),
    ("POST", "/v1/admin/projections/{name}/resume", Admin),
    ("POST", "/v1/admin/projections/{name}/rebuild", Admin),
    ("GET", "/v1/admin/dead-letters", Admin),
    (
        "GET",
        "/v1/admin/dead-letters/{projection}/{event_id}",
        Admin,
    ),
    (
        "POST",
        "/v1/admin/dead-letters/{projection}/{event_id}/retry",
        Admin,
    ),
    (
        "POST",
        "/v1/admin/dead-letters/{projection}/{event_id}/skip",
        Admin,
    ),
];

const PASSWORD: &str = "password-123";

/// The resources the calls name, and a token per caller.
struct World {
    tokens: [Option<String>; 5],
    product: String,
    retired: String,
    cart: String,
    order: String,
    victim: String,
    owner: String,
    /// Unspent refresh tokens of a bystander's sessions, one per call.
    refresh_tokens: Vec<String>,
    /// Where the reads wait until, so every caller reads the same state.
    consistency: String,
    /// An event the carts projection set aside.
    letter: String,
}

impl World {
    async fn build(app: &TestApp) -> World {
        let (owner, owner_token) = app.customer("owner@example.com").await;
        let (_, other_token) = app.customer("other@example.com").await;
        let (victim, _) = app.customer("victim@example.com").await;
        let analyst = app.analyst("analyst@example.com").await;
        app.register("bystander@example.com", PASSWORD, "Bystander")
            .await
            .expect(201);
        let mut refresh_tokens = Vec::new();
        for _ in 0..2 * CALLERS.len() {
            let login = app
                .login("bystander@example.com", PASSWORD)
                .await
                .expect(200);
            refresh_tokens.push(login.str("refresh_token"));
        }
        let product = app.stocked_product("MATRIX-1", 1000, 50).await;
        let retired = app.stocked_product("MATRIX-2", 500, 5).await;
        let order = app
            .place_order(&owner_token, &[(&product, 1)])
            .await
            .str("order_id");
        let cart = app.create_cart(&owner_token).await;
        let last = app
            .set_item(&owner_token, &cart, &product, 2)
            .await
            .expect(200);
        let letter = app.misfile_cart_item(&owner_token).await.event_id;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        // Set aside by the projection in its own time: no token waits for it.
        while !app
            .dead_letters(&[])
            .await
            .expect(200)
            .body
            .to_string()
            .contains(&letter)
        {
            assert!(tokio::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        World {
            tokens: [
                None,
                Some(owner_token),
                Some(other_token),
                Some(analyst),
                Some(app.admin.clone()),
            ],
            product,
            retired,
            cart,
            order,
            victim,
            owner,
            refresh_tokens,
            consistency: last.consistency_token().to_string(),
            letter,
        }
    }

    fn token(&self, caller: Caller) -> Option<&str> {
        self.tokens[caller as usize].as_deref()
    }

    /// The concrete path of a template, with query parameters where the
    /// operation needs them.
    fn path(&self, method: &str, template: &str) -> String {
        let (id, sku) = match template {
            t if t.starts_with("/v1/products/{id}/discontinue") => (&self.retired, "MATRIX-2"),
            t if t.starts_with("/v1/carts/") => (&self.cart, ""),
            t if t.starts_with("/v1/orders/") => (&self.order, ""),
            t if t.starts_with("/v1/admin/customers/") => (&self.victim, ""),
            _ => (&self.product, "MATRIX-1"),
        };
        let path = template
            .replace("{id}", id)
            .replace("{product_id}", &self.product)
            .replace("{sku}", sku)
            .replace("{stream}", &format!("customer-{}", self.owner))
            .replace("{name}", "catalogue")
            .replace("{projection}", "carts")
            .replace("{event_id}", &self.letter);
        match (method, template) {
            ("GET", "/v1/products/search") => format!("{path}?q=widget"),
            ("GET", "/v1/events/live") => format!("{path}?from_position=0"),
            _ => path,
        }
    }

    /// A valid body for the call, so that only authorization can refuse it.
    fn body(&mut self, method: &str, template: &str, call: usize) -> Option<Value> {
        let body = match (method, template) {
            ("POST", "/v1/customers") => json!({
                "email": format!("new-{call}@example.com"),
                "password": PASSWORD,
                "name": "New Customer",
            }),
            ("POST", "/v1/auth/token") => {
                json!({"email": "bystander@example.com", "password": PASSWORD})
            }
            ("POST", "/v1/auth/refresh" | "/v1/auth/logout") => {
                json!({"refresh_token": self.refresh_tokens.pop().expect("enough sessions")})
            }
            ("POST", "/v1/customers/verify-email") => json!({"token": "not-a-link"}),
            ("PUT", "/v1/carts/{id}/items/{product_id}") => json!({"quantity": 1}),
            ("POST", "/v1/carts/{id}/checkout") => {
                json!({"shipping_address": "1 Main Street, Springfield"})
            }
            ("POST", "/v1/orders/{id}/payments") => {
                json!({"amount": money(1000, "EUR"), "reference": format!("PAY-{call}")})
            }
            ("POST", "/v1/orders/{id}/ship") => json!({"carrier": "DHL", "tracking": "T-1"}),
            ("POST", "/v1/products") => product_body(&format!("NEW-{call}"), 700),
            ("PUT", "/v1/products/{id}/price") => json!({"price": money(1100, "EUR")}),
            ("POST", "/v1/inventory/{sku}/receipts") => json!({"quantity": 1}),
            ("PUT", "/v1/admin/customers/{id}/role") => json!({"role": "customer"}),
            _ => return None,
        };
        Some(body)
    }
}

async fn call(
    app: &TestApp,
    world: &mut World,
    (method, template): (&str, &str),
    caller: Caller,
    call: usize,
) -> Response {
    let method: Method = method.parse().expect("a method");
    let path = world.path(method.as_str(), template);
    let mut request = app.request(method.clone(), &path, world.token(caller));
    if method == Method::GET {
        request = Read::anyone()
            .with_consistency_token(&world.consistency)
            .apply(request);
    }
    if let Some(body) = world.body(method.as_str(), template, call) {
        request = request.json(&body);
    }
    request.send().await.expect("the server answers")
}

#[tokio::test]
async fn every_route_admits_exactly_its_callers() {
    let app = spawn_app().await;
    let mut world = World::build(&app).await;
    let head = app.export_events(Some(&app.admin), &[]).await.items().len();

    // Refused: 401 with a challenge for the anonymous, 403 for the others;
    // a problem body either way, and nothing written.
    let mut count = 0;
    for &(method, template, access) in ROUTES {
        for caller in CALLERS.into_iter().filter(|c| !access.allows(*c)) {
            count += 1;
            let response = call(&app, &mut world, (method, template), caller, count).await;
            let status = response.status().as_u16();
            let challenge = response.headers().get("www-authenticate").is_some();
            let content_type = response.headers()[reqwest::header::CONTENT_TYPE].clone();
            let (want, code) = match caller {
                Caller::Anonymous => (401, "unauthorized"),
                _ => (403, "forbidden"),
            };
            let body: Value = response.json().await.unwrap_or_default();
            let what = format!("{method} {template} as {caller:?}: {status} {body}");
            assert_eq!(status, want, "{what}");
            assert_eq!(body["code"], code, "{what}");
            assert_eq!(content_type, "application/problem+json", "{what}");
            assert_eq!(challenge, caller == Caller::Anonymous, "{what}");
        }
    }
    assert!(count > 60, "refusals tried: {count}");
    assert_eq!(
        app.export_events(Some(&app.admin), &[]).await.items().len(),
        head,
        "a refused call appends nothing"
    );

    // Allowed: past authorization. A public operation answers every caller
    // alike.
    for &(method, template, access) in ROUTES {
        let mut statuses = Vec::new();
        for caller in CALLERS.into_iter().filter(|c| access.allows(*c)) {
            count += 1;
            let response = call(&app, &mut world, (method, template), caller, count).await;
            let status = response.status().as_u16();
            assert!(
                ![401, 403, 404, 405].contains(&status) && status < 500,
                "{method} {template} as {caller:?}: {status} {}",
                response.text().await.unwrap_or_default()
            );
            statuses.push(status);
        }
        if access == Public {
            assert!(
                statuses.windows(2).all(|w| w[0] == w[1]),
                "{method} {template}: {statuses:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_table_lists_every_documented_operation_and_the_document_its_refusals() {
    let app = spawn_app().await;
    let doc = app.get("/v1/openapi.json", None).await.expect(200).body;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = method.to_ascii_uppercase();
            if !["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method.as_str()) {
                continue;
            }
            let (_, _, access) = ROUTES
                .iter()
                .find(|(m, p, _)| *m == method && p == path)
                .unwrap_or_else(|| panic!("{method} {path} has no row in the table"));
            let responses = &operation["responses"];
            let anonymous = operation["security"] == json!([]);
            assert_eq!(anonymous, *access == Public, "{method} {path}: security");
            if *access != Public {
                assert!(responses.get("401").is_some(), "{method} {path}: no 401");
            }
            if !matches!(access, Public | SignedIn) {
                assert!(responses.get("403").is_some(), "{method} {path}: no 403");
            }
            documented.insert((method, path.clone()));
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(table, documented, "the table and the document differ");
}
