//! KurrentDB's atomic multi-stream append: the v2 streams service's
//! `AppendSession`, a client-streaming call of one `AppendRequest` per
//! stream answered once, all or nothing. The `kurrentdb` crate (1.2) does
//! not offer it and keeps its gRPC connection private, so this is a small
//! tonic client of our own.
//!
//! The messages are written out here with prost's derives rather than
//! generated from the server's `.proto` files: they are few, and this
//! keeps protoc out of the build. They follow
//! `proto/kurrentdb/protocol/v2/streams/streams.proto` and
//! `.../streams/errors.proto` of the KurrentDB repository as KurrentDB
//! 25.1 speaks them (field numbers below). Later servers changed
//! `AppendRecord`'s field numbers, so the deployment pins 25.1 (see
//! `docker-compose.yml`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine;
use prost::Message;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;

/// `kurrentdb.protocol.v2.streams.AppendRequest`: one stream's records
/// and the revision it is expected at.
#[derive(Clone, PartialEq, Message)]
pub struct AppendRequest {
    #[prost(string, tag = "1")]
    pub stream: String,
    #[prost(message, repeated, tag = "2")]
    pub records: Vec<AppendRecord>,
    /// A revision, or -1 (no stream), -2 (any), -4 (the stream exists).
    #[prost(sint64, optional, tag = "3")]
    pub expected_revision: Option<i64>,
}

/// `AppendRecord` (25.1 layout).
#[derive(Clone, PartialEq, Message)]
pub struct AppendRecord {
    #[prost(string, optional, tag = "1")]
    pub record_id: Option<String>,
    #[prost(int64, optional, tag = "2")]
    pub timestamp: Option<i64>,
    /// What the server keeps as the event's metadata object.
    #[prost(map = "string, message", tag = "3")]
    pub properties: HashMap<String, prost_types::Value>,
    #[prost(message, optional, tag = "4")]
    pub schema: Option<SchemaInfo>,
    #[prost(bytes = "vec", tag = "5")]
    pub data: Vec<u8>,
}

/// `SchemaInfo`: the event type (`name`) and how its data is encoded.
#[derive(Clone, PartialEq, Message)]
pub struct SchemaInfo {
    #[prost(enumeration = "SchemaFormat", tag = "1")]
    pub format: i32,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, optional, tag = "3")]
    pub id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SchemaFormat {
    Unspecified = 0,
    Json = 1,
    Protobuf = 2,
    Avro = 3,
    Bytes = 4,
}

/// One stream's outcome.
#[derive(Clone, PartialEq, Message)]
pub struct AppendResponse {
    #[prost(string, tag = "1")]
    pub stream: String,
    /// The revision of the stream's last record written.
    #[prost(int64, tag = "2")]
    pub stream_revision: i64,
    #[prost(int64, optional, tag = "4")]
    pub position: Option<i64>,
}

/// The session's outcome: every stream's, in request order.
#[derive(Clone, PartialEq, Message)]
pub struct AppendSessionResponse {
    #[prost(message, repeated, tag = "1")]
    pub output: Vec<AppendResponse>,
    /// The commit position of the append.
    #[prost(int64, tag = "2")]
    pub position: i64,
}

/// `kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails`.
#[derive(Clone, PartialEq, Message)]
pub struct StreamRevisionConflictErrorDetails {
    #[prost(string, tag = "1")]
    pub stream: String,
    #[prost(int64, tag = "2")]
    pub expected_revision: i64,
    /// The stream's revision (negative: no stream).
    #[prost(int64, tag = "3")]
    pub actual_revision: i64,
}

/// `google.rpc.Status`, which carries an error's details.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// `kurrent.rpc.NotLeaderNodeErrorDetails`: a follower's refusal, naming
/// the leader.
#[derive(Clone, PartialEq, Message)]
pub struct NotLeaderNodeErrorDetails {
    #[prost(message, optional, tag = "1")]
    pub current_leader: Option<NodeInfo>,
}

#[derive(Clone, PartialEq, Message)]
pub struct NodeInfo {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(int32, tag = "2")]
    pub port: i32,
    #[prost(string, optional, tag = "3")]
    pub node_id: Option<String>,
}

const NOT_LEADER_TYPE: &str = "type.googleapis.com/kurrent.rpc.NotLeaderNodeErrorDetails";

pub const APPEND_SESSION: &str = "/kurrentdb.protocol.v2.streams.StreamsService/AppendSession";

const CONFLICT_TYPE: &str =
    "type.googleapis.com/kurrentdb.protocol.v2.streams.errors.StreamRevisionConflictErrorDetails";

/// The details of a revision conflict, if the status carries them.
pub fn revision_conflict(status: &tonic::Status) -> Option<StreamRevisionConflictErrorDetails> {
    let details = RpcStatus::decode(status.details()).ok()?;
    details
        .details
        .iter()
        .find(|any| any.type_url == CONFLICT_TYPE)
        .and_then(|any| StreamRevisionConflictErrorDetails::decode(any.value.as_slice()).ok())
}

/// A status whose details say the stream was not at the expected
/// revision (what the server sends; tests of this client build it too).
pub fn conflict_status(details: StreamRevisionConflictErrorDetails) -> tonic::Status {
    let message = format!("stream {} is at another revision", details.stream);
    failed_precondition(message, CONFLICT_TYPE, details.encode_to_vec())
}

/// A follower's refusal naming the leader, as the v2 API sends it.
pub fn not_leader_status(host: &str, port: u32) -> tonic::Status {
    let details = NotLeaderNodeErrorDetails {
        current_leader: Some(NodeInfo {
            host: host.to_string(),
            port: port as i32,
            node_id: None,
        }),
    };
    failed_precondition(
        "not the leader".into(),
        NOT_LEADER_TYPE,
        details.encode_to_vec(),
    )
}

fn failed_precondition(message: String, type_url: &str, value: Vec<u8>) -> tonic::Status {
    let status = RpcStatus {
        code: Code::FailedPrecondition as i32,
        message: message.clone(),
        details: vec![prost_types::Any {
            type_url: type_url.to_string(),
            value,
        }],
    };
    tonic::Status::with_details(
        Code::FailedPrecondition,
        message,
        status.encode_to_vec().into(),
    )
}

/// The streams service of one server.
#[derive(Clone)]
pub struct StreamsClient {
    /// The node appends go to: the first one named, then the leader a
    /// follower points at.
    channel: Arc<RwLock<Channel>>,
    connect: Arc<Connect>,
    authorization: Option<MetadataValue<Ascii>>,
}

/// Makes a channel to another node (`host`, `port`), for following the
/// leader.
type Connect = dyn Fn(&str, u32) -> Option<Channel> + Send + Sync;

/// The leader a follower's refusal names, if it is one: the v2 API's
/// `NotLeaderNodeErrorDetails` in the status details (`FAILED_PRECONDITION`),
/// or the v1 API's `leader-endpoint-*` trailers.
pub fn not_leader(status: &tonic::Status) -> Option<(String, u32)> {
    let in_details = RpcStatus::decode(status.details())
        .ok()
        .and_then(|details| {
            details
                .details
                .into_iter()
                .find(|any| any.type_url == NOT_LEADER_TYPE)
        })
        .and_then(|any| NotLeaderNodeErrorDetails::decode(any.value.as_slice()).ok())
        .and_then(|details| details.current_leader)
        .and_then(|leader| Some((leader.host, u32::try_from(leader.port).ok()?)));
    if let Some((host, port)) = in_details.filter(|(host, _)| !host.is_empty()) {
        return Some((host, port));
    }
    let metadata = status.metadata();
    if metadata.get("exception").and_then(|v| v.to_str().ok()) != Some("not-leader") {
        return None;
    }
    let host = metadata.get("leader-endpoint-host")?.to_str().ok()?;
    let port = metadata
        .get("leader-endpoint-port")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some((host.to_string(), port))
}

impl StreamsClient {
    /// A client on `channel`, authenticating with basic credentials, that
    /// follows a follower's pointer to the leader through `connect`.
    pub fn new(
        channel: Channel,
        connect: impl Fn(&str, u32) -> Option<Channel> + Send + Sync + 'static,
        credentials: Option<(&str, &str)>,
    ) -> Self {
        let authorization = credentials.and_then(|(user, password)| {
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            MetadataValue::try_from(format!("Basic {token}")).ok()
        });
        Self {
            channel: Arc::new(RwLock::new(channel)),
            connect: Arc::new(connect),
            authorization,
        }
    }

    /// Appends every request's records atomically. A follower refuses
    /// (writing nothing) and names the leader; the append goes there once.
    pub async fn append_session(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<AppendSessionResponse, tonic::Status> {
        match self.session(requests.clone()).await {
            Err(status) => match not_leader(&status).and_then(|(host, port)| {
                let channel = (self.connect)(&host, port)?;
                Some(channel)
            }) {
                Some(leader) => {
                    if let Ok(mut current) = self.channel.write() {
                        *current = leader;
                    }
                    self.session(requests).await
                }
                None => Err(status),
            },
            answered => answered,
        }
    }

    async fn session(
        &self,
        requests: Vec<AppendRequest>,
    ) -> Result<AppendSessionResponse, tonic::Status> {
        let channel = self
            .channel
            .read()
            .map_err(|_| tonic::Status::internal("channel lock poisoned"))?
            .clone();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(format!("no connection: {e}")))?;
        let mut request = tonic::Request::new(futures::stream::iter(requests));
        if let Some(authorization) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", authorization.clone());
        }
        let codec = tonic::codec::ProstCodec::<AppendRequest, AppendSessionResponse>::default();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(APPEND_SESSION);
        Ok(grpc
            .client_streaming(request, path, codec)
            .await?
            .into_inner())
    }

    /// Whether the server offers `AppendSession`: an empty session is
    /// refused as such by a server that has it (and writes nothing), and
    /// is unknown to one that does not.
    pub async fn supports_append_session(&self) -> Result<bool, tonic::Status> {
        match self.append_session(vec![]).await {
            Ok(_) => Ok(true),
            Err(status) => match status.code() {
                Code::FailedPrecondition | Code::InvalidArgument => Ok(true),
                Code::Unimplemented => Ok(false),
                _ => Err(status),
            },
        }
    }
}

#[cfg(test)]
// tonic's own `Status` is what a gRPC service answers with.
#[allow(clippy::result_large_err)]
pub(crate) mod test_server {
    //! A gRPC server of the same messages, to check what this client sends
    //! and how it reads answers. It tests our client, not KurrentDB: it
    //! answers whatever a test tells it to.

    use std::convert::Infallible;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};

    use futures::StreamExt;
    use tonic::codegen::{BoxFuture, Service, http};
    use tonic::server::{ClientStreamingService, NamedService};

    use super::*;

    /// What the server saw, and what it answers.
    #[derive(Default)]
    pub struct Script {
        pub received: Vec<(Option<String>, Vec<AppendRequest>)>,
        pub answer: Option<Result<AppendSessionResponse, tonic::Status>>,
    }

    #[derive(Clone)]
    pub struct StreamsServer {
        pub script: Arc<Mutex<Script>>,
        /// Answers `UNIMPLEMENTED`, as a server older than 25.1 does.
        pub old: bool,
        /// Refuses as a follower would, naming this leader.
        pub follower_of: Option<(String, u32)>,
    }

    impl NamedService for StreamsServer {
        const NAME: &'static str = "kurrentdb.protocol.v2.streams.StreamsService";
    }

    struct Session(Arc<Mutex<Script>>);

    impl ClientStreamingService<AppendRequest> for Session {
        type Response = AppendSessionResponse;
        type Future = BoxFuture<tonic::Response<AppendSessionResponse>, tonic::Status>;

        fn call(
            &mut self,
            request: tonic::Request<tonic::Streaming<AppendRequest>>,
        ) -> Self::Future {
            let script = self.0.clone();
            Box::pin(async move {
                let authorization = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut stream = request.into_inner();
                let mut requests = Vec::new();
                while let Some(next) = stream.next().await {
                    requests.push(next?);
                }
                let mut script = script.lock().expect("unpoisoned");
                let empty = requests.is_empty();
                script.received.push((authorization, requests));
                if empty {
                    return Err(tonic::Status::failed_precondition("no requests"));
                }
                script
                    .answer
                    .take()
                    .unwrap_or_else(|| Err(tonic::Status::internal("no answer scripted")))
                    .map(tonic::Response::new)
            })
        }
    }

    impl<B> Service<http::Request<B>> for StreamsServer
    where
        B: tonic::codegen::Body + Send + 'static,
        B::Error: Into<tonic::codegen::StdError> + Send + 'static,
    {
        type Response = http::Response<tonic::body::Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<B>) -> Self::Future {
            let (script, old, leader) = (self.script.clone(), self.old, self.follower_of.clone());
            Box::pin(async move {
                if old || request.uri().path() != APPEND_SESSION {
                    return Ok(tonic::Status::unimplemented("no such method").into_http());
                }
                if let Some((host, port)) = leader {
                    return Ok(not_leader_status(&host, port).into_http());
                }
                let codec =
                    tonic::codec::ProstCodec::<AppendSessionResponse, AppendRequest>::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.client_streaming(Session(script), request).await)
            })
        }
    }

    /// Serves on a random local port; the client's channel to it.
    pub async fn start(server: StreamsServer) -> Channel {
        start_at(server).await.0
    }

    /// Serves on a random local port; the channel and the port.
    pub async fn start_at(server: StreamsServer) -> (Channel, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let address = listener.local_addr().expect("an address");
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server)
                .serve_with_incoming(incoming),
        );
        let channel = Channel::from_shared(format!("http://{address}"))
            .expect("a valid uri")
            .connect_lazy();
        (channel, address.port())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::test_server::{Script, StreamsServer, start, start_at};
    use super::*;

    fn record(id: &str) -> AppendRecord {
        AppendRecord {
            record_id: Some(id.into()),
            timestamp: None,
            properties: HashMap::from([(
                "actor".to_string(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue("system".into())),
                },
            )]),
            schema: Some(SchemaInfo {
                format: SchemaFormat::Json as i32,
                name: "OrderPlaced".into(),
                id: None,
            }),
            data: br#"{"n":1}"#.to_vec(),
        }
    }

    fn server(answer: Option<Result<AppendSessionResponse, tonic::Status>>) -> StreamsServer {
        StreamsServer {
            script: Arc::new(Mutex::new(Script {
                received: vec![],
                answer,
            })),
            old: false,
            follower_of: None,
        }
    }

    #[tokio::test]
    async fn a_session_sends_each_stream_once_and_reads_the_outcome() {
        let answer = AppendSessionResponse {
            output: vec![
                AppendResponse {
                    stream: "order-1".into(),
                    stream_revision: 0,
                    position: None,
                },
                AppendResponse {
                    stream: "inventory-A".into(),
                    stream_revision: 4,
                    position: None,
                },
            ],
            position: 9_000,
        };
        let s = server(Some(Ok(answer.clone())));
        let client = StreamsClient::new(
            start(s.clone()).await,
            |_: &str, _: u32| None,
            Some(("admin", "changeit")),
        );
        let requests = vec![
            AppendRequest {
                stream: "order-1".into(),
                records: vec![record("a"), record("b")],
                expected_revision: Some(-1),
            },
            AppendRequest {
                stream: "inventory-A".into(),
                records: vec![record("c")],
                expected_revision: Some(3),
            },
        ];
        let outcome = client.append_session(requests.clone()).await.unwrap();
        assert_eq!(outcome, answer);
        let script = s.script.lock().unwrap();
        let (authorization, received) = &script.received[0];
        assert_eq!(received, &requests, "every request arrives, in order");
        assert_eq!(
            authorization.as_deref(),
            Some("Basic YWRtaW46Y2hhbmdlaXQ="),
            "basic credentials"
        );
    }

    #[tokio::test]
    async fn a_conflict_names_the_stream_and_its_actual_revision() {
        let details = StreamRevisionConflictErrorDetails {
            stream: "inventory-A".into(),
            expected_revision: 3,
            actual_revision: 5,
        };
        let s = server(Some(Err(conflict_status(details.clone()))));
        let client = StreamsClient::new(start(s).await, |_: &str, _: u32| None, None);
        let refused = client
            .append_session(vec![AppendRequest {
                stream: "inventory-A".into(),
                records: vec![record("a")],
                expected_revision: Some(3),
            }])
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition);
        assert_eq!(revision_conflict(&refused), Some(details));
        assert_eq!(
            revision_conflict(&tonic::Status::unavailable("down")),
            None,
            "other failures carry no conflict"
        );
    }

    #[tokio::test]
    async fn an_empty_session_tells_whether_the_server_has_it() {
        let s = server(None);
        let client = StreamsClient::new(start(s.clone()).await, |_: &str, _: u32| None, None);
        assert!(client.supports_append_session().await.unwrap());
        assert!(
            s.script.lock().unwrap().received[0].1.is_empty(),
            "the probe sends no records"
        );
        let old = StreamsServer { old: true, ..s };
        let client = StreamsClient::new(start(old).await, |_: &str, _: u32| None, None);
        assert!(!client.supports_append_session().await.unwrap());
    }

    #[test]
    fn the_leader_is_read_from_the_v2_details_or_the_v1_trailers() {
        assert_eq!(
            not_leader(&not_leader_status("db-2", 2113)),
            Some(("db-2".to_string(), 2113))
        );
        let mut v1 = tonic::Status::not_found("leader info available");
        let m = v1.metadata_mut();
        m.insert("exception", "not-leader".parse().unwrap());
        m.insert("leader-endpoint-host", "db-3".parse().unwrap());
        m.insert("leader-endpoint-port", "2114".parse().unwrap());
        assert_eq!(not_leader(&v1), Some(("db-3".to_string(), 2114)));
        assert_eq!(not_leader(&tonic::Status::failed_precondition("no")), None);
        let conflict = conflict_status(StreamRevisionConflictErrorDetails {
            stream: "order-1".into(),
            expected_revision: 1,
            actual_revision: 2,
        });
        assert_eq!(not_leader(&conflict), None, "a conflict names no leader");
    }

    #[tokio::test]
    async fn a_follower_sends_the_append_to_the_leader_it_names() {
        let answer = AppendSessionResponse {
            output: vec![],
            position: 1,
        };
        let leader = server(Some(Ok(answer.clone())));
        let (_, leader_port) = start_at(leader.clone()).await;
        let follower = StreamsServer {
            follower_of: Some(("127.0.0.1".into(), u32::from(leader_port))),
            ..server(None)
        };
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let client = StreamsClient::new(
            start(follower.clone()).await,
            move |host: &str, port: u32| {
                seen.lock().unwrap().push((host.to_string(), port));
                Some(
                    Channel::from_shared(format!("http://{host}:{port}"))
                        .ok()?
                        .connect_lazy(),
                )
            },
            None,
        );
        let request = AppendRequest {
            stream: "order-1".into(),
            records: vec![record("a")],
            expected_revision: Some(-1),
        };
        assert_eq!(
            client.append_session(vec![request.clone()]).await.unwrap(),
            answer
        );
        assert_eq!(
            *asked.lock().unwrap(),
            [("127.0.0.1".to_string(), u32::from(leader_port))]
        );
        assert_eq!(leader.script.lock().unwrap().received[0].1, [request]);
        assert!(
            follower.script.lock().unwrap().received.is_empty(),
            "the follower wrote nothing"
        );
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_an_answer() {
        let nobody = Channel::from_static("http://127.0.0.1:9").connect_lazy();
        let client = StreamsClient::new(nobody, |_: &str, _: u32| None, None);
        let failed = client.supports_append_session().await.unwrap_err();
        assert_eq!(failed.code(), Code::Unavailable);
    }
}
