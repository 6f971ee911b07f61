//! Customer profiles.

use std::sync::Arc;

use shopstream_infra::read_store::RowKey;
use shopstream_projections::customers::CUSTOMER_BY_ID;
use uuid::Uuid;

use super::{Answer, QueryError, QueryService, doc};

pub const PROJECTION: &str = "customers";

/// `GET /v1/customers/me`.
pub async fn profile(q: &QueryService, id: Uuid) -> Result<Arc<Answer>, QueryError> {
    q.answer(CUSTOMER_BY_ID, &format!("customer/{id}"), async |r| {
        let row = r
            .get(&RowKey::single(CUSTOMER_BY_ID, id.to_string()))
            .await?
            .ok_or(QueryError::NotFound("customer"))?;
        Answer::json(doc(&row)?, Some(id))
    })
    .await
}
