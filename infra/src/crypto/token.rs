//! Access tokens: short-lived HS256 JWTs naming the customer, the role
//! they had when it was issued and the session it belongs to. What a
//! request may do is decided on the customer's current state (role,
//! enabled, session live), not on the claims alone.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use shopstream_domain::values::{CustomerId, Role, SessionId};

const ISSUER: &str = "shopstream";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: CustomerId,
    pub role: Role,
    /// The session (login) the token belongs to; tokens issued before
    /// sessions existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<SessionId>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("the token could not be signed")]
    Signing(#[source] jsonwebtoken::errors::Error),
}

/// Why token settings were refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenSettingsError {
    #[error("the token secret must be at least 32 bytes")]
    ShortSecret,
    #[error("the token lifetime is out of range")]
    Lifetime(#[source] chrono::OutOfRangeError),
}

#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: chrono::Duration,
}

impl TokenIssuer {
    /// A secret of at least 32 bytes is expected; shorter ones are refused.
    pub fn new(secret: &[u8], ttl: std::time::Duration) -> Result<Self, TokenSettingsError> {
        if secret.len() < 32 {
            return Err(TokenSettingsError::ShortSecret);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl: chrono::Duration::from_std(ttl).map_err(TokenSettingsError::Lifetime)?,
        })
    }

    /// A token for this customer, and how many seconds it is valid.
    pub fn issue(
        &self,
        customer: CustomerId,
        role: Role,
        session: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<(String, i64), TokenError> {
        let claims = Claims {
            sub: customer,
            role,
            sid: session,
            iat: now.timestamp(),
            exp: (now + self.ttl).timestamp(),
            iss: ISSUER.to_string(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Signing)?;
        Ok((token, self.ttl.num_seconds()))
    }

    /// The claims of a token this issuer signed, unexpired, and living no
    /// longer than the configured lifetime (a token minted with a longer
    /// one, before a configuration change, is refused).
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let leeway = self.validation.leeway as i64;
        let longest = self.ttl.num_seconds() + leeway;
        let now = Utc::now().timestamp();
        if claims.exp - claims.iat > longest || claims.exp > now + longest {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

/// What an email verification link carries: whose address it verifies,
/// which address, until when. Signed with the same key as access tokens
/// but for another audience, so neither passes for the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct VerificationClaims {
    sub: CustomerId,
    email: String,
    aud: String,
    iat: i64,
    exp: i64,
    iss: String,
}

const VERIFY_AUDIENCE: &str = "verify-email";

impl TokenIssuer {
    /// A token verifying `email` for `customer`, good for `ttl`.
    pub fn issue_verification(
        &self,
        customer: CustomerId,
        email: &str,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<String, TokenError> {
        let claims = VerificationClaims {
            sub: customer,
            email: email.to_string(),
            aud: VERIFY_AUDIENCE.to_string(),
            iat: now.timestamp(),
            exp: (now + ttl).timestamp(),
            iss: ISSUER.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(TokenError::Signing)
    }

    /// The customer and address a verification token names.
    pub fn verify_verification(&self, token: &str) -> Result<(CustomerId, String), TokenError> {
        let mut validation = self.validation.clone();
        validation.set_audience(&[VERIFY_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        jsonwebtoken::decode::<VerificationClaims>(token, &self.decoding, &validation)
            .map(|data| (data.claims.sub, data.claims.email))
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn issuer(secret: &[u8]) -> TokenIssuer {
        TokenIssuer::new(secret, std::time::Duration::from_secs(3600)).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let issuer = issuer(&[7; 32]);
        let id = CustomerId(Uuid::from_u128(1));
        let (token, ttl) = issuer.issue(id, Role::Admin, None, Utc::now()).unwrap();
        assert_eq!(ttl, 3600);
        let claims = issuer.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.role), (id, Role::Admin));
    }

    #[test]
    fn verification_and_access_tokens_never_pass_for_each_other() {
        let issuer = issuer(&[7; 32]);
        let id = CustomerId(Uuid::from_u128(1));
        let link = issuer
            .issue_verification(
                id,
                "ada@example.com",
                chrono::Duration::hours(24),
                Utc::now(),
            )
            .unwrap();
        assert_eq!(
            issuer.verify_verification(&link).unwrap(),
            (id, "ada@example.com".to_string())
        );
        assert!(issuer.verify(&link).is_err(), "a link is no access token");
        let (access, _) = issuer.issue(id, Role::Customer, None, Utc::now()).unwrap();
        assert!(
            issuer.verify_verification(&access).is_err(),
            "nor the reverse"
        );
        let old = issuer
            .issue_verification(
                id,
                "ada@example.com",
                chrono::Duration::hours(1),
                Utc::now() - chrono::Duration::hours(3),
            )
            .unwrap();
        assert!(matches!(
            issuer.verify_verification(&old),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn a_token_living_longer_than_the_configured_lifetime_is_refused() {
        let long =
            TokenIssuer::new(&[7; 32], std::time::Duration::from_secs(10 * 365 * 86400)).unwrap();
        let short = issuer(&[7; 32]);
        let id = CustomerId(Uuid::from_u128(1));
        let (far, _) = long.issue(id, Role::Customer, None, Utc::now()).unwrap();
        assert!(long.verify(&far).is_ok());
        assert!(
            matches!(short.verify(&far), Err(TokenError::Invalid)),
            "a far-future expiry is not honoured"
        );
        // Issued in the future, so that its lifetime looks right.
        let (ahead, _) = short
            .issue(
                id,
                Role::Customer,
                None,
                Utc::now() + chrono::Duration::days(30),
            )
            .unwrap();
        assert!(matches!(short.verify(&ahead), Err(TokenError::Invalid)));
    }

    #[test]
    fn expired_tampered_and_foreign_tokens_are_refused() {
        let a = issuer(&[7; 32]);
        let b = issuer(&[8; 32]);
        let id = CustomerId(Uuid::from_u128(1));
        let (old, _) = a
            .issue(
                id,
                Role::Customer,
                None,
                Utc::now() - chrono::Duration::hours(2),
            )
            .unwrap();
        assert!(matches!(a.verify(&old), Err(TokenError::Expired)));
        let (token, _) = a.issue(id, Role::Customer, None, Utc::now()).unwrap();
        assert!(matches!(b.verify(&token), Err(TokenError::Invalid)));
        let mut tampered = token.clone();
        tampered.insert(tampered.len() / 2, 'x');
        assert!(matches!(a.verify(&tampered), Err(TokenError::Invalid)));
        assert!(matches!(a.verify("not a token"), Err(TokenError::Invalid)));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenIssuer::new(b"short", std::time::Duration::from_secs(60)).is_err());
    }
}
