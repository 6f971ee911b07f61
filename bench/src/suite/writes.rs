//! The write path: the hot SKU, durable appends, commit → queryable.

use super::*;

impl Suite {
    pub(super) async fn hot_sku(&mut self) -> anyhow::Result<Outcome> {
        const SHOPPERS: usize = 64;
        const STOCK: u32 = 10;
        let env = self.event_store_env(Scenario::HotSku);
        let server = if env.is_empty() {
            self.server(Scenario::HotSku).await?
        } else {
            // A fresh shop on the server: its shoppers register first.
            let dir = self.args.data.join("hot-sku-kurrentdb");
            let _ = std::fs::remove_dir_all(&dir);
            Server::serve_with(&dir, free_port()?, &env).await?
        };
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let tokens: Vec<String> = futures::future::try_join_all((0..SHOPPERS).map(|i| {
            let api = api.clone();
            let (customers, fresh) = (self.plan.customers, !env.is_empty());
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
        let retries_before = api
            .metric(
                "shopstream_command_retries_total",
                &["command=\"checkout\""],
            )
            .await?;
        let (mut latencies, mut sold, mut oversold, mut refused, mut failed) =
            (Vec::new(), 0u64, 0i64, 0u64, 0u64);
        for round in 0..self.plan.hot_rounds {
            let sku = format!(
                "HOT-{round}-{}",
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            let (status, _, created) = api
                .send(
                    reqwest::Method::POST,
                    "/v1/products",
                    &admin,
                    Some(json!({"sku": sku, "name": "Hot item", "description": "Everyone wants it",
                        "price": {"amount": 999, "currency": "EUR"}, "category": "hot", "tags": ["hot"]})),
                )
                .await?;
            if status != 201 {
                bail!("creating the hot product: {status} {created}");
            }
            let product = created["product_id"]
                .as_str()
                .context("no product_id")?
                .to_string();
            api.send(
                reqwest::Method::POST,
                &format!("/v1/inventory/{sku}/receipts"),
                &admin,
                Some(json!({"quantity": STOCK})),
            )
            .await?;
            let mut carts = Vec::new();
            for token in &tokens {
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
                carts.push(cart);
            }
            let gate = Arc::new(tokio::sync::Barrier::new(SHOPPERS));
            let checkouts = carts.iter().zip(&tokens).map(|(cart, token)| {
                let (api, gate) = (api.clone(), gate.clone());
                async move {
                    gate.wait().await;
                    let started = Instant::now();
                    let answer = api
                        .send(
                            reqwest::Method::POST,
                            &format!("/v1/carts/{cart}/checkout"),
                            token,
                            Some(json!({"shipping_address": "1 Main Street, 10115 Berlin"})),
                        )
                        .await;
                    (started.elapsed().as_secs_f64() * 1000.0, answer)
                }
            });
            let mut consistency = Vec::new();
            for (took, answer) in futures::future::join_all(checkouts).await {
                latencies.push(took);
                match answer? {
                    (201, token, _) => {
                        sold += 1;
                        consistency.extend(token);
                    }
                    (409, _, body) if body["code"] == "insufficient_stock" => refused += 1,
                    (status, _, body) => {
                        failed += 1;
                        tracing::warn!(status, %body, "checkout failed");
                    }
                }
            }
            // The inventory as the read model has it once it reflects every
            // successful checkout.
            let mut inventory = Value::Null;
            for token in &consistency {
                let request = api
                    .client()
                    .get(api.url(&format!("/v1/inventory/{sku}")))
                    .header("X-Consistency-Token", token);
                inventory = request.send().await?.json().await?;
            }
            let reserved = inventory["reserved"].as_i64().unwrap_or(0);
            let on_hand = inventory["on_hand"].as_i64().unwrap_or(i64::from(STOCK));
            oversold += (reserved - on_hand).max(0);
        }
        oversold += (sold as i64 - (self.plan.hot_rounds as i64 * i64::from(STOCK))).max(0);
        let retries_after = api
            .metric(
                "shopstream_command_retries_total",
                &["command=\"checkout\""],
            )
            .await?;
        let attempts = (SHOPPERS * self.plan.hot_rounds) as f64;
        let retries = (retries_after - retries_before) / attempts;
        latencies.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
        Ok(Outcome {
            scenario: "hot SKU: 64 concurrent checkouts of one SKU with 10 in stock".into(),
            command: String::new(),
            result: format!(
                "{} rounds: sold {sold}, refused {refused}, failed {failed}, **oversold {oversold}**; {retries:.2} retries per checkout; p50 {}, **p99 {}**",
                self.plan.hot_rounds,
                ms(p50),
                ms(p99)
            ),
            goal: "oversell 0; p99 ≤ 50 ms".into(),
            met: Some(oversold == 0 && failed == 0 && p99 <= 50.0),
            baseline: "—".into(),
            details: json!({"rounds": self.plan.hot_rounds, "sold": sold, "refused": refused, "failed": failed,
                "oversold": oversold, "retries_per_checkout": retries, "p50_ms": p50, "p99_ms": p99,
                "latencies_ms": latencies}),
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
