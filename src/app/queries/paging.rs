//! Lists: pages of a partition in clustering order, with opaque cursors.

use serde::Serialize;
use shopstream_projections::Json;

use super::cache::Reader;
use super::{QueryError, doc};

/// A page of a list, as every list endpoint answers.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Opaque list cursors: the last clustering key of a page, hex-encoded.
pub mod cursor {
    pub fn encode(clustering: &str) -> String {
        hex::encode(clustering)
    }

    pub fn decode(cursor: &str) -> Option<String> {
        String::from_utf8(hex::decode(cursor).ok()?).ok()
    }
}

/// `limit` as lists take it: 1 to 100, 20 by default.
pub fn limit(raw: Option<usize>) -> Result<usize, QueryError> {
    match raw {
        None => Ok(20),
        Some(n) if (1..=100).contains(&n) => Ok(n),
        Some(_) => Err(QueryError::Invalid(
            "limit must be between 1 and 100".into(),
        )),
    }
}

/// Scans a partition page by page into an answer with a cursor.
pub(crate) async fn page(
    reader: &mut Reader<'_>,
    table: &str,
    partition: &str,
    cursor: Option<&str>,
    limit: usize,
) -> Result<Page<Json>, QueryError> {
    let after = match cursor {
        Some(c) => Some(
            cursor::decode(c).ok_or_else(|| QueryError::Invalid("cursor is not valid".into()))?,
        ),
        None => None,
    };
    let mut rows = reader
        .scan(table, partition, after.as_deref(), limit + 1)
        .await?;
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|(ck, _)| cursor::encode(ck))
    } else {
        None
    };
    let items = rows
        .iter()
        .map(|(_, row)| doc(row).cloned())
        .collect::<Result<_, _>>()?;
    Ok(Page { items, next_cursor })
}
