//! Registration, passwords and roles.

use serde::{Deserialize, Serialize};
use shopstream_domain::claim::{ClaimEmail, EmailClaim};
use shopstream_domain::customer::{Customer, CustomerCommand};
use shopstream_domain::values::{CustomerId, Email, Name, PasswordHash, Role};
use shopstream_domain::{Aggregate, stream_name};

use super::CommandError;
use super::{Command, UnitOfWork};

/// Registers a customer under an email address nobody holds. The password
/// is hashed before the command is built: hashing is slow and must not be
/// repeated when a conflict makes the command decide again.
#[derive(Debug, Clone)]
pub struct RegisterCustomer {
    pub customer_id: CustomerId,
    pub email: Email,
    pub name: Name,
    pub role: Role,
    pub password_hash: PasswordHash,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Registered {
    pub customer_id: CustomerId,
}

impl Command for RegisterCustomer {
    type Output = Registered;
    const NAME: &'static str = "register_customer";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<Registered, CommandError> {
        let at = uow.now();
        let claim = uow.load::<EmailClaim>(&self.email).await?;
        let claimed = claim.state.decide(&ClaimEmail {
            email: self.email.clone(),
            customer_id: self.customer_id,
            at,
        })?;
        let customer = uow.create::<Customer>(self.customer_id);
        let registered = customer.state.decide(&CustomerCommand::Register {
            customer_id: self.customer_id,
            email: self.email.clone(),
            name: self.name.clone(),
            role: self.role,
            password_hash: self.password_hash.clone(),
            at,
        })?;
        uow.stage(&claim, claimed);
        uow.stage(&customer, registered);
        Ok(Registered {
            customer_id: self.customer_id,
        })
    }
}

/// Gives a customer another role. Admins only.
#[derive(Debug, Clone)]
pub struct ChangeRole {
    pub customer_id: CustomerId,
    pub role: Role,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleView {
    pub customer_id: CustomerId,
    pub role: Role,
}

impl Command for ChangeRole {
    type Output = RoleView;
    const NAME: &'static str = "change_role";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<RoleView, CommandError> {
        uow.require_admin()?;
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let events = customer.state.decide(&CustomerCommand::ChangeRole {
            role: self.role,
            at: uow.now(),
        })?;
        uow.stage(&customer, events);
        Ok(RoleView {
            customer_id: self.customer_id,
            role: self.role,
        })
    }
}

/// Sets a customer's password hash: their own, or anyone's for the system.
#[derive(Debug, Clone)]
pub struct SetPassword {
    pub customer_id: CustomerId,
    pub password_hash: PasswordHash,
}

impl Command for SetPassword {
    type Output = ();
    const NAME: &'static str = "set_password";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<(), CommandError> {
        let actor = uow.ctx().actor;
        if actor != super::Actor::System {
            actor.may_act_for(self.customer_id, false)?;
        }
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let events = customer.state.decide(&CustomerCommand::SetPassword {
            password_hash: self.password_hash.clone(),
            at: uow.now(),
        })?;
        uow.stage(&customer, events);
        Ok(())
    }
}

/// Turns a customer's access off (no login; their tokens stop working) or
/// on again. Admins only, and never on oneself.
#[derive(Debug, Clone)]
pub struct SetCustomerEnabled {
    pub customer_id: CustomerId,
    pub enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessView {
    pub customer_id: CustomerId,
    pub enabled: bool,
}

impl Command for SetCustomerEnabled {
    type Output = AccessView;
    const NAME: &'static str = "set_customer_enabled";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<AccessView, CommandError> {
        uow.require_admin()?;
        if !self.enabled && uow.ctx().actor.customer_id() == Some(self.customer_id) {
            return Err(shopstream_domain::DomainError::invalid(
                "customer_id",
                "an admin cannot disable themselves",
            )
            .into());
        }
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let events = customer.state.decide(&CustomerCommand::SetEnabled {
            enabled: self.enabled,
            at: uow.now(),
        })?;
        uow.stage(&customer, events);
        Ok(AccessView {
            customer_id: self.customer_id,
            enabled: self.enabled,
        })
    }
}

/// Asks for the verification mail again (the customer themselves).
#[derive(Debug, Clone)]
pub struct RequestVerification {
    pub customer_id: CustomerId,
    pub request_id: uuid::Uuid,
}

impl Command for RequestVerification {
    type Output = ();
    const NAME: &'static str = "request_verification";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<(), CommandError> {
        uow.ctx().actor.may_act_for(self.customer_id, false)?;
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let events = customer
            .state
            .decide(&CustomerCommand::RequestVerification {
                request_id: self.request_id,
                at: uow.now(),
            })?;
        uow.stage(&customer, events);
        Ok(())
    }
}

/// Records the verification mail the mailer sent for a request.
#[derive(Debug, Clone)]
pub struct RecordVerificationMail {
    pub customer_id: CustomerId,
    pub request_id: uuid::Uuid,
}

impl Command for RecordVerificationMail {
    type Output = ();
    const NAME: &'static str = "record_verification_mail";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<(), CommandError> {
        uow.require_admin()?;
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let events = customer
            .state
            .decide(&CustomerCommand::RecordVerificationMail {
                request_id: self.request_id,
                at: uow.now(),
            })?;
        uow.stage(&customer, events);
        Ok(())
    }
}

/// Verifies a customer's address, from a link the mailer sent to it.
#[derive(Debug, Clone)]
pub struct VerifyEmail {
    pub customer_id: CustomerId,
    /// The address the link was sent to: it must still be theirs.
    pub email: Email,
}

impl Command for VerifyEmail {
    type Output = ();
    const NAME: &'static str = "verify_email";

    fn target(&self) -> String {
        stream_name::<Customer>(self.customer_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<(), CommandError> {
        uow.require_admin()?;
        let customer = uow.load::<Customer>(self.customer_id).await?;
        let current = customer.state.registered.as_ref().map(|r| &r.email);
        if current != Some(&self.email) {
            return Err(shopstream_domain::DomainError::invalid(
                "token",
                "was sent to an address that is no longer this customer's",
            )
            .into());
        }
        let events = customer
            .state
            .decide(&CustomerCommand::VerifyEmail { at: uow.now() })?;
        uow.stage(&customer, events);
        Ok(())
    }
}
