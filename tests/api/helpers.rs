//! `spawn_app()`: a fresh shopstream on a random port with its own data
//! directory, and a client with one method per endpoint.

use std::path::Path;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use figment::providers::Serialized;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use shopstream::config::Settings;
use shopstream::startup::Application;
use tokio::task::JoinHandle;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    pub admin: String,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
}

/// A fresh application in a fresh directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
}

/// An application over an existing data directory (a restart).
pub async fn spawn_app_in(dir: Arc<tempfile::TempDir>) -> TestApp {
    let settings = settings(dir.path());
    let application = Application::build(settings).await.expect("the app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let handle = application.handle();
    let server = tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::new();
    let mut app = TestApp {
        address,
        client,
        dir,
        admin: String::new(),
        handle,
        server,
    };
    app.admin = app.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app
}

pub fn settings(dir: &Path) -> Settings {
    let figment = Settings::defaults()
        .merge(Serialized::default("http_addr", "127.0.0.1:0"))
        .merge(Serialized::default("data_dir", dir))
        .merge(Serialized::default("admin_email", ADMIN_EMAIL))
        .merge(Serialized::default("admin_password", ADMIN_PASSWORD))
        .merge(Serialized::default("http.workers", 2))
        // Cheaper hashing keeps tests quick; the algorithm is the same.
        .merge(Serialized::default("passwords.memory_kib", 1024))
        .merge(Serialized::default("passwords.iterations", 1));
    Settings::from_figment(figment).expect("test settings are valid")
}

/// A valid new-product body priced in EUR; tests change fields of it.
pub fn product_body(sku: &str, price: i64) -> Value {
    json!({
        "sku": sku,
        "name": format!("Product {sku}"),
        "description": "A thing",
        "price": {"amount": price, "currency": "EUR"},
        "category": "things",
        "tags": ["test"],
    })
}

/// A response read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub async fn from(response: Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The problem code of an error reply.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected reply: {self:#?}");
        self
    }

    #[track_caller]
    pub fn expect_problem(self, status: u16, code: &str) -> Reply {
        assert_eq!(self.status.as_u16(), status, "unexpected reply: {self:#?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json")
        );
        assert_eq!(self.code(), code, "{self:#?}");
        assert_eq!(self.body["status"], status);
        let correlation_id = self.body["correlation_id"].as_str().unwrap_or_default();
        assert!(!correlation_id.is_empty(), "no correlation id: {self:#?}");
        assert_eq!(self.header("x-correlation-id"), Some(correlation_id));
        self
    }

    /// The fields a 422 names, sorted.
    pub fn error_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self.body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str().map(str::to_string))
            .collect();
        fields.sort();
        fields
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_default().to_string()
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let mut request = self
            .client
            .request(method, format!("{}{}", self.address, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    }

    pub async fn send(&self, request: RequestBuilder) -> Reply {
        Reply::from(request.send().await.expect("request sent")).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(self.request(Method::POST, path, token).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.send(self.request(Method::PUT, path, token).json(&body))
            .await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::GET, path, token)).await
    }

    /// Stops the server gracefully and waits until it has.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.handle.stop(true).await;
        let _ = self.server.await;
        self.dir
    }

    // ---- one method per endpoint

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Reply {
        self.post(
            "/v1/customers",
            None,
            json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/v1/auth/token",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        self.login(email, password)
            .await
            .expect(200)
            .str("access_token")
    }

    /// Registers a customer and logs them in: (customer id, token).
    pub async fn customer(&self, email: &str) -> (String, String) {
        let id = self
            .register(email, "password-123", "Test Customer")
            .await
            .expect(201)
            .str("customer_id");
        (id, self.token(email, "password-123").await)
    }

    pub async fn create_product(&self, sku: &str, price: i64) -> Reply {
        self.post("/v1/products", Some(&self.admin), product_body(sku, price))
            .await
    }

    pub async fn change_price(&self, product: &str, price: i64) -> Reply {
        self.put(
            &format!("/v1/products/{product}/price"),
            Some(&self.admin),
            json!({"price": {"amount": price, "currency": "EUR"}}),
        )
        .await
    }

    pub async fn discontinue(&self, product: &str) -> Reply {
        self.send(self.request(
            Method::POST,
            &format!("/v1/products/{product}/discontinue"),
            Some(&self.admin),
        ))
        .await
    }

    /// A product with stock: its id.
    pub async fn stocked_product(&self, sku: &str, price: i64, quantity: u32) -> String {
        let id = self
            .create_product(sku, price)
            .await
            .expect(201)
            .str("product_id");
        self.receive(sku, quantity).await.expect(200);
        id
    }

    pub async fn receive(&self, sku: &str, quantity: u32) -> Reply {
        self.post(
            &format!("/v1/inventory/{sku}/receipts"),
            Some(&self.admin),
            json!({ "quantity": quantity }),
        )
        .await
    }

    pub async fn create_cart(&self, token: &str) -> String {
        self.send(self.request(Method::POST, "/v1/carts", Some(token)))
            .await
            .expect(201)
            .str("cart_id")
    }

    pub async fn set_item(&self, token: &str, cart: &str, product: &str, quantity: u32) -> Reply {
        self.put(
            &format!("/v1/carts/{cart}/items/{product}"),
            Some(token),
            json!({ "quantity": quantity }),
        )
        .await
    }

    pub async fn checkout(&self, token: &str, cart: &str) -> Reply {
        self.checkout_to(token, cart, json!("1 Main Street, Springfield"))
            .await
    }

    /// A checkout shipping to `address` (text or a postal object).
    pub async fn checkout_to(&self, token: &str, cart: &str, address: Value) -> Reply {
        self.post(
            &format!("/v1/carts/{cart}/checkout"),
            Some(token),
            json!({ "shipping_address": address }),
        )
        .await
    }

    pub async fn pay(&self, token: &str, order: &str, amount: i64, reference: &str) -> Reply {
        self.post(
            &format!("/v1/orders/{order}/payments"),
            Some(token),
            json!({"amount": {"amount": amount, "currency": "EUR"}, "reference": reference}),
        )
        .await
    }

    pub async fn cancel(&self, token: &str, order: &str) -> Reply {
        self.send(self.request(
            Method::POST,
            &format!("/v1/orders/{order}/cancel"),
            Some(token),
        ))
        .await
    }

    pub async fn ship(&self, order: &str) -> Reply {
        self.post(
            &format!("/v1/orders/{order}/ship"),
            Some(&self.admin),
            json!({"carrier": "DHL", "tracking": "TRACK-1"}),
        )
        .await
    }

    pub async fn change_role(&self, token: &str, customer: &str, role: &str) -> Reply {
        self.put(
            &format!("/v1/admin/customers/{customer}/role"),
            Some(token),
            json!({ "role": role }),
        )
        .await
    }

    /// The event types of a stream, in order.
    pub async fn event_types(&self, stream: &str) -> Vec<String> {
        self.stream(stream)
            .await
            .iter()
            .map(|e| e["type"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Every event of a stream (admin view).
    pub async fn stream(&self, stream: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/streams/{stream}?limit=100&cursor={c}"),
                None => format!("/v1/streams/{stream}?limit=100"),
            };
            let page = self.get(&path, Some(&self.admin)).await;
            if page.status == StatusCode::NOT_FOUND {
                return items;
            }
            let page = page.expect(200);
            items.extend(page.body["items"].as_array().cloned().unwrap_or_default());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
    }

    /// Stock levels, from the inventory stream's events.
    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let (mut on_hand, mut reserved) = (0i64, 0i64);
        for e in self.stream(&format!("inventory-{sku}")).await {
            let q = e["data"]["quantity"].as_i64().unwrap_or(0);
            match e["type"].as_str().unwrap_or("") {
                "StockReceived" => on_hand += q,
                "StockReserved" => reserved += q,
                "StockReleased" => reserved -= q,
                "StockShipped" => {
                    reserved -= q;
                    on_hand -= q;
                }
                _ => {}
            }
        }
        (on_hand, reserved)
    }
}
