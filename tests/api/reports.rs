//! The sales report: who may read it, what counts, and which ranges it
//! takes.

use chrono::{Days, NaiveDate};
use serde_json::json;

use crate::helpers::{Read, Reply, TestApp, instant, money, product_body, spawn_app};

/// A stocked product priced in `currency`: its id.
async fn stocked(app: &TestApp, sku: &str, amount: i64, currency: &str) -> String {
    let mut body = product_body(sku, amount);
    body["price"]["currency"] = json!(currency);
    let id = app
        .create_product_from(body)
        .await
        .expect(201)
        .str("product_id");
    app.receive(sku, 50).await.expect(200);
    id
}

/// The UTC day an order was placed, as the report files it.
async fn day_placed(app: &TestApp, token: &str, placed: &Reply) -> NaiveDate {
    let order = app
        .order(&placed.str("order_id"), &Read::by(token).after(placed))
        .await
        .expect_consistent();
    instant(&order.body["placed_at"]).date_naive()
}

fn date(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

#[tokio::test]
async fn analysts_and_admins_read_the_sales_report_and_customers_do_not() {
    let app = spawn_app().await;
    let analyst = app.analyst("ana@example.com").await;
    let (_, customer) = app.customer("cus@example.com").await;

    for token in [&analyst, &app.admin] {
        let report = app.sales_report(&[], &Read::by(token)).await.expect(200);
        assert_eq!(report.body["orders"], 0);
        assert_eq!(report.body["days"].as_array().map(Vec::len), Some(30));
    }
    // The last 30 days by default, so an order placed now shows at once.
    let lamp = stocked(&app, "LAMP", 250, "EUR").await;
    let (_, buyer) = app.customer("buyer@example.com").await;
    let placed = app.place_order(&buyer, &[(&lamp, 1)]).await;
    for token in [&analyst, &app.admin] {
        let report = app
            .sales_report(&[], &Read::by(token).after(&placed))
            .await
            .expect_consistent();
        assert_eq!(report.body["orders"], 1);
        assert_eq!(report.body["revenue"], json!([money(250, "EUR")]));
    }
    app.sales_report(&[], &Read::by(&customer))
        .await
        .expect_problem(403, "forbidden");
    app.sales_report(&[], &Read::anyone())
        .await
        .expect_problem(401, "unauthorized");
}

#[tokio::test]
async fn orders_count_by_day_with_revenue_per_currency_and_top_products_by_quantity() {
    let app = spawn_app().await;
    let lamp = stocked(&app, "LAMP", 250, "EUR").await;
    let mug = stocked(&app, "MUG", 100, "EUR").await;
    let cup = stocked(&app, "CUP", 300, "USD").await;
    let (_, token) = app.customer("buyer@example.com").await;
    let first = app.place_order(&token, &[(&lamp, 2), (&mug, 5)]).await;
    app.place_order(&token, &[(&cup, 3)]).await;
    app.place_order(&token, &[(&lamp, 2)]).await;
    let regretted = app.place_order(&token, &[(&mug, 10)]).await;
    let analyst = app.analyst("ana@example.com").await;
    let day = day_placed(&app, &token, &first).await;
    let (before, after) = (date(day - Days::new(1)), date(day + Days::new(1)));
    let range = [("from", before.as_str()), ("to", after.as_str())];
    let with_regret = app
        .sales_report(&range, &Read::by(&analyst).after(&regretted))
        .await
        .expect_consistent();
    assert_eq!(with_regret.body["orders"], 4);
    assert_eq!(with_regret.body["top_products"][0]["quantity"], 15);

    let cancelled = app
        .cancel(&token, &regretted.str("order_id"))
        .await
        .expect(200);
    let report = app
        .sales_report(&range, &Read::by(&analyst).after(&cancelled))
        .await
        .expect_consistent();

    let revenue = json!([money(1500, "EUR"), money(900, "USD")]);
    assert_eq!(report.body["from"], before);
    assert_eq!(report.body["to"], after);
    assert_eq!(report.body["orders"], 3, "the cancelled order is left out");
    assert_eq!(report.body["revenue"], revenue);
    assert_eq!(
        report.body["days"],
        json!([
            {"day": before, "orders": 0, "revenue": []},
            {"day": date(day), "orders": 3, "revenue": revenue},
            {"day": after, "orders": 0, "revenue": []},
        ])
    );
    assert_eq!(
        report.body["top_products"],
        json!([
            {"product_id": mug, "sku": "MUG", "name": "Product MUG",
             "quantity": 5, "revenue": [money(500, "EUR")]},
            {"product_id": lamp, "sku": "LAMP", "name": "Product LAMP",
             "quantity": 4, "revenue": [money(1000, "EUR")]},
            {"product_id": cup, "sku": "CUP", "name": "Product CUP",
             "quantity": 3, "revenue": [money(900, "USD")]},
        ])
    );
}

#[tokio::test]
async fn a_report_runs_forward_over_at_most_366_days_of_real_dates() {
    let app = spawn_app().await;
    let read = Read::by(&app.admin);

    let year = app
        .sales_report(&[("from", "2024-03-01"), ("to", "2025-03-01")], &read)
        .await
        .expect(200);
    assert_eq!(year.body["days"].as_array().map(Vec::len), Some(366));
    let one_day = app
        .sales_report(&[("from", "2026-01-05"), ("to", "2026-01-05")], &read)
        .await
        .expect(200);
    assert_eq!(one_day.body["days"][0]["day"], "2026-01-05");

    for range in [
        [("from", "2026-01-05"), ("to", "2026-01-04")],
        [("from", "2024-03-01"), ("to", "2025-03-02")],
        [("from", "2026-02-30"), ("to", "2026-03-01")],
        [("from", "2026-01-01"), ("to", "next week")],
        [("from", "01/02/2026"), ("to", "2026-03-01")],
    ] {
        app.sales_report(&range, &read)
            .await
            .expect_problem(400, "malformed_request");
    }
}
