//! The recorded events, for analysts: the NDJSON export with its filters,
//! the live tail as Server-Sent Events, `shopstream events tail`, and
//! exports in CSV and Parquet (over HTTP and `shopstream events export`)
//! opened with DuckDB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use shopstream_infra::event_store::RecordedEvent;
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

// ---- CSV and Parquet, opened with DuckDB as an analyst would

/// What DuckDB found in one export (tests/export/duckdb_check.py).
#[derive(Debug, serde::Deserialize)]
struct Opened {
    file: String,
    rows: u64,
    first: Option<u64>,
    last: Option<u64>,
    types: BTreeMap<String, u64>,
    secrets: u64,
    ordered: bool,
    columns: BTreeMap<String, String>,
}

/// What an export of part of the store must hold.
#[derive(Debug, PartialEq)]
struct Expected {
    rows: u64,
    first: Option<u64>,
    last: Option<u64>,
    types: BTreeMap<String, u64>,
}

impl Opened {
    fn summary(&self) -> Expected {
        Expected {
            rows: self.rows,
            first: self.first,
            last: self.last,
            types: self.types.clone(),
        }
    }
}

/// The events the store itself holds that `keep` accepts, read straight
/// from its file (not through the code that exports).
async fn in_store(app: &TestApp, keep: impl Fn(&RecordedEvent) -> bool) -> Expected {
    let history = shopstream_testkit::reference::history(&app.event_store()).await;
    let kept: Vec<&RecordedEvent> = history.iter().filter(|e| keep(e)).collect();
    let mut types = BTreeMap::new();
    for e in &kept {
        *types.entry(e.event_type.clone()).or_default() += 1;
    }
    Expected {
        rows: kept.len() as u64,
        first: kept.first().map(|e| e.position),
        last: kept.last().map(|e| e.position),
        types,
    }
}

/// Opens each file with DuckDB.
fn open_with_duckdb(files: &[PathBuf]) -> Vec<Opened> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/export/duckdb_check.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "DuckDB could not open the exports (tests/run.sh installs duckdb from PyPI): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("a summary"))
        .collect()
}

/// `GET /v1/events` in a format, its body saved to `file`; its headers.
async fn export_to(
    app: &TestApp,
    analyst: &str,
    params: &[(&str, &str)],
    format: &str,
    file: &Path,
) -> HeaderMap {
    let mut params = params.to_vec();
    params.push(("format", format));
    let response = app
        .request_with(Method::GET, "/v1/events", &params, Some(analyst))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status().as_u16(), 200);
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("the whole body");
    std::fs::write(file, &body).expect("saved");
    headers
}

/// `shopstream events export` with these arguments on the app's data.
fn export_command(app: &TestApp, args: &[&str]) -> std::process::Output {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_shopstream"))
        .args(["events", "export"])
        .args(args)
        .env("SHOPSTREAM_DATA_DIR", app.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("shopstream runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[tokio::test]
async fn parquet_and_csv_exports_open_in_duckdb_with_the_stores_counts() {
    let (app, analyst, _) = with_history().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| dir.path().join(name);
    let everything = in_store(&app, |_| true).await;
    assert!(
        everything.types.contains_key("PasswordSet"),
        "{everything:?}"
    );

    // Over HTTP, in every format.
    let parquet = export_to(&app, &analyst, &[], "parquet", &file("http.parquet")).await;
    assert_eq!(parquet["content-type"], "application/vnd.apache.parquet");
    assert_eq!(
        parquet["content-disposition"],
        "attachment; filename=\"events.parquet\""
    );
    let csv = export_to(&app, &analyst, &[], "csv", &file("http.csv")).await;
    assert!(
        csv["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"),
        "{csv:?}"
    );
    export_to(&app, &analyst, &[], "ndjson", &file("http.ndjson")).await;
    // From the command line, to a file (the format from its name) and to
    // stdout: the same bytes as over HTTP.
    let done = export_command(&app, &["--output", file("cli.parquet").to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&done.stderr);
    assert!(
        summary.contains(&format!("exported {} events", everything.rows)),
        "{summary}"
    );
    let to_stdout = export_command(&app, &["--format", "csv"]);
    assert_eq!(
        to_stdout.stdout,
        std::fs::read(file("http.csv")).unwrap(),
        "the command line and HTTP write the same CSV"
    );

    let files = ["http.parquet", "http.csv", "http.ndjson", "cli.parquet"].map(file);
    for opened in open_with_duckdb(&files) {
        assert_eq!(opened.summary(), everything, "{}", opened.file);
        assert_eq!(opened.secrets, 0, "{}: a password hash left", opened.file);
        assert!(opened.ordered, "{}: out of position order", opened.file);
        if opened.file.ends_with(".parquet") {
            for (column, kind) in [
                ("position", "UBIGINT"),
                ("revision", "UBIGINT"),
                ("schema_version", "USMALLINT"),
                ("recorded_at", "TIMESTAMP WITH TIME ZONE"),
                ("data", "VARCHAR"),
                ("actor", "VARCHAR"),
            ] {
                assert_eq!(opened.columns[column], kind, "{column}: {opened:?}");
            }
        }
    }
}

#[tokio::test]
async fn a_filtered_export_holds_the_same_events_in_every_format() {
    let (app, analyst, _) = with_history().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| dir.path().join(name);
    let all = export(&app, &analyst, &[]).await;
    let from = position(&all[2]);
    let to = position(&all[all.len() - 2]);
    let (from_s, to_s) = (from.to_string(), to.to_string());
    let types = "ProductCreated,ProductPriceChanged,OrderPlaced,CustomerRegistered";
    let params = [
        ("from_position", from_s.as_str()),
        ("to_position", to_s.as_str()),
        ("types", types),
    ];
    let wanted: Vec<&str> = types.split(',').collect();
    let expected = in_store(&app, |e| {
        (from..=to).contains(&e.position) && wanted.contains(&e.event_type.as_str())
    })
    .await;
    assert!(expected.rows >= 2, "{expected:?}");

    export_to(&app, &analyst, &params, "parquet", &file("part.parquet")).await;
    export_to(&app, &analyst, &params, "csv", &file("part.csv")).await;
    export_command(
        &app,
        &[
            "--output",
            file("part.ndjson").to_str().unwrap(),
            "--from-position",
            &from_s,
            "--to-position",
            &to_s,
            "--types",
            types,
        ],
    );
    for opened in open_with_duckdb(&["part.parquet", "part.csv", "part.ndjson"].map(file)) {
        assert_eq!(opened.summary(), expected, "{}", opened.file);
    }
}

#[tokio::test]
async fn an_empty_export_is_still_a_file_the_tools_open() {
    let (app, analyst, _) = with_history().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = |name: &str| dir.path().join(name);
    let none = [("types", "NoSuchEvent")];
    export_to(&app, &analyst, &none, "parquet", &file("none.parquet")).await;
    export_to(&app, &analyst, &none, "csv", &file("none.csv")).await;
    let header = std::fs::read_to_string(file("none.csv")).unwrap();
    assert_eq!(
        header.trim_end(),
        "position,stream,revision,event_id,type,schema_version,recorded_at,data,\
         correlation_id,causation_id,actor"
    );
    for opened in open_with_duckdb(&["none.parquet"].map(file)) {
        assert_eq!(opened.rows, 0, "{opened:?}");
    }
}

#[tokio::test]
async fn an_unknown_export_format_is_refused() {
    let (app, analyst, _) = with_history().await;
    let reply = app
        .export_events(Some(&analyst), &[("format", "xlsx")])
        .await
        .expect_problem(400, "malformed_request");
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("parquet"),
        "{reply:?}"
    );
}
