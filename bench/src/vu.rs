//! `shopstream-vu`: the virtual users of the mixed commerce workload, as a
//! goose load test. `shopstream-bench suite` runs it; by hand:
//!
//! ```sh
//! SHOPSTREAM_VU_DATA=data/bench/users/mixed shopstream-vu \
//!   --host http://127.0.0.1:8080 --users 200 --increase-rate 200 --run-time 30s
//! ```
//!
//! Every virtual user is a logged-in customer (its bearer token was issued
//! by `POST /v1/auth/token` when the harness prepared `SHOPSTREAM_VU_DATA`)
//! doing one kind of transaction over and over, without think time:
//!
//! - **browse** (80 % of users): a product page (Zipf(1.0) popularity over
//!   every product), a category page, a search or the user's profile;
//! - **cart** (15 %): create a cart and put three products in it;
//! - **checkout** (5 %): create a cart, put two products in it, check out,
//!   and pay the order's total.
//!
//! goose times each transaction (all its requests) and each request; its
//! metrics start once every user is running. The last line of output is
//! `VU_JSON {...}`: per role, transactions, failures and percentiles.
//!
//! `SHOPSTREAM_VU_DATA` holds `tokens.txt`, `products.txt` (product ids,
//! most popular first), `categories.txt` and `searches.txt`, one per line.

use std::path::Path;
use std::sync::OnceLock;

use goose::prelude::*;
use rand::RngExt;
use rand_distr::{Distribution, Zipf};
use serde_json::{Value, json};

struct Data {
    tokens: Vec<String>,
    products: Vec<String>,
    popularity: Zipf<f64>,
    categories: Vec<String>,
    searches: Vec<String>,
}

static DATA: OnceLock<Data> = OnceLock::new();

fn data() -> &'static Data {
    DATA.get().expect("loaded before the attack starts")
}

fn lines(dir: &Path, name: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(dir.join(name))
        .map_err(|e| format!("reading {}: {e}", dir.join(name).display()))?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(lines)
}

fn load(dir: &Path) -> Result<Data, String> {
    let products = lines(dir, "products.txt")?;
    Ok(Data {
        tokens: lines(dir, "tokens.txt")?,
        popularity: Zipf::new(products.len() as f64, 1.0).map_err(|e| e.to_string())?,
        products,
        categories: lines(dir, "categories.txt")?,
        searches: lines(dir, "searches.txt")?,
    })
}

fn pick(items: &[String]) -> &str {
    &items[rand::rng().random_range(0..items.len())]
}

/// A product, the k-th most popular asked for in proportion to 1/k.
fn popular_product() -> &'static str {
    let d = data();
    let rank = d.popularity.sample(&mut rand::rng()) as usize;
    &d.products[rank.clamp(1, d.products.len()) - 1]
}

#[derive(Clone)]
struct Session {
    token: String,
}

async fn log_in(user: &mut GooseUser) -> TransactionResult {
    user.set_session_data(Session {
        token: pick(&data().tokens).to_string(),
    });
    Ok(())
}

/// Sends one request as the user; an answer other than 2xx fails it.
async fn call(
    user: &mut GooseUser,
    method: GooseMethod,
    path: &str,
    name: &'static str,
    body: Option<Value>,
) -> Result<Value, Box<TransactionError>> {
    let token = user.get_session_data_unchecked::<Session>().token.clone();
    let mut builder = user.get_request_builder(&method, path)?.bearer_auth(token);
    if let Some(body) = body {
        builder = builder.json(&body);
    }
    let request = GooseRequest::builder()
        .name(name)
        .set_request_builder(builder)
        .build();
    let mut sent = user.request(request).await?;
    match sent.response {
        Ok(response) if response.status().is_success() => {
            Ok(response.json::<Value>().await.unwrap_or(Value::Null))
        }
        Ok(response) => {
            let headers = response.headers().clone();
            let text = response.text().await.unwrap_or_default();
            user.set_failure(name, &mut sent.request, Some(&headers), Some(&text))?;
            Ok(Value::Null)
        }
        Err(e) => Err(Box::new(e.into())),
    }
}

fn field<'a>(value: &'a Value, name: &str) -> Result<&'a str, Box<TransactionError>> {
    value[name]
        .as_str()
        .ok_or_else(|| Box::new(TransactionError::Custom(format!("no {name} in the answer"))))
}

async fn browse(user: &mut GooseUser) -> TransactionResult {
    let dice = rand::rng().random_range(0..100);
    let d = data();
    let (path, name) = match dice {
        0..70 => (
            format!("/v1/products/{}", popular_product()),
            "GET /v1/products/{id}",
        ),
        70..85 => (
            format!("/v1/products?limit=20&category={}", pick(&d.categories)),
            "GET /v1/products?category=",
        ),
        85..95 => (
            format!("/v1/products/search?limit=20&q={}", pick(&d.searches)),
            "GET /v1/products/search?q=",
        ),
        _ => ("/v1/customers/me".to_string(), "GET /v1/customers/me"),
    };
    call(user, GooseMethod::Get, &path, name, None).await?;
    Ok(())
}

/// Creates a cart and puts `items` popular products in it: the cart's id
/// and its last view.
async fn fill(
    user: &mut GooseUser,
    items: usize,
) -> Result<(String, Value), Box<TransactionError>> {
    let created = call(user, GooseMethod::Post, "/v1/carts", "POST /v1/carts", None).await?;
    let cart = field(&created, "cart_id")?.to_string();
    let mut view = Value::Null;
    for _ in 0..items {
        let path = format!("/v1/carts/{cart}/items/{}", popular_product());
        view = call(
            user,
            GooseMethod::Put,
            &path,
            "PUT /v1/carts/{id}/items/{product}",
            Some(json!({"quantity": 1})),
        )
        .await?;
    }
    Ok((cart, view))
}

async fn fill_cart(user: &mut GooseUser) -> TransactionResult {
    fill(user, 3).await?;
    Ok(())
}

async fn checkout_and_pay(user: &mut GooseUser) -> TransactionResult {
    let (cart, view) = fill(user, 2).await?;
    let placed = call(
        user,
        GooseMethod::Post,
        &format!("/v1/carts/{cart}/checkout"),
        "POST /v1/carts/{id}/checkout",
        Some(json!({"shipping_address": "1 Main Street, 10115 Berlin"})),
    )
    .await?;
    let order = field(&placed, "order_id")?.to_string();
    call(
        user,
        GooseMethod::Post,
        &format!("/v1/orders/{order}/payments"),
        "POST /v1/orders/{id}/payments",
        Some(json!({"amount": view["total"], "reference": format!("pay-{order}")})),
    )
    .await?;
    Ok(())
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// What the harness reads: per role, its transactions and their times.
fn summary(metrics: &GooseMetrics) -> Value {
    let seconds = metrics.duration.max(1) as f64;
    let roles: Vec<Value> = metrics
        .scenarios
        .iter()
        .map(|scenario| {
            // The last transaction is the role's own; the first logs in.
            let main = metrics
                .transactions
                .get(scenario.index)
                .and_then(|t| t.last());
            let (ok, failed, times) = match main {
                Some(t) => (t.success_count, t.fail_count, &t.run_times),
                None => (0, 0, &scenario.run_times),
            };
            json!({
                "role": scenario.name.as_ref(),
                "users": scenario.users.len(),
                "transactions": ok + failed,
                "transactions_per_s": (ok + failed) as f64 / seconds,
                "failed_transactions": failed,
                "p50_ms": ms(times.percentile_us(0.5)),
                "p95_ms": ms(times.percentile_us(0.95)),
                "p99_ms": ms(times.percentile_us(0.99)),
                "p999_ms": ms(times.percentile_us(0.999)),
                "max_ms": ms(times.maximum_time_us),
            })
        })
        .collect();
    let requests: Vec<Value> = metrics
        .requests
        .values()
        .map(|r| {
            json!({
                "name": r.path,
                "method": format!("{:?}", r.method),
                "ok": r.success_count,
                "failed": r.fail_count,
                "p50_ms": ms(r.raw_data.percentile_us(0.5)),
                "p99_ms": ms(r.raw_data.percentile_us(0.99)),
            })
        })
        .collect();
    json!({"seconds": seconds, "roles": roles, "requests": requests})
}

#[tokio::main]
async fn main() -> Result<(), GooseError> {
    let dir = std::env::var_os("SHOPSTREAM_VU_DATA").unwrap_or_else(|| ".".into());
    match load(Path::new(&dir)) {
        Ok(loaded) => {
            let _ = DATA.set(loaded);
        }
        Err(e) => {
            eprintln!("shopstream-vu: {e} (set SHOPSTREAM_VU_DATA to the prepared directory)");
            std::process::exit(2);
        }
    }
    let metrics = GooseAttack::initialize()?
        .register_scenario(
            scenario!("browse")
                .set_weight(80)?
                .register_transaction(transaction!(log_in).set_on_start())
                .register_transaction(transaction!(browse)),
        )
        .register_scenario(
            scenario!("cart")
                .set_weight(15)?
                .register_transaction(transaction!(log_in).set_on_start())
                .register_transaction(transaction!(fill_cart)),
        )
        .register_scenario(
            scenario!("checkout")
                .set_weight(5)?
                .register_transaction(transaction!(log_in).set_on_start())
                .register_transaction(transaction!(checkout_and_pay)),
        )
        .execute()
        .await?;
    println!("VU_JSON {}", summary(&metrics));
    Ok(())
}
