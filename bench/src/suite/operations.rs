//! What operators and analysts run: export, rebuild, and the memory a
//! server holds.

use super::*;

impl Suite {
    pub(super) async fn export(&mut self) -> anyhow::Result<Outcome> {
        use futures::StreamExt;
        let server = self.server(Scenario::Export).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let started = Instant::now();
        let response = api
            .client()
            .get(api.url("/v1/events"))
            .bearer_auth(&admin)
            .send()
            .await?
            .error_for_status()?;
        let mut body = response.bytes_stream();
        let (mut lines, mut bytes) = (0u64, 0u64);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = lines as f64 / secs;
        if lines < self.seeded_events {
            bail!("the export gave {lines} events of {}", self.seeded_events);
        }
        Ok(Outcome {
            scenario: "export: every event as NDJSON over GET /v1/events".into(),
            command: String::new(),
            result: format!(
                "{} events ({:.0} MiB) in {secs:.2} s = **{} events/s**",
                thousands(lines as f64),
                bytes as f64 / 1048576.0,
                thousands(rate)
            ),
            goal: "≥ 500,000 events/s".into(),
            met: Some(rate >= 500_000.0),
            baseline: "—".into(),
            details: json!({"events": lines, "bytes": bytes, "seconds": secs, "events_per_s": rate}),
        })
    }

    pub(super) async fn rebuild(&mut self) -> anyhow::Result<Outcome> {
        let dir = fresh_copy(&self.seeded, Scenario::Rebuild.name())?;
        let started = Instant::now();
        let status = Command::new(load::shopstream()?)
            .args(["projections", "rebuild", "all"])
            .env("SHOPSTREAM_DATA_DIR", &dir)
            .envs(self.read_store_env(Scenario::Rebuild))
            .env("SHOPSTREAM_LOG__FILTER", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .await?;
        if !status.success() {
            bail!("the rebuild failed: {status}");
        }
        let secs = started.elapsed().as_secs_f64();
        let per_million = secs * 1e6 / self.seeded_events.max(1) as f64;
        Ok(Outcome {
            scenario: "rebuild every projection from the first event".into(),
            command: String::new(),
            result: format!(
                "{} events in **{secs:.1} s** ({} events/s; {per_million:.1} s per million)",
                thousands(self.seeded_events as f64),
                thousands(self.seeded_events as f64 / secs)
            ),
            goal: "≤ 10 s for 1M events".into(),
            met: Some(per_million <= 10.0),
            baseline: "—".into(),
            details: json!({"events": self.seeded_events, "seconds": secs}),
        })
    }

    pub(super) async fn memory(&mut self) -> anyhow::Result<Outcome> {
        use futures::StreamExt;
        let server = self.server(Scenario::Memory).await?;
        let idle = server.rss_mib()?;
        let idle_parts = (server.memory_mib("RssAnon")?, server.memory_mib("RssFile")?);
        // Every product's answer, once, into the query cache.
        let api = Api::new(&server.base);
        let products = api.products().await?;
        futures::stream::iter(products.iter().map(|(id, _, _)| {
            let api = api.clone();
            async move {
                api.client()
                    .get(api.url(&format!("/v1/products/{id}")))
                    .send()
                    .await?
                    .error_for_status()?;
                anyhow::Ok(())
            }
        }))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()?;
        let cached = server.rss_mib()?;
        let cached_parts = (server.memory_mib("RssAnon")?, server.memory_mib("RssFile")?);
        Ok(Outcome {
            scenario: "memory: resident set idle after start, and with every product cached".into(),
            command: String::new(),
            result: format!(
                "idle **{idle:.0} MiB** (heap {:.0}, mapped files {:.0}); with {} products read once through the cache **{cached:.0} MiB** (heap {:.0}, mapped files {:.0})",
                idle_parts.0,
                idle_parts.1,
                thousands(products.len() as f64),
                cached_parts.0,
                cached_parts.1
            ),
            goal: "idle ≤ 64 MiB; ≤ 150 MiB with 100k products cached".into(),
            met: Some(idle <= 64.0 && cached <= 150.0),
            baseline: "—".into(),
            details: json!({"idle_mib": idle, "cached_mib": cached, "products": products.len(),
                "idle_anon_mib": idle_parts.0, "idle_file_mib": idle_parts.1,
                "cached_anon_mib": cached_parts.0, "cached_file_mib": cached_parts.1}),
        })
    }
}
