//! A shop's history written through the domain: every event comes from an
//! aggregate's (or the checkout process's) decision on its current state and
//! is appended guarded by the revision that state was folded from, so the
//! history is one the application could have written. Random choices come
//! from a seeded generator, so a failing seed replays the same story.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::harness::UntilStopped;
use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use shopstream_domain::cart::{Cart, CartCommand, CartLine};
use shopstream_domain::claim::{ClaimEmail, ClaimSku, EmailClaim, SkuClaim};
use shopstream_domain::customer::{Customer, CustomerCommand};
use shopstream_domain::inventory::{Inventory, InventoryCommand, InventoryEvent};
use shopstream_domain::order::{Order, OrderCommand, OrderStatus};
use shopstream_domain::process::{self, OrderDecision};
use shopstream_domain::product::{NewProduct, Product, ProductCommand};
use shopstream_domain::values::{
    AddressText, Carrier, CartId, Category, Currency, CustomerId, Description, Email, Money, Name,
    OrderId, PasswordHash, PaymentReference, ProductId, Quantity, Role, ShippingAddress, Sku, Tags,
    Tracking,
};
use shopstream_domain::{Aggregate, DomainError, EventSet, stream_name};
use shopstream_infra::event_store::{
    EventStore, ExpectedRevision, Metadata, NewEvent, StreamWrite,
};
use shopstream_projections::catalogue::StockDoc;
use uuid::Uuid;

const CATEGORIES: &[&str] = &["kitchen", "garden", "books"];
const ADJECTIVES: &[&str] = &["blue", "sturdy", "organic", "vintage", "compact"];
const NOUNS: &[&str] = &["mug", "trowel", "notebook", "kettle", "planter", "lamp"];

/// Decided events waiting for the next append, and every stream's revision.
#[derive(Default)]
struct Streams {
    revisions: HashMap<String, u64>,
    pending: Vec<StreamWrite>,
}

impl Streams {
    /// Folds `events` into `state` and queues them, guarded by the revision
    /// `state` was folded from.
    fn stage<A: Aggregate>(&mut self, id: impl Display, state: &mut A, events: Vec<A::Event>) {
        if events.is_empty() {
            return;
        }
        let stream = stream_name::<A>(id);
        let current = self.revisions.get(&stream).copied();
        let count = events.len() as u64;
        self.revisions
            .insert(stream.clone(), current.map_or(count - 1, |r| r + count));
        let events = events
            .into_iter()
            .map(|event| {
                state.evolve(&event);
                NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: event.event_type().to_string(),
                    schema_version: event.schema_version(),
                    data: event.encode(),
                    metadata: Metadata {
                        correlation_id: Some("read-side-test".into()),
                        causation_id: None,
                        actor: Some("system".into()),
                    },
                }
            })
            .collect();
        self.pending.push(StreamWrite {
            stream,
            expected: ExpectedRevision::at(current),
            events,
        });
    }

    /// Decides a command on `state` and queues what it decided.
    fn decide<A: Aggregate>(
        &mut self,
        id: impl Display,
        state: &mut A,
        command: &A::Command,
    ) -> Result<(), DomainError> {
        let events = state.decide(command)?;
        self.stage(id, state, events);
        Ok(())
    }
}

/// The shop: its aggregates as the domain sees them, and the event store
/// their events go to.
pub struct Shop {
    events: Arc<dyn EventStore>,
    rng: StdRng,
    now: DateTime<Utc>,
    serial: u64,
    streams: Streams,
    eur: Currency,
    pub products: BTreeMap<ProductId, Product>,
    stock: BTreeMap<Sku, Inventory>,
    customers: BTreeMap<CustomerId, Customer>,
    carts: BTreeMap<CartId, Cart>,
    orders: BTreeMap<OrderId, Order>,
}

/// More rounds than any test trades for.
const MAX_ROUNDS: usize = 2_000;

fn valid<T, E: std::fmt::Debug>(value: Result<T, E>) -> T {
    value.expect("the test builds valid values")
}

impl Shop {
    pub fn new(events: Arc<dyn EventStore>, seed: u64) -> Self {
        Self {
            events,
            rng: StdRng::seed_from_u64(seed),
            now: Utc.with_ymd_and_hms(2025, 3, 1, 8, 0, 0).unwrap(),
            serial: 0,
            streams: Streams::default(),
            eur: valid(Currency::parse("EUR")),
            products: BTreeMap::new(),
            stock: BTreeMap::new(),
            customers: BTreeMap::new(),
            carts: BTreeMap::new(),
            orders: BTreeMap::new(),
        }
    }

    /// The time of the next command: minutes to hours later, so orders
    /// fall on several days.
    fn tick(&mut self) -> DateTime<Utc> {
        self.now += Duration::minutes(self.rng.random_range(5..=240));
        self.now
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(self.rng.random())
    }

    fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn money(&self, amount: i64) -> Money {
        valid(Money::new(amount, self.eur))
    }

    /// Appends everything staged since the last commit, atomically.
    async fn commit(&mut self) {
        let writes = std::mem::take(&mut self.streams.pending);
        if !writes.is_empty() {
            self.events
                .append(writes)
                .await
                .expect("the shop is the only writer, so its expectations hold");
        }
    }

    /// A first catalogue with stock, and a few customers.
    pub async fn open(&mut self) {
        for _ in 0..6 {
            let product = self.add_random_product().await;
            let quantity = self.rng.random_range(5..=30);
            self.receive_stock(product, quantity).await;
        }
        for _ in 0..4 {
            self.add_customer().await;
        }
    }

    /// One stretch of business: sometimes a catalogue or customer change,
    /// always a shopping trip, and an order moved on.
    pub async fn round(&mut self) {
        match self.rng.random_range(0..100) {
            0..8 => {
                let product = self.add_random_product().await;
                self.receive_stock(product, 12).await;
            }
            8..16 => {
                self.add_customer().await;
            }
            16..28 => {
                if let Some(product) = self.random_product_for_sale() {
                    let quantity = self.rng.random_range(3..=20);
                    self.receive_stock(product, quantity).await;
                }
            }
            28..35 => self.reprice_a_product().await,
            35..38 if self.for_sale().len() > 4 => {
                if let Some(product) = self.random_product_for_sale() {
                    self.discontinue(product).await;
                }
            }
            _ => {}
        }
        self.random_shopping_trip().await;
        self.move_an_order_on().await;
    }

    pub async fn rounds(&mut self, n: usize) {
        for _ in 0..n {
            self.round().await;
        }
    }

    /// Trades in the background until stopped: rounds, and a price moved
    /// in each (a busy shop), at most [`MAX_ROUNDS`] in case a test fails
    /// before it stops the shop.
    pub fn trade(mut self) -> UntilStopped<Shop> {
        UntilStopped::spawn(|stop| async move {
            for _ in 0..MAX_ROUNDS {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                self.round().await;
                self.reprice_a_product().await;
            }
            self
        })
    }

    /// Stages a registration and its email claim, for the next append.
    fn stage_registration(&mut self) -> CustomerId {
        let n = self.next_serial();
        let id = CustomerId(self.uuid());
        let at = self.tick();
        let email = valid(Email::parse(&format!("shopper{n}@example.com")));
        let mut customer = Customer::default();
        let register = CustomerCommand::Register {
            customer_id: id,
            email: email.clone(),
            name: valid(Name::parse(&format!("Shopper {n}"))),
            role: Role::Customer,
            password_hash: PasswordHash("$argon2id$v=19$test".into()),
            at,
        };
        valid(self.streams.decide(id, &mut customer, &register));
        let claim = ClaimEmail {
            email: email.clone(),
            customer_id: id,
            at,
        };
        valid(
            self.streams
                .decide(&email, &mut EmailClaim::default(), &claim),
        );
        self.customers.insert(id, customer);
        id
    }

    /// Registers a customer, who may verify their email and may be made an
    /// analyst.
    pub async fn add_customer(&mut self) -> CustomerId {
        let id = self.stage_registration();
        self.commit().await;
        if self.rng.random_ratio(2, 3) {
            self.verify_email(id).await;
        }
        if self.rng.random_ratio(1, 6) {
            let at = self.tick();
            let role = Role::Analyst;
            self.on_customer(id, CustomerCommand::ChangeRole { role, at })
                .await;
        }
        id
    }

    /// Registers `n` customers, `per_append` to an append, as an import
    /// would; returns them in order.
    pub async fn import_customers(&mut self, n: usize, per_append: usize) -> Vec<CustomerId> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n.div_ceil(per_append) {
            let batch = per_append.min(n - ids.len());
            for _ in 0..batch {
                ids.push(self.stage_registration());
            }
            self.commit().await;
        }
        ids
    }

    pub async fn verify_email(&mut self, id: CustomerId) {
        let at = self.tick();
        self.on_customer(id, CustomerCommand::VerifyEmail { at })
            .await;
    }

    async fn on_customer(&mut self, id: CustomerId, command: CustomerCommand) {
        let customer = self.customers.get_mut(&id).expect("known customer");
        valid(self.streams.decide(id, customer, &command));
        self.commit().await;
    }

    /// Lists a product (claiming its SKU in the same append).
    pub async fn add_product(&mut self, name: &str, category: &str, price: i64) -> ProductId {
        let n = self.next_serial();
        let id = ProductId(self.uuid());
        let sku = valid(Sku::parse(&format!("SKU-{n}")));
        let at = self.tick();
        let new = NewProduct {
            product_id: id,
            sku: sku.clone(),
            name: valid(Name::parse(name)),
            description: valid(Description::parse(&format!("A {name} for every day."))),
            price: self.money(price),
            category: valid(Category::parse(category)),
            tags: valid(Tags::parse(&[category, "gift"])),
            at,
        };
        let claim = ClaimSku {
            sku: sku.clone(),
            product_id: id,
            at,
        };
        valid(self.streams.decide(&sku, &mut SkuClaim::default(), &claim));
        let mut product = Product::default();
        let create = ProductCommand::Create(new);
        valid(self.streams.decide(id, &mut product, &create));
        self.commit().await;
        self.products.insert(id, product);
        id
    }

    async fn add_random_product(&mut self) -> ProductId {
        let name = format!(
            "{} {} {}",
            ADJECTIVES.choose(&mut self.rng).expect("adjectives"),
            NOUNS.choose(&mut self.rng).expect("nouns"),
            self.serial + 1
        );
        let category = *CATEGORIES.choose(&mut self.rng).expect("categories");
        let price = self.rng.random_range(199..=4_999);
        self.add_product(&name, category, price).await
    }

    pub fn sku_of(&self, product: ProductId) -> Sku {
        self.products[&product]
            .listing()
            .expect("listed product")
            .sku
            .clone()
    }

    fn for_sale(&self) -> Vec<ProductId> {
        self.products
            .iter()
            .filter(|(_, p)| p.is_for_sale())
            .map(|(id, _)| *id)
            .collect()
    }

    fn random_product_for_sale(&mut self) -> Option<ProductId> {
        self.for_sale().choose(&mut self.rng).copied()
    }

    pub async fn receive_stock(&mut self, product: ProductId, quantity: u32) {
        let sku = self.sku_of(product);
        let receive = InventoryCommand::Receive {
            sku: sku.clone(),
            quantity: valid(Quantity::new(quantity)),
            at: self.tick(),
        };
        let inventory = self.stock.entry(sku.clone()).or_default();
        valid(self.streams.decide(&sku, inventory, &receive));
        self.commit().await;
    }

    /// Changes the price of a random product for sale.
    pub async fn reprice_a_product(&mut self) {
        if let Some(product) = self.random_product_for_sale() {
            let price = self.rng.random_range(150..=9_000);
            self.change_price(product, price).await;
        }
    }

    pub async fn change_price(&mut self, product: ProductId, price: i64) {
        let command = ProductCommand::ChangePrice {
            price: self.money(price),
            at: self.tick(),
        };
        self.on_product(product, command).await;
    }

    pub async fn discontinue(&mut self, product: ProductId) {
        let at = self.tick();
        self.on_product(product, ProductCommand::Discontinue { at })
            .await;
    }

    async fn on_product(&mut self, id: ProductId, command: ProductCommand) {
        let product = self.products.get_mut(&id).expect("known product");
        valid(self.streams.decide(id, product, &command));
        self.commit().await;
    }

    /// A customer fills a cart with these products and quantities and
    /// checks out. A refused checkout is recorded on the cart, as the
    /// application does, and returned.
    pub async fn place_order(
        &mut self,
        customer: CustomerId,
        items: &[(ProductId, u32)],
    ) -> Result<OrderId, DomainError> {
        let cart_id = self.fill_cart(customer, items).await;
        self.check_out(cart_id).await
    }

    async fn fill_cart(&mut self, customer: CustomerId, items: &[(ProductId, u32)]) -> CartId {
        let cart_id = CartId(self.uuid());
        let create = CartCommand::Create {
            cart_id,
            customer_id: customer,
            currency: Currency::EUR,
            at: self.tick(),
        };
        self.on_cart(cart_id, create).await;
        for (product, quantity) in items {
            let listing = self.products[product]
                .listing()
                .expect("listed product")
                .clone();
            let line = CartLine {
                product_id: *product,
                sku: listing.sku,
                name: listing.name,
                unit_price: listing.price,
                quantity: valid(Quantity::new(*quantity)),
            };
            let at = self.tick();
            self.on_cart(cart_id, CartCommand::SetItem { line, at })
                .await;
        }
        cart_id
    }

    async fn on_cart(&mut self, id: CartId, command: CartCommand) {
        let cart = self.carts.entry(id).or_default();
        valid(self.streams.decide(id, cart, &command));
        self.commit().await;
    }

    async fn check_out(&mut self, cart_id: CartId) -> Result<OrderId, DomainError> {
        let order_id = OrderId(self.uuid());
        let at = self.tick();
        let address = ShippingAddress::Text(valid(AddressText::parse("1 Main St, Springfield")));
        let decided = process::checkout(
            &self.carts[&cart_id],
            &self.products,
            &self.stock,
            order_id,
            address,
            at,
        );
        match decided {
            Ok(decision) => {
                let cart = self.carts.get_mut(&cart_id).expect("known cart");
                self.streams.stage(cart_id, cart, decision.cart);
                let mut order = Order::default();
                self.streams.stage(order_id, &mut order, decision.order);
                self.orders.insert(order_id, order);
                self.stage_stock(decision.stock);
                self.commit().await;
                Ok(order_id)
            }
            Err(
                refusal @ (DomainError::InsufficientStock { .. }
                | DomainError::ProductsUnavailable(_)),
            ) => {
                let record = CartCommand::RecordRefusal {
                    refusal: refusal.clone(),
                    at,
                };
                self.on_cart(cart_id, record).await;
                Err(refusal)
            }
            Err(other) => Err(other),
        }
    }

    fn stage_stock(&mut self, stock: Vec<(Sku, Vec<InventoryEvent>)>) {
        for (sku, events) in stock {
            let inventory = self.stock.entry(sku.clone()).or_default();
            self.streams.stage(&sku, inventory, events);
        }
    }

    /// A random customer puts one to three products in a cart (sometimes
    /// changing their mind about one) and checks out; the checkout may be
    /// refused for stock or a discontinued product.
    async fn random_shopping_trip(&mut self) {
        let customers: Vec<CustomerId> = self.customers.keys().copied().collect();
        let Some(customer) = customers.choose(&mut self.rng).copied() else {
            return;
        };
        let catalogue: Vec<ProductId> = self.products.keys().copied().collect();
        let wanted = self.rng.random_range(1..=3);
        let chosen: Vec<ProductId> = catalogue.sample(&mut self.rng, wanted).copied().collect();
        let items: Vec<(ProductId, u32)> = chosen
            .into_iter()
            .map(|p| (p, self.rng.random_range(1..=4)))
            .collect();
        let cart_id = self.fill_cart(customer, &items).await;
        if items.len() > 1 && self.rng.random_ratio(1, 4) {
            let remove = CartCommand::RemoveItem {
                product_id: items[0].0,
                at: self.tick(),
            };
            self.on_cart(cart_id, remove).await;
        }
        // Refusals are part of the story; they are recorded on the cart.
        let _ = self.check_out(cart_id).await;
    }

    /// Pays, ships or cancels a random open order.
    async fn move_an_order_on(&mut self) {
        let open: Vec<(OrderId, OrderStatus)> = self
            .orders
            .iter()
            .filter_map(|(id, o)| o.state().ok().map(|s| (*id, s.status)))
            .filter(|(_, status)| matches!(status, OrderStatus::Confirmed | OrderStatus::Paid))
            .collect();
        let Some((order, status)) = open.choose(&mut self.rng).copied() else {
            return;
        };
        let cancel = self.rng.random_ratio(1, 4);
        match status {
            _ if cancel => self.cancel(order).await,
            OrderStatus::Confirmed => self.pay(order).await,
            _ => self.ship(order).await,
        }
    }

    /// Pays what is outstanding, sometimes in two payments.
    pub async fn pay(&mut self, order: OrderId) {
        let state = self.orders[&order].state().expect("placed order");
        let outstanding = state.placed.total.amount - state.paid.amount;
        let first = if outstanding > 1 && self.rng.random_ratio(1, 3) {
            outstanding / 2
        } else {
            outstanding
        };
        for amount in [first, outstanding - first] {
            if amount > 0 {
                let reference = format!("payment-{}", self.next_serial());
                let pay = OrderCommand::Pay {
                    amount: self.money(amount),
                    reference: valid(PaymentReference::parse(&reference)),
                    at: self.tick(),
                };
                let state = self.orders.get_mut(&order).expect("known order");
                valid(self.streams.decide(order, state, &pay));
                self.commit().await;
            }
        }
    }

    /// Cancels an order and releases its stock.
    pub async fn cancel(&mut self, order: OrderId) {
        let at = self.tick();
        let decision = process::cancel_order(&self.orders[&order], &self.stock, at);
        self.settle(order, valid(decision)).await;
    }

    /// Ships a paid order and its stock.
    pub async fn ship(&mut self, order: OrderId) {
        let n = self.next_serial();
        let at = self.tick();
        let decision = process::ship_order(
            &self.orders[&order],
            &self.stock,
            valid(Carrier::parse("DHL")),
            valid(Tracking::parse(&format!("TRACK-{n}"))),
            at,
        );
        self.settle(order, valid(decision)).await;
    }

    /// Appends an order's events with its stock's, in one append.
    async fn settle(&mut self, order: OrderId, decision: OrderDecision) {
        let state = self.orders.get_mut(&order).expect("known order");
        self.streams.stage(order, state, decision.order);
        self.stage_stock(decision.stock);
        self.commit().await;
    }

    /// Stock levels as the inventory aggregates hold them: what the read
    /// model must show.
    pub fn stock_levels(&self) -> BTreeMap<Sku, StockDoc> {
        self.stock
            .iter()
            .filter(|(_, inventory)| inventory.sku.is_some())
            .map(|(sku, inventory)| {
                let levels = StockDoc {
                    on_hand: inventory.on_hand,
                    reserved: inventory.reserved,
                    available: inventory.available(),
                };
                (sku.clone(), levels)
            })
            .collect()
    }
}
