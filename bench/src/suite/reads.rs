//! The query path: the ceiling beside a trivial handler, latency against
//! offered load, many connections, and a spike.

use super::*;

impl Suite {
    pub(super) async fn ceiling(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Ceiling).await?;
        let url = self.product_url(&server).await?;
        // The bare baseline serves this very answer's bytes from a map of
        // as many products as the data set has.
        let body = reqwest::get(&url)
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        let id = url.rsplit('/').next().unwrap_or_default().to_string();
        let body_file = self.args.out.join("ceiling-body.json");
        std::fs::write(&body_file, &body)?;
        let products = self.plan.products.to_string();
        let hello = Server::hello(
            free_port()?,
            &[
                "--body-file",
                &body_file.display().to_string(),
                "--id",
                &id,
                "--products",
                &products,
            ],
        )
        .await?;
        let secs = self.plan.seconds;
        let baseline = oha(&format!("{}/hello", hello.base), 256, None, secs).await?;
        let bare = oha(&format!("{}/v1/products/{id}", hello.base), 256, None, secs).await?;
        let product = oha(&url, 256, None, secs).await?;
        let ratio = product.rps / baseline.rps;
        let bare_ratio = product.rps / bare.rps;
        self.ceiling_rps = Some(product.rps);
        drop(hello);
        let _ = std::fs::remove_file(&body_file);
        // The same query with the rate limiter on (its limit out of reach,
        // so every request pays for the check and none is refused), beside
        // it off, interleaved off-on-on-off so that drift in a shared
        // machine's speed falls on both sides alike.
        let dir = fresh_copy(&self.seeded, "ceiling-limited")?;
        let mut env = self.read_store_env(Scenario::Ceiling);
        env.push(("SHOPSTREAM_RATE_LIMITS", "on".into()));
        env.push(("SHOPSTREAM_LIMITS__API_PER_MINUTE", "2000000000".into()));
        let on = Server::serve_with(&dir, free_port()?, &env).await?;
        let on_url = self.product_url(&on).await?;
        // Rounds of off-on-on-off: each round gives the limiter's ratio,
        // and its two runs with the limiter off give the noise floor (how
        // far the same server drifts within a round). A cost is measurable
        // only when it stands above that floor in every round.
        let half = secs / 2.0;
        let (mut offs, mut ons, mut ratios, mut noise) =
            (Vec::new(), Vec::new(), Vec::new(), 0.0f64);
        for _ in 0..self.plan.limiter_rounds {
            let off_a = oha(&url, 256, None, half).await?;
            let on_a = oha(&on_url, 256, None, half).await?;
            let on_b = oha(&on_url, 256, None, half).await?;
            let off_b = oha(&url, 256, None, half).await?;
            ratios.push((on_a.rps + on_b.rps) / (off_a.rps + off_b.rps));
            noise = noise.max((off_a.rps / off_b.rps - 1.0).abs());
            offs.extend([off_a, off_b]);
            ons.extend([on_a, on_b]);
        }
        let mean =
            |runs: &[Run]| runs.iter().map(|r| r.rps).sum::<f64>() / runs.len().max(1) as f64;
        let worst_p99 = |runs: &[Run]| runs.iter().map(|r| r.p99_ms).fold(0.0, f64::max);
        let (limiter_off, limiter_on) = (mean(&offs), mean(&ons));
        let limiter = limiter_on / limiter_off;
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        let measurable = ratios.iter().all(|r| 1.0 - r > noise);
        Ok(Outcome {
            scenario: "query ceiling: GET /v1/products/{id}, cache hit, 256 connections".into(),
            command: String::new(),
            result: format!(
                "{} req/s, p50 {}, p99 {}, p99.9 {}, {} errors → **{ratio:.2}×** the trivial \
                 handler, **{bare_ratio:.2}×** the bare map; \
                 rate limiter on vs off ({} interleaved rounds): {} vs {} req/s, p99 {} vs {} \
                 (×{limiter:.3}; rounds ×{low:.3}–×{high:.3}; off vs off within a round up to \
                 ±{:.1} %: {})",
                thousands(product.rps),
                ms(product.p50_ms),
                ms(product.p99_ms),
                ms(product.p999_ms),
                product.errors,
                ratios.len(),
                thousands(limiter_on),
                thousands(limiter_off),
                ms(worst_p99(&ons)),
                ms(worst_p99(&offs)),
                noise * 100.0,
                if measurable {
                    "a cost above the noise"
                } else {
                    "no cost above the noise"
                },
            ),
            goal: "≥ 0.6× the trivial handler; ≥ 0.85× the bare map (issue 15)".into(),
            met: Some(ratio >= 0.6 && bare_ratio >= 0.85 && product.errors == 0),
            baseline: format!(
                "trivial actix-web handler: {} req/s, p99 {}; bare actix-web handler serving the \
                 same answer's bytes from a HashMap of {} products, no middleware: {} req/s, p99 {}",
                thousands(baseline.rps),
                ms(baseline.p99_ms),
                thousands(self.plan.products as f64),
                thousands(bare.rps),
                ms(bare.p99_ms)
            ),
            details: json!({
                "product": product,
                "hello": baseline,
                "bare": bare,
                "ratio": ratio,
                "bare_ratio": bare_ratio,
                "limiter_off": offs,
                "limiter_on": ons,
                "limiter_ratio": limiter,
                "limiter_round_ratios": ratios,
                "limiter_noise": noise,
            }),
        })
    }

    pub(super) async fn open_loop(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::OpenLoop).await?;
        let url = self.product_url(&server).await?;
        let mut runs: Vec<Run> = Vec::new();
        let mut knee = None;
        for &rate in &self.plan.rates {
            let run = oha(&url, 256, Some(rate), self.plan.seconds).await?;
            println!(
                "  offered {rate:>7}/s: achieved {:>8.0}/s  p50 {}  p99 {}  p99.9 {}  errors {}",
                run.rps,
                ms(run.p50_ms),
                ms(run.p99_ms),
                ms(run.p999_ms),
                run.errors
            );
            let saturated = run.p99_ms > 10.0 || run.rps < 0.9 * f64::from(rate);
            runs.push(run);
            if saturated {
                knee = Some(rate);
                break;
            }
        }
        let first = runs.first().context("no rate was measured")?;
        let first_rate = self.plan.rates[0];
        let goal_rate = if self.plan.smoke { first_rate } else { 10_000 };
        let at_goal = runs
            .iter()
            .find(|r| r.offered_rps == Some(f64::from(goal_rate)))
            .unwrap_or(first);
        let knee_text = match knee {
            Some(rate) => format!(
                "p99 passes 10 ms (or the rate is not kept) at {} req/s",
                thousands(f64::from(rate))
            ),
            None => format!(
                "p99 stays under 10 ms up to {} req/s, the highest rate offered",
                thousands(f64::from(*self.plan.rates.last().unwrap_or(&0)))
            ),
        };
        Ok(Outcome {
            scenario: "open loop: GET /v1/products/{id}, fixed rate, latency-corrected".into(),
            command: String::new(),
            result: format!(
                "at {} req/s: p50 {}, **p99 {}**, p99.9 {}; {knee_text}",
                thousands(f64::from(goal_rate)),
                ms(at_goal.p50_ms),
                ms(at_goal.p99_ms),
                ms(at_goal.p999_ms)
            ),
            goal: "p99 ≤ 1 ms at 10k req/s; report the knee".into(),
            met: Some(at_goal.p99_ms <= 1.0),
            baseline: "the closed-loop ceiling above".into(),
            details: json!({"runs": runs, "knee_rps": knee}),
        })
    }

    pub(super) async fn connections(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Connections).await?;
        let url = self.product_url(&server).await?;
        let idle = server.rss_mib()?;
        let server = Arc::new(server);
        let (c, rate) = (self.plan.many_connections, self.plan.many_connections_rate);
        let peak_rss = Arc::new(std::sync::Mutex::new(0.0f64));
        let run = {
            let watcher = {
                let server = server.clone();
                let peak_rss = peak_rss.clone();
                tokio::spawn(async move {
                    loop {
                        if let Ok(rss) = server.rss_mib() {
                            let mut peak = peak_rss.lock().expect("unpoisoned");
                            *peak = peak.max(rss);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                })
            };
            let run = oha(&url, c, Some(rate), self.plan.seconds.max(5.0)).await;
            watcher.abort();
            run?
        };
        let peak = *peak_rss.lock().expect("unpoisoned");
        Ok(Outcome {
            scenario: "10,000 concurrent users: keep-alive connections, 20k req/s total".into(),
            command: String::new(),
            result: format!(
                "{} connections at {} req/s offered: {} req/s, p50 {}, **p99 {}**, {} errors, RSS {peak:.0} MiB (idle {idle:.0} MiB)",
                thousands(c as f64),
                thousands(f64::from(rate)),
                thousands(run.rps),
                ms(run.p50_ms),
                ms(run.p99_ms),
                run.errors
            ),
            goal: "p99 ≤ 20 ms, 0 errors".into(),
            met: Some(run.p99_ms <= 20.0 && run.errors == 0),
            baseline: format!("the same server idle: {idle:.0} MiB"),
            details: json!({"run": run, "rss_peak_mib": peak, "rss_idle_mib": idle}),
        })
    }

    pub(super) async fn spike(&mut self) -> anyhow::Result<Outcome> {
        let server = self.server(Scenario::Spike).await?;
        let url = self.product_url(&server).await?;
        let ceiling = match self.ceiling_rps {
            Some(rps) => rps,
            None => oha(&url, 256, None, self.plan.seconds.min(3.0)).await?.rps,
        };
        // The base load is a tenth of the ceiling: the spike is all of it.
        let base = ((ceiling / 10.0) as u32).max(100);
        let before = oha(&url, 256, Some(base), self.plan.seconds).await?;
        let spike = oha(&url, 1024, Some(base * 10), self.plan.spike_seconds).await?;
        let ended = Instant::now();
        let settled = before.p99_ms * 2.0 + 0.5;
        let mut probes = Vec::new();
        let recovery = loop {
            let probe = oha(&url, 256, Some(base), 1.0).await?;
            let ok = probe.p99_ms <= settled && probe.errors == 0;
            probes.push(probe);
            if ok {
                break Some(ended.elapsed().as_secs_f64());
            }
            if probes.len() >= 60 {
                break None;
            }
        };
        let errors = spike.errors + probes.iter().map(|p| p.errors).sum::<u64>();
        Ok(Outcome {
            scenario: "spike: 10× the base load for 30 s (GET /v1/products/{id}, open loop)".into(),
            command: String::new(),
            result: format!(
                "base {} req/s (p99 {}); spike {} req/s offered, {} kept, p99 {}, **{errors} errors**; recovered (p99 ≤ {}) {} after the spike",
                thousands(f64::from(base)),
                ms(before.p99_ms),
                thousands(f64::from(base * 10)),
                thousands(spike.rps),
                ms(spike.p99_ms),
                ms(settled),
                recovery.map_or("not within 60 s".into(), |s| format!("{s:.1} s"))
            ),
            goal: "0 errors, quick recovery".into(),
            met: Some(errors == 0 && recovery.is_some()),
            baseline: format!("the base load before the spike: p99 {}", ms(before.p99_ms)),
            details: json!({"before": before, "spike": spike, "probes": probes, "recovery_s": recovery}),
        })
    }
}

/// One catalogue size's runs in the catalogue-size scenario.
#[derive(Debug, Serialize)]
struct SizeRuns {
    products: usize,
    events: u64,
    seed_seconds: f64,
    /// Every product equally likely: the cache's worst case.
    uniform: Run,
    uniform_hit_ratio: f64,
    /// Zipf(1.0) popularity, as the mixed workload browses.
    zipf: Run,
    zipf_hit_ratio: f64,
    rss_mib: f64,
}

impl Suite {
    /// Query latency as the catalogue grows: the same open-loop load of
    /// product pages against catalogues of each size (seeded once, kept
    /// under `<data>/catalogue/<size>`), first with every product equally
    /// likely, then by Zipf(1.0) popularity. Each measured run follows an
    /// unmeasured one of half its length with the same draw, so every
    /// size is measured with its cache in the state that load keeps it in.
    pub(super) async fn catalogue_size(&mut self) -> anyhow::Result<Outcome> {
        let root = self.args.data.join(if self.plan.smoke {
            "smoke-catalogue"
        } else {
            "catalogue"
        });
        let (rate, secs) = (self.plan.catalogue_rate, self.plan.seconds);
        let mut sizes: Vec<SizeRuns> = Vec::new();
        for &products in &self.plan.catalogue_sizes {
            let set = seed_set(&root.join(products.to_string()), products, 0, 0).await?;
            let server = Server::serve(&set.dir, free_port()?).await?;
            let api = Api::new(&server.base);
            let ids: Vec<String> = api.products().await?.into_iter().map(|p| p.0).collect();
            if ids.len() != products {
                bail!("the catalogue lists {} of {products} products", ids.len());
            }
            let uniform = self.args.out.join("catalogue-uniform.txt");
            let zipf = self.args.out.join("catalogue-zipf.txt");
            write_urls(&uniform, &api, ids.iter())?;
            write_urls(&zipf, &api, zipf_draws(&ids, products.max(100_000))?)?;
            let measure = async |urls: &Path| -> anyhow::Result<(Run, f64)> {
                oha_urls(urls, 64, Some(rate), secs / 2.0).await?;
                let (hits0, misses0) = users::cache_counts(&api).await?;
                let run = oha_urls(urls, 64, Some(rate), secs).await?;
                let (hits1, misses1) = users::cache_counts(&api).await?;
                let (hits, misses) = (hits1 - hits0, misses1 - misses0);
                Ok((run, hits / (hits + misses).max(1.0)))
            };
            let (uniform_run, uniform_hit_ratio) = measure(&uniform).await?;
            let (zipf_run, zipf_hit_ratio) = measure(&zipf).await?;
            let rss_mib = server.rss_mib()?;
            server.stop().await?;
            let _ = std::fs::remove_file(&uniform);
            let _ = std::fs::remove_file(&zipf);
            println!(
                "  {products:>9} products ({} events, seeded in {:.0} s): uniform p50 {} p99 {} hit {:.1} %; \
                 zipf p50 {} p99 {} hit {:.1} %; RSS {rss_mib:.0} MiB",
                set.events,
                set.seconds,
                ms(uniform_run.p50_ms),
                ms(uniform_run.p99_ms),
                uniform_hit_ratio * 100.0,
                ms(zipf_run.p50_ms),
                ms(zipf_run.p99_ms),
                zipf_hit_ratio * 100.0,
            );
            sizes.push(SizeRuns {
                products,
                events: set.events,
                seed_seconds: set.seconds,
                uniform: uniform_run,
                uniform_hit_ratio,
                zipf: zipf_run,
                zipf_hit_ratio,
                rss_mib,
            });
        }
        let (first, last) = match (sizes.first(), sizes.last()) {
            (Some(first), Some(last)) => (first, last),
            _ => bail!("no catalogue size was measured"),
        };
        let growth = |p99: fn(&SizeRuns) -> f64| p99(last) / p99(first).max(f64::EPSILON);
        let (uniform_growth, zipf_growth) =
            (growth(|s| s.uniform.p99_ms), growth(|s| s.zipf.p99_ms));
        let errors: u64 = sizes.iter().map(|s| s.uniform.errors + s.zipf.errors).sum();
        let rows: Vec<String> = sizes
            .iter()
            .map(|s| {
                format!(
                    "{} products: uniform p50 {} / p99 {} (hit {:.0} %), Zipf p50 {} / p99 {} (hit {:.0} %), RSS {:.0} MiB, seeded in {:.0} s",
                    thousands(s.products as f64),
                    ms(s.uniform.p50_ms),
                    ms(s.uniform.p99_ms),
                    s.uniform_hit_ratio * 100.0,
                    ms(s.zipf.p50_ms),
                    ms(s.zipf.p99_ms),
                    s.zipf_hit_ratio * 100.0,
                    s.rss_mib,
                    s.seed_seconds,
                )
            })
            .collect();
        Ok(Outcome {
            scenario: format!(
                "query latency as the catalogue grows: GET /v1/products/{{id}} over random products, \
                 open loop at {} req/s, latency-corrected",
                thousands(f64::from(rate))
            ),
            command: String::new(),
            result: format!(
                "{}; p99 at {} products = **×{uniform_growth:.2}** (uniform) and **×{zipf_growth:.2}** (Zipf) \
                 the p99 at {}; {errors} errors",
                rows.join("; "),
                thousands(last.products as f64),
                thousands(first.products as f64),
            ),
            goal: "p99 at the largest catalogue within 1.5× of the smallest, both draws, 0 errors"
                .into(),
            met: Some(uniform_growth <= 1.5 && zipf_growth <= 1.5 && errors == 0),
            baseline: format!(
                "the same load on the {}-product catalogue",
                thousands(first.products as f64)
            ),
            details: json!({"sizes": sizes, "rate": rate}),
        })
    }
}

/// Writes one product URL per line.
fn write_urls<'a>(
    file: &Path,
    api: &Api,
    ids: impl Iterator<Item = &'a String>,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(file)?);
    for id in ids {
        writeln!(out, "{}", api.url(&format!("/v1/products/{id}")))?;
    }
    out.flush()?;
    Ok(())
}

/// `draws` products drawn by Zipf(1.0) popularity over
/// [`load::by_popularity`]'s rank, as the mixed workload's browsers pick
/// them.
fn zipf_draws(ids: &[String], draws: usize) -> anyhow::Result<impl Iterator<Item = &String>> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ranked = load::by_popularity(ids.iter().collect::<Vec<&String>>());
    let zipf = rand_distr::Zipf::new(ranked.len() as f64, 1.0).context("zipf")?;
    let picks: Vec<&String> = (0..draws)
        .map(|_| ranked[(zipf.sample(&mut rng) as usize).clamp(1, ranked.len()) - 1])
        .collect();
    Ok(picks.into_iter())
}
