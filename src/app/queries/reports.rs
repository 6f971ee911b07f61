//! The sales report: revenue and order count per day, and top products,
//! over a range of days, summed from the sales read model (one row per
//! order placed and not cancelled, filed under the UTC day it was placed).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use shopstream_projections::sales::{SALES_BY_DAY, SaleDoc};

use super::{Answer, QueryError, QueryService, decode, doc};

pub const PROJECTION: &str = "sales";

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 366;

/// Products listed in `top_products`.
const TOP: usize = 10;

/// Sums are 128-bit: amounts up to `Money::MAX_AMOUNT` times any quantity,
/// over any number of orders, cannot wrap them.
#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
struct DaySales {
    orders: u64,
    /// Revenue by currency, in minor units.
    revenue: BTreeMap<String, i128>,
    /// By product: (sku, name, quantity, revenue by currency).
    products: BTreeMap<String, ProductSales>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
struct ProductSales {
    sku: String,
    name: String,
    quantity: u64,
    revenue: BTreeMap<String, i128>,
}

/// An amount of money in a report (a sum, so possibly beyond what one price
/// may be; serialised as an integer straight to the answer's bytes).
#[derive(Debug, Serialize)]
struct Amount<'a> {
    amount: i128,
    currency: &'a str,
}

fn money(by_currency: &BTreeMap<String, i128>) -> Vec<Amount<'_>> {
    by_currency
        .iter()
        .map(|(currency, amount)| Amount {
            amount: *amount,
            currency,
        })
        .collect()
}

#[derive(Serialize)]
struct Report<'a> {
    from: String,
    to: String,
    orders: u64,
    revenue: Vec<Amount<'a>>,
    days: Vec<DayReport>,
    top_products: Vec<TopProduct<'a>>,
}

#[derive(Serialize)]
struct DayReport {
    day: String,
    orders: u64,
    revenue: Vec<OwnedAmount>,
}

#[derive(Serialize)]
struct OwnedAmount {
    amount: i128,
    currency: String,
}

#[derive(Serialize)]
struct TopProduct<'a> {
    product_id: &'a str,
    sku: &'a str,
    name: &'a str,
    quantity: u64,
    revenue: Vec<Amount<'a>>,
}

/// One day's sums, cached per day (a day's partition changes alone).
async fn day(q: &QueryService, day: NaiveDate) -> Result<DaySales, QueryError> {
    let partition = day.format("%Y-%m-%d").to_string();
    let answer = q
        .answer(SALES_BY_DAY, &format!("sales-day/{partition}"), async |r| {
            let mut sums = DaySales::default();
            let mut after: Option<String> = None;
            loop {
                let rows = r
                    .scan(SALES_BY_DAY, &partition, after.as_deref(), 1000)
                    .await?;
                let Some((last, _)) = rows.last() else { break };
                after = Some(last.clone());
                for (_, row) in &rows {
                    let sale: SaleDoc = decode(doc(row)?)?;
                    sums.orders += 1;
                    *sums
                        .revenue
                        .entry(sale.total.currency.to_string())
                        .or_default() += i128::from(sale.total.amount);
                    for line in sale.lines {
                        let p = sums
                            .products
                            .entry(line.product_id.to_string())
                            .or_default();
                        p.sku = line.sku.to_string();
                        p.name = line.name.to_string();
                        p.quantity += u64::from(line.quantity.get());
                        *p.revenue
                            .entry(line.line_total.currency.to_string())
                            .or_default() += i128::from(line.line_total.amount);
                    }
                }
                if rows.len() < 1000 {
                    break;
                }
            }
            Answer::json(&sums, None)
        })
        .await?;
    serde_json::from_slice(&answer.body).map_err(QueryError::Document)
}

/// `GET /v1/reports/sales?from=&to=` (inclusive days).
pub async fn sales(q: &QueryService, from: NaiveDate, to: NaiveDate) -> Result<Answer, QueryError> {
    if to < from {
        return Err(QueryError::Invalid("to must not be before from".into()));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(QueryError::Invalid(format!(
            "a report covers at most {MAX_DAYS} days"
        )));
    }
    let mut days = Vec::new();
    let mut total = DaySales::default();
    for d in from.iter_days().take_while(|d| *d <= to) {
        let sums = day(q, d).await?;
        days.push(DayReport {
            day: d.format("%Y-%m-%d").to_string(),
            orders: sums.orders,
            revenue: sums
                .revenue
                .iter()
                .map(|(currency, amount)| OwnedAmount {
                    amount: *amount,
                    currency: currency.clone(),
                })
                .collect(),
        });
        total.orders += sums.orders;
        for (c, a) in &sums.revenue {
            *total.revenue.entry(c.clone()).or_default() += a;
        }
        for (id, p) in sums.products {
            let t = total.products.entry(id).or_default();
            t.sku = p.sku;
            t.name = p.name;
            t.quantity += p.quantity;
            for (c, a) in p.revenue {
                *t.revenue.entry(c).or_default() += a;
            }
        }
    }
    let mut top: Vec<(&String, &ProductSales)> = total.products.iter().collect();
    top.sort_by(|a, b| b.1.quantity.cmp(&a.1.quantity).then_with(|| a.0.cmp(b.0)));
    top.truncate(TOP);
    let report = Report {
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        orders: total.orders,
        revenue: money(&total.revenue),
        days,
        top_products: top
            .into_iter()
            .map(|(id, p)| TopProduct {
                product_id: id,
                sku: &p.sku,
                name: &p.name,
                quantity: p.quantity,
                revenue: money(&p.revenue),
            })
            .collect(),
    };
    Answer::json(&report, None)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use shopstream_projections::{Json, RowKey};

    use super::*;
    use crate::app::queries::testing::{doc_row, service_with};

    #[tokio::test]
    async fn revenue_sums_beyond_64_bits_do_not_wrap() {
        // Two orders whose totals are each within i64, their sum is not.
        let big = 6_000_000_000_000_000_000_i64;
        let rows = (0..2)
            .map(|i| {
                let order = uuid::Uuid::from_u128(i + 1);
                let doc = json!({
                    "order_id": order,
                    "total": {"amount": big, "currency": "EUR"},
                    "lines": [],
                });
                doc_row(
                    RowKey::new(SALES_BY_DAY, "2026-12-01", order.to_string()),
                    Json::from(doc),
                    1,
                )
            })
            .collect();
        let (q, _dir) = service_with(rows).await;
        let day = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let answer = sales(&q, day, day).await.unwrap();
        let text = String::from_utf8(answer.body.to_vec()).unwrap();
        assert!(
            text.contains(r#""revenue":[{"amount":12000000000000000000,"currency":"EUR"}]"#),
            "{text}"
        );
    }
}
