//! Passwords, logging in, sessions and the tokens they hand out.
//!
//! Logging in starts a session (a `session-<id>` stream) and answers a
//! short-lived access token and a refresh token. The refresh token is
//! exchanged for a new pair and replaced as it is (presenting a replaced
//! one again ends the session); logging out ends the session. Every
//! request's token is checked against its customer's current security
//! state (known, enabled, current role) and its session (still live),
//! through caches bounded by [`SECURITY_TTL`] and invalidated from the
//! event store as those change, so a demotion, a disabled account or a
//! logout takes effect within that bound on every API node (at once on the
//! node that made it).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sha2::{Digest, Sha256};
use shopstream_domain::DomainError;
use shopstream_domain::claim::EmailClaim;
use shopstream_domain::customer::Customer;
use shopstream_domain::session::{EndReason, Session};
use shopstream_domain::values::{CustomerId, Email, Name, PasswordHash, Role, SessionId};
use shopstream_infra::crypto::password::{HashError, PasswordHasher};
use shopstream_infra::crypto::token::{TokenError, TokenIssuer};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::commands::aggregates::AggregateCache;
use super::commands::customers::{ChangeRole, RegisterCustomer, SetPassword};
use super::commands::sessions::{EndSession, RefreshSession, StartSession};
use super::commands::{Actor, CommandContext, CommandError, CommandService};

/// Passwords are between these lengths, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=128;

/// How long a customer's security state (role, enabled) and a session's
/// state may be cached: the longest a change takes to reach every node
/// when the event store's subscription is slower.
pub const SECURITY_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid email or password")]
    BadCredentials,
    /// A token that is signed but no longer (or never) good: its customer
    /// is unknown or disabled, its session ended, a refresh token replaced.
    #[error("{0}")]
    Revoked(&'static str),
    /// A verification link that is not one, or no longer good.
    #[error("the verification link is not valid: {0}")]
    BadLink(String),
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

/// Tokens handed to a client.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedToken {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    /// Exchanged at `POST /v1/auth/refresh` for a new pair, once.
    pub refresh_token: String,
    pub refresh_expires_in: i64,
    /// Whose it is (for the audit log; not sent).
    #[serde(skip)]
    pub customer_id: CustomerId,
}

/// A cache whose entries live at most [`SECURITY_TTL`].
fn bounded_cache<K, V>() -> moka::future::Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    moka::future::Cache::builder()
        .max_capacity(100_000)
        .time_to_live(SECURITY_TTL)
        .build()
}

/// What a customer may do right now.
#[derive(Debug, Clone, Copy)]
struct Security {
    role: Role,
    enabled: bool,
}

/// A refresh token: the session it belongs to and its secret.
struct RefreshToken {
    session: SessionId,
    secret: String,
}

impl RefreshToken {
    fn new(session: SessionId) -> Self {
        Self {
            session,
            secret: hex::encode(rand::random::<[u8; 32]>()),
        }
    }

    fn parse(text: &str) -> Option<Self> {
        let (session, secret) = text.trim().split_once('.')?;
        let ok = secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self {
            session: SessionId(session.parse().ok()?),
            secret: ok.then(|| secret.to_string())?,
        })
    }

    /// What the session keeps of it.
    fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.secret.as_bytes()))
    }

    fn text(&self) -> String {
        format!("{}.{}", self.session.as_uuid().simple(), self.secret)
    }
}

#[derive(Clone)]
pub struct AuthService {
    hasher: PasswordHasher,
    tokens: TokenIssuer,
    aggregates: AggregateCache,
    refresh_ttl: chrono::Duration,
    /// Customers' security state (`None`: no such customer).
    security: moka::future::Cache<CustomerId, Option<Security>>,
    /// Whether a session is live.
    sessions: moka::future::Cache<SessionId, bool>,
    /// argon2 is CPU- and memory-heavy: at most half the cores hash at
    /// once, so a flood of logins (past the rate limits, from many
    /// addresses) cannot take every core from queries and commands.
    hashing: Arc<Semaphore>,
}

impl AuthService {
    pub fn new(
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        aggregates: AggregateCache,
        refresh_ttl: Duration,
    ) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

        Self {
            hasher,
            tokens,
            aggregates,
            refresh_ttl: chrono::Duration::from_std(refresh_ttl)
                .unwrap_or(chrono::Duration::days(30)),
            security: bounded_cache(),
            sessions: bounded_cache(),
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
    /// customer can log in the moment registration answers), starts a
    /// session and issues its tokens. Unknown emails cost the same time as
    /// wrong passwords; a disabled account is refused after the password.
    pub async fn login(
        &self,
        commands: &CommandService,
        email: &str,
        password: &str,
    ) -> Result<IssuedToken, AuthError> {
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
        if !registration.enabled {
            return Err(AuthError::Revoked("this account is disabled"));
        }
        let refresh = RefreshToken::new(SessionId(Uuid::now_v7()));
        let ctx = CommandContext::new(
            Actor::Customer {
                id: registration.customer_id,
                role: registration.role,
            },
            Uuid::now_v7().to_string(),
        );
        commands
            .execute(
                &ctx,
                &StartSession {
                    session_id: refresh.session,
                    customer_id: registration.customer_id,
                    token_hash: refresh.hash(),
                    expires_at: Utc::now() + self.refresh_ttl,
                },
            )
            .await?;
        self.issue(registration.customer_id, registration.role, &refresh)
    }

    fn issue(
        &self,
        customer: CustomerId,
        role: Role,
        refresh: &RefreshToken,
    ) -> Result<IssuedToken, AuthError> {
        let (access_token, expires_in) =
            self.tokens
                .issue(customer, role, Some(refresh.session), Utc::now())?;
        Ok(IssuedToken {
            access_token,
            token_type: "Bearer",
            expires_in,
            refresh_token: refresh.text(),
            refresh_expires_in: self.refresh_ttl.num_seconds(),
            customer_id: customer,
        })
    }

    /// Exchanges a refresh token for a new pair; the one presented is
    /// replaced (presented again, it ends the session).
    pub async fn refresh(
        &self,
        commands: &CommandService,
        refresh_token: &str,
    ) -> Result<IssuedToken, AuthError> {
        let presented = RefreshToken::parse(refresh_token)
            .ok_or(AuthError::Revoked("the refresh token is not one of ours"))?;
        let next = RefreshToken::new(presented.session);
        let ctx = CommandContext::new(Actor::System, Uuid::now_v7().to_string());
        let refreshed = commands
            .execute(
                &ctx,
                &RefreshSession {
                    session_id: presented.session,
                    presented_hash: presented.hash(),
                    token_hash: next.hash(),
                    expires_at: Utc::now() + self.refresh_ttl,
                },
            )
            .await;
        let view = match refreshed {
            Ok(done) => done.output,
            Err(CommandError::Domain(_)) => {
                self.sessions.invalidate(&presented.session).await;
                return Err(AuthError::Revoked(
                    "the refresh token is unknown, expired, or was used already",
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let security = self
            .security_of(view.customer_id)
            .await?
            .filter(|s| s.enabled)
            .ok_or(AuthError::Revoked("this account is disabled"))?;
        self.issue(view.customer_id, security.role, &next)
    }

    /// Ends the session a refresh token belongs to. Ending one that ended
    /// already changes nothing.
    pub async fn logout(
        &self,
        commands: &CommandService,
        refresh_token: &str,
    ) -> Result<(), AuthError> {
        let presented = RefreshToken::parse(refresh_token)
            .ok_or(AuthError::Revoked("the refresh token is not one of ours"))?;
        let session = self
            .aggregates
            .load_fresh::<Session>(presented.session)
            .await?;
        let Some(live) = session.state.live.as_ref() else {
            return Err(AuthError::Revoked("the refresh token is not one of ours"));
        };
        // Only the token's holder may end it: its current or a replaced one.
        let hash = presented.hash();
        if live.token_hash != hash && !live.replaced.contains(&hash) {
            return Err(AuthError::Revoked("the refresh token is not one of ours"));
        }
        let ctx = CommandContext::new(Actor::System, Uuid::now_v7().to_string());
        commands
            .execute(
                &ctx,
                &EndSession {
                    session_id: presented.session,
                    reason: EndReason::Logout,
                },
            )
            .await?;
        self.sessions.invalidate(&presented.session).await;
        Ok(())
    }

    /// The signer of tokens and links.
    pub fn issuer(&self) -> TokenIssuer {
        self.tokens.clone()
    }

    /// The aggregates auth reads customers from.
    pub fn aggregates(&self) -> AggregateCache {
        self.aggregates.clone()
    }

    /// Verifies a customer's address from a verification link's token;
    /// the position of `$all` that holds the verification.
    pub async fn verify_email(
        &self,
        commands: &CommandService,
        token: &str,
    ) -> Result<u64, AuthError> {
        let (customer_id, email) = self
            .tokens
            .verify_verification(token)
            .map_err(|e| AuthError::BadLink(e.to_string()))?;
        let email = Email::parse(&email).map_err(|_| AuthError::BadLink("bad address".into()))?;
        let ctx = CommandContext::new(Actor::System, Uuid::now_v7().to_string());
        let done = commands
            .execute(
                &ctx,
                &super::commands::customers::VerifyEmail { customer_id, email },
            )
            .await?;
        Ok(done.position)
    }

    /// Whether a customer's address is verified (read from the event
    /// store, not a read model).
    pub async fn email_verified(&self, id: CustomerId) -> Result<bool, AuthError> {
        Ok(self
            .aggregates
            .load_fresh::<Customer>(id)
            .await?
            .state
            .registered
            .is_some_and(|r| r.email_verified))
    }

    /// The customer a token is signed for, by its signature alone (what
    /// rate limits key on; not what a request may do).
    pub fn signed_for(&self, bearer: &str) -> Option<CustomerId> {
        self.tokens.verify(bearer).ok().map(|c| c.sub)
    }

    /// The actor a bearer token names, as they are now: refused when the
    /// customer is unknown or disabled or the token's session has ended;
    /// their current role, whatever role the token was issued with.
    pub async fn authenticate(&self, bearer: &str) -> Result<Actor, AuthError> {
        let claims = self.tokens.verify(bearer)?;
        let security = self
            .security_of(claims.sub)
            .await?
            .ok_or(AuthError::Revoked("the token names no customer"))?;
        if !security.enabled {
            return Err(AuthError::Revoked("this account is disabled"));
        }
        if let Some(session) = claims.sid
            && !self.session_live(session).await?
        {
            return Err(AuthError::Revoked("the session has ended"));
        }
        Ok(Actor::Customer {
            id: claims.sub,
            role: security.role,
        })
    }

    async fn security_of(&self, id: CustomerId) -> Result<Option<Security>, AuthError> {
        let aggregates = self.aggregates.clone();
        self.security
            .try_get_with(id, async move {
                let customer = aggregates.load_fresh::<Customer>(id).await?;
                Ok::<_, CommandError>(customer.state.registered.map(|r| Security {
                    role: r.role,
                    enabled: r.enabled,
                }))
            })
            .await
            .map_err(|e: Arc<CommandError>| AuthError::Command(CommandError::shared(&e)))
    }

    async fn session_live(&self, id: SessionId) -> Result<bool, AuthError> {
        let aggregates = self.aggregates.clone();
        self.sessions
            .try_get_with(id, async move {
                let session = aggregates.load_fresh::<Session>(id).await?;
                Ok::<_, CommandError>(session.state.active(Utc::now()))
            })
            .await
            .map_err(|e: Arc<CommandError>| AuthError::Command(CommandError::shared(&e)))
    }

    /// Forgets what is cached of a customer's security state (it changed).
    pub async fn forget_customer(&self, id: CustomerId) {
        self.security.invalidate(&id).await;
    }

    /// Forgets what is cached of a session (it ended).
    pub async fn forget_session(&self, id: SessionId) {
        self.sessions.invalidate(&id).await;
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
