//! Products (by id, in lists, by search) and stock levels.

use std::sync::Arc;

use serde_json::{Value, json};
use shopstream_infra::read_store::RowKey;
use shopstream_projections::Json;
use shopstream_projections::catalogue::{
    ALL, INVENTORY_BY_SKU, PRODUCT_BY_ID, PRODUCT_BY_SKU, PRODUCT_SEARCH, PRODUCTS_BY_CATEGORY,
    PRODUCTS_BY_NAME, StockDoc,
};
use shopstream_projections::text::tokens;
use uuid::Uuid;

use super::cache::Reader;
use super::paging::page;
use super::{Answer, Page, QueryError, QueryService, cursor, decode, doc};

/// The projection every query here reads.
pub const PROJECTION: &str = "catalogue";

/// `GET /v1/products/{id}`: the product with its available stock (two rows,
/// both watched by the cached answer).
pub async fn product(q: &QueryService, id: Uuid) -> Result<Arc<Answer>, QueryError> {
    q.answer(PRODUCT_BY_ID, &format!("product/{id}"), async |r| {
        let row = r
            .get(&RowKey::single(PRODUCT_BY_ID, id.to_string()))
            .await?
            .ok_or(QueryError::NotFound("product"))?;
        let mut product: Value = decode(doc(&row)?)?;
        let sku = product["sku"].as_str().unwrap_or_default().to_string();
        let stock: Option<StockDoc> = match r.get(&RowKey::single(INVENTORY_BY_SKU, sku)).await? {
            Some(row) => Some(decode(doc(&row)?)?),
            None => None,
        };
        product["available"] = json!(stock.map_or(0, |s| s.available));
        Answer::json(&product, None)
    })
    .await
}

/// `GET /v1/products?category=`: products for sale by name, in one
/// category or all of them.
pub async fn products(
    q: &QueryService,
    category: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Arc<Answer>, QueryError> {
    let (table, partition) = match category {
        Some(c) => (PRODUCTS_BY_CATEGORY, c.trim()),
        None => (PRODUCTS_BY_NAME, ALL),
    };
    let key = format!("list/{table}/{partition}/{}/{limit}", cursor.unwrap_or(""));
    q.answer(table, &key, async |r| {
        Answer::json(&page(r, table, partition, cursor, limit).await?, None)
    })
    .await
}

/// How many candidates one search page looks at, at most: a page may come
/// back short, with a cursor to continue.
const SEARCH_BUDGET: usize = 2000;

/// `GET /v1/products/search?q=`: products matching every word of `q`, in
/// the order they were created.
pub async fn search(
    q: &QueryService,
    text: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Arc<Answer>, QueryError> {
    let mut words = tokens(text);
    if words.is_empty() {
        return Err(QueryError::Invalid(
            "q needs at least one word of two or more letters or digits".into(),
        ));
    }
    words.truncate(8);
    // The longest word is likely the rarest: walk its products, check the rest.
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    let after = match cursor {
        Some(c) => Some(
            super::cursor::decode(c)
                .ok_or_else(|| QueryError::Invalid("cursor is not valid".into()))?,
        ),
        None => None,
    };
    let key = format!(
        "search/{}/{}/{limit}",
        words.join(" "),
        cursor.unwrap_or("")
    );
    q.answer(PRODUCT_SEARCH, &key, async |r| {
        let mut items: Vec<Json> = Vec::with_capacity(limit);
        let mut last = after.clone();
        let mut looked = 0;
        let mut exhausted = false;
        while items.len() < limit && looked < SEARCH_BUDGET {
            let candidates = r
                .scan(PRODUCT_SEARCH, &words[0], last.as_deref(), 200)
                .await?;
            if candidates.is_empty() {
                exhausted = true;
                break;
            }
            // Which candidates every other word also names: one range scan
            // of each word's partition over the candidates' span, instead of
            // a point read per candidate and word.
            let span_end = candidates
                .last()
                .map(|(id, _)| id.clone())
                .unwrap_or_default();
            let mut others = Vec::with_capacity(words.len() - 1);
            for word in &words[1..] {
                others.push(members(r, word, last.as_deref(), &span_end).await?);
            }
            for (product_id, row) in candidates {
                looked += 1;
                last = Some(product_id.clone());
                if others.iter().all(|set| set.contains(&product_id)) {
                    items.push(doc(&row)?.clone());
                    if items.len() == limit {
                        break;
                    }
                }
            }
        }
        let next_cursor = if exhausted {
            None
        } else {
            last.as_deref().map(cursor::encode)
        };
        Answer::json(&Page { items, next_cursor }, None)
    })
    .await
}

/// The products `word` names whose ids are after `after` and up to
/// `through` (clustering order is id order).
async fn members(
    r: &mut Reader<'_>,
    word: &str,
    after: Option<&str>,
    through: &str,
) -> Result<std::collections::HashSet<String>, QueryError> {
    const PAGE: usize = 500;
    let mut found = std::collections::HashSet::new();
    let mut from = after.map(str::to_string);
    loop {
        let rows = r.scan(PRODUCT_SEARCH, word, from.as_deref(), PAGE).await?;
        let full = rows.len() == PAGE;
        let Some((end, _)) = rows.last() else {
            return Ok(found);
        };
        let end = end.clone();
        found.extend(
            rows.into_iter()
                .map(|(id, _)| id)
                .filter(|id| id.as_str() <= through),
        );
        if !full || end.as_str() >= through {
            return Ok(found);
        }
        from = Some(end);
    }
}

/// `GET /v1/inventory/{sku}`: stock levels; zeros for a product never
/// stocked.
pub async fn inventory(q: &QueryService, sku: &str) -> Result<Arc<Answer>, QueryError> {
    q.answer(INVENTORY_BY_SKU, &format!("inventory/{sku}"), async |r| {
        if let Some(row) = r.get(&RowKey::single(INVENTORY_BY_SKU, sku)).await? {
            return Answer::json(doc(&row)?, None);
        }
        r.get(&RowKey::single(PRODUCT_BY_SKU, sku))
            .await?
            .ok_or(QueryError::NotFound("product with this SKU"))?;
        Answer::json(
            &json!({"sku": sku, "on_hand": 0, "reserved": 0, "available": 0}),
            None,
        )
    })
    .await
}
