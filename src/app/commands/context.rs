//! Who sends a command, and everything about it that is not the command.

use chrono::{DateTime, Utc};
use shopstream_domain::values::{CustomerId, Role};

use super::{CommandError, IdempotencyKey};

/// Who sends a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    Customer {
        id: CustomerId,
        role: Role,
    },
    /// The service itself (start-up tasks).
    System,
}

impl Actor {
    pub fn label(&self) -> String {
        match self {
            Actor::Anonymous => "anonymous".into(),
            Actor::Customer { id, .. } => format!("customer:{id}"),
            Actor::System => "system".into(),
        }
    }

    pub fn customer_id(&self) -> Option<CustomerId> {
        match self {
            Actor::Customer { id, .. } => Some(*id),
            _ => None,
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Actor::System
                | Actor::Customer {
                    role: Role::Admin,
                    ..
                }
        )
    }

    /// Allowed to act on something `owner` owns: the owner, or an admin when
    /// `admin_too`.
    pub fn may_act_for(&self, owner: CustomerId, admin_too: bool) -> Result<(), CommandError> {
        if self.customer_id() == Some(owner) || (admin_too && self.is_admin()) {
            Ok(())
        } else {
            Err(CommandError::Forbidden)
        }
    }
}

/// Everything about a command that is not the command itself.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    pub correlation_id: String,
    /// `If-Match`: the revision the client expects the target stream at.
    pub if_match: Option<u64>,
    pub idempotency: Option<IdempotencyKey>,
    pub now: DateTime<Utc>,
}

impl CommandContext {
    pub fn new(actor: Actor, correlation_id: impl Into<String>) -> Self {
        Self {
            actor,
            correlation_id: correlation_id.into(),
            if_match: None,
            idempotency: None,
            now: Utc::now(),
        }
    }
}
