//! Customer: registration, credentials, email verification and role.
//!
//! Verification mail is asked for by registering (the request is the
//! registration event itself) or by [`VerificationRequested`]; the mailer
//! records each message it sent as [`VerificationMailSent`], so a request
//! is answered once, whatever restarts in between.
//!
//! Admins and analysts are customers with another role, so one login path
//! serves everyone. The password hash lives in its own event type,
//! [`PasswordSet`], so that exports can redact exactly that.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::aggregate::{Aggregate, DomainError};
use crate::event_set;
use crate::values::{CustomerId, Email, Name, PasswordHash, Role};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerRegistered {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub registered_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordSet {
    pub password_hash: PasswordHash,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmailVerified {
    pub email: Email,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleChanged {
    pub role: Role,
    pub previous: Role,
    pub at: DateTime<Utc>,
}

/// The customer asked for the verification mail again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationRequested {
    pub request_id: Uuid,
    pub at: DateTime<Utc>,
}

/// A verification mail left for the customer's address, answering one
/// request (a registration's event id, or a [`VerificationRequested`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerificationMailSent {
    pub request_id: Uuid,
    pub to: Email,
    pub at: DateTime<Utc>,
}

/// An admin shut the customer out: no login, and their tokens stop
/// working.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerDisabled {
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomerEnabled {
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of a customer stream.
    pub enum CustomerEvent {
        CustomerRegistered = 1,
        PasswordSet = 1,
        EmailVerified = 1,
        RoleChanged = 1,
        CustomerDisabled = 1,
        CustomerEnabled = 1,
        VerificationRequested = 1,
        VerificationMailSent = 1,
    }
}

/// Event types whose data holds secrets, with the field to redact when events
/// leave the system (exports, stream views, the Kafka feed).
pub const SECRET_FIELDS: &[(&str, &str)] = &[
    ("PasswordSet", "password_hash"),
    ("SessionStarted", "token_hash"),
    ("SessionRefreshed", "token_hash"),
];

#[derive(Debug, Clone)]
pub enum CustomerCommand {
    Register {
        customer_id: CustomerId,
        email: Email,
        name: Name,
        role: Role,
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    SetPassword {
        password_hash: PasswordHash,
        at: DateTime<Utc>,
    },
    VerifyEmail {
        at: DateTime<Utc>,
    },
    ChangeRole {
        role: Role,
        at: DateTime<Utc>,
    },
    /// Turns the customer's access off (`false`) or on again.
    SetEnabled {
        enabled: bool,
        at: DateTime<Utc>,
    },
    /// Asks for the verification mail again.
    RequestVerification {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
    /// Records the verification mail sent for a request.
    RecordVerificationMail {
        request_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Customer {
    pub registered: Option<Registration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub password_hash: Option<PasswordHash>,
    pub email_verified: bool,
    pub registered_at: DateTime<Utc>,
    /// Whether they may log in and use their tokens.
    pub enabled: bool,
    /// Verification requests answered with a mail.
    pub mails_sent: BTreeSet<Uuid>,
}

impl Aggregate for Customer {
    type Event = CustomerEvent;
    type Command = CustomerCommand;
    const CATEGORY: &'static str = "customer";

    fn decide(&self, command: &CustomerCommand) -> Result<Vec<CustomerEvent>, DomainError> {
        use CustomerCommand::*;
        match (command, &self.registered) {
            (
                Register {
                    customer_id,
                    email,
                    name,
                    role,
                    password_hash,
                    at,
                },
                None,
            ) => Ok(vec![
                CustomerRegistered {
                    customer_id: *customer_id,
                    email: email.clone(),
                    name: name.clone(),
                    role: *role,
                    registered_at: *at,
                }
                .into(),
                PasswordSet {
                    password_hash: password_hash.clone(),
                    at: *at,
                }
                .into(),
            ]),
            (Register { .. }, Some(_)) => Err(DomainError::AlreadyExists("customer")),
            (_, None) => Err(DomainError::NotFound("customer")),
            (SetPassword { password_hash, at }, Some(reg)) => {
                if reg.password_hash.as_ref() == Some(password_hash) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    PasswordSet {
                        password_hash: password_hash.clone(),
                        at: *at,
                    }
                    .into(),
                ])
            }
            (VerifyEmail { at }, Some(reg)) => {
                if reg.email_verified {
                    return Ok(vec![]);
                }
                Ok(vec![
                    EmailVerified {
                        email: reg.email.clone(),
                        at: *at,
                    }
                    .into(),
                ])
            }
            (SetEnabled { enabled, at }, Some(reg)) => Ok(match (reg.enabled, *enabled) {
                (true, false) => vec![CustomerDisabled { at: *at }.into()],
                (false, true) => vec![CustomerEnabled { at: *at }.into()],
                _ => vec![],
            }),
            (RequestVerification { request_id, at }, Some(reg)) => {
                if reg.email_verified {
                    return Err(DomainError::InvalidState {
                        entity: "email address",
                        state: "verified",
                        action: "verify again",
                    });
                }
                Ok(vec![
                    VerificationRequested {
                        request_id: *request_id,
                        at: *at,
                    }
                    .into(),
                ])
            }
            (RecordVerificationMail { request_id, at }, Some(reg)) => {
                if reg.mails_sent.contains(request_id) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    VerificationMailSent {
                        request_id: *request_id,
                        to: reg.email.clone(),
                        at: *at,
                    }
                    .into(),
                ])
            }
            (ChangeRole { role, at }, Some(reg)) => {
                if reg.role == *role {
                    return Ok(vec![]);
                }
                Ok(vec![
                    RoleChanged {
                        role: *role,
                        previous: reg.role,
                        at: *at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(&mut self, event: &CustomerEvent) {
        match (event, &mut self.registered) {
            (CustomerEvent::CustomerRegistered(e), _) => {
                self.registered = Some(Registration {
                    customer_id: e.customer_id,
                    email: e.email.clone(),
                    name: e.name.clone(),
                    role: e.role,
                    password_hash: None,
                    email_verified: false,
                    registered_at: e.registered_at,
                    enabled: true,
                    mails_sent: BTreeSet::new(),
                });
            }
            (CustomerEvent::PasswordSet(e), Some(reg)) => {
                reg.password_hash = Some(e.password_hash.clone())
            }
            (CustomerEvent::EmailVerified(_), Some(reg)) => reg.email_verified = true,
            (CustomerEvent::RoleChanged(e), Some(reg)) => reg.role = e.role,
            (CustomerEvent::CustomerDisabled(_), Some(reg)) => reg.enabled = false,
            (CustomerEvent::CustomerEnabled(_), Some(reg)) => reg.enabled = true,
            (CustomerEvent::VerificationMailSent(e), Some(reg)) => {
                reg.mails_sent.insert(e.request_id);
            }
            (CustomerEvent::VerificationRequested(_), Some(_)) => {}
            // Events before registration cannot have been accepted; folding
            // ignores them rather than failing.
            (_, None) => {}
        }
    }
}
