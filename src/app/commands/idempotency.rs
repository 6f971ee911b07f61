//! `Idempotency-Key`: a repeat of a command within 24 hours answers with
//! the first response and appends nothing.
//!
//! The first response is recorded in the event store itself, in a stream of
//! its own named after a hash of the actor and the key, inside the same
//! atomic append as the command's events. So the record exists exactly when
//! the command's effect does, it survives restarts, it is shared by every
//! API node, and two identical requests racing each other conflict on that
//! stream: one wins, the other answers with the winner's response. A record
//! also holds a hash of the request, so a key reused for a different request
//! is refused rather than answered with an unrelated response.

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shopstream_domain::values::FieldError;
use shopstream_infra::event_store::{Direction, ExpectedRevision, Metadata, NewEvent, StreamWrite};
use uuid::Uuid;

use super::CommandError;
use super::{Actor, CommandContext, CommandService, Committed};

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::hours(24);

/// The event type of a record.
pub const RECORD_TYPE: &str = "IdempotentRequestCompleted";

/// Streams that hold records start with this.
pub const STREAM_PREFIX: &str = "idempotency-";

/// A client's key, scoped to the actor, with the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    stream: String,
    fingerprint: String,
}

impl IdempotencyKey {
    /// `request` is everything that identifies the request: method, path
    /// and body.
    pub fn new(actor: &Actor, key: &str, request: &[u8]) -> Result<Self, FieldError> {
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err(FieldError::new(
                "Idempotency-Key",
                "must be 1 to 255 visible ASCII characters",
            ));
        }
        let scope = Sha256::new()
            .chain_update(actor.label())
            .chain_update([0])
            .chain_update(key)
            .finalize();
        Ok(Self {
            stream: format!("{STREAM_PREFIX}{}", hex::encode(&scope[..16])),
            fingerprint: hex::encode(Sha256::digest(request)),
        })
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    command: String,
    fingerprint: String,
    output: serde_json::Value,
    revision: Option<u64>,
    at: DateTime<Utc>,
}

pub(super) enum Lookup<O> {
    /// Answered before: the first response.
    Replay(Committed<O>),
    /// Not seen in the last 24 hours: record it expecting this.
    Fresh(ExpectedRevision),
}

pub(super) async fn lookup<O: DeserializeOwned>(
    service: &CommandService,
    ctx: &CommandContext,
    key: &IdempotencyKey,
    command: &str,
) -> Result<Lookup<O>, CommandError> {
    let last = service
        .aggregates()
        .store()
        .read_stream(&key.stream, None, Direction::Backward, 1)
        .await?;
    let Some(recorded) = last.into_iter().next() else {
        return Ok(Lookup::Fresh(ExpectedRevision::NoStream));
    };
    let record: Record = serde_json::from_str(recorded.data.get()).map_err(CommandError::Record)?;
    if record.at + RETENTION < ctx.now {
        return Ok(Lookup::Fresh(ExpectedRevision::Exact(recorded.revision)));
    }
    if record.command != command || record.fingerprint != key.fingerprint {
        return Err(CommandError::IdempotencyKeyReused);
    }
    let output = serde_json::from_value(record.output).map_err(CommandError::Record)?;
    Ok(Lookup::Replay(Committed {
        output,
        revision: record.revision,
        position: recorded.position,
        replayed: true,
    }))
}

/// The record to append with the command's events.
pub(super) fn record<O: Serialize>(
    key: &IdempotencyKey,
    expected: ExpectedRevision,
    command: &str,
    output: &O,
    revision: Option<u64>,
    ctx: &CommandContext,
) -> Result<StreamWrite, CommandError> {
    let record = Record {
        command: command.to_string(),
        fingerprint: key.fingerprint.clone(),
        output: serde_json::to_value(output).map_err(CommandError::Record)?,
        revision,
        at: ctx.now,
    };
    Ok(StreamWrite {
        stream: key.stream.clone(),
        expected,
        events: vec![NewEvent {
            event_id: Uuid::now_v7(),
            event_type: RECORD_TYPE.to_string(),
            schema_version: 1,
            data: serde_json::to_vec(&record).map_err(CommandError::Record)?,
            metadata: Metadata {
                correlation_id: Some(ctx.correlation_id.clone()),
                causation_id: None,
                actor: Some(ctx.actor.label()),
            },
        }],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shopstream_domain::values::{CustomerId, Role};

    #[test]
    fn keys_are_scoped_to_the_actor_and_remember_the_request() {
        let alice = Actor::Customer {
            id: CustomerId(Uuid::from_u128(1)),
            role: Role::Customer,
        };
        let bob = Actor::Customer {
            id: CustomerId(Uuid::from_u128(2)),
            role: Role::Customer,
        };
        let a = IdempotencyKey::new(&alice, "k-1", b"POST /v1/carts").unwrap();
        let b = IdempotencyKey::new(&bob, "k-1", b"POST /v1/carts").unwrap();
        assert_ne!(a.stream(), b.stream());
        assert!(a.stream().starts_with(STREAM_PREFIX));
        let other_body = IdempotencyKey::new(&alice, "k-1", b"POST /v1/carts {}").unwrap();
        assert_eq!(a.stream(), other_body.stream());
        assert_ne!(a.fingerprint, other_body.fingerprint);
    }

    #[test]
    fn malformed_keys_are_refused() {
        for bad in ["", "has space", &"k".repeat(256), "naïve"] {
            assert!(
                IdempotencyKey::new(&Actor::Anonymous, bad, b"").is_err(),
                "{bad:?}"
            );
        }
    }
}
