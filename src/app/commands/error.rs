//! Why a command was not carried out.

use shopstream_domain::{DecodeError, DomainError};
use shopstream_infra::event_store::{AppendError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A business rule refused it.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The actor may not do this to this resource.
    #[error("you are not allowed to do this")]
    Forbidden,
    /// `If-Match` named a revision the resource has moved past.
    #[error("the resource has changed since the revision in If-Match")]
    PreconditionFailed,
    /// Every attempt conflicted with another writer.
    #[error("the resource is too busy right now; try again")]
    Contention,
    /// An idempotency key came back with a different request.
    #[error("this Idempotency-Key was used for a different request")]
    IdempotencyKeyReused,
    /// Internal: an aggregate moved on while deciding; decide again.
    #[error("an aggregate moved on while deciding")]
    Stale,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored event cannot be read")]
    Decode(#[from] DecodeError),
    /// The event store refused an append as malformed: a bug on our side.
    #[error("the event store refused the append")]
    Append(#[source] AppendError),
    /// A command's answer could not be recorded for idempotent replay, or
    /// a recorded one read back.
    #[error("an idempotency record could not be written or read")]
    Record(#[source] serde_json::Error),
}

impl CommandError {
    /// A copy of an error several waiters share (a cache's load): refusals
    /// and store failures keep their kind, anything else reads as a store
    /// that holds something it cannot use.
    pub fn shared(e: &std::sync::Arc<CommandError>) -> CommandError {
        match &**e {
            CommandError::Domain(d) => CommandError::Domain(d.clone()),
            CommandError::Store(s) => CommandError::Store(s.clone()),
            other => CommandError::Store(StoreError::Corrupt(shopstream_infra::error::cause(
                other.to_string(),
            ))),
        }
    }
}
