//! `spawn_app()`: a fresh shopstream on a random port with its own data
//! directory, and a client with one method per endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use figment::providers::Serialized;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde_json::{Value, json};
use shopstream::config::Settings;
use shopstream::startup::Application;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub dir: Arc<tempfile::TempDir>,
    pub admin: String,
    /// The application's one stop signal.
    pub stop: CancellationToken,
    server: JoinHandle<std::io::Result<()>>,
}

/// A fresh application in a fresh directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
}

/// A fresh application with some settings changed, each a dotted key of
/// `default.toml` and its value, e.g. `("queries.consistency_wait_ms", json!(500))`.
pub async fn spawn_app_with(overrides: &[(&str, Value)]) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let settings = settings_with(dir.path(), overrides);
    launch(dir, settings).await
}

/// An application over an existing data directory (a restart).
pub async fn spawn_app_in(dir: Arc<tempfile::TempDir>) -> TestApp {
    let settings = settings(dir.path());
    launch(dir, settings).await
}

/// An application whose first admin may not exist yet (its event store is
/// unreachable): no admin token is taken.
pub async fn spawn_app_without_admin(overrides: &[(&str, Value)]) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let settings = settings_with(dir.path(), overrides);
    start(dir, settings).await
}

async fn launch(dir: Arc<tempfile::TempDir>, settings: Settings) -> TestApp {
    let mut app = start(dir, settings).await;
    app.admin = app.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    app
}

async fn start(dir: Arc<tempfile::TempDir>, settings: Settings) -> TestApp {
    let stop = CancellationToken::new();
    let application = Application::build(settings, stop.clone())
        .await
        .expect("the app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let server = tokio::spawn(application.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        dir,
        admin: String::new(),
        stop,
        server,
    }
}

pub fn settings(dir: &Path) -> Settings {
    settings_with(dir, &[])
}

/// The test settings with `overrides` merged over them.
pub fn settings_with(dir: &Path, overrides: &[(&str, Value)]) -> Settings {
    let mut figment = Settings::defaults()
        .merge(Serialized::default("http_addr", "127.0.0.1:0"))
        .merge(Serialized::default("data_dir", dir))
        .merge(Serialized::default("admin_email", ADMIN_EMAIL))
        .merge(Serialized::default("admin_password", ADMIN_PASSWORD))
        .merge(Serialized::default("http.workers", 2))
        // Every test client comes from 127.0.0.1: the limits' own tests
        // switch them on.
        .merge(Serialized::default("rate_limits", "off"))
        // The mailer appends to customer streams on its own time: only the
        // mail tests run it.
        .merge(Serialized::default("mail.enabled", false))
        // Cheaper hashing keeps tests quick; the algorithm is the same.
        .merge(Serialized::default("passwords.memory_kib", 1024))
        .merge(Serialized::default("passwords.iterations", 1));
    // With a KurrentDB server to test against, the suite runs on it, each
    // data directory (an application and its restarts) in a namespace of
    // its own.
    if let Some(url) = std::env::var("SHOPSTREAM_TEST_KURRENTDB")
        .ok()
        .filter(|u| !u.is_empty())
    {
        figment = figment
            .merge(Serialized::default("event_store", "kurrentdb"))
            .merge(Serialized::default("kurrentdb_url", url))
            .merge(Serialized::default(
                "kurrentdb.namespace",
                format!(
                    "api{}.",
                    dir.file_name()
                        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
                ),
            ));
    }
    // With a ScyllaDB cluster to test against, the read side lives there,
    // each data directory in a keyspace of its own.
    if let Some(nodes) = shopstream_testkit::servers::scylla_nodes() {
        let name = dir.file_name().map_or_else(String::new, |n| {
            n.to_string_lossy()
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_ascii_lowercase()
        });
        figment = figment
            .merge(Serialized::default("read_store", "scylla"))
            .merge(Serialized::default("scylla_nodes", nodes.join(",")))
            .merge(Serialized::default(
                "scylla_keyspace",
                format!("api_{name}"),
            ))
            .merge(Serialized::default("scylla.replication_factor", 1));
    }
    for (key, value) in overrides {
        figment = figment.merge(Serialized::default(key, value));
    }
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

/// Money as the API writes it.
pub fn money(amount: i64, currency: &str) -> Value {
    json!({"amount": amount, "currency": currency})
}

/// An instant the API wrote (RFC 3339).
#[track_caller]
pub fn instant(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{e}: {text:?} is not RFC 3339"))
        .with_timezone(&Utc)
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

    /// The `X-Consistency-Token` a command answered with.
    #[track_caller]
    pub fn consistency_token(&self) -> &str {
        self.header("x-consistency-token")
            .unwrap_or_else(|| panic!("no consistency token: {self:#?}"))
    }

    /// How a query's consistency wait went: `consistent`, `stale`, or None
    /// when it was not asked to wait.
    pub fn consistency(&self) -> Option<&str> {
        self.header("x-consistency-status")
    }

    /// A 200 that reflects the write whose token the query sent back.
    #[track_caller]
    pub fn expect_consistent(self) -> Reply {
        let reply = self.expect(200);
        assert_eq!(reply.consistency(), Some("consistent"), "{reply:#?}");
        reply
    }

    /// The items of a list page.
    pub fn items(&self) -> Vec<Value> {
        self.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// One string field of every item of a list page.
    pub fn item_fields(&self, field: &str) -> Vec<String> {
        self.items()
            .iter()
            .map(|item| item[field].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// An NDJSON answer read whole: its body becomes the array of its lines,
    /// each of which must be one JSON value ending in a newline.
    pub async fn from_ndjson(response: Response) -> Reply {
        let is_ndjson = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-ndjson"));
        if !is_ndjson {
            return Reply::from(response).await;
        }
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "every line ends in a newline: {text:?}"
        );
        let lines = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: not JSON: {line:?}"))
            })
            .collect();
        Reply {
            status,
            headers,
            body: Value::Array(lines),
        }
    }
}

/// How a query is asked: as whom, after which write, against which
/// validator.
#[derive(Debug, Clone, Default)]
pub struct Read {
    bearer: Option<String>,
    consistency_token: Option<String>,
    if_none_match: Option<String>,
}

impl Read {
    /// Without a bearer token.
    pub fn anyone() -> Read {
        Read::default()
    }

    /// As the holder of this access token.
    pub fn by(token: &str) -> Read {
        Read {
            bearer: Some(token.to_string()),
            ..Read::default()
        }
    }

    /// Sending back the `X-Consistency-Token` of `command`'s reply, so the
    /// answer reflects that write.
    #[track_caller]
    pub fn after(self, command: &Reply) -> Read {
        let token = command.consistency_token().to_string();
        self.with_consistency_token(&token)
    }

    /// With this `X-Consistency-Token`, verbatim.
    pub fn with_consistency_token(mut self, token: &str) -> Read {
        self.consistency_token = Some(token.to_string());
        self
    }

    /// With `If-None-Match: etag`.
    pub fn if_none_match(mut self, etag: &str) -> Read {
        self.if_none_match = Some(etag.to_string());
        self
    }

    /// These headers on `request`.
    pub fn apply(&self, mut request: RequestBuilder) -> RequestBuilder {
        if let Some(bearer) = &self.bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(token) = &self.consistency_token {
            request = request.header("x-consistency-token", token);
        }
        if let Some(etag) = &self.if_none_match {
            request = request.header("if-none-match", etag);
        }
        request
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub struct SentEvent {
    pub id: u64,
    pub event: String,
    pub data: Value,
}

/// An open `GET /v1/events/live`, read incrementally.
pub struct LiveEvents {
    response: Response,
    buffer: Vec<u8>,
}

/// How long a live tail may take to deliver an event that was committed.
const LIVE_DEADLINE: Duration = Duration::from_secs(15);

impl LiveEvents {
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
    }

    /// The whole answer, for an error.
    pub async fn into_reply(self) -> Reply {
        Reply::from(self.response).await
    }

    /// The next event sent, skipping keep-alive comments; panics when none
    /// comes within the deadline.
    pub async fn next_event(&mut self) -> SentEvent {
        tokio::time::timeout(LIVE_DEADLINE, self.read_event())
            .await
            .unwrap_or_else(|_| {
                let pending = String::from_utf8_lossy(&self.buffer);
                panic!("no event within {LIVE_DEADLINE:?}; pending: {pending:?}")
            })
    }

    async fn read_event(&mut self) -> SentEvent {
        loop {
            // Frames end in a blank line; a chunk may end mid-frame, even
            // mid-character, so bytes wait here until their frame is whole.
            while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
                let frame = String::from_utf8(frame).expect("UTF-8 frames");
                if let Some(event) = parse_frame(&frame) {
                    return event;
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .expect("the live stream reads")
                .expect("the live stream stays open");
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

/// An SSE frame's fields; None for a comment-only frame.
fn parse_frame(frame: &str) -> Option<SentEvent> {
    let (mut id, mut event, mut data) = (None, None, String::new());
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().expect("numeric event id"));
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_string());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data.push_str(v);
        }
    }
    let event = event?;
    Some(SentEvent {
        id: id.unwrap_or_else(|| panic!("a frame without an id: {frame:?}")),
        event,
        data: serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {frame:?}")),
    })
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

    /// A request of `path` with these query parameters, URL-encoded.
    pub fn request_with(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
        token: Option<&str>,
    ) -> RequestBuilder {
        let url = Url::parse_with_params(&format!("{}{}", self.address, path), params)
            .expect("a valid URL");
        let request = self.client.request(method, url);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
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

    /// A POST without a body (commands that need none).
    pub async fn post_empty(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(self.request(Method::POST, path, token)).await
    }

    /// Stops the application as SIGTERM would and waits until it has
    /// (its server and everything started with it); its data directory.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.server)
            .await
            .expect("the application stops when told")
            .expect("the application's task does not panic")
            .expect("the server stops cleanly");
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
        self.create_product_from(product_body(sku, price)).await
    }

    /// The admin listing the product `body` describes.
    pub async fn create_product_from(&self, body: Value) -> Reply {
        self.post("/v1/products", Some(&self.admin), body).await
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
        self.post_empty(
            &format!("/v1/products/{product}/discontinue"),
            Some(&self.admin),
        )
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
        self.open_cart(token).await.str("cart_id")
    }

    /// A new cart: the command's whole reply.
    pub async fn open_cart(&self, token: &str) -> Reply {
        self.post_empty("/v1/carts", Some(token)).await.expect(201)
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
        self.post_empty(&format!("/v1/orders/{order}/cancel"), Some(token))
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

    /// A customer's cart with these (product, quantity) lines, checked out:
    /// the checkout's reply.
    pub async fn place_order(&self, token: &str, lines: &[(&str, u32)]) -> Reply {
        let cart = self.create_cart(token).await;
        for (product, quantity) in lines {
            self.set_item(token, &cart, product, *quantity)
                .await
                .expect(200);
        }
        self.checkout(token, &cart).await.expect(201)
    }

    /// A customer the admin made an analyst: their token, which carries the
    /// role (a role takes effect with the next token).
    pub async fn analyst(&self, email: &str) -> String {
        let (id, _) = self.customer(email).await;
        self.change_role(&self.admin, &id, "analyst")
            .await
            .expect(200);
        self.token(email, "password-123").await
    }

    pub async fn change_role(&self, token: &str, customer: &str, role: &str) -> Reply {
        self.put(
            &format!("/v1/admin/customers/{customer}/role"),
            Some(token),
            json!({ "role": role }),
        )
        .await
    }

    // ---- queries

    /// A GET of `path` with these query parameters, asked as `read` says.
    pub async fn query(&self, path: &str, params: &[(&str, &str)], read: &Read) -> Reply {
        let request = self.request_with(Method::GET, path, params, None);
        self.send(read.apply(request)).await
    }

    pub async fn product(&self, id: &str, read: &Read) -> Reply {
        self.query(&format!("/v1/products/{id}"), &[], read).await
    }

    /// `GET /v1/products` with `category`, `limit` and `cursor` as given.
    pub async fn products(&self, params: &[(&str, &str)], read: &Read) -> Reply {
        self.query("/v1/products", params, read).await
    }

    pub async fn search(&self, q: &str, read: &Read) -> Reply {
        self.query("/v1/products/search", &[("q", q)], read).await
    }

    pub async fn inventory(&self, sku: &str, read: &Read) -> Reply {
        self.query(&format!("/v1/inventory/{sku}"), &[], read).await
    }

    pub async fn cart(&self, id: &str, read: &Read) -> Reply {
        self.query(&format!("/v1/carts/{id}"), &[], read).await
    }

    pub async fn order(&self, id: &str, read: &Read) -> Reply {
        self.query(&format!("/v1/orders/{id}"), &[], read).await
    }

    /// The order as it stood at `as_of`.
    pub async fn order_as_of(&self, id: &str, as_of: &str, read: &Read) -> Reply {
        self.query(&format!("/v1/orders/{id}"), &[("as_of", as_of)], read)
            .await
    }

    pub async fn my_orders(&self, read: &Read) -> Reply {
        self.query("/v1/customers/me/orders", &[], read).await
    }

    pub async fn me(&self, read: &Read) -> Reply {
        self.query("/v1/customers/me", &[], read).await
    }

    /// `GET /v1/reports/sales` with `from` and `to` as given.
    pub async fn sales_report(&self, params: &[(&str, &str)], read: &Read) -> Reply {
        self.query("/v1/reports/sales", params, read).await
    }

    // ---- operations

    pub async fn projections(&self, token: &str) -> Reply {
        self.get("/v1/admin/projections", Some(token)).await
    }

    pub async fn rebuild(&self, token: &str, projection: &str) -> Reply {
        self.projection_command(token, projection, "rebuild").await
    }

    pub async fn pause(&self, token: &str, projection: &str) -> Reply {
        self.projection_command(token, projection, "pause").await
    }

    pub async fn resume(&self, token: &str, projection: &str) -> Reply {
        self.projection_command(token, projection, "resume").await
    }

    async fn projection_command(&self, token: &str, projection: &str, action: &str) -> Reply {
        let path = format!("/v1/admin/projections/{projection}/{action}");
        self.post_empty(&path, Some(token)).await
    }

    /// `GET /v1/events`: on success the body is the array of its lines.
    pub async fn export_events(&self, token: Option<&str>, params: &[(&str, &str)]) -> Reply {
        let request = self.request_with(Method::GET, "/v1/events", params, token);
        Reply::from_ndjson(request.send().await.expect("request sent")).await
    }

    /// `GET /v1/events/live`, open once its headers arrived.
    pub async fn live_events(
        &self,
        token: &str,
        params: &[(&str, &str)],
        last_event_id: Option<u64>,
    ) -> LiveEvents {
        let mut request = self.request_with(Method::GET, "/v1/events/live", params, Some(token));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        LiveEvents {
            response: request.send().await.expect("request sent"),
            buffer: Vec::new(),
        }
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

/// A cart's item written straight to the event store for a cart that was
/// never created, as a bug or bad data would leave it: the carts
/// projection sets it aside.
pub struct MisfiledCart {
    pub cart: String,
    /// The item event the projection set aside.
    pub event_id: String,
}

impl TestApp {
    /// The app's event store, opened beside it (as another process would).
    pub fn event_store(&self) -> shopstream_infra::event_store::SqliteEventStore {
        shopstream_infra::event_store::SqliteEventStore::open(
            self.dir.path().join("events.sqlite"),
            Default::default(),
        )
        .expect("the event store opens")
    }

    /// The app's read store, opened beside it (as another process would).
    pub fn read_side(&self) -> shopstream_infra::read_store::ReadSide {
        shopstream_infra::read_store::ReadSide::of(
            shopstream_infra::read_store::SqliteReadStore::open(
                self.dir.path().join("read.sqlite"),
            )
            .expect("the read store opens"),
        )
    }

    /// Appends an item event (a copy of a real cart's) for a cart with no
    /// `CartCreated`.
    pub async fn misfile_cart_item(&self, token: &str) -> MisfiledCart {
        use shopstream_infra::event_store::{EventStore, ExpectedRevision, NewEvent, StreamWrite};
        let product = self
            .stocked_product(
                &format!("MISFILED-{}", uuid::Uuid::new_v4().simple()),
                500,
                5,
            )
            .await;
        let real = self.create_cart(token).await;
        self.set_item(token, &real, &product, 2).await.expect(200);
        let cart = uuid::Uuid::now_v7().to_string();
        let copy = |event: &Value| NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: event["type"].as_str().expect("a type").to_string(),
            schema_version: event["schema_version"].as_u64().expect("a version") as u16,
            data: event["data"].to_string().replace(&real, &cart).into_bytes(),
            metadata: Default::default(),
        };
        let events = self
            .export_events(
                Some(&self.admin),
                &[("stream_prefix", &format!("cart-{real}"))],
            )
            .await
            .expect(200)
            .body;
        let events = events.as_array().expect("NDJSON lines");
        let item = copy(&events[1]);
        assert_eq!(item.event_type, "CartItemSet");
        let event_id = item.event_id.to_string();
        self.event_store()
            .append(vec![StreamWrite {
                stream: format!("cart-{cart}"),
                expected: ExpectedRevision::NoStream,
                events: vec![item],
            }])
            .await
            .expect("appended");
        MisfiledCart { cart, event_id }
    }

    /// `GET /v1/admin/dead-letters` with these parameters, as the admin.
    pub async fn dead_letters(&self, params: &[(&str, &str)]) -> Reply {
        self.send(self.request_with(
            Method::GET,
            "/v1/admin/dead-letters",
            params,
            Some(&self.admin),
        ))
        .await
    }
}
