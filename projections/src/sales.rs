//! Sales: every order that is placed and not cancelled, by the day (UTC) it
//! was placed, with its lines, so a report sums revenue per day and per
//! product over any range. One row per order keeps replays harmless; the
//! sums are taken when the report is read.

use serde::{Deserialize, Serialize};
use serde_json::json;
use shopstream_domain::order::{OrderEvent, OrderLine};
use shopstream_domain::values::{Money, OrderId};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, doc_of, encode};

pub const SALES_BY_DAY: &str = "sales_by_day";
/// Which day an order's sale is filed under, for its cancellation.
pub const SALE_DAY_BY_ORDER: &str = "sale_day_by_order";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaleDoc {
    pub order_id: OrderId,
    pub total: Money,
    pub lines: Vec<OrderLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SaleDay {
    day: String,
}

pub struct Sales;

impl Projection for Sales {
    fn name(&self) -> &'static str {
        "sales"
    }

    fn version(&self) -> u32 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &[SALES_BY_DAY, SALE_DAY_BY_ORDER]
    }

    fn reads(&self) -> &'static [&'static str] {
        &[SALE_DAY_BY_ORDER]
    }

    fn event_types(&self) -> Vec<&'static str> {
        vec!["OrderPlaced", "OrderCancelled"]
    }

    fn apply(
        &self,
        env: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let v = env.revision;
        match env.decode::<OrderEvent>()? {
            OrderEvent::OrderPlaced(p) => {
                let day = p.placed_at.format("%Y-%m-%d").to_string();
                let sale = SaleDoc {
                    order_id: p.order_id,
                    total: p.total,
                    lines: p.lines,
                };
                Ok(vec![
                    RowWrite::upsert(
                        RowKey::single(SALE_DAY_BY_ORDER, p.order_id.to_string()),
                        DOC,
                        encode(&json!({ "day": day }))?,
                        v,
                    ),
                    RowWrite::upsert(
                        RowKey::new(SALES_BY_DAY, day, p.order_id.to_string()),
                        DOC,
                        encode(&sale)?,
                        v,
                    ),
                ])
            }
            OrderEvent::OrderCancelled(_) => {
                let key = RowKey::single(SALE_DAY_BY_ORDER, env.stream_id());
                let filed: SaleDay = doc_of(rows.get(&key)?, &key)?;
                Ok(vec![RowWrite::delete(
                    RowKey::new(SALES_BY_DAY, filed.day, env.stream_id()),
                    v,
                )])
            }
            _ => Ok(vec![]),
        }
    }
}
