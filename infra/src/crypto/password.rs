//! argon2id password hashing.
//!
//! Hashing is deliberately slow (tens of milliseconds and 19 MiB by default,
//! OWASP's recommendation), so callers run it on a blocking thread. A login
//! for an unknown email still verifies against a fixed hash, so response
//! times do not tell which emails are registered.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use shopstream_domain::values::PasswordHash;

/// Cost of one hash: memory in KiB, iterations, lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: Params::DEFAULT_M_COST,
            iterations: Params::DEFAULT_T_COST,
            parallelism: 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the password hashing cost is invalid")]
    Cost(#[source] argon2::Error),
    #[error("password hashing failed")]
    Hash(#[source] argon2::password_hash::Error),
}

#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// Verified against when there is no real hash, to spend the same time.
    decoy: String,
}

impl PasswordHasher {
    pub fn new(cost: HashCost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
            .map_err(HashError::Cost)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let decoy = argon2
            .hash_password(b"decoy password for unknown accounts")
            .map_err(HashError::Hash)?
            .to_string();
        Ok(Self { argon2, decoy })
    }

    /// Hashes a password with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<PasswordHash, HashError> {
        self.argon2
            .hash_password(password.as_bytes())
            .map(|h| PasswordHash(h.to_string()))
            .map_err(HashError::Hash)
    }

    /// Whether `password` matches `hash`; `None` spends the same time and
    /// says no. A malformed stored hash also says no.
    pub fn verify(&self, password: &str, hash: Option<&PasswordHash>) -> bool {
        let (stored, real) = match hash {
            Some(h) => (h.0.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let Ok(parsed) = argon2::PasswordHash::new(stored) else {
            return false;
        };
        self.argon2
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(HashCost {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse").unwrap();
        assert!(hash.0.starts_with("$argon2id$"));
        assert!(hasher.verify("correct horse", Some(&hash)));
        assert!(!hasher.verify("correct horse!", Some(&hash)));
        assert!(!hasher.verify("correct horse", None));
        assert!(!hasher.verify("x", Some(&PasswordHash("not a phc string".into()))));
    }

    #[test]
    fn salts_differ_between_hashes_of_one_password() {
        let hasher = cheap();
        assert_ne!(hasher.hash("same").unwrap(), hasher.hash("same").unwrap());
    }
}
