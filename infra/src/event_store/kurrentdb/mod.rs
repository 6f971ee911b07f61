//! The production event store: KurrentDB (EventStoreDB's current name),
//! through the `kurrentdb` client crate for everything but multi-stream
//! appends, which go through the server's v2 `AppendSession`
//! ([`append_session`]).
//!
//! - **Appends**: a single stream through the client's append (any server
//!   version); several streams through `AppendSession`, atomic on the
//!   server (KurrentDB 25.1, whose message layout [`append_session`]
//!   encodes; [`KurrentDbEventStore::check_server`] refuses another release
//!   line rather than append stream by stream). A wrong
//!   expected revision is a conflict naming the server's actual revision.
//!   Nothing is reported appended unless the server acknowledged it.
//! - **Repeats**: KurrentDB recognises a repeated append by its event ids
//!   only with an exact expected revision (with `Any` it is a best-effort
//!   window lost on restart). The command service always appends with
//!   exact expectations and writes its idempotency records through the
//!   same append, so its repeats take that path. The server answers a
//!   repeat like a fresh append, so `replayed` is never set here.
//! - **Positions** are the server's commit positions, which KurrentDB gives
//!   every event of an append separately (commit equals prepare): unique,
//!   growing, with gaps. A read of `$all` continues after a position by
//!   starting at it and dropping that event; the server can only start at
//!   its own positions, so "from the event at p" asks for the position
//!   before it ([`EventStore::preceding`]), never `p - 1`.
//! - **Subscriptions** filter on the server by stream name only (the
//!   namespace, or "not a system stream") and by type here: filtered by
//!   type on the server, a subscriber would not hear that `$all` moved past
//!   events it does not want until a checkpoint many events later, and
//!   read-your-writes waits on exactly that. The server's own records in
//!   our streams (`$`-types such as a deleted stream's tombstone) are
//!   passed over, never taken for events.
//! - **Namespaces**: an optional prefix on every stream name keeps one
//!   deployment's (or one test's) streams apart on a shared server; `$all`
//!   is then read through a server-side filter on it. System streams are
//!   never read.
//! - **Failures**: an unreachable server, a leader change or a timeout is
//!   `StoreError::Unavailable`; the client reconnects on the next call.
//!   Multi-stream appends go to the first node the connection string
//!   names; a follower refuses them (writing nothing) and names the
//!   leader, where they go from then on. A refusal that would come again
//!   (a bad name, too large a transaction, a deleted stream) is
//!   `AppendError::Invalid`. An acknowledged append is never reported as
//!   failed: where its position cannot be read back, the server's word is
//!   reported.

pub mod append_session;
pub mod codec;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions,
    ReadStreamOptions, StreamPosition, SubscribeToAllOptions, SubscriptionEvent,
};
use serde_json::value::RawValue;
use tokio::sync::mpsc;

use self::append_session::{
    AppendRecord, AppendRequest, SchemaFormat, SchemaInfo, StreamsClient, revision_conflict,
};
use self::codec::Namespace;
use super::{
    AllSlice, AppendError, Appended, Direction, EventFilter, EventStore, ExpectedRevision,
    NewEvent, RecordedEvent, StoreError, StreamAppended, StreamWrite, Subscription,
};
use crate::error::cause;

/// How long one call may take before the server counts as unavailable.
const DEADLINE: Duration = Duration::from_secs(10);

/// Where the server is and which streams are ours.
#[derive(Debug, Clone)]
pub struct KurrentDbOptions {
    /// `kurrentdb://user:password@host:2113?tls=false` (the client's
    /// connection string: clusters, discovery and TLS as it supports them).
    pub url: String,
    /// A prefix for every stream name (empty: none).
    pub namespace: String,
}

/// The KurrentDB [`EventStore`].
#[derive(Clone)]
pub struct KurrentDbEventStore {
    client: Client,
    streams: StreamsClient,
    namespace: Namespace,
    /// The server, for messages (no credentials).
    server: String,
}

/// User and password from a connection string's `user:password@`.
fn credentials(url: &str) -> Option<(&str, &str)> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    userinfo.split_once(':')
}

impl KurrentDbEventStore {
    /// A store on the server the options name. Nothing is contacted yet:
    /// a server that is not up is waited for by each call (which fails
    /// with `Unavailable` meanwhile). Must run on a tokio runtime.
    pub fn connect(options: &KurrentDbOptions) -> Result<Self, StoreError> {
        let settings: ClientSettings = options
            .url
            .parse()
            .map_err(|e| StoreError::Unavailable(cause(e)))?;
        let endpoint =
            settings.hosts().first().cloned().ok_or_else(|| {
                StoreError::Unavailable(cause("the connection string names no host"))
            })?;
        let uri = settings.to_uri(&endpoint);
        let server = format!("{}:{}", endpoint.host, endpoint.port);
        let mut channel = tonic::transport::Channel::builder(uri.clone())
            .connect_timeout(DEADLINE)
            .timeout(DEADLINE);
        let tls = if settings.is_secure_mode_enabled() {
            let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = settings.tls_ca_file() {
                let pem = std::fs::read(ca).map_err(|e| StoreError::Unavailable(cause(e)))?;
                tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
            }
            channel = channel
                .tls_config(tls.clone())
                .map_err(|e| StoreError::Unavailable(cause(e)))?;
            Some(tls)
        } else {
            None
        };
        // A follower refusing an append names the leader: a channel to it.
        let scheme = if tls.is_some() { "https" } else { "http" };
        let follow = move |host: &str, port: u32| {
            let mut leader =
                tonic::transport::Channel::from_shared(format!("{scheme}://{host}:{port}"))
                    .ok()?
                    .connect_timeout(DEADLINE)
                    .timeout(DEADLINE);
            if let Some(tls) = &tls {
                leader = leader.tls_config(tls.clone()).ok()?;
            }
            Some(leader.connect_lazy())
        };
        let client = Client::new(settings)
            .map_err(|e| StoreError::Unavailable(cause(format!("the KurrentDB client: {e}"))))?;
        Ok(Self {
            client,
            streams: StreamsClient::new(channel.connect_lazy(), follow, credentials(&options.url)),
            namespace: Namespace::new(options.namespace.clone()),
            server,
        })
    }

    /// Checks that the server speaks the multi-stream append this adapter
    /// encodes: `Unsupported` for a server of another release line than
    /// 25.1 (older ones lack it, newer ones changed its messages, and
    /// shopstream will not write stream by stream instead), `Unavailable`
    /// when it cannot be reached (check again later).
    pub async fn check_server(&self) -> Result<(), StoreError> {
        let info = self
            .client
            .server_info()
            .await
            .map_err(codec::store_error)?;
        let version = info.version();
        codec::supported_version(version.major(), version.minor()).map_err(|why| {
            StoreError::Unsupported(cause(format!("KurrentDB at {}: {why}", self.server)))
        })?;
        match self.streams.supports_append_session().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::Unsupported(cause(format!(
                "KurrentDB at {} has no multi-stream append (StreamsService/AppendSession): \
                 shopstream needs KurrentDB 25.1",
                self.server
            )))),
            Err(status) => Err(StoreError::Unavailable(cause(status))),
        }
    }

    fn event_data(event: &NewEvent) -> Result<EventData, AppendError> {
        let text = std::str::from_utf8(&event.data)
            .map_err(|_| AppendError::Invalid("event data is not UTF-8 JSON".into()))?;
        let raw = RawValue::from_string(text.to_string())
            .map_err(|_| AppendError::Invalid("event data is not JSON".into()))?;
        EventData::json(&event.event_type, &raw)
            .and_then(|data| {
                data.id(event.event_id)
                    .metadata_as_json(&codec::metadata_object(event))
            })
            .map_err(|e| AppendError::Invalid(format!("an event cannot be encoded: {e}")))
    }

    fn record(event: &NewEvent) -> AppendRecord {
        AppendRecord {
            record_id: Some(event.event_id.to_string()),
            timestamp: None,
            properties: codec::metadata_object(event)
                .into_iter()
                .filter_map(|(k, v)| {
                    let text = v.as_str()?.to_string();
                    Some((
                        k,
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StringValue(text)),
                        },
                    ))
                })
                .collect(),
            schema: Some(SchemaInfo {
                format: SchemaFormat::Json as i32,
                name: event.event_type.clone(),
                id: None,
            }),
            data: event.data.clone(),
        }
    }

    /// The position of a stream's event at `revision`, read back after an
    /// acknowledged append (whose answer does not give it). The append is
    /// durable whatever happens here: when the read fails, `known` (what
    /// the server did say) is reported rather than a failure.
    async fn position_of(&self, stream: &str, revision: u64, known: u64) -> u64 {
        match self
            .read_stream(stream, Some(revision), Direction::Backward, 1)
            .await
        {
            Ok(events) => events.first().map_or(known, |e| e.position.max(known)),
            Err(e) => {
                tracing::warn!(
                    stream,
                    error = %crate::error::Report(&e),
                    "an acknowledged append's position could not be read back"
                );
                known
            }
        }
    }

    async fn append_one(&self, write: StreamWrite) -> Result<Appended, AppendError> {
        let wire = self.namespace.wire(&write.stream);
        let events = write
            .events
            .iter()
            .map(Self::event_data)
            .collect::<Result<Vec<_>, _>>()?;
        let count = events.len();
        let options = AppendToStreamOptions::default()
            .stream_state(codec::stream_state(write.expected))
            .deadline(DEADLINE);
        let written = self
            .client
            .append_to_stream(wire, &options, events)
            .await
            .map_err(|e| codec::append_error(&write.stream, write.expected, e))?;
        let (revision, position) = match count {
            // Only the expectation was checked: the stream is as expected.
            0 => {
                let revision = match write.expected {
                    ExpectedRevision::Exact(r) => Some(r),
                    ExpectedRevision::NoStream => None,
                    _ => self.current_revision(&write.stream).await?,
                };
                (revision, self.head_position().await?)
            }
            // One event is committed at its own position (a repeat may
            // come back without one: read it then).
            1 if codec::position(written.position) > 0 => (
                Some(written.next_expected_version),
                codec::position(written.position),
            ),
            // The server reports one position for the append; its last
            // event's is read back rather than assumed.
            _ => (
                Some(written.next_expected_version),
                self.position_of(
                    &write.stream,
                    written.next_expected_version,
                    codec::position(written.position),
                )
                .await,
            ),
        };
        Ok(Appended {
            streams: vec![StreamAppended {
                stream: write.stream,
                revision,
            }],
            position,
            replayed: false,
        })
    }

    async fn current_revision(&self, stream: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .read_stream(stream, None, Direction::Backward, 1)
            .await?
            .first()
            .map(|e| e.revision))
    }

    async fn append_many(&self, writes: Vec<StreamWrite>) -> Result<Appended, AppendError> {
        // The server tells stream names apart without case.
        let mut seen = HashSet::new();
        if let Some(twice) = writes
            .iter()
            .find(|w| !seen.insert(w.stream.to_ascii_lowercase()))
        {
            return Err(AppendError::Invalid(format!(
                "stream {} appears twice in one append",
                twice.stream
            )));
        }
        if writes.iter().all(|w| w.events.is_empty()) {
            // Nothing to write, only expectations to check: the server
            // takes one such check per append. Nothing is written either
            // way, so checking one stream after another is the same.
            let mut checked = Appended {
                streams: Vec::with_capacity(writes.len()),
                position: 0,
                replayed: false,
            };
            for write in writes {
                let one = self.append_one(write).await?;
                checked.position = checked.position.max(one.position);
                checked.streams.extend(one.streams);
            }
            return Ok(checked);
        }
        let requests = writes
            .iter()
            .map(|w| AppendRequest {
                stream: self.namespace.wire(&w.stream),
                records: w.events.iter().map(Self::record).collect(),
                expected_revision: Some(codec::raw_expected(w.expected)),
            })
            .collect();
        let answer = self
            .streams
            .append_session(requests)
            .await
            .map_err(|status| {
                if let Some(conflict) = revision_conflict(&status) {
                    let stream = self
                        .namespace
                        .local(&conflict.stream)
                        .unwrap_or(&conflict.stream)
                        .to_string();
                    let expected = writes
                        .iter()
                        .find(|w| w.stream == stream)
                        .map_or(ExpectedRevision::Any, |w| w.expected);
                    return AppendError::Conflict {
                        stream,
                        expected,
                        actual: codec::actual_from_raw(conflict.actual_revision),
                    };
                }
                codec::session_error(status)
            })?;
        let outcomes: HashMap<&str, i64> = answer
            .output
            .iter()
            .map(|o| (o.stream.as_str(), o.stream_revision))
            .collect();
        let mut streams = Vec::with_capacity(writes.len());
        for write in &writes {
            let reported = outcomes.get(self.namespace.wire(&write.stream).as_str());
            let revision = match (write.events.is_empty(), write.expected, reported) {
                // Only checked: the stream is as it was expected to be.
                (true, ExpectedRevision::Exact(r), _) => Some(r),
                (true, ExpectedRevision::NoStream, _) => None,
                (false, _, Some(raw)) => codec::actual_from_raw(*raw),
                _ => self.current_revision(&write.stream).await?,
            };
            streams.push(StreamAppended {
                stream: write.stream.clone(),
                revision,
            });
        }
        let mut position = u64::try_from(answer.position).unwrap_or(0);
        let last = writes
            .iter()
            .zip(&streams)
            .rev()
            .find(|(w, _)| !w.events.is_empty());
        if let Some((
            write,
            StreamAppended {
                revision: Some(r), ..
            },
        )) = last
        {
            position = self.position_of(&write.stream, *r, position).await;
        }
        Ok(Appended {
            streams,
            position,
            replayed: false,
        })
    }

    /// Events read from a server stream, ours only, in order; with how
    /// many records the server sent and the furthest position among them.
    /// A stream that does not exist reads as empty; `$all` always exists,
    /// so there "not found" is a failure, never the end.
    async fn collect(
        &self,
        mut stream: kurrentdb::ReadStream,
        limit: usize,
        of_all: bool,
    ) -> Result<Collected, StoreError> {
        let mut collected = Collected::default();
        loop {
            let next = match stream.next().await {
                Ok(Some(resolved)) => resolved,
                Ok(None) => break,
                Err(kurrentdb::Error::ResourceNotFound) if !of_all => break,
                Err(e) => return Err(codec::store_error(e)),
            };
            collected.read += 1;
            let original = resolved_event(&next);
            collected.furthest = collected.furthest.max(codec::position(original.position));
            if let Some(event) = codec::recorded(&self.namespace, original)? {
                collected.events.push(event);
            }
            if collected.events.len() >= limit {
                break;
            }
        }
        Ok(collected)
    }
}

/// What a read from the server gave.
#[derive(Default)]
struct Collected {
    events: Vec<RecordedEvent>,
    /// Records the server sent (ours or not).
    read: usize,
    /// The furthest position among them.
    furthest: u64,
}

fn resolved_event(resolved: &kurrentdb::ResolvedEvent) -> &kurrentdb::RecordedEvent {
    resolved.get_original_event()
}

#[async_trait]
impl EventStore for KurrentDbEventStore {
    async fn append(&self, mut writes: Vec<StreamWrite>) -> Result<Appended, AppendError> {
        match writes.len() {
            0 => Err(AppendError::Invalid(
                "an append needs at least one stream".into(),
            )),
            1 => self.append_one(writes.remove(0)).await,
            _ => self.append_many(writes).await,
        }
    }

    async fn read_stream(
        &self,
        stream: &str,
        from: Option<u64>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let start = match (from, direction) {
            (Some(r), _) => StreamPosition::Position(r),
            (None, Direction::Forward) => StreamPosition::Start,
            (None, Direction::Backward) => StreamPosition::End,
        };
        // `position` sets a direction of its own; the one asked for wins.
        let options = ReadStreamOptions::default().position(start);
        let options = match direction {
            Direction::Forward => options.forwards(),
            Direction::Backward => options.backwards(),
        }
        .max_count(limit.max(1))
        .deadline(DEADLINE);
        let read = match self
            .client
            .read_stream(self.namespace.wire(stream), &options)
            .await
        {
            Ok(read) => read,
            Err(kurrentdb::Error::ResourceNotFound) => return Ok(vec![]),
            Err(e) => return Err(codec::store_error(e)),
        };
        Ok(self.collect(read, limit.max(1), false).await?.events)
    }

    async fn read_all(
        &self,
        after: u64,
        filter: &EventFilter,
        limit: usize,
    ) -> Result<AllSlice, StoreError> {
        let limit = limit.max(1);
        // Taken first: every event up to it is committed before the read.
        let head = self.head_position().await?;
        // One more than asked for: the event at `after` itself comes back.
        let asked = limit.saturating_add(1);
        let options = ReadAllOptions::default()
            .position(codec::start_after(after))
            .forwards()
            .filter(codec::read_filter(&self.namespace, filter))
            .max_count(asked)
            .deadline(DEADLINE);
        let read = self
            .client
            .read_all(&options)
            .await
            .map_err(codec::store_error)?;
        let Collected {
            events,
            read: returned,
            furthest,
        } = self.collect(read, usize::MAX, true).await?;
        let last_seen = furthest.max(after);
        let mut events: Vec<RecordedEvent> = events
            .into_iter()
            .filter(|e| e.position > after && filter.matches(&e.event_type, &e.stream))
            .collect();
        events.truncate(limit);
        let scanned_to = if returned < asked {
            // The server had nothing more: the read looked to the head.
            last_seen.max(head).max(after)
        } else if events.len() == limit {
            events.last().map_or(after, |e| e.position)
        } else {
            last_seen.max(after)
        };
        Ok(AllSlice { events, scanned_to })
    }

    async fn subscribe_all(
        &self,
        after: u64,
        filter: EventFilter,
    ) -> Result<Box<dyn Subscription>, StoreError> {
        let options = SubscribeToAllOptions::default()
            .position(codec::start_after(after))
            .filter(codec::subscription_filter(&self.namespace, &filter));
        let mut subscription = self.client.subscribe_to_all(&options).await;
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let namespace = self.namespace.clone();
        let pump = tokio::spawn(async move {
            loop {
                let item = match subscription.next_subscription_event().await {
                    Ok(SubscriptionEvent::EventAppeared(resolved)) => {
                        let original = resolved_event(&resolved);
                        let position = codec::position(original.position);
                        match codec::recorded(&namespace, original) {
                            Ok(Some(event)) if filter.matches(&event.event_type, &event.stream) => {
                                Ok(Seen::Event(event))
                            }
                            Ok(_) => Ok(Seen::Past(position)),
                            Err(e) => Err(e),
                        }
                    }
                    Ok(SubscriptionEvent::Checkpoint(position)) => {
                        Ok(Seen::Past(codec::position(position)))
                    }
                    Ok(_) => continue,
                    Err(e) => Err(codec::store_error(e)),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Box::new(KurrentDbSubscription {
            rx,
            after,
            pump: pump.abort_handle(),
        }))
    }

    async fn preceding(&self, position: u64) -> Result<u64, StoreError> {
        // A read backwards from an event's position starts just before it.
        self.last_before(StreamPosition::Position(Position {
            commit: position,
            prepare: position,
        }))
        .await
    }

    async fn head_position(&self) -> Result<u64, StoreError> {
        self.last_before(StreamPosition::End).await
    }
}

impl KurrentDbEventStore {
    /// The position of the last record of `$all` before `end` (0: none).
    async fn last_before(&self, end: StreamPosition<Position>) -> Result<u64, StoreError> {
        let options = ReadAllOptions::default()
            .position(end)
            .backwards()
            .max_count(1)
            .deadline(DEADLINE);
        let mut read = self
            .client
            .read_all(&options)
            .await
            .map_err(codec::store_error)?;
        match read.next().await {
            Ok(Some(resolved)) => Ok(codec::position(resolved_event(&resolved).position)),
            Ok(None) => Ok(0),
            Err(e) => Err(codec::store_error(e)),
        }
    }
}

/// Events a subscription has delivered but its reader not yet taken.
const SUBSCRIPTION_BUFFER: usize = 4096;

/// What a subscription's pump saw: an event of ours, or only that `$all`
/// is past a position (a filtered-out event, or a server checkpoint).
enum Seen {
    Event(RecordedEvent),
    Past(u64),
}

/// A catch-up subscription to `$all`: a task reads the server's stream
/// into a channel, so a slice takes whatever is waiting at once and a
/// caller that stops waiting loses nothing.
struct KurrentDbSubscription {
    rx: mpsc::Receiver<Result<Seen, StoreError>>,
    after: u64,
    /// The task reading the server's stream: stopped with the
    /// subscription, so the server's subscription closes too (on a quiet
    /// server it would otherwise wait for the next event).
    pump: tokio::task::AbortHandle,
}

impl Drop for KurrentDbSubscription {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl KurrentDbSubscription {
    fn take(&mut self, seen: Seen, events: &mut Vec<RecordedEvent>) {
        match seen {
            Seen::Event(event) if event.position > self.after => {
                self.after = event.position;
                events.push(event);
            }
            Seen::Event(_) => {}
            Seen::Past(position) => self.after = self.after.max(position),
        }
    }
}

#[async_trait]
impl Subscription for KurrentDbSubscription {
    async fn next(&mut self) -> Result<AllSlice, StoreError> {
        let before = self.after;
        let mut events = Vec::new();
        loop {
            // The pump ends only after sending its failure: a channel
            // closed without one means it died.
            let first = self.rx.recv().await.ok_or_else(|| {
                StoreError::Unavailable(cause("the subscription's reader stopped"))
            })??;
            self.take(first, &mut events);
            while events.len() < 1024 {
                match self.rx.try_recv() {
                    Ok(item) => self.take(item?, &mut events),
                    Err(_) => break,
                }
            }
            if self.after > before {
                return Ok(AllSlice {
                    events,
                    scanned_to: self.after,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_the_connection_string() {
        assert_eq!(
            credentials("kurrentdb://admin:changeit@db:2113?tls=false"),
            Some(("admin", "changeit"))
        );
        assert_eq!(credentials("kurrentdb://db:2113"), None);
        assert_eq!(
            credentials("kurrentdb+discover://ops:s3cret@a:2113,b:2113"),
            Some(("ops", "s3cret"))
        );
    }

    #[tokio::test]
    async fn a_connection_string_is_parsed_without_contacting_the_server() {
        let store = KurrentDbEventStore::connect(&KurrentDbOptions {
            url: "kurrentdb://admin:changeit@127.0.0.1:9?tls=false".into(),
            namespace: "t.".into(),
        })
        .expect("a valid connection string");
        assert_eq!(store.server, "127.0.0.1:9");
        let unreachable = store.check_server().await;
        assert!(
            matches!(unreachable, Err(StoreError::Unavailable(_))),
            "{unreachable:?}"
        );
        let bad = KurrentDbEventStore::connect(&KurrentDbOptions {
            url: "mysql://nope".into(),
            namespace: String::new(),
        });
        assert!(matches!(bad, Err(StoreError::Unavailable(_))));
    }

    #[test]
    fn an_event_becomes_a_record_with_its_id_type_data_and_metadata() {
        let event = NewEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: "CartCreated".into(),
            schema_version: 2,
            data: br#"{"cart_id":"c"}"#.to_vec(),
            metadata: crate::event_store::Metadata {
                correlation_id: Some("req-9".into()),
                causation_id: None,
                actor: Some("system".into()),
            },
        };
        let record = KurrentDbEventStore::record(&event);
        assert_eq!(record.record_id, Some(event.event_id.to_string()));
        assert_eq!(record.data, event.data);
        let schema = record.schema.expect("a schema");
        assert_eq!(
            (schema.name.as_str(), schema.format),
            ("CartCreated", SchemaFormat::Json as i32)
        );
        let text = |k: &str| match record.properties.get(k).and_then(|v| v.kind.clone()) {
            Some(prost_types::value::Kind::StringValue(s)) => Some(s),
            _ => None,
        };
        assert_eq!(text("correlation_id").as_deref(), Some("req-9"));
        assert_eq!(text("schema_version").as_deref(), Some("2"));
        assert_eq!(text("causation_id"), None);
        assert!(KurrentDbEventStore::event_data(&event).is_ok());
        let not_json = NewEvent {
            data: b"{oops".to_vec(),
            ..event
        };
        assert!(matches!(
            KurrentDbEventStore::event_data(&not_json),
            Err(AppendError::Invalid(_))
        ));
    }
}
