//! The production read store: ScyllaDB (or Cassandra-compatible) through
//! the `scylla` driver, serving all three read-side ports so API nodes and
//! projection workers run on as many machines as a shop needs.
//!
//! # Data model
//! - **Keyspace** (`scylla_keyspace`), created at first use when missing
//!   (`NetworkTopologyStrategy` with the configured copies, vnodes rather
//!   than tablets because the registry uses lightweight transactions), with
//!   its shared tables; every DDL statement waits for schema agreement.
//! - **Rows**: one table per logical table and generation
//!   (`<table>__g<generation>`), so a rebuild fills fresh tables and the
//!   switch is a registry update; the retired generation's tables are
//!   dropped. A row is `(pk, ck)` — the port's partition and clustering keys,
//!   `PRIMARY KEY ((pk), ck)` in clustering order — with its cells in
//!   `cells map<text, text>` (each value its version and its JSON, see
//!   [`cql::encode_cell`]) and `deleted`, the version of its last delete.
//! - **Writes never read.** A cell written at version `v` carries the write
//!   timestamp `2v`; a delete at `d` is a row tombstone at `2d + 1` and the
//!   `deleted` marker at `2d + 2` ([`cql::cell_timestamp`] and its
//!   siblings). ScyllaDB's last-write-wins per cell then *is* the port's
//!   rule: a replayed or duplicated write carries the same or an older
//!   timestamp and loses, a delete shadows exactly the cells at or below
//!   its version, and a later write revives the row. A batch is split per
//!   partition into unlogged batches (each partition's writes travel
//!   together, to its replicas); `apply` returns once all are acknowledged
//!   at the write consistency, before the runner records a checkpoint.
//! - **Scans** are single-partition range queries, `ck > ? LIMIT ?`, the
//!   clustering key itself the cursor (never a driver paging state); rows
//!   whose cells were all deleted are skipped, page after page.
//! - **Registry** (`projections`), **leases** (`leases`): every write is a
//!   lightweight transaction (`IF …`, serial consistency), so two runners,
//!   two rebuilds or two relays never both win. ScyllaDB refuses a custom
//!   timestamp on a conditional write, so these tables are only ever
//!   written conditionally and the row tables never are.
//! - **Partition progress** (`partition_progress`, one partition per
//!   projection): each partition's position is written with the position as
//!   its timestamp, so the largest wins without a transaction — the same
//!   rule as the rows.
//! - **Dead letters** (`dead_letters`): inserted `IF NOT EXISTS`, once per
//!   projection and event.
//!
//! # Failure
//! The store connects lazily: a node that cannot be reached (at start or
//! later) makes every call fail with [`ReadStoreError::Unavailable`] —
//! queries answer 503 with `Retry-After`, commands go on — and the next
//! call after a short pause tries again. Statements that may be repeated
//! (row writes, reads, progress) are marked idempotent so the driver's
//! retry policy may resend them after a timeout; transactions are not.

mod coordination;
mod cql;
mod registry;
mod rows;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scylla::client::Compression;
use scylla::client::caching_session::{CachingSession, CachingSessionBuilder};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::retry::DefaultRetryPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::Statement;
use scylla::value::CqlValue;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

pub use cql::{Keyspace, MAX_VERSION, Replication};
pub use scylla::statement::{Consistency, SerialConsistency};

use super::ReadStoreError;
use crate::error::cause;

/// Where the cluster is and how to talk to it.
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port` (the driver discovers the rest).
    pub nodes: Vec<String>,
    pub keyspace: String,
    /// Copies kept when the keyspace is created here.
    pub replication: Replication,
    /// User and password (`PasswordAuthenticator`).
    pub credentials: Option<(String, SecretString)>,
    /// TLS, verified against this CA (PEM).
    pub tls_ca_file: Option<PathBuf>,
    pub consistency: Consistency,
    pub serial_consistency: SerialConsistency,
    /// Prefer this datacenter's nodes (and keep `LOCAL_*` levels in it).
    pub local_datacenter: Option<String>,
    /// The client-side limit on one request.
    pub request_timeout: Duration,
    /// The limit on opening one connection.
    pub connect_timeout: Duration,
}

impl ScyllaOptions {
    /// The defaults for everything but where the cluster is: three copies,
    /// `LOCAL_QUORUM` and `LOCAL_SERIAL`, five-second limits, no TLS.
    pub fn new(nodes: Vec<String>, keyspace: impl Into<String>) -> Self {
        Self {
            nodes,
            keyspace: keyspace.into(),
            replication: Replication {
                factor: 3,
                datacenters: Default::default(),
            },
            credentials: None,
            tls_ca_file: None,
            consistency: Consistency::LocalQuorum,
            serial_consistency: SerialConsistency::LocalSerial,
            local_datacenter: None,
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// A consistency level by its CQL name (`local_quorum`, `quorum`, …).
pub fn parse_consistency(name: &str) -> Result<Consistency, String> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "one" => Consistency::One,
        "two" => Consistency::Two,
        "three" => Consistency::Three,
        "quorum" => Consistency::Quorum,
        "all" => Consistency::All,
        "local_quorum" => Consistency::LocalQuorum,
        "each_quorum" => Consistency::EachQuorum,
        "local_one" => Consistency::LocalOne,
        other => return Err(format!("unknown consistency level {other:?}")),
    })
}

/// A serial consistency level by its CQL name (`local_serial`, `serial`).
pub fn parse_serial_consistency(name: &str) -> Result<SerialConsistency, String> {
    match name.to_ascii_lowercase().as_str() {
        "serial" => Ok(SerialConsistency::Serial),
        "local_serial" => Ok(SerialConsistency::LocalSerial),
        other => Err(format!("unknown serial consistency level {other:?}")),
    }
}

/// How long after a failed connection attempt calls fail at once.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// Rows per unlogged batch, and its rough size limit (ScyllaDB warns on
/// batches over 128 KiB by default).
const BATCH_STATEMENTS: usize = 64;
const BATCH_BYTES: usize = 64 * 1024;

/// Batches or reads in flight at once for one call.
const IN_FLIGHT: usize = 16;

/// The ScyllaDB read store. Cheap to clone; connects on first use.
#[derive(Clone)]
pub struct ScyllaReadStore {
    inner: Arc<Inner>,
}

struct Inner {
    options: ScyllaOptions,
    keyspace: Keyspace,
    session: OnceCell<CachingSession>,
    failed: Mutex<Option<(Instant, ReadStoreError)>>,
}

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> ReadStoreError {
    ReadStoreError::Unavailable(cause(e))
}

fn corrupt(e: impl std::error::Error + Send + Sync + 'static) -> ReadStoreError {
    ReadStoreError::Corrupt(cause(e))
}

/// The server's word that a table (or keyspace) does not exist, if that is
/// what `e` is.
fn missing_table(e: &ExecutionError) -> Option<&str> {
    let attempt = match e {
        ExecutionError::LastAttemptError(a) => a,
        ExecutionError::PrepareError(PrepareError::AllAttemptsFailed { first_attempt }) => {
            first_attempt
        }
        _ => return None,
    };
    match attempt {
        RequestAttemptError::DbError(DbError::Invalid, message)
            if message.contains("unconfigured table") || message.contains("does not exist") =>
        {
            Some(message)
        }
        _ => None,
    }
}

fn execution(e: ExecutionError) -> ReadStoreError {
    match missing_table(&e) {
        Some(message) => ReadStoreError::NoSuchTable(message.to_string()),
        None => unavailable(e),
    }
}

/// A statement that may be sent again safely (the driver retries it after
/// a timeout).
fn idempotent(cql: impl Into<String>) -> Statement {
    let mut statement = Statement::new(cql);
    statement.set_is_idempotent(true);
    statement
}

/// A lightweight transaction: never resent blindly.
fn transaction(cql: impl Into<String>) -> Statement {
    Statement::new(cql)
}

/// A row of a result by column name, nulls left out: how the registry's
/// rows (and the old rows a transaction returns) are read.
#[derive(Debug, Default, Clone, PartialEq)]
struct Named(HashMap<String, CqlValue>);

impl Named {
    fn text(&self, column: &str) -> Option<String> {
        match self.0.get(column) {
            Some(CqlValue::Text(t) | CqlValue::Ascii(t)) => Some(t.clone()),
            _ => None,
        }
    }

    fn int(&self, column: &str) -> Option<u32> {
        match self.0.get(column) {
            Some(CqlValue::Int(i)) => u32::try_from(*i).ok(),
            _ => None,
        }
    }

    fn bigint(&self, column: &str) -> Option<u64> {
        match self.0.get(column) {
            Some(CqlValue::BigInt(i)) => u64::try_from(*i).ok(),
            _ => None,
        }
    }

    fn boolean(&self, column: &str) -> Option<bool> {
        match self.0.get(column) {
            Some(CqlValue::Boolean(b)) => Some(*b),
            _ => None,
        }
    }

    fn texts(&self, column: &str) -> Vec<String> {
        match self.0.get(column) {
            Some(CqlValue::List(items)) => items
                .iter()
                .filter_map(|v| match v {
                    CqlValue::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Every row of a result, by column name.
fn named_rows(result: QueryResult) -> Result<Vec<Named>, ReadStoreError> {
    let rows = result.into_rows_result().map_err(corrupt)?;
    let names: Vec<String> = rows
        .column_specs()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    rows.rows::<scylla::value::Row>()
        .map_err(corrupt)?
        .map(|row| {
            let row = row.map_err(corrupt)?;
            Ok(Named(
                names
                    .iter()
                    .zip(row.columns)
                    .filter_map(|(name, value)| Some((name.clone(), value?)))
                    .collect(),
            ))
        })
        .collect()
}

/// What a lightweight transaction did: whether it applied, and the row as
/// it was (ScyllaDB returns it either way; Cassandra returns the columns of
/// the condition when it did not apply).
fn outcome(result: QueryResult) -> Result<(bool, Named), ReadStoreError> {
    let row = named_rows(result)?.into_iter().next().unwrap_or_default();
    let applied = row.boolean("[applied]").ok_or_else(|| {
        ReadStoreError::Corrupt(cause("a conditional write answered without [applied]"))
    })?;
    Ok((applied, row))
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

impl ScyllaReadStore {
    /// A store for the cluster `options` names. Nothing is contacted yet;
    /// names and settings are checked now.
    pub fn new(options: ScyllaOptions) -> Result<Self, ReadStoreError> {
        let keyspace = Keyspace::parse(&options.keyspace).map_err(ReadStoreError::Invalid)?;
        options
            .replication
            .to_cql()
            .map_err(ReadStoreError::Invalid)?;
        if options.nodes.is_empty() {
            return Err(ReadStoreError::Invalid(
                "no ScyllaDB node to contact".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                keyspace,
                session: OnceCell::new(),
                failed: Mutex::new(None),
            }),
        })
    }

    /// Connects now (and makes the keyspace and its shared tables), rather
    /// than at the first call.
    pub async fn connect(&self) -> Result<(), ReadStoreError> {
        self.session().await.map(|_| ())
    }

    fn ks(&self) -> &str {
        self.inner.keyspace.name()
    }

    /// The session, connecting (and making the schema) the first time.
    /// While the cluster cannot be reached, calls fail at once for a
    /// moment after each attempt, so a down cluster is not hammered.
    async fn session(&self) -> Result<&CachingSession, ReadStoreError> {
        if let Some(session) = self.inner.session.get() {
            return Ok(session);
        }
        if let Ok(failed) = self.inner.failed.lock()
            && let Some((at, e)) = failed.as_ref()
            && at.elapsed() < RECONNECT_PAUSE
        {
            return Err(e.clone());
        }
        let connected = self
            .inner
            .session
            .get_or_try_init(|| connect(&self.inner.options, &self.inner.keyspace))
            .await;
        match connected {
            Ok(session) => Ok(session),
            Err(e) => {
                tracing::warn!(error = %crate::error::Report(&e), "ScyllaDB cannot be reached");
                if let Ok(mut failed) = self.inner.failed.lock() {
                    *failed = Some((Instant::now(), e.clone()));
                }
                Err(e)
            }
        }
    }

    /// Runs a (prepared, cached) statement.
    async fn execute(
        &self,
        statement: Statement,
        values: impl SerializeRow,
    ) -> Result<QueryResult, ReadStoreError> {
        let session = self.session().await?;
        session
            .execute_unpaged(statement, values)
            .await
            .map_err(execution)
    }

    /// Runs a schema statement (not prepared), waiting for the cluster to
    /// agree on the schema after it.
    async fn ddl(&self, cql: String) -> Result<(), ReadStoreError> {
        let session = self.session().await?;
        session
            .get_session()
            .query_unpaged(cql, ())
            .await
            .map_err(execution)?;
        Ok(())
    }

    /// The row `cql` selects by one key, read so that it sees every
    /// transaction decided before it (a serial read), for read-then-decide
    /// steps; an empty row when there is none.
    async fn serial_row(&self, cql: String, key: &str) -> Result<Named, ReadStoreError> {
        let mut statement = idempotent(cql);
        statement.set_consistency(match self.inner.options.serial_consistency {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        });
        let result = self.execute(statement, (key,)).await?;
        Ok(named_rows(result)?.into_iter().next().unwrap_or_default())
    }
}

/// Opens a session and makes the keyspace and shared tables.
async fn connect(
    options: &ScyllaOptions,
    keyspace: &Keyspace,
) -> Result<CachingSession, ReadStoreError> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &options.local_datacenter {
        policy = policy
            .prefer_datacenter(dc.clone())
            .permit_dc_failover(false);
    }
    let profile = ExecutionProfile::builder()
        .consistency(options.consistency)
        .serial_consistency(Some(options.serial_consistency))
        .request_timeout(Some(options.request_timeout))
        .retry_policy(Arc::new(DefaultRetryPolicy::new()))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.nodes)
        .connection_timeout(options.connect_timeout)
        .compression(Some(Compression::Lz4))
        .default_execution_profile_handle(profile.into_handle());
    if let Some((user, password)) = &options.credentials {
        builder = builder.user(user, password.expose_secret());
    }
    if let Some(ca) = &options.tls_ca_file {
        builder = builder.tls_context(Some(tls_config(ca)?));
    }
    let session: Session = builder.build().await.map_err(unavailable)?;
    let replication = options.replication.clone();
    let mut schema =
        vec![cql::create_keyspace(keyspace, &replication).map_err(ReadStoreError::Invalid)?];
    schema.extend(cql::create_shared_tables(keyspace));
    for statement in schema {
        session
            .query_unpaged(statement, ())
            .await
            .map_err(execution)?;
    }
    Ok(CachingSessionBuilder::new(session)
        .max_capacity(1024)
        .build())
}

/// A TLS client trusting the CA in `path` (PEM).
fn tls_config(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, ReadStoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let invalid =
        |why: String| ReadStoreError::Invalid(format!("ScyllaDB CA {}: {why}", path.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| invalid(e.to_string()))? {
        roots
            .add(cert.map_err(|e| invalid(e.to_string()))?)
            .map_err(|e| invalid(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(invalid("no certificate in it".into()));
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> ScyllaOptions {
        ScyllaOptions {
            connect_timeout: Duration::from_millis(200),
            // Nothing listens on port 1.
            ..ScyllaOptions::new(vec!["127.0.0.1:1".into()], "shop")
        }
    }

    #[test]
    fn settings_are_checked_before_anything_is_contacted() {
        for bad in [
            ScyllaOptions {
                keyspace: "Shop!".into(),
                ..options()
            },
            ScyllaOptions {
                nodes: vec![],
                ..options()
            },
            ScyllaOptions {
                replication: Replication {
                    factor: 0,
                    datacenters: Default::default(),
                },
                ..options()
            },
        ] {
            assert!(
                matches!(ScyllaReadStore::new(bad), Err(ReadStoreError::Invalid(_))),
                "refused"
            );
        }
        assert!(ScyllaReadStore::new(options()).is_ok());
    }

    #[tokio::test]
    async fn an_unreachable_cluster_is_unavailable_and_tried_again_later() {
        let store = ScyllaReadStore::new(options()).unwrap();
        let first = store.connect().await;
        assert!(
            matches!(first, Err(ReadStoreError::Unavailable(_))),
            "{first:?}"
        );
        // Within the pause, the same answer comes back without a new attempt.
        let started = Instant::now();
        let again = store.connect().await;
        assert!(
            matches!(again, Err(ReadStoreError::Unavailable(_))),
            "{again:?}"
        );
        assert!(store.inner.session.get().is_none());
        assert!(started.elapsed() < RECONNECT_PAUSE);
    }

    #[test]
    fn consistency_levels_are_named_as_in_cql() {
        assert_eq!(
            parse_consistency("LOCAL_QUORUM"),
            Ok(Consistency::LocalQuorum)
        );
        assert_eq!(
            parse_consistency("each_quorum"),
            Ok(Consistency::EachQuorum)
        );
        assert!(
            parse_consistency("serial").is_err(),
            "serial levels are set apart"
        );
        assert_eq!(
            parse_serial_consistency("serial"),
            Ok(SerialConsistency::Serial)
        );
        assert!(parse_serial_consistency("quorum").is_err());
    }

    #[test]
    fn a_missing_table_is_told_apart_from_other_failures() {
        let invalid = |message: &str| {
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(
                DbError::Invalid,
                message.into(),
            ))
        };
        assert!(matches!(
            execution(invalid("unconfigured table items__g3")),
            ReadStoreError::NoSuchTable(m) if m.contains("items__g3")
        ));
        let prepare = ExecutionError::PrepareError(PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(
                DbError::Invalid,
                "unconfigured table shelves__g2".into(),
            ),
        });
        assert!(matches!(execution(prepare), ReadStoreError::NoSuchTable(_)));
        assert!(matches!(
            execution(invalid("some other mistake")),
            ReadStoreError::Unavailable(_)
        ));
        assert!(matches!(
            execution(ExecutionError::RequestTimeout(Duration::from_secs(1))),
            ReadStoreError::Unavailable(_)
        ));
    }

    #[test]
    fn transaction_outcomes_are_read_by_column_name() {
        let row = Named(
            [
                ("[applied]".to_string(), CqlValue::Boolean(false)),
                ("generation".to_string(), CqlValue::Int(2)),
                ("checkpoint".to_string(), CqlValue::BigInt(40)),
                (
                    "tables".to_string(),
                    CqlValue::List(vec![CqlValue::Text("a".into())]),
                ),
            ]
            .into(),
        );
        assert_eq!(row.boolean("[applied]"), Some(false));
        assert_eq!(row.int("generation"), Some(2));
        assert_eq!(row.bigint("checkpoint"), Some(40));
        assert_eq!(row.texts("tables"), ["a"]);
        assert_eq!(row.text("failure"), None, "a null is absent");
        assert_eq!(row.texts("build_tables"), Vec::<String>::new());
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(matches!(tls_config(&path), Err(ReadStoreError::Invalid(_))));
        assert!(matches!(
            tls_config(&dir.path().join("missing.pem")),
            Err(ReadStoreError::Invalid(_))
        ));
    }
}
