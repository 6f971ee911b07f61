//! `shopstream-bench seed`: fills a data directory with products, customers
//! and orders through the real write path (the command service, its domain
//! decisions and the event store's group commit; only HTTP is skipped), so
//! every benchmark starts from a known state. Product popularity follows
//! Zipf(1.0), like real shops.
//!
//! Customers share one password (`password-123`), hashed once: hashing
//! every customer's password would make seeding a password-hashing
//! benchmark.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use futures::{StreamExt, TryStreamExt};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, Zipf};
use shopstream_domain::product::NewProduct;
use shopstream_domain::values::{
    AddressText, Carrier, CartId, Category, CustomerId, Description, Email, Money, Name, OrderId,
    PaymentReference, ProductId, Quantity, Role, ShippingAddress, Sku, Tags, Tracking,
};
use uuid::Uuid;

use shopstream::app::App;
use shopstream::app::commands::carts::{Checkout, CreateCart, SetCartItem};
use shopstream::app::commands::catalogue::CreateProduct;
use shopstream::app::commands::customers::RegisterCustomer;
use shopstream::app::commands::inventory::ReceiveStock;
use shopstream::app::commands::orders::{CancelOrder, PayOrder, ShipOrder};
use shopstream::app::commands::{Actor, Command, CommandContext, CommandError};
use shopstream::config::Settings;

#[derive(Args, Debug, Clone)]
pub struct SeedArgs {
    /// Products to list (each also gets stock).
    #[arg(long, default_value_t = 1000)]
    pub products: usize,
    /// Customers to register.
    #[arg(long, default_value_t = 100)]
    pub customers: usize,
    /// Orders to place (most are paid, some shipped, some cancelled).
    #[arg(long, default_value_t = 1000)]
    pub orders: usize,
    /// Commands in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seed of the random choices, for repeatable data sets.
    #[arg(long, default_value_t = 42)]
    pub rng_seed: u64,
}

/// The password every seeded customer has.
pub const PASSWORD: &str = "password-123";

const ADJECTIVES: &[&str] = &[
    "blue", "red", "green", "black", "white", "large", "small", "organic", "vintage", "classic",
    "modern", "rustic", "compact", "deluxe", "handmade", "wireless", "ceramic", "wooden",
];
const NOUNS: &[&str] = &[
    "mug", "lamp", "chair", "table", "kettle", "teapot", "notebook", "backpack", "jacket", "scarf",
    "speaker", "blanket", "vase", "candle", "bowl", "plate", "knife", "towel",
];

pub fn email(i: usize) -> String {
    format!("customer{i}@example.com")
}

pub fn sku(i: usize) -> String {
    format!("SKU-{i:07}")
}

fn product(
    i: usize,
    rng: &mut impl Rng,
    at: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<NewProduct> {
    let adjective = ADJECTIVES[rng.random_range(0..ADJECTIVES.len())];
    let noun = NOUNS[rng.random_range(0..NOUNS.len())];
    let eur = shopstream_domain::values::Currency::parse("EUR").map_err(anyhow::Error::msg)?;
    Ok(NewProduct {
        product_id: ProductId(Uuid::now_v7()),
        sku: Sku::parse(&sku(i)).map_err(anyhow::Error::msg)?,
        name: Name::parse(&format!("{adjective} {noun} {i}")).map_err(anyhow::Error::msg)?,
        description: Description::parse(&format!(
            "A {adjective} {noun}, number {i} of the catalogue."
        ))
        .map_err(anyhow::Error::msg)?,
        price: Money::new(rng.random_range(199..=19_999), eur).map_err(anyhow::Error::msg)?,
        category: Category::parse(&format!("{noun}s")).map_err(anyhow::Error::msg)?,
        tags: Tags::parse(&[adjective, noun]).map_err(anyhow::Error::msg)?,
        at,
    })
}

async fn run_command<C: Command>(
    app: &App,
    actor: Actor,
    command: &C,
) -> anyhow::Result<C::Output> {
    let ctx = CommandContext::new(actor, format!("seed-{}", C::NAME));
    // As a client answered 409 `contention` would: try again. Orders of
    // several popular products can lose every attempt to other checkouts.
    let mut attempts = 0;
    loop {
        match app.commands.execute(&ctx, command).await {
            Err(CommandError::Contention(_)) if attempts < 5 => attempts += 1,
            done => {
                return done
                    .map(|done| done.output)
                    .with_context(|| format!("seeding: {}", C::NAME));
            }
        }
    }
}

/// What was seeded, for the benchmarks that use it.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub products: Vec<(ProductId, String)>,
    pub customers: Vec<CustomerId>,
    pub orders: u64,
}

pub async fn run(args: SeedArgs) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let app = App::open(&settings).await?;
    let started = Instant::now();
    let seeded = seed(&app, &args).await?;
    let head = app.history.head_position().await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "seeded {} products, {} customers, {} orders into {}: {head} events in {secs:.1}s ({:.0} events/s)",
        seeded.products.len(),
        seeded.customers.len(),
        seeded.orders,
        settings.data_dir.display(),
        head as f64 / secs
    );
    Ok(())
}

/// Seeds `app` as `args` say.
pub async fn seed(app: &App, args: &SeedArgs) -> anyhow::Result<Seeded> {
    let mut rng = StdRng::seed_from_u64(args.rng_seed);
    let now = chrono::Utc::now();
    let new_products = (0..args.products)
        .map(|i| product(i, &mut rng, now))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let products: Vec<(ProductId, String)> = futures::stream::iter(new_products)
        .map(|p| async move {
            let sku = p.sku.clone();
            let id = run_command(app, Actor::System, &CreateProduct(p))
                .await?
                .product_id;
            let quantity = Quantity::new(Quantity::MAX).map_err(anyhow::Error::msg)?;
            run_command(
                app,
                Actor::System,
                &ReceiveStock {
                    sku: sku.clone(),
                    quantity,
                },
            )
            .await?;
            anyhow::Ok((id, sku.to_string()))
        })
        .buffered(args.concurrency)
        .try_collect()
        .await?;

    let hash = app.auth.hash(PASSWORD).await?;
    let customers: Vec<CustomerId> = futures::stream::iter(0..args.customers)
        .map(|i| {
            let hash = hash.clone();
            async move {
                let register = RegisterCustomer {
                    customer_id: CustomerId(Uuid::now_v7()),
                    email: Email::parse(&email(i)).map_err(anyhow::Error::msg)?,
                    name: Name::parse(&format!("Customer {i}")).map_err(anyhow::Error::msg)?,
                    role: Role::Customer,
                    password_hash: hash,
                };
                Ok::<_, anyhow::Error>(
                    run_command(app, Actor::Anonymous, &register)
                        .await?
                        .customer_id,
                )
            }
        })
        .buffered(args.concurrency)
        .try_collect()
        .await?;

    let orders = AtomicU64::new(0);
    if !products.is_empty() && !customers.is_empty() {
        let popularity = Zipf::new(products.len() as f64, 1.0).context("zipf")?;
        let plans: Vec<OrderPlan> = (0..args.orders)
            .map(|_| OrderPlan::random(&mut rng, &popularity, products.len(), customers.len()))
            .collect();
        let (products, customers, orders) = (Arc::new(products.clone()), &customers, &orders);
        futures::stream::iter(plans)
            .map(|plan| {
                let products = products.clone();
                async move {
                    place(app, &plan, &products, customers[plan.customer]).await?;
                    orders.fetch_add(1, Ordering::Relaxed);
                    anyhow::Ok(())
                }
            })
            .buffer_unordered(args.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
    }
    Ok(Seeded {
        products,
        customers,
        orders: orders.load(Ordering::Relaxed),
    })
}

/// One order's random choices, drawn up front so runs are repeatable.
struct OrderPlan {
    customer: usize,
    lines: Vec<(usize, u32)>,
    outcome: u32,
}

impl OrderPlan {
    fn random(
        rng: &mut impl Rng,
        popularity: &Zipf<f64>,
        products: usize,
        customers: usize,
    ) -> Self {
        let mut lines: Vec<(usize, u32)> = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let product = (popularity.sample(rng) as usize)
                .saturating_sub(1)
                .min(products - 1);
            if !lines.iter().any(|(p, _)| *p == product) {
                lines.push((product, rng.random_range(1..=3)));
            }
        }
        Self {
            customer: rng.random_range(0..customers),
            lines,
            outcome: rng.random_range(0..100),
        }
    }
}

async fn place(
    app: &App,
    plan: &OrderPlan,
    products: &[(ProductId, String)],
    customer: CustomerId,
) -> anyhow::Result<()> {
    let shopper = Actor::Customer {
        id: customer,
        role: Role::Customer,
    };
    let cart_id = CartId(Uuid::now_v7());
    run_command(
        app,
        shopper,
        &CreateCart {
            cart_id,
            currency: app.currency,
        },
    )
    .await?;
    for (product, quantity) in &plan.lines {
        let set = SetCartItem {
            cart_id,
            product_id: products[*product].0,
            quantity: *quantity,
        };
        run_command(app, shopper, &set).await?;
    }
    let checkout = Checkout {
        cart_id,
        order_id: OrderId(Uuid::now_v7()),
        shipping_address: ShippingAddress::Text(
            AddressText::parse("1 Seed Street, Testville").map_err(anyhow::Error::msg)?,
        ),
    };
    let order_id = run_command(app, shopper, &checkout).await?.order_id;
    match plan.outcome {
        // 5 % are cancelled before paying.
        0..5 => {
            run_command(app, shopper, &CancelOrder { order_id }).await?;
        }
        // 5 % stay unpaid.
        5..10 => {}
        outcome => {
            pay_in_full(app, shopper, order_id).await?;
            if outcome >= 50 {
                let ship = ShipOrder {
                    order_id,
                    carrier: Carrier::parse("DHL").map_err(anyhow::Error::msg)?,
                    tracking: Tracking::parse(&format!("T-{order_id}"))
                        .map_err(anyhow::Error::msg)?,
                };
                run_command(app, Actor::System, &ship).await?;
            }
        }
    }
    Ok(())
}

async fn pay_in_full(app: &App, shopper: Actor, order_id: OrderId) -> anyhow::Result<()> {
    let order = app
        .commands
        .aggregates()
        .load::<shopstream_domain::order::Order>(order_id)
        .await?;
    let total = order
        .state
        .state()
        .map_err(anyhow::Error::msg)?
        .placed
        .total;
    let pay = PayOrder {
        order_id,
        amount: total,
        reference: PaymentReference::parse(&format!("psp-{order_id}"))
            .map_err(anyhow::Error::msg)?,
    };
    run_command(app, shopper, &pay).await?;
    Ok(())
}
