//! Password hashing and access tokens.
//!
//! # Layout
//! - [`password`]: argon2id hashes in PHC format, checked in constant time.
//! - [`token`]: HS256 JWT access tokens carrying the customer id and role.

pub mod password;
pub mod token;
