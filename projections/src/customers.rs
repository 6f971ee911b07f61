//! Customers by id: the profile a customer sees as `/v1/customers/me`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shopstream_domain::EventSet;
use shopstream_domain::customer::CustomerEvent;
use shopstream_domain::values::{CustomerId, Email, Name, Role};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, doc_of, encode};

pub const CUSTOMER_BY_ID: &str = "customer_by_id";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerDoc {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub email_verified: bool,
    pub registered_at: DateTime<Utc>,
    /// Whether they may log in (an admin can turn it off).
    #[serde(default = "enabled")]
    pub enabled: bool,
    pub revision: u64,
}

fn enabled() -> bool {
    true
}

pub struct Customers;

impl Projection for Customers {
    fn name(&self) -> &'static str {
        "customers"
    }

    fn version(&self) -> u32 {
        // 2: `enabled`.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[CUSTOMER_BY_ID]
    }

    fn event_types(&self) -> Vec<&'static str> {
        // Password hashes never reach the read side; mail requests and
        // records change nothing a customer sees.
        CustomerEvent::TYPES
            .iter()
            .copied()
            .filter(|t| {
                !matches!(
                    *t,
                    "PasswordSet" | "VerificationRequested" | "VerificationMailSent"
                )
            })
            .collect()
    }

    fn apply(
        &self,
        env: &Envelope<'_>,
        rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let event: CustomerEvent = env.decode()?;
        let key = RowKey::single(CUSTOMER_BY_ID, env.stream_id());
        let doc = match event {
            CustomerEvent::CustomerRegistered(r) => CustomerDoc {
                customer_id: r.customer_id,
                email: r.email,
                name: r.name,
                role: r.role,
                email_verified: false,
                registered_at: r.registered_at,
                enabled: true,
                revision: env.revision,
            },
            CustomerEvent::PasswordSet(_)
            | CustomerEvent::VerificationRequested(_)
            | CustomerEvent::VerificationMailSent(_) => return Ok(vec![]),
            CustomerEvent::EmailVerified(_) => CustomerDoc {
                email_verified: true,
                revision: env.revision,
                ..doc_of(rows.get(&key)?, &key)?
            },
            CustomerEvent::RoleChanged(c) => CustomerDoc {
                role: c.role,
                revision: env.revision,
                ..doc_of(rows.get(&key)?, &key)?
            },
            CustomerEvent::CustomerDisabled(_) | CustomerEvent::CustomerEnabled(_) => CustomerDoc {
                enabled: matches!(event, CustomerEvent::CustomerEnabled(_)),
                revision: env.revision,
                ..doc_of(rows.get(&key)?, &key)?
            },
        };
        Ok(vec![RowWrite::upsert(
            key,
            DOC,
            encode(&doc)?,
            env.revision,
        )])
    }
}
