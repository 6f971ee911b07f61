//! Uniqueness through reservation streams.
//!
//! An email address or a SKU is unique because it owns a stream,
//! `email-<address>` or `sku-<SKU>`, whose first event names its holder. The
//! claim is appended with "no stream" expected, in the same atomic append as
//! the customer or product it belongs to, so two registrations of one address
//! cannot both succeed and a failed registration leaves no claim behind. The
//! claim is also the index from the address to the customer for logging in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError};
use crate::event_set;
use crate::values::{CustomerId, Email, ProductId, Sku};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailClaimed {
    pub email: Email,
    pub customer_id: CustomerId,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of an email reservation stream.
    pub enum EmailClaimEvent {
        EmailClaimed = 1,
    }
}

#[derive(Debug, Clone)]
pub struct ClaimEmail {
    pub email: Email,
    pub customer_id: CustomerId,
    pub at: DateTime<Utc>,
}

/// Who holds an email address, if anyone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailClaim {
    pub holder: Option<CustomerId>,
}

impl Aggregate for EmailClaim {
    type Event = EmailClaimEvent;
    type Command = ClaimEmail;
    const CATEGORY: &'static str = "email";

    fn decide(&self, c: &ClaimEmail) -> Result<Vec<EmailClaimEvent>, DomainError> {
        match self.holder {
            None => Ok(vec![
                EmailClaimed {
                    email: c.email.clone(),
                    customer_id: c.customer_id,
                    at: c.at,
                }
                .into(),
            ]),
            Some(holder) if holder == c.customer_id => Ok(vec![]),
            Some(_) => Err(DomainError::EmailTaken),
        }
    }

    fn evolve(&mut self, event: &EmailClaimEvent) {
        let EmailClaimEvent::EmailClaimed(e) = event;
        self.holder = Some(e.customer_id);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkuClaimed {
    pub sku: Sku,
    pub product_id: ProductId,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of a SKU reservation stream.
    pub enum SkuClaimEvent {
        SkuClaimed = 1,
    }
}

#[derive(Debug, Clone)]
pub struct ClaimSku {
    pub sku: Sku,
    pub product_id: ProductId,
    pub at: DateTime<Utc>,
}

/// Which product holds a SKU, if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SkuClaim {
    pub holder: Option<ProductId>,
}

impl Aggregate for SkuClaim {
    type Event = SkuClaimEvent;
    type Command = ClaimSku;
    const CATEGORY: &'static str = "sku";

    fn decide(&self, c: &ClaimSku) -> Result<Vec<SkuClaimEvent>, DomainError> {
        match self.holder {
            None => Ok(vec![
                SkuClaimed {
                    sku: c.sku.clone(),
                    product_id: c.product_id,
                    at: c.at,
                }
                .into(),
            ]),
            Some(holder) if holder == c.product_id => Ok(vec![]),
            Some(_) => Err(DomainError::SkuTaken),
        }
    }

    fn evolve(&mut self, event: &SkuClaimEvent) {
        let SkuClaimEvent::SkuClaimed(e) = event;
        self.holder = Some(e.product_id);
    }
}
