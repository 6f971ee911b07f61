//! Virtual users: the mixed commerce workload, the stress ramp and the
//! soak.

use super::*;

impl Suite {
    /// Tokens of logged-in customers and the data files of the virtual users.
    async fn virtual_users(
        &self,
        server: &Server,
        scenario: Scenario,
        users: usize,
    ) -> anyhow::Result<VirtualUsers> {
        let api = Api::new(&server.base);
        let logins = users.min(self.plan.customers).max(1);
        let tokens: Vec<String> = futures::future::try_join_all((0..logins).map(|i| {
            let api = api.clone();
            async move { api.login(&seed::email(i), seed::PASSWORD).await }
        }))
        .await?;
        let products = api.products().await?;
        let dir = self.args.data.join("users").join(scenario.name());
        VirtualUsers::write(&dir, &tokens, &products)
    }

    pub(super) async fn mixed(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Mixed).await?;
        let users = self
            .virtual_users(&server, Scenario::Mixed, self.plan.users)
            .await?;
        let api = Api::new(&server.base);
        let (hits0, misses0) = cache_counts(&api).await?;
        let run = users
            .run(
                &server.base,
                self.plan.users,
                self.plan.seconds.max(3.0) * 3.0,
            )
            .await?;
        let (hits1, misses1) = cache_counts(&api).await?;
        let hit_ratio = (hits1 - hits0) / ((hits1 - hits0) + (misses1 - misses0)).max(1.0);
        let rss = server.rss_mib()?;
        let heap = server.memory_mib("RssAnon")?;
        let errors = run.errors();
        let error_rate = errors as f64 / run.requests.max(1) as f64;
        let text = run
            .roles
            .iter()
            .map(|r| {
                format!(
                    "{} {:.0} tx/s (p95 {}, p99 {})",
                    r.role,
                    r.transactions_per_s,
                    ms(r.p95_ms),
                    ms(r.p99_ms)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        Ok(Outcome {
            scenario:
                "mixed commerce workload: browse 80 %, carts 15 %, checkout + pay 5 %, Zipf(1.0)"
                    .into(),
            command: String::new(),
            result: format!(
                "{} users, {} products: {text}; {} req/s in all, errors {:.3} %, cache hit {:.1} %, RSS {rss:.0} MiB (heap {heap:.0})",
                self.plan.users,
                thousands(self.plan.products as f64),
                thousands(run.rps),
                error_rate * 100.0,
                hit_ratio * 100.0
            ),
            goal: "0 errors; RSS ≤ 150 MiB".into(),
            met: Some(errors == 0 && rss <= 150.0),
            baseline: "the query ceiling above".into(),
            details: json!({"run": run, "cache_hit_ratio": hit_ratio, "rss_mib": rss, "heap_mib": heap, "error_rate": error_rate}),
        })
    }

    pub(super) async fn stress(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Stress).await?;
        let most = *self.plan.stress_users.last().unwrap_or(&1);
        let users = self.virtual_users(&server, Scenario::Stress, most).await?;
        let mut steps = Vec::new();
        let mut knee = None;
        for &n in &self.plan.stress_users {
            let run = users.run(&server.base, n, self.plan.seconds).await?;
            let (p99, errors, rps) = (run.worst_p99_ms(), run.errors(), run.rps);
            println!(
                "  {n:>5} users: {rps:>8.0} req/s, worst p99 {}, errors {errors}",
                ms(p99)
            );
            steps.push(
                json!({"users": n, "rps": rps, "worst_p99_ms": p99, "errors": errors, "run": run}),
            );
            if p99 > 200.0 || errors > 0 {
                knee = Some(n);
                break;
            }
        }
        let last = steps.last().cloned().unwrap_or(Value::Null);
        let result = match knee {
            Some(n) => format!(
                "knee at {n} users: worst p99 {}, {} errors ({} req/s)",
                ms(last["worst_p99_ms"].as_f64().unwrap_or(0.0)),
                last["errors"],
                thousands(last["rps"].as_f64().unwrap_or(0.0))
            ),
            None => format!(
                "no knee up to {most} users: worst p99 {}, 0 errors ({} req/s)",
                ms(last["worst_p99_ms"].as_f64().unwrap_or(0.0)),
                thousands(last["rps"].as_f64().unwrap_or(0.0))
            ),
        };
        Ok(Outcome {
            scenario: "stress: mixed-workload users doubled until p99 > 200 ms or errors".into(),
            command: String::new(),
            result,
            goal: "report the knee".into(),
            met: None,
            baseline: "—".into(),
            details: json!({"steps": steps, "knee_users": knee}),
        })
    }

    pub(super) async fn soak(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Soak).await?;
        let users = self
            .virtual_users(&server, Scenario::Soak, self.plan.users)
            .await?;
        let mut minutes = Vec::new();
        for segment in 0..self.plan.soak_segments {
            let run = users
                .run(
                    &server.base,
                    self.plan.users,
                    self.plan.soak_segment_seconds,
                )
                .await?;
            let (p99, errors) = (run.worst_p99_ms(), run.errors());
            let rss = server.rss_mib()?;
            let heap = server.memory_mib("RssAnon")?;
            println!(
                "  segment {:>3}: worst p99 {}, errors {errors}, RSS {rss:.0} MiB (heap {heap:.0})",
                segment + 1,
                ms(p99)
            );
            minutes.push(
                json!({"segment": segment + 1, "worst_p99_ms": p99, "errors": errors,
                "rss_mib": rss, "heap_mib": heap, "run": run}),
            );
        }
        let get = |i: usize, key: &str| minutes[i][key].as_f64().unwrap_or(f64::NAN);
        let last = minutes.len() - 1;
        let errors: u64 = minutes
            .iter()
            .map(|m| m["errors"].as_u64().unwrap_or(0))
            .sum();
        let (heap_drift, p99_drift) = (
            get(last, "heap_mib") / get(0, "heap_mib"),
            get(last, "worst_p99_ms") / get(0, "worst_p99_ms"),
        );
        Ok(Outcome {
            scenario: "soak: the mixed workload, minute by minute".into(),
            command: String::new(),
            result: format!(
                "{} segments of {:.0} s: heap {:.0} → {:.0} MiB (×{heap_drift:.2}; RSS with mapped files {:.0} → {:.0} MiB), worst p99 {} → {} (×{p99_drift:.2}), {errors} errors",
                minutes.len(),
                self.plan.soak_segment_seconds,
                get(0, "heap_mib"),
                get(last, "heap_mib"),
                get(0, "rss_mib"),
                get(last, "rss_mib"),
                ms(get(0, "worst_p99_ms")),
                ms(get(last, "worst_p99_ms"))
            ),
            goal: "no drift: heap and p99 of the last minute within 1.2× of the first".into(),
            met: Some(heap_drift <= 1.2 && p99_drift <= 1.2 && errors == 0),
            baseline: "the first minute".into(),
            details: json!({"segments": minutes}),
        })
    }
}

pub(super) async fn cache_counts(api: &Api) -> anyhow::Result<(f64, f64)> {
    Ok((
        api.metric("shopstream_query_cache_total", &["result=\"hit\""])
            .await?,
        api.metric("shopstream_query_cache_total", &["result=\"miss\""])
            .await?,
    ))
}
