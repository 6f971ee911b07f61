//! Why a command was not carried out.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shopstream_domain::{DecodeError, DomainError};
use shopstream_infra::event_store::{AppendError, RecordedEvent, StoreError};

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
    PreconditionFailed(Box<Conflict>),
    /// Every attempt conflicted with another writer.
    #[error("the resource is too busy right now; try again")]
    Contention(Box<Conflict>),
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

/// What a command ran into: the stream that moved, the revision the command
/// expected (from `If-Match`, or the last attempt's read), and what other
/// writers appended since, so a client can see what changed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Conflict {
    pub stream: String,
    /// None: the command expected no stream at all.
    pub expected_revision: Option<u64>,
    /// None: the stream does not exist (or could not be read).
    pub current_revision: Option<u64>,
    /// The events after `expected_revision`, oldest first, at most
    /// [`Conflict::MAX_EVENTS`] of them.
    pub conflicting_events: Vec<ConflictingEvent>,
}

/// One event another writer appended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConflictingEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    /// Who appended it (`customer:<id>`, `system`), when recorded.
    pub actor: Option<String>,
}

impl Conflict {
    /// How many conflicting events a refusal lists.
    pub const MAX_EVENTS: usize = 32;

    pub fn on(stream: impl Into<String>, expected_revision: Option<u64>) -> Box<Conflict> {
        Box::new(Conflict {
            stream: stream.into(),
            expected_revision,
            ..Conflict::default()
        })
    }

    /// Fills in what happened from the stream's latest event and the
    /// events after the expected revision.
    pub fn explain(&mut self, latest: Option<&RecordedEvent>, since: &[RecordedEvent]) {
        // Never older than an event listed, whichever was read first.
        let last_listed = since.last().map(|e| e.revision);
        self.current_revision = latest.map(|e| e.revision).max(last_listed);
        self.conflicting_events = since
            .iter()
            .filter(|e| self.expected_revision.is_none_or(|r| e.revision > r))
            .take(Self::MAX_EVENTS)
            .map(|e| ConflictingEvent {
                event_type: e.event_type.clone(),
                revision: e.revision,
                recorded_at: e.recorded_at,
                actor: e.metadata.actor.clone(),
            })
            .collect();
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::testing::recorded_event;

    fn at(revision: u64, actor: &str) -> RecordedEvent {
        let mut event = recorded_event("ProductPriceChanged", "product-1", "{}");
        event.revision = revision;
        event.metadata.actor = Some(actor.into());
        event
    }

    #[test]
    fn a_conflict_lists_only_what_came_after_the_expected_revision() {
        let mut conflict = *Conflict::on("product-1", Some(1));
        let since = [at(1, "system"), at(2, "customer:a"), at(3, "customer:b")];
        conflict.explain(since.last(), &since);
        assert_eq!(conflict.current_revision, Some(3));
        let listed: Vec<(u64, Option<&str>)> = conflict
            .conflicting_events
            .iter()
            .map(|e| (e.revision, e.actor.as_deref()))
            .collect();
        assert_eq!(listed, [(2, Some("customer:a")), (3, Some("customer:b"))]);
    }

    #[test]
    fn the_current_revision_is_never_older_than_an_event_listed() {
        // The latest event was read before another writer appended more.
        let mut conflict = *Conflict::on("product-1", Some(1));
        let since = [at(2, "customer:a"), at(3, "customer:b")];
        conflict.explain(Some(&at(2, "customer:a")), &since);
        assert_eq!(conflict.current_revision, Some(3));
    }

    #[test]
    fn a_long_run_of_events_is_capped_and_no_stream_lists_nothing() {
        let mut conflict = *Conflict::on("product-1", None);
        let since: Vec<_> = (0..100).map(|r| at(r, "system")).collect();
        conflict.explain(since.last(), &since);
        assert_eq!(conflict.conflicting_events.len(), Conflict::MAX_EVENTS);
        assert_eq!(conflict.conflicting_events[0].revision, 0);

        let mut missing = *Conflict::on("product-2", Some(4));
        missing.explain(None, &[]);
        assert_eq!(missing.current_revision, None);
        assert!(missing.conflicting_events.is_empty());
        let members = serde_json::to_value(&missing).unwrap();
        assert_eq!(
            members,
            serde_json::json!({
                "stream": "product-2",
                "expected_revision": 4,
                "current_revision": null,
                "conflicting_events": [],
            })
        );
    }
}
