//! Operating the projections: listing them with their lag, rebuilding,
//! pausing and resuming, and who may.

use std::time::Duration;

use serde_json::{Value, json};
use shopstream_infra::read_store::{LetterStatus, Progress, Target};

use crate::helpers::{Read, Reply, TestApp, spawn_app, spawn_app_with};

const NAMES: [&str; 6] = [
    "carts",
    "catalogue",
    "customers",
    "orders",
    "sales",
    "timeline",
];
const PRICE: i64 = 400;

/// A projection's entry in `GET /v1/admin/projections`.
#[track_caller]
fn entry(list: &Reply, name: &str) -> Value {
    list.body
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no projection {name}: {list:#?}"))
}

/// Asks `check` again until it answers, for what no consistency token can
/// express; fails after a generous deadline.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(done) = check().await {
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen in time"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A customer's checked-out cart of two lamps, with every id a query needs.
struct Shop {
    app: TestApp,
    lamp: String,
    token: String,
    cart: String,
    order: String,
    /// The checkout's reply: the latest write.
    checkout: Reply,
}

async fn shop(app: TestApp) -> Shop {
    let lamp = app.stocked_product("LAMP", PRICE, 10).await;
    let (_, token) = app.customer("ada@example.com").await;
    let cart = app.create_cart(&token).await;
    app.set_item(&token, &cart, &lamp, 2).await.expect(200);
    let checkout = app.checkout(&token, &cart).await.expect(201);
    Shop {
        order: checkout.str("order_id"),
        app,
        lamp,
        token,
        cart,
        checkout,
    }
}

impl Shop {
    /// One query per projection, each after `write`, each asserted to see
    /// the shop as it is.
    async fn read_everything_after(&self, write: &Reply) {
        let (app, after) = (&self.app, Read::by(&self.token).after(write));
        let product = app.product(&self.lamp, &after).await.expect_consistent();
        assert_eq!(product.body["available"], 8);
        let cart = app.cart(&self.cart, &after).await.expect_consistent();
        assert_eq!(cart.body["status"], "checked_out");
        let order = app.order(&self.order, &after).await.expect_consistent();
        assert_eq!(order.body["total"]["amount"], 2 * PRICE);
        let me = app.me(&after).await.expect_consistent();
        assert_eq!(me.body["email"], "ada@example.com");
        let report = app
            .sales_report(&[], &Read::by(&app.admin).after(write))
            .await
            .expect_consistent();
        assert_eq!(report.body["orders"], 1);
    }

    /// The product page after `write`, however its wait went.
    async fn lamp_after(&self, write: &Reply) -> Reply {
        self.app
            .product(&self.lamp, &Read::anyone().after(write))
            .await
            .expect(200)
    }
}

#[tokio::test]
async fn every_projection_is_listed_live_without_lag_once_queries_are_consistent() {
    let shop = shop(spawn_app().await).await;
    let app = &shop.app;
    shop.read_everything_after(&shop.checkout).await;

    let list = app.projections(&app.admin).await.expect(200);

    let mut names: Vec<String> = list
        .body
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().unwrap_or_default().to_string())
        .collect();
    names.sort();
    assert_eq!(names, NAMES);
    let head = app.export_events(Some(&app.admin), &[]).await.expect(200);
    let last_position =
        head.body.as_array().and_then(|e| e.last()).expect("events")["position"].clone();
    for name in NAMES {
        let projection = entry(&list, name);
        assert_eq!(projection["status"], "live", "{projection:#}");
        assert_eq!(projection["lag_events"], 0, "{projection:#}");
        assert_eq!(projection["lag_ms"], 0, "{projection:#}");
        assert_eq!(projection["checkpoint"], last_position, "{projection:#}");
        assert!(projection["version"].as_u64().is_some(), "{projection:#}");
    }
}

/// A projection's (generation, status) as listed now.
async fn state_of(app: &TestApp, name: &str) -> (u64, String) {
    let projection = entry(&app.projections(&app.admin).await.expect(200), name);
    let generation = projection["generation"].as_u64().expect("a generation");
    let status = projection["status"].as_str().unwrap_or_default();
    (generation, status.to_string())
}

/// Polls until `name` is live in a generation after `generation`.
async fn rebuilt_after(
    app: &TestApp,
    name: &str,
    generation: u64,
    mut meanwhile: impl AsyncFnMut(),
) {
    // A rebuild runs in the background and records no event, so no
    // consistency token can wait for it: the projection list is the only
    // place its end shows, and it must be polled.
    eventually(&format!("{name} rebuilt and live"), async || {
        meanwhile().await;
        let (now, status) = state_of(app, name).await;
        (status == "live" && now > generation).then_some(())
    })
    .await;
}

#[tokio::test]
async fn rebuilds_replace_every_live_generation_while_queries_keep_answering() {
    let shop = shop(spawn_app().await).await;
    let app = &shop.app;

    for name in NAMES {
        let (generation, _) = state_of(app, name).await;
        let accepted = app.rebuild(&app.admin, name).await.expect(202);
        assert_eq!(accepted.body, json!({"name": name, "status": "rebuilding"}));
        rebuilt_after(app, name, generation, async || {
            shop.read_everything_after(&shop.checkout).await;
        })
        .await;
    }

    shop.read_everything_after(&shop.checkout).await;
    // The rebuilt generations go on with new events.
    let cancelled = app.cancel(&shop.token, &shop.order).await.expect(200);
    let after = Read::by(&shop.token).after(&cancelled);
    let order = app.order(&shop.order, &after).await.expect_consistent();
    assert_eq!(order.body["status"], "cancelled");
    let lamp = app.product(&shop.lamp, &after).await.expect_consistent();
    assert_eq!(lamp.body["available"], 10);
    let report = app
        .sales_report(&[], &Read::by(&app.admin).after(&cancelled))
        .await
        .expect_consistent();
    assert_eq!(report.body["orders"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_read_their_writes_while_the_catalogue_is_rebuilt_under_them() {
    let app = std::sync::Arc::new(spawn_app().await);
    let mut products = Vec::new();
    for i in 0..4 {
        let created = app.create_product(&format!("RACE-{i}"), 100).await;
        products.push(created.expect(201).str("product_id"));
    }

    let writers = products.into_iter().map(|id| {
        let app = app.clone();
        tokio::spawn(async move {
            for price in 101..=130 {
                if price % 10 == 0 {
                    app.rebuild(&app.admin, "catalogue").await.expect(202);
                }
                let changed = app.change_price(&id, price).await.expect(200);
                let read = app
                    .product(&id, &Read::anyone().after(&changed))
                    .await
                    .expect_consistent();
                assert_eq!(read.body["price"]["amount"], price, "{read:#?}");
            }
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer.expect("a writer finished");
    }
    // The rebuilds did replace the generation the writers were reading.
    rebuilt_after(&app, "catalogue", 1, async || {}).await;
}

#[tokio::test]
async fn an_unknown_projection_is_not_found() {
    let app = spawn_app().await;

    app.rebuild(&app.admin, "no-such-projection")
        .await
        .expect_problem(404, "not_found");
    app.pause(&app.admin, "no-such-projection")
        .await
        .expect_problem(404, "not_found");
    app.resume(&app.admin, "no-such-projection")
        .await
        .expect_problem(404, "not_found");
}

#[tokio::test]
async fn a_paused_projection_answers_stale_until_resumed_while_commands_go_on() {
    // A short wait keeps the stale answer quick.
    let app = spawn_app_with(&[("queries.consistency_wait_ms", json!(300))]).await;
    let shop = shop(app).await;
    let app = &shop.app;
    shop.read_everything_after(&shop.checkout).await;

    let paused = app.pause(&app.admin, "catalogue").await.expect(200);
    assert_eq!(paused.body, json!({"name": "catalogue", "paused": true}));
    let list = app.projections(&app.admin).await.expect(200);
    assert_eq!(entry(&list, "catalogue")["status"], "paused");

    let repriced = app.change_price(&shop.lamp, 450).await.expect(200);
    let list = app.projections(&app.admin).await.expect(200);
    let catalogue = entry(&list, "catalogue");
    assert!(catalogue["lag_events"].as_u64() >= Some(1), "{catalogue:#}");
    let stale = shop.lamp_after(&repriced).await;
    assert_eq!(stale.consistency(), Some("stale"), "{stale:#?}");
    assert_eq!(
        stale.body["price"]["amount"], PRICE,
        "the paused read model"
    );
    // The other projections carry on.
    let registered = app
        .register("grace@example.com", "password-123", "Grace")
        .await
        .expect(201);
    let grace = app.token("grace@example.com", "password-123").await;
    app.me(&Read::by(&grace).after(&registered))
        .await
        .expect_consistent();

    let resumed = app.resume(&app.admin, "catalogue").await.expect(200);
    assert_eq!(resumed.body, json!({"name": "catalogue", "paused": false}));
    // The runner notices the resume on its own schedule, and nothing it
    // does afterwards records an event a token could name: the same query
    // is asked again (each ask waits its bound) until it is consistent.
    let fresh = eventually("the resumed catalogue catching up", async || {
        let reply = shop.lamp_after(&repriced).await;
        (reply.consistency() == Some("consistent")).then_some(reply)
    })
    .await;
    assert_eq!(fresh.body["price"]["amount"], 450);
    let list = app.projections(&app.admin).await.expect(200);
    assert_eq!(entry(&list, "catalogue")["status"], "live");
}

#[tokio::test]
async fn only_admins_operate_projections() {
    let app = spawn_app().await;
    let analyst = app.analyst("ana@example.com").await;
    let (_, customer) = app.customer("cus@example.com").await;

    for token in [&analyst, &customer] {
        app.projections(token)
            .await
            .expect_problem(403, "forbidden");
        app.rebuild(token, "catalogue")
            .await
            .expect_problem(403, "forbidden");
        app.pause(token, "catalogue")
            .await
            .expect_problem(403, "forbidden");
        app.resume(token, "catalogue")
            .await
            .expect_problem(403, "forbidden");
    }
    app.get("/v1/admin/projections", None)
        .await
        .expect_problem(401, "unauthorized");

    let list = app.projections(&app.admin).await.expect(200);
    for name in NAMES {
        let projection = entry(&list, name);
        assert_eq!(projection["status"], "live", "{projection:#}");
        assert_eq!(projection["generation"], 1, "{projection:#}");
    }
}

#[tokio::test]
async fn a_rebuild_in_progress_says_how_far_it_is_and_how_long_it_will_take() {
    let Shop { app, .. } = shop(spawn_app().await).await;
    let all = app.export_events(Some(&app.admin), &[]).await.expect(200);
    let positions: Vec<u64> = all
        .body
        .as_array()
        .expect("NDJSON lines")
        .iter()
        .map(|e| e["position"].as_u64().expect("a position"))
        .collect();
    let total = positions.len() as u64;
    // A rebuild of the catalogue, as another process (the CLI) would have
    // started it, a third of the way through the history.
    let read = app.read_side();
    let catalogue = shopstream_projections::all()
        .into_iter()
        .find(|p| p.name() == "catalogue")
        .expect("a catalogue projection");
    let generation = read
        .start_build("catalogue", catalogue.version(), catalogue.tables())
        .await
        .expect("a build starts");
    let build = |done: usize| {
        let (read, at) = (read.clone(), positions[done - 1]);
        async move {
            read.registry
                .advance("catalogue", Target::Build(generation), Progress::to(at))
                .await
                .expect("the build advances")
        }
    };
    let third = positions.len() / 3;
    build(third).await;
    let first = entry(&app.projections(&app.admin).await.expect(200), "catalogue");
    assert_eq!(first["status"], "rebuilding", "{first:#}");
    let progress = &first["rebuild"];
    assert_eq!(progress["generation"], generation, "{first:#}");
    assert_eq!(progress["events_done"], third as u64, "{first:#}");
    assert_eq!(progress["events_total"], total, "{first:#}");
    assert!(
        progress.get("events_per_second").is_none() && progress.get("eta_seconds").is_none(),
        "no rate at the first look: {first:#}"
    );
    // Two thirds through: now there is a rate, and the time left follows.
    build(2 * third).await;
    let second = entry(&app.projections(&app.admin).await.expect(200), "catalogue");
    let progress = &second["rebuild"];
    assert_eq!(progress["events_done"], 2 * third as u64, "{second:#}");
    let rate = progress["events_per_second"].as_f64().expect("a rate");
    assert!(rate > 0.0, "{second:#}");
    let left = (total - 2 * third as u64) as f64;
    let eta = progress["eta_seconds"].as_u64().expect("a time left") as f64;
    assert!((eta - (left / rate).ceil()).abs() <= 1.0, "{second:#}");
}

/// The letters the carts projection set aside, as listed now.
async fn cart_letter(app: &TestApp, event_id: &str) -> Option<Value> {
    let list = app
        .dead_letters(&[("projection", "carts")])
        .await
        .expect(200);
    list.body
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["event_id"] == event_id)
        .cloned()
}

#[tokio::test]
async fn a_set_aside_event_is_listed_inspected_retried_or_skipped() {
    let app = spawn_app().await;
    let (_, token) = app.customer("ada@example.com").await;
    let misfiled = app.misfile_cart_item(&token).await;
    let id = misfiled.event_id.clone();

    // Listed, with the error; counted on the projection; inspected with
    // the event itself.
    let letter = eventually("the item set aside", async || cart_letter(&app, &id).await).await;
    assert_eq!(letter["event_type"], "CartItemSet", "{letter:#}");
    assert_eq!(letter["status"], "open", "{letter:#}");
    assert!(
        letter["error"].as_str().unwrap_or("").contains("no row"),
        "{letter:#}"
    );
    let carts = entry(&app.projections(&app.admin).await.expect(200), "carts");
    assert_eq!(carts["dead_letters"], 1, "{carts:#}");
    let path = format!("/v1/admin/dead-letters/carts/{id}");
    let inspected = app.get(&path, Some(&app.admin)).await.expect(200);
    assert_eq!(inspected.body["event"]["event_id"], id.as_str());
    assert_eq!(
        inspected.body["event"]["stream"],
        format!("cart-{}", misfiled.cart)
    );

    // A retry before the fix fails again: open again, still counted.
    let retried = app
        .post_empty(&format!("{path}/retry"), Some(&app.admin))
        .await
        .expect(202);
    assert_eq!(retried.body["status"], "retrying");
    eventually("the failed retry open again", async || {
        cart_letter(&app, &id)
            .await
            .filter(|l| l["status"] == "open")
    })
    .await;

    // Applied (as a runner records it once a retry succeeds: the runner
    // tests show that with a bug fixed) is final: neither retried nor
    // skipped again, and no longer counted.
    let read = app.read_side();
    assert!(
        read.coordination
            .set_letter_status("carts", &id, &[LetterStatus::Open], LetterStatus::Retried)
            .await
            .expect("the status moves")
    );
    for verb in ["retry", "skip"] {
        app.post_empty(&format!("{path}/{verb}"), Some(&app.admin))
            .await
            .expect_problem(409, "conflict");
    }
    let carts = entry(&app.projections(&app.admin).await.expect(200), "carts");
    assert_eq!(carts["dead_letters"], 0, "resolved letters are not counted");

    // Another one, skipped: kept, listed as skipped, no longer counted.
    let other = app.misfile_cart_item(&token).await;
    let other_id = other.event_id.clone();
    eventually("the second item set aside", async || {
        cart_letter(&app, &other_id).await
    })
    .await;
    let skipped = app
        .post_empty(
            &format!("/v1/admin/dead-letters/carts/{other_id}/skip"),
            Some(&app.admin),
        )
        .await
        .expect(200);
    assert_eq!(skipped.body["status"], "skipped");
    let listed = app.dead_letters(&[("status", "skipped")]).await.expect(200);
    assert_eq!(listed.body.as_array().map(Vec::len), Some(1), "{listed:#?}");
    let carts = entry(&app.projections(&app.admin).await.expect(200), "carts");
    assert_eq!(carts["dead_letters"], 0, "{carts:#}");

    // The command line sees the same.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shopstream"))
        .args(["dead-letters", "list", "--projection", "carts"])
        .env("SHOPSTREAM_DATA_DIR", app.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("shopstream runs");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{listing}");
    assert!(
        listing.contains(&id) && listing.contains("retried"),
        "{listing}"
    );
    assert!(
        listing.contains(&other_id) && listing.contains("skipped"),
        "{listing}"
    );
}

#[tokio::test]
async fn dead_letters_answer_unknown_names_and_bad_filters_with_problems() {
    let app = spawn_app().await;
    app.get(
        "/v1/admin/dead-letters/carts/no-such-event",
        Some(&app.admin),
    )
    .await
    .expect_problem(404, "not_found");
    app.get("/v1/admin/dead-letters/nothing/e", Some(&app.admin))
        .await
        .expect_problem(404, "not_found");
    app.post_empty(
        "/v1/admin/dead-letters/carts/no-such-event/retry",
        Some(&app.admin),
    )
    .await
    .expect_problem(404, "not_found");
    app.dead_letters(&[("status", "lost")])
        .await
        .expect_problem(400, "malformed_request");
    app.dead_letters(&[("projection", "nothing")])
        .await
        .expect_problem(404, "not_found");
    let none = app.dead_letters(&[]).await.expect(200);
    assert_eq!(none.body, json!([]));
}
