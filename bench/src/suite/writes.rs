//! The write path: the hot SKU, durable appends, commit → queryable.

use super::*;

impl Suite {
    /// 64 shoppers racing for 10 units, round after round, with the
    /// combining queue and, as the same-run baseline, without it (every
    /// contender appending alone, one after another).
    pub(super) async fn hot_sku(&mut self) -> anyhow::Result<Outcome> {
        let combined = self.hot_sku_rounds(true).await?;
        let alone = self.hot_sku_rounds(false).await?;
        let c = &combined;
        Ok(Outcome {
            scenario: "hot SKU: 64 concurrent checkouts of one SKU with 10 in stock".into(),
            command: String::new(),
            result: format!(
                "{} rounds: sold {}, refused {}, failed {}, **oversold {}**; {:.2} retries per \
                 checkout; {:.1} commands per combined append; p50 {}, **p99 {}**",
                self.plan.hot_rounds,
                c.sold,
                c.refused,
                c.failed,
                c.oversold,
                c.retries,
                c.batch,
                ms(c.p50_ms),
                ms(c.p99_ms)
            ),
            goal: "oversell 0; p99 ≤ 50 ms".into(),
            met: Some(c.oversold == 0 && c.failed == 0 && c.p99_ms <= 50.0),
            baseline: format!(
                "the same rounds with the combining queue off (`commands.combine = false`): sold \
                 {}, oversold {}, p50 {}, p99 {}",
                alone.sold,
                alone.oversold,
                ms(alone.p50_ms),
                ms(alone.p99_ms)
            ),
            details: json!({"combined": combined, "alone": alone}),
        })
    }

    async fn hot_sku_rounds(&mut self, combine: bool) -> anyhow::Result<HotRounds> {
        const SHOPPERS: usize = 64;
        const STOCK: u32 = 10;
        let mut env = self.event_store_env(Scenario::HotSku);
        let fresh = !env.is_empty();
        let name = if combine { "hot-sku" } else { "hot-sku-alone" };
        env.push(("SHOPSTREAM_COMMANDS__COMBINE", combine.to_string()));
        let dir = if fresh {
            // A fresh shop on the server: its shoppers register first.
            let dir = self.args.data.join(format!("{name}-kurrentdb"));
            let _ = std::fs::remove_dir_all(&dir);
            dir
        } else {
            fresh_copy(&self.seeded, name)?
        };
        let server = Server::serve_with(&dir, free_port()?, &env).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let tokens: Vec<String> = futures::future::try_join_all((0..SHOPPERS).map(|i| {
            let api = api.clone();
            let customers = self.plan.customers;
            async move {
                let email = if fresh {
                    let email = format!("hot-{i}@example.com");
                    api.register(&email, seed::PASSWORD).await?;
                    email
                } else {
                    seed::email(i % customers)
                };
                api.login(&email, seed::PASSWORD).await
            }
        }))
        .await?;
        let counters = |api: Api| async move {
            anyhow::Ok((
                api.metric(
                    "shopstream_command_retries_total",
                    &["command=\"checkout\""],
                )
                .await?,
                api.metric("shopstream_command_batch_size_sum", &[]).await?,
                api.metric("shopstream_command_batch_size_count", &[])
                    .await?,
            ))
        };
        let before = counters(api.clone()).await?;
        let (mut run, mut oversold) = (Checkouts::default(), 0i64);
        for round in 0..self.plan.hot_rounds {
            let sku = format!(
                "HOT-{round}-{}",
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            let (product, sku) = stocked(&api, &admin, &sku, STOCK).await?;
            let mut carts = Vec::new();
            for token in &tokens {
                carts.push(filled_cart(&api, token, &product).await?);
            }
            let gate = Arc::new(tokio::sync::Barrier::new(SHOPPERS));
            let checkouts = carts.iter().zip(&tokens).map(|(cart, token)| {
                let (api, gate) = (api.clone(), gate.clone());
                async move {
                    gate.wait().await;
                    timed_checkout(&api, token, cart).await
                }
            });
            let earlier = run.tokens.len();
            for (took, answer) in futures::future::join_all(checkouts).await {
                run.record(took, answer?);
            }
            let inventory = inventory_after(&api, &sku, &run.tokens[earlier..]).await?;
            let reserved = inventory["reserved"].as_i64().unwrap_or(0);
            let on_hand = inventory["on_hand"].as_i64().unwrap_or(i64::from(STOCK));
            oversold += (reserved - on_hand).max(0);
        }
        oversold += (run.accepted as i64 - (self.plan.hot_rounds as i64 * i64::from(STOCK))).max(0);
        let after = counters(api.clone()).await?;
        let attempts = (SHOPPERS * self.plan.hot_rounds) as f64;
        let batches = after.2 - before.2;
        run.latencies_ms.sort_by(f64::total_cmp);
        Ok(HotRounds {
            sold: run.accepted,
            refused: run.refused,
            failed: run.failed,
            oversold,
            retries: (after.0 - before.0) / attempts,
            batch: if batches > 0.0 {
                (after.1 - before.1) / batches
            } else {
                0.0
            },
            p50_ms: run.percentile(0.5),
            p99_ms: run.percentile(0.99),
            latencies_ms: run.latencies_ms,
        })
    }

    /// One SKU with ample stock, 64 shoppers each checking out cart after
    /// cart: accepted checkouts per second, beside the same shoppers each
    /// checking out a SKU of their own (no contention) in the same run.
    pub(super) async fn hot_sku_ample(&mut self) -> anyhow::Result<Outcome> {
        const SHOPPERS: usize = 64;
        let server = self.server(Scenario::HotSkuAmple).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let customers = self.plan.customers;
        let tokens: Vec<String> = futures::future::try_join_all((0..SHOPPERS).map(|i| {
            let api = api.clone();
            async move { api.login(&seed::email(i % customers), seed::PASSWORD).await }
        }))
        .await?;
        let carts = self.plan.ample_carts;
        let stock = (SHOPPERS * carts) as u32;
        let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
        let hot = stocked(&api, &admin, &format!("AMPLE-{tag}"), stock).await?;
        let mut own = Vec::new();
        for i in 0..SHOPPERS {
            own.push(stocked(&api, &admin, &format!("OWN-{i}-{tag}"), carts as u32).await?);
        }
        let apart = checkouts(&api, &tokens, &own, carts).await?;
        let hot_run = checkouts(&api, &tokens, &vec![hot.clone(); SHOPPERS], carts).await?;
        let inventory = inventory_after(&api, &hot.1, &hot_run.tokens).await?;
        let reserved = inventory["reserved"].as_i64().unwrap_or(0);
        let oversold = (reserved - inventory["on_hand"].as_i64().unwrap_or(0)).max(0)
            + (hot_run.accepted as i64 - i64::from(stock)).max(0);
        let (rate, apart_rate) = (hot_run.rate(), apart.rate());
        Ok(Outcome {
            scenario: "one SKU with ample stock: 64 shoppers checking out cart after cart".into(),
            command: String::new(),
            result: format!(
                "**{} accepted checkouts/s** ({} of {}, refused {}, failed {}, **oversold {oversold}**; \
                 reserved {reserved}); p50 {}, p99 {} = ×{:.2} the uncontended rate",
                thousands(rate),
                hot_run.accepted,
                SHOPPERS * carts,
                hot_run.refused,
                hot_run.failed,
                ms(hot_run.percentile(0.5)),
                ms(hot_run.percentile(0.99)),
                rate / apart_rate,
            ),
            goal: "≥ 2,000 accepted checkouts/s, 0 oversold".into(),
            met: Some(rate >= 2000.0 && oversold == 0 && hot_run.failed == 0),
            baseline: format!(
                "the same shoppers each checking out a SKU of their own: {} accepted checkouts/s \
                 (p50 {}, p99 {})",
                thousands(apart_rate),
                ms(apart.percentile(0.5)),
                ms(apart.percentile(0.99)),
            ),
            details: json!({"hot": hot_run, "apart": apart, "reserved": reserved, "oversold": oversold}),
        })
    }

    /// Runs `shopstream-bench append` with `args` beside the plan's
    /// length, and reads back its runs.
    async fn append_runs(&self, name: &str, args: &[&str]) -> anyhow::Result<Vec<Value>> {
        let file = self.args.out.join(format!("{name}.raw.json"));
        let status = Command::new(load::harness()?)
            .args(["append", "--seconds", &self.plan.append_seconds.to_string()])
            .arg("--dir")
            .arg(self.args.data.join("appends"))
            .arg("--json")
            .arg(&file)
            .args(args)
            .status()
            .await?;
        if !status.success() {
            bail!(
                "shopstream-bench append {} failed: {status}",
                args.join(" ")
            );
        }
        let runs = serde_json::from_slice(&std::fs::read(&file)?)?;
        let _ = std::fs::remove_file(&file);
        Ok(runs)
    }

    pub(super) async fn appends(&mut self) -> anyhow::Result<Outcome> {
        let store: Vec<&str> = match &self.args.event_store {
            Some(url) => vec!["--event-store", url],
            None => vec![],
        };
        let runs = self.append_runs("appends", &store).await?;
        let find = |pred: &dyn Fn(&Value) -> bool| {
            runs.iter()
                .find(|r| pred(r))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let one_fsync = find(&|r| {
            r["scenario"]
                .as_str()
                .is_some_and(|s| s.contains("one transaction"))
        });
        let raw = find(&|r| {
            r["scenario"]
                .as_str()
                .is_some_and(|s| s.contains("fdatasync"))
        });
        let grouped = |w: u64| {
            find(&|r| {
                r["writers"] == w
                    && !r["scenario"]
                        .as_str()
                        .is_some_and(|s| s.contains("one transaction") || s.contains("fdatasync"))
            })
        };
        let (one, many) = (grouped(1), grouped(64));
        let events = |v: &Value| v["events_per_sec"].as_f64().unwrap_or(0.0);
        if self.args.event_store.is_some() {
            let ratio = events(&many) / events(&one).max(1.0);
            return Ok(Outcome {
                scenario: "durable appends, 1 and 64 writers".into(),
                command: String::new(),
                result: format!(
                    "1 writer {} events/s; **64 writers {} events/s** (p99 {}) = **{ratio:.1}×** one writer",
                    thousands(events(&one)),
                    thousands(events(&many)),
                    ms(many["p99_ms"].as_f64().unwrap_or(0.0))
                ),
                goal: "none of its own: read beside the embedded store's row".into(),
                met: None,
                baseline: "one writer".into(),
                details: json!({"runs": runs, "ratio_to_one_writer": ratio}),
            });
        }
        let ratio = events(&many) / events(&one_fsync).max(1.0);
        Ok(Outcome {
            scenario: "durable appends (fsync on), 1 and 64 writers".into(),
            command: String::new(),
            result: format!(
                "1 writer {} events/s; **64 writers {} events/s** (p99 {}) = **{ratio:.1}×** one fsync per append",
                thousands(events(&one)),
                thousands(events(&many)),
                ms(many["p99_ms"].as_f64().unwrap_or(0.0))
            ),
            goal: "≥ 20,000 events/s and ≥ 50× one-fsync".into(),
            met: Some(events(&many) >= 20_000.0 && ratio >= 50.0),
            baseline: format!(
                "one fsync per append through the store: {}/s; raw write + fdatasync: {}/s",
                thousands(events(&one_fsync)),
                thousands(events(&raw))
            ),
            details: json!({"runs": runs, "ratio_to_one_fsync": ratio}),
        })
    }

    /// The embedded store's durable appends beside PostgreSQL's, the same
    /// 64 writers appending the same events to each in one run.
    pub(super) async fn appends_beside_postgres(&mut self) -> anyhow::Result<Outcome> {
        let runs = self
            .append_runs(
                "postgres",
                &["--postgres", "--no-baseline", "--writers", "64"],
            )
            .await?;
        let run = |postgres: bool| {
            runs.iter()
                .find(|r| {
                    r["scenario"]
                        .as_str()
                        .is_some_and(|s| s.starts_with("PostgreSQL") == postgres)
                })
                .cloned()
                .unwrap_or(Value::Null)
        };
        let (ours, theirs) = (run(false), run(true));
        let events = |v: &Value| v["events_per_sec"].as_f64().unwrap_or(0.0);
        let p99 = |v: &Value| ms(v["p99_ms"].as_f64().unwrap_or(0.0));
        let ratio = events(&ours) / events(&theirs).max(1.0);
        Ok(Outcome {
            scenario: "durable appends, 64 writers, beside PostgreSQL (both fsync on)".into(),
            command: String::new(),
            result: format!(
                "**{} events/s** (p99 {}) = **{ratio:.1}×** PostgreSQL",
                thousands(events(&ours)),
                p99(&ours)
            ),
            goal: "≥ 3× PostgreSQL's events/s".into(),
            met: Some(ratio >= 3.0),
            baseline: format!(
                "{}, one connection per writer, Message DB-style append function: {} events/s (p99 {})",
                theirs["scenario"].as_str().unwrap_or("PostgreSQL"),
                thousands(events(&theirs)),
                p99(&theirs)
            ),
            details: json!({"runs": runs, "ratio_to_postgres": ratio}),
        })
    }

    pub(super) async fn lag(&mut self) -> anyhow::Result<Outcome> {
        let dir = self.args.data.join("lag");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let file = self.args.out.join("lag.raw.json");
        let status = Command::new(load::harness()?)
            .args(["lag", "--commands", &self.plan.lag_commands.to_string()])
            .arg("--json")
            .arg(&file)
            .env("SHOPSTREAM_DATA_DIR", &dir)
            .envs(self.event_store_env(Scenario::Lag))
            .envs(self.read_store_env(Scenario::Lag))
            .status()
            .await?;
        if !status.success() {
            bail!("shopstream-bench lag failed: {status}");
        }
        let lag: Value = serde_json::from_slice(&std::fs::read(&file)?)?;
        let _ = std::fs::remove_file(&file);
        let p99 = lag["p99_ms"].as_f64().unwrap_or(f64::NAN);
        Ok(Outcome {
            scenario: "commit → queryable (embedded projections)".into(),
            command: String::new(),
            result: format!(
                "p50 {}, **p99 {}**, max {}, {} stale of {}",
                ms(lag["p50_ms"].as_f64().unwrap_or(0.0)),
                ms(p99),
                ms(lag["max_ms"].as_f64().unwrap_or(0.0)),
                lag["stale"],
                lag["commands"]
            ),
            goal: "p99 ≤ 20 ms".into(),
            met: Some(p99 <= 20.0),
            baseline: "—".into(),
            details: lag,
        })
    }
}

/// A new product with `stock` units received: (product id, SKU).
async fn stocked(
    api: &Api,
    admin: &str,
    sku: &str,
    stock: u32,
) -> anyhow::Result<(String, String)> {
    let (status, _, created) = api
        .send(
            reqwest::Method::POST,
            "/v1/products",
            admin,
            Some(
                json!({"sku": sku, "name": "Wanted item", "description": "Plenty of it",
                "price": {"amount": 999, "currency": "EUR"}, "category": "hot", "tags": ["hot"]}),
            ),
        )
        .await?;
    if status != 201 {
        bail!("creating a product: {status} {created}");
    }
    let product = created["product_id"]
        .as_str()
        .context("no product_id")?
        .to_string();
    let (status, _, body) = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/inventory/{sku}/receipts"),
            admin,
            Some(json!({"quantity": stock})),
        )
        .await?;
    if status >= 300 {
        bail!("receiving stock: {status} {body}");
    }
    Ok((product, sku.to_string()))
}

/// A new cart of the shopper's with one unit of `product` in it.
async fn filled_cart(api: &Api, token: &str, product: &str) -> anyhow::Result<String> {
    let (_, _, cart) = api
        .send(reqwest::Method::POST, "/v1/carts", token, None)
        .await?;
    let cart = cart["cart_id"].as_str().context("no cart_id")?.to_string();
    let (status, _, _) = api
        .send(
            reqwest::Method::PUT,
            &format!("/v1/carts/{cart}/items/{product}"),
            token,
            Some(json!({"quantity": 1})),
        )
        .await?;
    if status != 200 {
        bail!("filling a cart: {status}");
    }
    Ok(cart)
}

/// Checks a cart out: how long it took (ms), and the answer.
async fn timed_checkout(
    api: &Api,
    token: &str,
    cart: &str,
) -> (f64, anyhow::Result<(u16, Option<String>, Value)>) {
    let sent = Instant::now();
    let answer = api
        .send(
            reqwest::Method::POST,
            &format!("/v1/carts/{cart}/checkout"),
            token,
            Some(json!({"shipping_address": "1 Main Street, 10115 Berlin"})),
        )
        .await;
    (sent.elapsed().as_secs_f64() * 1000.0, answer)
}

/// A SKU's inventory as the read model has it once it reflects every
/// checkout whose consistency token is given (each waited for in turn).
async fn inventory_after(api: &Api, sku: &str, tokens: &[String]) -> anyhow::Result<Value> {
    let mut inventory = Value::Null;
    for token in tokens {
        let request = api
            .client()
            .get(api.url(&format!("/v1/inventory/{sku}")))
            .header("X-Consistency-Token", token);
        inventory = request.send().await?.json().await?;
    }
    Ok(inventory)
}

/// What a timed run of checkouts did.
#[derive(Debug, Default, Serialize)]
struct Checkouts {
    seconds: f64,
    accepted: u64,
    refused: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
    /// The consistency tokens of the accepted checkouts.
    #[serde(skip)]
    tokens: Vec<String>,
}

impl Checkouts {
    fn rate(&self) -> f64 {
        self.accepted as f64 / self.seconds.max(f64::EPSILON)
    }

    fn percentile(&self, p: f64) -> f64 {
        percentile(&self.latencies_ms, p)
    }

    /// Counts one answer: accepted (201, its token kept), refused for
    /// want of stock, or failed.
    fn record(&mut self, took_ms: f64, (status, token, body): (u16, Option<String>, Value)) {
        self.latencies_ms.push(took_ms);
        match status {
            201 => {
                self.accepted += 1;
                self.tokens.extend(token);
            }
            409 if body["code"] == "insufficient_stock" => self.refused += 1,
            _ => {
                self.failed += 1;
                tracing::warn!(status, %body, "checkout failed");
            }
        }
    }
}

/// Fills `carts` carts per shopper with one unit of that shopper's product
/// (untimed), then times every shopper checking its carts out one after
/// another, all shoppers at once.
async fn checkouts(
    api: &Api,
    tokens: &[String],
    products: &[(String, String)],
    carts: usize,
) -> anyhow::Result<Checkouts> {
    let filled = futures::future::try_join_all(tokens.iter().zip(products).map(
        |(token, (product, _))| async move {
            let mut filled = Vec::with_capacity(carts);
            for _ in 0..carts {
                filled.push(filled_cart(api, token, product).await?);
            }
            anyhow::Ok(filled)
        },
    ))
    .await?;
    let started = Instant::now();
    let runs =
        futures::future::try_join_all(tokens.iter().zip(filled).map(|(token, carts)| async move {
            let mut answers = Vec::with_capacity(carts.len());
            for cart in carts {
                let (took, answer) = timed_checkout(api, token, &cart).await;
                answers.push((took, answer?));
            }
            anyhow::Ok(answers)
        }))
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    let mut run = Checkouts {
        seconds,
        ..Checkouts::default()
    };
    for (took, answer) in runs.into_iter().flatten() {
        run.record(took, answer);
    }
    run.latencies_ms.sort_by(f64::total_cmp);
    Ok(run)
}

/// What the hot-SKU rounds on one server did.
#[derive(Debug, Serialize)]
struct HotRounds {
    sold: u64,
    refused: u64,
    failed: u64,
    oversold: i64,
    retries: f64,
    /// Commands per combined append.
    batch: f64,
    p50_ms: f64,
    p99_ms: f64,
    latencies_ms: Vec<f64>,
}
