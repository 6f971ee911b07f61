//! Passwords, logging in and access tokens.

use std::sync::Arc;

use chrono::Utc;
use shopstream_domain::DomainError;
use shopstream_domain::claim::EmailClaim;
use shopstream_domain::customer::Customer;
use shopstream_domain::values::{CustomerId, Email, Name, PasswordHash, Role};
use shopstream_infra::crypto::password::{HashError, PasswordHasher};
use shopstream_infra::crypto::token::{TokenError, TokenIssuer};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::commands::aggregates::AggregateCache;
use super::commands::customers::{ChangeRole, RegisterCustomer, SetPassword};
use super::commands::{Actor, CommandContext, CommandError, CommandService};

/// Passwords are between these lengths, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    BadCredentials,
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The hashing pool's thread or its queue went away.
    #[error("password hashing did not run")]
    Pool(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn pool(e: impl std::error::Error + Send + Sync + 'static) -> AuthError {
    AuthError::Pool(Box::new(e))
}

/// A token handed to a client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Whose it is (for the audit log; not sent).
    #[serde(skip)]
    pub customer_id: CustomerId,
}

#[derive(Clone)]
pub struct AuthService {
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    aggregates: AggregateCache,
    /// argon2 is CPU- and memory-heavy: at most half the cores hash at
    /// once, so a flood of logins (past the rate limits, from many
    /// addresses) cannot take every core from queries and commands.
    hashing: Arc<Semaphore>,
}

impl AuthService {
    pub fn new(hasher: PasswordHasher, tokens: TokenIssuer, aggregates: AggregateCache) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            hasher,
            tokens,
            aggregates,
            hashing: Arc::new(Semaphore::new((cores / 2).max(1))),
        }
    }

    /// Hashes a password on a blocking thread.
    pub async fn hash(&self, password: &str) -> Result<PasswordHash, AuthError> {
        let _permit = self.hashing.acquire().await.map_err(pool)?;
        let hasher = self.hasher.clone();
        let password = password.to_string();
        Ok(tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(pool)??)
    }

    async fn verify(&self, password: &str, hash: Option<PasswordHash>) -> Result<bool, AuthError> {
        let _permit = self.hashing.acquire().await.map_err(pool)?;
        let hasher = self.hasher.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hasher.verify(&password, hash.as_ref()))
            .await
            .map_err(pool)
    }

    /// Checks credentials against the event store (never a read model, so a
    /// customer can log in the moment registration answers) and issues a
    /// token. Unknown emails cost the same time as wrong passwords.
    pub async fn login(&self, email: &str, password: &str) -> Result<IssuedToken, AuthError> {
        let registration = match Email::parse(email) {
            Ok(email) => {
                let holder = self
                    .aggregates
                    .load_fresh::<EmailClaim>(&email)
                    .await?
                    .state
                    .holder;
                match holder {
                    Some(id) => {
                        self.aggregates
                            .load_fresh::<Customer>(id)
                            .await?
                            .state
                            .registered
                    }
                    None => None,
                }
            }
            Err(_) => None,
        };
        let hash = registration.as_ref().and_then(|r| r.password_hash.clone());
        if !self.verify(password, hash).await? {
            return Err(AuthError::BadCredentials);
        }
        let registration = registration.ok_or(AuthError::BadCredentials)?;
        let (access_token, expires_in) =
            self.tokens
                .issue(registration.customer_id, registration.role, Utc::now())?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in,
            customer_id: registration.customer_id,
        })
    }

    /// The actor a bearer token names.
    pub fn authenticate(&self, bearer: &str) -> Result<Actor, TokenError> {
        let claims = self.tokens.verify(bearer)?;
        Ok(Actor::Customer {
            id: claims.sub,
            role: claims.role,
        })
    }

    /// Makes sure the configured first admin exists, is an admin and has
    /// the configured password.
    pub async fn ensure_admin(
        &self,
        commands: &CommandService,
        email: &Email,
        password: &str,
    ) -> Result<CustomerId, AuthError> {
        let ctx = CommandContext::new(Actor::System, format!("startup-{}", Uuid::now_v7()));
        let holder = self
            .aggregates
            .load_fresh::<EmailClaim>(email)
            .await?
            .state
            .holder;
        let Some(customer_id) = holder else {
            let register = RegisterCustomer {
                customer_id: CustomerId(Uuid::now_v7()),
                email: email.clone(),
                name: Name::parse("Administrator")
                    .map_err(|e| CommandError::from(DomainError::from(e)))?,
                role: Role::Admin,
                password_hash: self.hash(password).await?,
            };
            return match commands.execute(&ctx, &register).await {
                Ok(done) => Ok(done.output.customer_id),
                // Another process registered the admin at the same moment.
                Err(CommandError::Domain(DomainError::EmailTaken)) => {
                    Box::pin(self.ensure_admin(commands, email, password)).await
                }
                Err(e) => Err(e.into()),
            };
        };
        commands
            .execute(
                &ctx,
                &ChangeRole {
                    customer_id,
                    role: Role::Admin,
                },
            )
            .await?;
        let current = self
            .aggregates
            .load_fresh::<Customer>(customer_id)
            .await?
            .state
            .registered
            .and_then(|r| r.password_hash);
        if !self.verify(password, current).await? {
            let password_hash = self.hash(password).await?;
            commands
                .execute(
                    &ctx,
                    &SetPassword {
                        customer_id,
                        password_hash,
                    },
                )
                .await?;
        }
        Ok(customer_id)
    }
}
