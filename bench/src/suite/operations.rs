//! What operators and analysts run: export, rebuild, and the memory a
//! server holds.

use super::*;

impl Suite {
    /// Every event over `GET /v1/events` in each format, timed from the
    /// request to the last byte read; then each is written to a file, and
    /// DuckDB opens the three files: each must hold every event with the
    /// same counts per type and the same first and last positions.
    pub(super) async fn export(&mut self) -> anyhow::Result<Outcome> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let server = self.server(Scenario::Export).await?;
        let api = Api::new(&server.base);
        let admin = api.login(load::ADMIN_EMAIL, load::ADMIN_PASSWORD).await?;
        let dir = self.seeded.with_file_name("export-files");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let export = async |format: &str, file: Option<&Path>| -> anyhow::Result<(u64, f64)> {
            let mut out = match file {
                Some(path) => Some(tokio::io::BufWriter::new(
                    tokio::fs::File::create(path).await?,
                )),
                None => None,
            };
            let started = Instant::now();
            let response = api
                .client()
                .get(api.url(&format!("/v1/events?format={format}")))
                .bearer_auth(&admin)
                .send()
                .await?
                .error_for_status()?;
            let mut body = response.bytes_stream();
            let mut bytes = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk = chunk?;
                bytes += chunk.len() as u64;
                if let Some(out) = out.as_mut() {
                    out.write_all(&chunk).await?;
                }
            }
            if let Some(mut out) = out {
                out.flush().await?;
            }
            Ok((bytes, started.elapsed().as_secs_f64()))
        };
        let mut runs = Vec::new();
        for format in ["ndjson", "csv", "parquet"] {
            // Timed as the client reads it; then again into a file for DuckDB.
            let (bytes, secs) = export(format, None).await?;
            let path = dir.join(format!("events.{format}"));
            export(format, Some(&path)).await?;
            runs.push((format, path, bytes, secs));
        }
        // DuckDB (PyPI) opens what was written, as the test suite does.
        let script = "tests/export/duckdb_check.py";
        let opened = Command::new("python3")
            .arg(script)
            .args(runs.iter().map(|(_, path, _, _)| path))
            .output()
            .await?;
        if !opened.status.success() {
            bail!(
                "DuckDB could not open the exports (python3 -m pip install duckdb): {}",
                String::from_utf8_lossy(&opened.stderr)
            );
        }
        let seen: Vec<Value> = String::from_utf8(opened.stdout)?
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?;
        let events = seen.first().and_then(|s| s["rows"].as_u64()).unwrap_or(0);
        if events < self.seeded_events {
            bail!("the export gave {events} events of {}", self.seeded_events);
        }
        for s in &seen {
            let same = ["rows", "first", "last", "types"]
                .iter()
                .all(|k| s[*k] == seen[0][*k]);
            if !same || s["secrets"] != 0 || s["ordered"] != true {
                bail!("the formats disagree: {s} vs {}", seen[0]);
            }
        }
        let rate = |secs: f64| events as f64 / secs;
        let (_, _, ndjson_bytes, ndjson_secs) = runs[0];
        let figures: Vec<String> = runs
            .iter()
            .map(|(format, _, bytes, secs)| {
                format!(
                    "{format} {:.0} MiB in {secs:.2} s = **{} events/s**",
                    *bytes as f64 / 1048576.0,
                    thousands(rate(*secs))
                )
            })
            .collect();
        Ok(Outcome {
            scenario: "export: every event over GET /v1/events, as NDJSON, CSV and Parquet; \
                       each then opened with DuckDB"
                .into(),
            command: String::new(),
            result: format!(
                "{} events: {}; DuckDB reads {} rows from each, counts per type and first and \
                 last positions equal",
                thousands(events as f64),
                figures.join("; "),
                thousands(events as f64)
            ),
            goal: "≥ 500,000 events/s as NDJSON; Parquet opens in DuckDB with the right counts"
                .into(),
            met: Some(rate(ndjson_secs) >= 500_000.0),
            baseline: format!(
                "NDJSON, the established format: {} events/s",
                thousands(rate(ndjson_secs))
            ),
            details: json!({
                "events": events,
                "ndjson_bytes": ndjson_bytes,
                "runs": runs.iter().map(|(format, _, bytes, secs)| json!({
                    "format": format, "bytes": bytes, "seconds": secs, "events_per_s": rate(*secs),
                })).collect::<Vec<_>>(),
                "duckdb": seen,
            }),
        })
    }

    /// Every projection rebuilt from the first event, on the seeded data
    /// set and on one five times its size (seeded once, kept under
    /// `<data>/full-x5`), so that the cost's growth is measured, not assumed.
    pub(super) async fn rebuild(&mut self) -> anyhow::Result<Outcome> {
        let secs = self.rebuild_copy(&self.seeded).await?;
        let events = self.seeded_events;
        let per_million = secs * 1e6 / events.max(1) as f64;
        let plan = &self.plan;
        let larger = seed_set(
            &self
                .args
                .data
                .join(if plan.smoke { "smoke-x5" } else { "full-x5" }),
            plan.products * 5,
            plan.customers * 5,
            plan.orders * 5,
        )
        .await?;
        let larger_secs = self.rebuild_copy(&larger.dir).await?;
        remove_copies(&larger.dir);
        // Time per event at five times the history, against the first.
        let growth = (larger_secs / larger.events.max(1) as f64) / (secs / events.max(1) as f64);
        Ok(Outcome {
            scenario: "rebuild every projection from the first event".into(),
            command: String::new(),
            result: format!(
                "{} events in **{secs:.1} s** ({} events/s; {per_million:.1} s per million); \
                 {} events in {larger_secs:.1} s = ×{:.2} the time for ×{:.2} the events \
                 (**×{growth:.2}** per event; seeded in {:.0} s)",
                thousands(events as f64),
                thousands(events as f64 / secs),
                thousands(larger.events as f64),
                larger_secs / secs,
                larger.events as f64 / events.max(1) as f64,
                larger.seconds,
            ),
            goal: "≤ 8 s for 1M events; five times the events in ≤ 5× the time (issue 15)".into(),
            met: Some(per_million <= 8.0 && growth <= 1.0),
            baseline: format!("the {}-event data set", thousands(events as f64)),
            details: json!({
                "events": events, "seconds": secs,
                "larger_events": larger.events, "larger_seconds": larger_secs,
                "larger_seed_seconds": larger.seconds, "growth_per_event": growth,
            }),
        })
    }

    /// Seconds `shopstream projections rebuild all` takes on a fresh copy
    /// of `seeded`.
    async fn rebuild_copy(&self, seeded: &Path) -> anyhow::Result<f64> {
        let dir = fresh_copy(seeded, Scenario::Rebuild.name())?;
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
        Ok(started.elapsed().as_secs_f64())
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
