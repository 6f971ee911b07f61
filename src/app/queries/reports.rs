//! The sales report: revenue and order count per day, and top products,
//! over a range of days, summed from the sales read model (one row per
//! order placed and not cancelled, filed under the UTC day it was placed).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::Value;
use shopstream_projections::sales::{SALES_BY_DAY, SaleDoc};

use super::{Answer, QueryError, QueryService, decode, doc};

pub const PROJECTION: &str = "sales";

/// The longest range one report covers.
pub const MAX_DAYS: i64 = 366;

/// Products listed in `top_products`.
const TOP: usize = 10;

#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
struct DaySales {
    orders: u64,
    /// Revenue by currency, in minor units.
    revenue: BTreeMap<String, i64>,
    /// By product: (sku, name, quantity, revenue by currency).
    products: BTreeMap<String, ProductSales>,
}

#[derive(Debug, Default, Serialize, serde::Deserialize, Clone)]
struct ProductSales {
    sku: String,
    name: String,
    quantity: u64,
    revenue: BTreeMap<String, i64>,
}

fn money(by_currency: &BTreeMap<String, i64>) -> Vec<Value> {
    by_currency
        .iter()
        .map(|(currency, amount)| serde_json::json!({"amount": amount, "currency": currency}))
        .collect()
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
                        .or_default() += sale.total.amount;
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
                            .or_default() += line.line_total.amount;
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
        days.push(serde_json::json!({
            "day": d.format("%Y-%m-%d").to_string(),
            "orders": sums.orders,
            "revenue": money(&sums.revenue),
        }));
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
    let mut top: Vec<(String, ProductSales)> = total.products.into_iter().collect();
    top.sort_by(|a, b| b.1.quantity.cmp(&a.1.quantity).then_with(|| a.0.cmp(&b.0)));
    top.truncate(TOP);
    let report = serde_json::json!({
        "from": from.format("%Y-%m-%d").to_string(),
        "to": to.format("%Y-%m-%d").to_string(),
        "orders": total.orders,
        "revenue": money(&total.revenue),
        "days": days,
        "top_products": top.into_iter().map(|(id, p)| serde_json::json!({
            "product_id": id,
            "sku": p.sku,
            "name": p.name,
            "quantity": p.quantity,
            "revenue": money(&p.revenue),
        })).collect::<Vec<_>>(),
    });
    Answer::json(&report, None)
}
