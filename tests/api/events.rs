//! The recorded events, for analysts: the NDJSON export with its filters,
//! the live tail as Server-Sent Events, and `shopstream events tail`.

use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

use crate::helpers::{SentEvent, TestApp, instant, spawn_app};

const FIELDS: [&str; 9] = [
    "data",
    "event_id",
    "metadata",
    "position",
    "recorded_at",
    "revision",
    "schema_version",
    "stream",
    "type",
];

/// A shop with some history: a product repriced and stocked, a customer
/// with an order. Returns (app, analyst token, product id).
async fn with_history() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let product = app.stocked_product("LAMP", 300, 10).await;
    app.change_price(&product, 350).await.expect(200);
    let (_, token) = app.customer("ada@example.com").await;
    app.place_order(&token, &[(&product, 1)]).await;
    let analyst = app.analyst("ana@example.com").await;
    (app, analyst, product)
}

/// Every exported event, as the analyst sees them with these filters.
async fn export(app: &TestApp, analyst: &str, params: &[(&str, &str)]) -> Vec<Value> {
    let reply = app.export_events(Some(analyst), params).await.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/x-ndjson"));
    reply.body.as_array().cloned().expect("NDJSON lines")
}

fn position(event: &Value) -> u64 {
    event["position"].as_u64().expect("a position")
}

fn recorded_at(event: &Value) -> DateTime<Utc> {
    instant(&event["recorded_at"])
}

/// Query parameters.
type Params<'a> = Vec<(&'a str, &'a str)>;

/// The events of `all` that `keep` accepts.
fn only(all: &[Value], keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    all.iter().filter(|e| keep(e)).cloned().collect()
}

// ---- the export

#[tokio::test]
async fn the_export_has_every_recorded_event_a_line_in_position_order() {
    let (app, analyst, product) = with_history().await;

    let all = export(&app, &analyst, &[]).await;

    let positions: Vec<u64> = all.iter().map(position).collect();
    assert!(
        positions.windows(2).all(|pair| pair[0] < pair[1]),
        "in position order, each once: {positions:?}"
    );
    for event in &all {
        let mut fields: Vec<&str> = event
            .as_object()
            .expect("an object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        assert_eq!(fields, FIELDS, "{event:#}");
        assert!(event["data"].is_object(), "{event:#}");
        for key in ["correlation_id", "causation_id", "actor"] {
            assert!(event["metadata"].get(key).is_some(), "{event:#}");
        }
    }
    // The export and the stream view are the same records.
    let stream = format!("product-{product}");
    assert_eq!(
        only(&all, |e| e["stream"] == stream.as_str()),
        app.stream(&stream).await
    );
    let types: Vec<&str> = all.iter().filter_map(|e| e["type"].as_str()).collect();
    for expected in [
        "ProductCreated",
        "StockReceived",
        "OrderPlaced",
        "RoleChanged",
    ] {
        assert!(types.contains(&expected), "{expected} in {types:?}");
    }
}

#[tokio::test]
async fn password_hashes_leave_the_export_redacted() {
    let (app, analyst, _) = with_history().await;

    let all = export(&app, &analyst, &[]).await;

    let passwords = only(&all, |e| e["type"] == "PasswordSet");
    assert_eq!(passwords.len(), 3, "the admin, the customer, the analyst");
    for event in &passwords {
        assert_eq!(event["data"]["password_hash"], "[redacted]", "{event:#}");
    }
    let text = serde_json::to_string(&all).expect("JSON");
    assert!(!text.contains("$argon2"), "a hash leaked");
}

#[tokio::test]
async fn the_export_filters_by_type_stream_prefix_position_and_count() {
    let (app, analyst, _) = with_history().await;
    let all = export(&app, &analyst, &[]).await;
    let (from, to) = (3, all.len() as u64 - 2);
    let (from_text, to_text) = (from.to_string(), to.to_string());

    let cases: Vec<(Params, Vec<Value>)> = vec![
        (
            vec![("types", "ProductPriceChanged,StockReceived")],
            only(&all, |e| {
                e["type"] == "ProductPriceChanged" || e["type"] == "StockReceived"
            }),
        ),
        (
            vec![("stream_prefix", "inventory-")],
            only(&all, |e| {
                e["stream"].as_str().unwrap_or("").starts_with("inventory-")
            }),
        ),
        (
            vec![("from_position", &from_text), ("to_position", &to_text)],
            only(&all, |e| (from..=to).contains(&position(e))),
        ),
        (vec![("limit", "4")], all[..4].to_vec()),
        (
            vec![("types", "PasswordSet"), ("limit", "2")],
            only(&all, |e| e["type"] == "PasswordSet")[..2].to_vec(),
        ),
    ];
    for (params, expected) in cases {
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "a case that keeps some events and not others: {params:?}"
        );
        assert_eq!(
            export(&app, &analyst, &params).await,
            expected,
            "{params:?}"
        );
    }
}

#[tokio::test]
async fn the_export_filters_by_when_events_were_recorded() {
    let (app, analyst, _) = with_history().await;
    let all = export(&app, &analyst, &[]).await;
    let middle = &all[all.len() / 2];
    let at = middle["recorded_at"].as_str().expect("recorded_at");
    let instant = recorded_at(middle);

    let since = export(&app, &analyst, &[("from_time", at)]).await;
    assert_eq!(since, only(&all, |e| recorded_at(e) >= instant));
    assert_eq!(
        since.first(),
        all.iter().find(|e| recorded_at(e) == instant)
    );
    let until = export(&app, &analyst, &[("to_time", at)]).await;
    assert_eq!(until, only(&all, |e| recorded_at(e) <= instant));
    let exactly = export(&app, &analyst, &[("from_time", at), ("to_time", at)]).await;
    assert_eq!(exactly, only(&all, |e| recorded_at(e) == instant));
    let ancient = export(&app, &analyst, &[("from_time", "0001-01-01T00:00:00Z")]).await;
    assert_eq!(ancient, all, "a time before the first event starts at it");
    let future = export(&app, &analyst, &[("from_time", "9999-12-31T23:59:59Z")]).await;
    assert!(future.is_empty(), "{future:?}");

    for bad in [("from_time", "yesterday"), ("to_time", "2026-01-01")] {
        app.export_events(Some(&analyst), &[bad])
            .await
            .expect_problem(400, "malformed_request");
    }
}

#[tokio::test]
async fn only_analysts_and_admins_export_events() {
    let (app, _, _) = with_history().await;
    let (_, customer) = app.customer("cus@example.com").await;

    app.export_events(Some(&customer), &[])
        .await
        .expect_problem(403, "forbidden");
    app.export_events(None, &[])
        .await
        .expect_problem(401, "unauthorized");
    let by_admin = app.export_events(Some(&app.admin), &[]).await.expect(200);
    assert!(!by_admin.body.as_array().expect("lines").is_empty());
    let live = app.live_events(&customer, &[], None).await;
    live.into_reply().await.expect_problem(403, "forbidden");
}

// ---- the live tail

/// `frame` carries `recorded` as it was exported.
#[track_caller]
fn is_frame_of(frame: &SentEvent, recorded: &Value) {
    assert_eq!(frame.id, position(recorded), "{frame:#?}");
    assert_eq!(frame.event, recorded["type"].as_str().unwrap_or(""));
    assert_eq!(&frame.data, recorded);
}

#[tokio::test]
async fn the_live_tail_sends_each_event_as_it_is_recorded() {
    let (app, analyst, _) = with_history().await;
    let mut live = app.live_events(&analyst, &[], None).await;
    assert_eq!(live.status(), 200);
    assert_eq!(live.header("content-type"), Some("text/event-stream"));

    let created = app.create_product("MUG", 120).await.expect(201);
    let mug = created.str("product_id");

    let first = live.next_event().await;
    let recorded = export(&app, &analyst, &[("from_position", &first.id.to_string())]).await;
    is_frame_of(&first, &recorded[0]);
    for event in &recorded[1..] {
        is_frame_of(&live.next_event().await, event);
    }
    let streams: Vec<&str> = recorded
        .iter()
        .filter_map(|e| e["stream"].as_str())
        .collect();
    assert!(
        streams.contains(&format!("product-{mug}").as_str()),
        "{streams:?}"
    );

    // Later commands keep arriving on the same connection.
    app.change_price(&mug, 130).await.expect(200);
    let next = live.next_event().await;
    assert_eq!(next.event, "ProductPriceChanged");
    assert_eq!(next.data["stream"], format!("product-{mug}"));
    assert_eq!(next.data["data"]["price"]["amount"], 130);
}

#[tokio::test]
async fn the_live_tail_sends_only_the_types_asked_for() {
    let (app, analyst, product) = with_history().await;
    let mut live = app
        .live_events(&analyst, &[("types", "ProductPriceChanged")], None)
        .await;

    app.receive("LAMP", 5).await.expect(200);
    app.change_price(&product, 390).await.expect(200);

    let frame = live.next_event().await;
    assert_eq!(frame.event, "ProductPriceChanged");
    assert_eq!(frame.data["data"]["price"]["amount"], 390);
}

#[tokio::test]
async fn last_event_id_resumes_right_after_that_position() {
    let (app, analyst, product) = with_history().await;
    let all = export(&app, &analyst, &[]).await;
    let resume_after = position(&all[all.len() / 2]);

    let mut live = app.live_events(&analyst, &[], Some(resume_after)).await;

    for event in only(&all, |e| position(e) > resume_after) {
        is_frame_of(&live.next_event().await, &event);
    }
    // Caught up, it goes on with what is recorded from now on.
    app.change_price(&product, 360).await.expect(200);
    let next = live.next_event().await;
    assert_eq!(next.id, position(all.last().expect("events")) + 1);
    assert_eq!(next.event, "ProductPriceChanged");
}

// ---- `shopstream events tail`

/// The next line `events tail` prints; panics when none comes in time.
async fn next_line(lines: &mut Lines<BufReader<ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("a line within 15 s")
        .expect("stdout reads")
        .expect("the tail goes on")
}

/// Checks a text line of `events tail` against the exported event:
/// `position recorded-at stream@revision type data`.
fn assert_line_is(line: &str, event: &Value) {
    let fields: Vec<&str> = line.trim_start().splitn(5, ' ').collect();
    let head = format!(
        "{} {} {}@{} {}",
        position(event),
        recorded_at(event).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event["stream"].as_str().unwrap(),
        event["revision"],
        event["type"].as_str().unwrap()
    );
    assert_eq!(fields[..4].join(" "), head, "{line}");
    let data: Value = serde_json::from_str(fields[4]).expect("JSON data");
    assert_eq!(data, event["data"], "{line}");
}

#[tokio::test]
async fn the_tail_command_prints_history_from_a_position_then_each_new_event() {
    let (app, analyst, product) = with_history().await;
    let types = "ProductCreated,ProductPriceChanged";
    let filter = [("types", types), ("stream_prefix", "product-")];
    let past = export(&app, &analyst, &filter).await;
    assert_eq!(past.len(), 2, "{past:?}");
    let from = position(&past[1]).to_string();

    let mut tail = tokio::process::Command::new(env!("CARGO_BIN_EXE_shopstream"))
        .args(["events", "tail", "--from-position", &from, "--types", types])
        .args(["--stream-prefix", "product-"])
        .env("SHOPSTREAM_DATA_DIR", app.dir.path())
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("shopstream starts");
    let mut lines = BufReader::new(tail.stdout.take().expect("stdout")).lines();

    // From the position asked for (the first product event is before it).
    assert_line_is(&next_line(&mut lines).await, &past[1]);

    // Then each new event as it is recorded, and only those asked for.
    app.receive("LAMP", 5).await.expect(200);
    app.change_price(&product, 400).await.expect(200);
    let now = export(&app, &analyst, &filter).await;
    assert_eq!(now.len(), 3, "{now:?}");
    assert_line_is(&next_line(&mut lines).await, &now[2]);
    tail.kill().await.expect("the tail stops");
}
