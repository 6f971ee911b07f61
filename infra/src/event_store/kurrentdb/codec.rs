//! Everything the KurrentDB adapter translates that is not the wire:
//! stream names under a namespace, expected revisions, the metadata and
//! time of events, positions, server-side filters and errors. Pure
//! functions, tested here without a server.

use chrono::{DateTime, Utc};
use kurrentdb::{CurrentRevision, Position, StreamPosition, StreamState, SubscriptionFilter};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::cause;
use crate::event_store::{
    AppendError, EventFilter, ExpectedRevision, Metadata, NewEvent, RecordedEvent, StoreError,
};

/// Keys of the metadata object every event carries (a JSON object of
/// strings: what KurrentDB's multi-stream appends accept as properties).
const CORRELATION_ID: &str = "correlation_id";
const CAUSATION_ID: &str = "causation_id";
const ACTOR: &str = "actor";
const SCHEMA_VERSION: &str = "schema_version";

/// Streams of one shopstream deployment inside a shared server: every
/// name carries the prefix on the wire and loses it on the way back, and
/// `$all` is read through a server-side filter on it. Empty: the whole
/// server (system streams, which start with `$`, are still left out).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self(prefix.into())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The stream's name on the server.
    pub fn wire(&self, stream: &str) -> String {
        format!("{}{stream}", self.0)
    }

    /// A server stream's name here, if it belongs to this namespace (and
    /// is not a system stream).
    pub fn local<'a>(&self, wire: &'a str) -> Option<&'a str> {
        let local = wire.strip_prefix(self.0.as_str())?;
        (!wire.starts_with('$')).then_some(local)
    }
}

/// An expectation as the v1 append API takes it.
pub fn stream_state(expected: ExpectedRevision) -> StreamState {
    match expected {
        ExpectedRevision::Any => StreamState::Any,
        ExpectedRevision::NoStream => StreamState::NoStream,
        ExpectedRevision::StreamExists => StreamState::StreamExists,
        ExpectedRevision::Exact(r) => StreamState::StreamRevision(r),
    }
}

/// An expectation as the v2 `AppendSession` takes it: a revision, or one
/// of its sentinels (-1 no stream, -2 any, -4 the stream exists).
pub fn raw_expected(expected: ExpectedRevision) -> i64 {
    match expected {
        ExpectedRevision::Any => -2,
        ExpectedRevision::NoStream => -1,
        ExpectedRevision::StreamExists => -4,
        ExpectedRevision::Exact(r) => r.min(i64::MAX as u64) as i64,
    }
}

/// The revision a conflict reports, from the v1 API.
pub fn actual(current: CurrentRevision) -> Option<u64> {
    match current {
        CurrentRevision::Current(r) => Some(r),
        CurrentRevision::NoStream => None,
    }
}

/// The revision a conflict reports, from the v2 API (negative: no stream).
pub fn actual_from_raw(raw: i64) -> Option<u64> {
    u64::try_from(raw).ok()
}

/// The metadata object an event is written with.
pub fn metadata_object(event: &NewEvent) -> Map<String, Value> {
    let mut object = Map::new();
    let m = &event.metadata;
    for (key, value) in [
        (CORRELATION_ID, &m.correlation_id),
        (CAUSATION_ID, &m.causation_id),
        (ACTOR, &m.actor),
    ] {
        if let Some(value) = value {
            object.insert(key.to_string(), Value::String(value.clone()));
        }
    }
    object.insert(
        SCHEMA_VERSION.to_string(),
        Value::String(event.schema_version.to_string()),
    );
    object
}

/// The metadata and schema version an event was written with. The server
/// may add keys of its own (`$schema.name`…); they are ignored, and so is
/// metadata that is not an object of strings (1 is the schema version of
/// an event that does not say).
pub fn metadata_of(custom: &[u8]) -> (Metadata, u16) {
    let object: Map<String, Value> = serde_json::from_slice(custom).unwrap_or_default();
    let text = |key: &str| object.get(key).and_then(Value::as_str).map(str::to_string);
    let schema_version = text(SCHEMA_VERSION)
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    (
        Metadata {
            correlation_id: text(CORRELATION_ID),
            causation_id: text(CAUSATION_ID),
            actor: text(ACTOR),
        },
        schema_version,
    )
}

/// When the server recorded an event: its `created` system metadata, in
/// ticks of 100 ns since the Unix epoch (the client crate's own field
/// keeps whole seconds only), or `fallback`.
pub fn created(ticks: Option<&str>, fallback: DateTime<Utc>) -> DateTime<Utc> {
    ticks
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ticks| DateTime::from_timestamp_micros(ticks / 10))
        .unwrap_or(fallback)
}

/// A position of `$all` here: the event's commit position. KurrentDB
/// commits every event of an append at its own log position (commit and
/// prepare positions are equal), so positions are unique and only grow.
pub fn position(p: Position) -> u64 {
    p.commit
}

/// Where a read of `$all` after `after` starts: at that event (reads are
/// inclusive; the adapter drops it), or at the start.
pub fn start_after(after: u64) -> StreamPosition<Position> {
    if after == 0 {
        StreamPosition::Start
    } else {
        StreamPosition::Position(Position {
            commit: after,
            prepare: after,
        })
    }
}

/// An event read from the server as the port records it; `None` for
/// events outside the namespace (system streams among them) and for the
/// server's own records in ours (`$`-types: a deleted stream's tombstone,
/// stream metadata), which carry no event of the shop.
pub fn recorded(
    namespace: &Namespace,
    event: &kurrentdb::RecordedEvent,
) -> Result<Option<RecordedEvent>, StoreError> {
    let Some(stream) = namespace.local(event.stream_id()) else {
        return Ok(None);
    };
    if event.event_type.starts_with('$') {
        return Ok(None);
    }
    let text = std::str::from_utf8(&event.data).map_err(|e| StoreError::Corrupt(cause(e)))?;
    let data =
        RawValue::from_string(text.to_string()).map_err(|e| StoreError::Corrupt(cause(e)))?;
    let (metadata, schema_version) = metadata_of(&event.custom_metadata);
    Ok(Some(RecordedEvent {
        event_id: event.id,
        stream: stream.to_string(),
        revision: event.revision,
        position: position(event.position),
        event_type: event.event_type.clone(),
        schema_version,
        recorded_at: created(
            event.metadata.get("created").map(String::as_str),
            event.created,
        ),
        data,
        metadata,
    }))
}

/// A regular expression matching exactly these names (only the regular
/// expression syntax is escaped: .NET refuses escapes of other characters).
fn exactly(names: &[String]) -> String {
    let escaped: Vec<String> = names
        .iter()
        .map(|n| {
            n.chars()
                .map(|c| {
                    if "\\.^$|?*+()[]{}#".contains(c) || c.is_whitespace() {
                        format!("\\{c}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    format!("^(?:{})$", escaped.join("|"))
}

/// The stream-name filter that leaves out what is not ours: the namespace
/// and stream prefix when there are any, else system streams.
fn streams_filter(namespace: &Namespace, filter: &EventFilter) -> SubscriptionFilter {
    let prefix = filter.stream_prefix.as_deref().unwrap_or("");
    if !namespace.is_empty() || !prefix.is_empty() {
        SubscriptionFilter::on_stream_name().add_prefix(namespace.wire(prefix))
    } else {
        SubscriptionFilter::on_stream_name().regex("^[^$]")
    }
}

/// The server-side filter for a read of `$all`. The server filters on one
/// thing, stream names or event types: the namespace and stream prefix go
/// to the server when there are any (and types are checked here), else the
/// types do, else system streams are left out. `EventFilter::matches` is
/// applied to every event either way.
pub fn read_filter(namespace: &Namespace, filter: &EventFilter) -> SubscriptionFilter {
    let prefix = filter.stream_prefix.as_deref().unwrap_or("");
    if namespace.is_empty() && prefix.is_empty() && !filter.types.is_empty() {
        SubscriptionFilter::on_event_type().regex(exactly(&filter.types))
    } else {
        streams_filter(namespace, filter)
    }
}

/// The server-side filter for a subscription to `$all`: by stream name
/// only, types checked here. A subscription filtered by type on the server
/// hears nothing of the events it leaves out until its next checkpoint
/// (many events later), so a subscriber could not tell that `$all` moved
/// past an event of a type it does not want: read-your-writes waits on
/// exactly that.
pub fn subscription_filter(namespace: &Namespace, filter: &EventFilter) -> SubscriptionFilter {
    streams_filter(namespace, filter)
}

/// Whether this adapter speaks a server release line: 25.1 (the layout of
/// the v2 multi-stream append it encodes; older servers lack it, newer
/// ones renumbered its messages).
pub fn supported_version(major: usize, minor: usize) -> Result<(), String> {
    if (major, minor) == (25, 1) {
        Ok(())
    } else {
        Err(format!(
            "version {major}.{minor}: shopstream speaks KurrentDB 25.1's multi-stream append"
        ))
    }
}

/// A failure of the client as the port names it. Nothing here means an
/// append was applied: only the server's answer says so.
pub fn store_error(e: kurrentdb::Error) -> StoreError {
    use kurrentdb::Error as K;
    match e {
        K::UnsupportedFeature => StoreError::Unsupported(cause(e)),
        K::InternalParsingError(_) | K::ResourceDeleted => StoreError::Corrupt(cause(e)),
        K::ServerError(_)
        | K::NotLeaderException(_)
        | K::ConnectionClosed
        | K::Grpc { .. }
        | K::GrpcConnectionError(_)
        | K::AccessDenied
        | K::ResourceAlreadyExists
        | K::ResourceNotFound
        | K::InternalClientError
        | K::DeadlineExceeded
        | K::InitializationError(_)
        | K::IllegalStateError(_)
        | K::WrongExpectedVersion { .. } => StoreError::Unavailable(cause(e)),
    }
}

/// A multi-stream append the server refused (for a reason other than a
/// revision conflict) as the port names it: what it will refuse again is
/// `Invalid`, what may pass later `Unavailable`.
pub fn session_error(status: tonic::Status) -> AppendError {
    use tonic::Code;
    match status.code() {
        Code::Unimplemented => AppendError::Store(StoreError::Unsupported(cause(status))),
        // A follower that named no leader we could reach: try again later.
        Code::FailedPrecondition if super::append_session::not_leader(&status).is_some() => {
            AppendError::Store(StoreError::Unavailable(cause(status)))
        }
        // Bad names or records, too large a transaction, a deleted stream.
        Code::InvalidArgument | Code::Aborted | Code::FailedPrecondition | Code::OutOfRange => {
            AppendError::Invalid(format!(
                "KurrentDB refused the append: {}",
                status.message()
            ))
        }
        _ => AppendError::Store(StoreError::Unavailable(cause(status))),
    }
}

/// A failed single-stream append as the port names it.
pub fn append_error(stream: &str, expected: ExpectedRevision, e: kurrentdb::Error) -> AppendError {
    match e {
        kurrentdb::Error::WrongExpectedVersion { current, .. } => AppendError::Conflict {
            stream: stream.to_string(),
            expected,
            actual: actual(current),
        },
        other => AppendError::Store(store_error(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn new_event(metadata: Metadata) -> NewEvent {
        NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "OrderPlaced".into(),
            schema_version: 3,
            data: b"{}".to_vec(),
            metadata,
        }
    }

    #[test]
    fn a_namespace_prefixes_names_and_keeps_other_streams_out() {
        let ns = Namespace::new("test-7f.");
        assert_eq!(ns.wire("order-1"), "test-7f.order-1");
        assert_eq!(ns.local("test-7f.order-1"), Some("order-1"));
        assert_eq!(ns.local("test-8a.order-1"), None, "another namespace");
        assert_eq!(ns.local("order-1"), None);
        let whole = Namespace::default();
        assert_eq!(whole.wire("order-1"), "order-1");
        assert_eq!(whole.local("order-1"), Some("order-1"));
        assert_eq!(whole.local("$stats-127.0.0.1:2113"), None, "system streams");
    }

    #[test]
    fn expectations_map_to_both_apis() {
        let all = [
            ExpectedRevision::Any,
            ExpectedRevision::NoStream,
            ExpectedRevision::StreamExists,
            ExpectedRevision::Exact(0),
            ExpectedRevision::Exact(41),
        ];
        let v1: Vec<StreamState> = all.iter().map(|e| stream_state(*e)).collect();
        assert_eq!(
            v1,
            [
                StreamState::Any,
                StreamState::NoStream,
                StreamState::StreamExists,
                StreamState::StreamRevision(0),
                StreamState::StreamRevision(41)
            ]
        );
        let v2: Vec<i64> = all.iter().map(|e| raw_expected(*e)).collect();
        assert_eq!(v2, [-2, -1, -4, 0, 41]);
        assert_eq!(raw_expected(ExpectedRevision::Exact(u64::MAX)), i64::MAX);
    }

    #[test]
    fn conflicts_report_the_actual_revision() {
        assert_eq!(actual(CurrentRevision::Current(4)), Some(4));
        assert_eq!(actual(CurrentRevision::NoStream), None);
        assert_eq!(actual_from_raw(7), Some(7));
        assert_eq!(actual_from_raw(-1), None);
        let conflict = append_error(
            "cart-1",
            ExpectedRevision::Exact(2),
            kurrentdb::Error::WrongExpectedVersion {
                expected: StreamState::StreamRevision(2),
                current: CurrentRevision::Current(5),
            },
        );
        assert!(
            matches!(&conflict, AppendError::Conflict { stream, expected: ExpectedRevision::Exact(2), actual: Some(5) } if stream == "cart-1"),
            "{conflict:?}"
        );
    }

    #[test]
    fn failures_that_say_nothing_was_written_are_unavailable() {
        for e in [
            kurrentdb::Error::DeadlineExceeded,
            kurrentdb::Error::ConnectionClosed,
            kurrentdb::Error::ServerError("leader gone".into()),
            kurrentdb::Error::NotLeaderException(kurrentdb::Endpoint {
                host: "node-2".into(),
                port: 2113,
            }),
        ] {
            let mapped = append_error("order-1", ExpectedRevision::Any, e);
            assert!(
                matches!(mapped, AppendError::Store(StoreError::Unavailable(_))),
                "{mapped:?}"
            );
        }
        assert!(matches!(
            store_error(kurrentdb::Error::UnsupportedFeature),
            StoreError::Unsupported(_)
        ));
        assert!(matches!(
            store_error(kurrentdb::Error::InternalParsingError("bad".into())),
            StoreError::Corrupt(_)
        ));
    }

    #[test]
    fn metadata_round_trips_as_an_object_of_strings() {
        let metadata = Metadata {
            correlation_id: Some("req-1".into()),
            causation_id: None,
            actor: Some("customer:c-1".into()),
        };
        let object = metadata_object(&new_event(metadata.clone()));
        assert!(object.values().all(Value::is_string), "{object:?}");
        assert_eq!(object["schema_version"], "3");
        // The server adds keys of its own; they are ignored.
        let mut stored = object.clone();
        stored.insert("$schema.name".into(), "OrderPlaced".into());
        let bytes = serde_json::to_vec(&stored).unwrap();
        assert_eq!(metadata_of(&bytes), (metadata, 3));
        assert_eq!(metadata_of(b""), (Metadata::default(), 1));
        assert_eq!(metadata_of(b"not json"), (Metadata::default(), 1));
    }

    #[test]
    fn created_keeps_microseconds_from_the_servers_ticks() {
        let fallback = DateTime::from_timestamp(0, 0).unwrap();
        // 2026-12-02T01:28:55.123456Z in 100 ns ticks since the Unix epoch.
        let at = created(Some("17961749351234567"), fallback);
        assert_eq!(
            at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "2026-12-02T01:28:55.123456Z"
        );
        assert_eq!(created(None, fallback), fallback);
        assert_eq!(created(Some("soon"), fallback), fallback);
    }

    #[test]
    fn reads_of_all_start_at_the_position_they_continue_after() {
        assert_eq!(start_after(0), StreamPosition::Start);
        assert_eq!(
            start_after(4096),
            StreamPosition::Position(Position {
                commit: 4096,
                prepare: 4096
            })
        );
        assert_eq!(
            position(Position {
                commit: 77,
                prepare: 77
            }),
            77
        );
    }

    #[test]
    fn refusals_that_would_come_again_are_invalid_the_rest_unavailable() {
        for status in [
            tonic::Status::invalid_argument("stream name"),
            tonic::Status::aborted("transaction too large"),
            tonic::Status::failed_precondition("stream deleted"),
        ] {
            assert!(matches!(session_error(status), AppendError::Invalid(_)));
        }
        assert!(matches!(
            session_error(super::super::append_session::not_leader_status(
                "db-2", 2113
            )),
            AppendError::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            session_error(tonic::Status::unavailable("not ready")),
            AppendError::Store(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            session_error(tonic::Status::unimplemented("old")),
            AppendError::Store(StoreError::Unsupported(_))
        ));
    }

    #[test]
    fn only_the_release_line_whose_append_is_encoded_is_spoken() {
        assert!(supported_version(25, 1).is_ok());
        for (major, minor) in [(24, 10), (25, 0), (25, 2), (26, 1)] {
            let refused = supported_version(major, minor).unwrap_err();
            assert!(refused.contains(&format!("{major}.{minor}")), "{refused}");
        }
    }

    #[test]
    fn reads_filter_on_the_namespace_or_the_types() {
        let ns = Namespace::new("t1.");
        let by_type = EventFilter {
            types: vec![
                "OrderPlaced".into(),
                "Cart.Item+Set".into(),
                "Étagère".into(),
            ],
            stream_prefix: None,
        };
        let f = format!("{:?}", read_filter(&ns, &by_type));
        assert!(
            f.contains("t1.") && f.contains("based_on_stream: true"),
            "{f}"
        );
        let f = format!("{:?}", read_filter(&Namespace::default(), &by_type));
        assert!(f.contains("based_on_stream: false"), "{f}");
        assert!(
            f.contains(r"^(?:OrderPlaced|Cart\\.Item\\+Set|Étagère)$"),
            "only regular expression syntax is escaped: {f}"
        );
        let by_prefix = EventFilter {
            types: vec![],
            stream_prefix: Some("order-".into()),
        };
        let f = format!("{:?}", read_filter(&ns, &by_prefix));
        assert!(f.contains("t1.order-"), "{f}");
        let f = format!(
            "{:?}",
            read_filter(&Namespace::default(), &EventFilter::default())
        );
        assert!(f.contains("^[^$]"), "system streams are left out: {f}");
    }

    #[test]
    fn subscriptions_filter_on_stream_names_only() {
        let by_type = EventFilter {
            types: vec!["OrderPlaced".into()],
            stream_prefix: None,
        };
        // Without a namespace the types stay here, so every event of ours
        // arrives and tells the subscriber how far `$all` has got.
        let f = format!("{:?}", subscription_filter(&Namespace::default(), &by_type));
        assert!(
            f.contains("based_on_stream: true") && f.contains("^[^$]"),
            "{f}"
        );
        assert!(!f.contains("OrderPlaced"), "{f}");
        let f = format!(
            "{:?}",
            subscription_filter(&Namespace::new("t1."), &by_type)
        );
        assert!(f.contains("t1.") && !f.contains("OrderPlaced"), "{f}");
    }
}
