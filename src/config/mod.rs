//! Configuration: compiled-in defaults (`default.toml` beside this file),
//! then an optional TOML file named by `SHOPSTREAM_CONFIG`, then
//! `SHOPSTREAM_…` environment variables (`__` separates a section from its
//! key). Secrets are held in a type that never prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use shopstream_infra::Durability;
use shopstream_infra::crypto::password::HashCost;
use shopstream_infra::read_store::ScyllaOptions;

const DEFAULTS: &str = include_str!("default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http_addr: String,
    pub data_dir: PathBuf,
    pub currency: String,
    pub durability: Durability,
    pub event_store: EventStoreKind,
    /// With `event_store = "kurrentdb"`: the server's connection string.
    pub kurrentdb_url: SecretString,
    pub kurrentdb: KurrentDbSettings,
    pub read_store: ReadStoreKind,
    /// With `read_store = "scylla"`: contact points, `host:port` separated
    /// by commas.
    pub scylla_nodes: String,
    pub scylla_keyspace: String,
    pub scylla: ScyllaSettings,
    pub feed: FeedKind,
    pub kafka_brokers: String,
    pub kafka_topic_prefix: String,
    pub kafka: KafkaTuning,
    pub token_ttl_secs: u64,
    /// How long a session's refresh token stays good unused.
    pub refresh_token_ttl_secs: u64,
    #[serde(default, deserialize_with = "lenient::secret")]
    pub admin_email: Option<SecretString>,
    #[serde(default, deserialize_with = "lenient::secret")]
    pub admin_password: Option<SecretString>,
    #[serde(default, deserialize_with = "lenient::secret")]
    pub jwt_secret: Option<SecretString>,
    pub http: HttpSettings,
    pub mail: MailSettings,
    /// `off` switches every rate limit off (load tests, benchmarks); any
    /// other value keeps them on.
    #[serde(default, deserialize_with = "lenient::text")]
    pub rate_limits: Option<String>,
    pub limits: LimitSettings,
    pub commands: CommandSettings,
    pub cache: CacheSettings,
    pub queries: QuerySettings,
    pub passwords: HashCost,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStoreKind {
    Sqlite,
    Kurrentdb,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KurrentDbSettings {
    /// A prefix on every stream name, so several deployments (or test
    /// runs) share one server without meeting.
    #[serde(default)]
    pub namespace: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadStoreKind {
    Sqlite,
    Scylla,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ScyllaSettings {
    /// Copies in every datacenter when the keyspace is created here.
    pub replication_factor: u32,
    /// Copies per datacenter instead (name = copies).
    #[serde(default)]
    pub datacenters: BTreeMap<String, u32>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default, deserialize_with = "lenient::secret")]
    pub password: Option<SecretString>,
    /// TLS to the nodes, trusting this CA (PEM).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub consistency: String,
    pub serial_consistency: String,
    /// Prefer this datacenter's nodes (empty: any).
    #[serde(default)]
    pub local_datacenter: String,
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    Embedded,
    Kafka,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KafkaTuning {
    pub partitions: i32,
    pub replication: i32,
    pub session_timeout_ms: u64,
    pub lease_ttl_ms: u64,
    pub linger_ms: u64,
    #[serde(default)]
    pub debug: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub workers: usize,
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive after its headers.
    pub body_timeout_ms: u64,
    /// Origins browsers may call the API from (comma-separated; `*`: any).
    #[serde(default)]
    pub cors_origins: String,
    /// Proxies whose `X-Forwarded-For` names the client (comma-separated
    /// addresses or networks).
    #[serde(default)]
    pub trusted_proxies: String,
    pub shutdown_timeout_secs: u64,
}

impl HttpSettings {
    pub fn trusted_proxies(&self) -> Result<crate::api::client::TrustedProxies, ConfigError> {
        crate::api::client::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| ConfigError::Invalid(format!("http.trusted_proxies: {e}")))
    }

    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect()
    }
}

/// Verification mail.
#[derive(Debug, Clone, Deserialize)]
pub struct MailSettings {
    /// Whether `serve` runs the mailer (one process sends at a time).
    pub enabled: bool,
    /// `smtp://user:password@host:587?tls=required`, `smtps://…`, or empty
    /// for `.eml` files under `<data_dir>/mail`.
    #[serde(default = "no_secret", deserialize_with = "lenient::required_secret")]
    pub smtp_url: SecretString,
    pub from: String,
    /// Where a verification link points: this, then the token.
    pub link_base: String,
    pub link_ttl_secs: u64,
    pub lease_ttl_ms: u64,
}

fn no_secret() -> SecretString {
    SecretString::from(String::new())
}

/// Rate limits per route class (see `api::limits`).
#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    pub auth_per_minute: u32,
    pub search_per_minute: u32,
    pub api_per_minute: u32,
    /// For upload endpoints (none yet).
    pub uploads_per_hour: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            auth_per_minute: 5,
            search_per_minute: 50,
            api_per_minute: 100,
            uploads_per_hour: 10,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CommandSettings {
    pub max_attempts: u32,
    pub max_backoff_ms: u64,
    /// Whether commands queued behind a contended stream are combined.
    pub combine: bool,
    /// Whether checking out needs a verified email address.
    pub checkout_requires_verified_email: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CacheSettings {
    pub aggregates: u64,
    pub query_bytes: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct QuerySettings {
    pub consistency_wait_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read, or a value has the wrong type.
    #[error(transparent)]
    Load(#[from] Box<figment::Error>),
    /// The values read do not go together.
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Defaults, then `SHOPSTREAM_CONFIG`'s file, then the environment.
    pub fn load() -> Result<Self, ConfigError> {
        Self::from_figment(Self::figment(
            std::env::var_os("SHOPSTREAM_CONFIG").map(PathBuf::from),
        ))
    }

    /// The compiled-in defaults alone, for callers that set everything
    /// else themselves (tests, embedding).
    pub fn defaults() -> Figment {
        Figment::from(Toml::string(DEFAULTS))
    }

    /// The layered sources.
    pub fn figment(file: Option<PathBuf>) -> Figment {
        let mut figment = Self::defaults();
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment.merge(Env::prefixed("SHOPSTREAM_").split("__").ignore(&["config"]))
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.socket_addr()?;
        shopstream_domain::values::Currency::parse(&self.currency)
            .map_err(|e| ConfigError::Invalid(format!("currency: {}", e.message)))?;
        if let Some(secret) = &self.jwt_secret
            && secret.expose_secret().len() < 32
        {
            return Err(ConfigError::Invalid(
                "jwt_secret must be at least 32 bytes".into(),
            ));
        }
        if self.admin_email.is_some() != self.admin_password.is_some() {
            return Err(ConfigError::Invalid(
                "admin_email and admin_password go together".into(),
            ));
        }
        if self.kafka.partitions < 1 || self.kafka.replication < 1 {
            return Err(ConfigError::Invalid(
                "kafka.partitions and kafka.replication must be at least 1".into(),
            ));
        }
        if let Some(bad) = self
            .http
            .cors_origins()
            .into_iter()
            .find(|o| !crate::api::edge::valid_origin(o))
        {
            return Err(ConfigError::Invalid(format!(
                "http.cors_origins: {bad:?} is not `*` or scheme://host[:port]"
            )));
        }
        self.http.trusted_proxies()?;
        let namespace = &self.kurrentdb.namespace;
        if !namespace.is_empty() && !namespace.ends_with('.') {
            return Err(ConfigError::Invalid(format!(
                "kurrentdb.namespace {namespace:?} must end with a dot, so no namespace is \
                 the start of another's stream names"
            )));
        }
        if self.read_store == ReadStoreKind::Scylla {
            self.scylla_options()?;
        }
        if self.commands.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "commands.max_attempts must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn socket_addr(&self) -> Result<SocketAddr, ConfigError> {
        use std::net::ToSocketAddrs;
        self.http_addr
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| {
                ConfigError::Invalid(format!("http_addr {:?} is not host:port", self.http_addr))
            })
    }

    pub fn event_store_path(&self) -> PathBuf {
        self.data_dir.join("events.sqlite")
    }

    pub fn read_store_path(&self) -> PathBuf {
        self.data_dir.join("read.sqlite")
    }

    /// ScyllaDB as the settings describe it.
    pub fn scylla_options(&self) -> Result<ScyllaOptions, ConfigError> {
        use shopstream_infra::read_store::scylla::{
            Replication, parse_consistency, parse_serial_consistency,
        };
        let s = &self.scylla;
        let invalid = |key: &str, why: String| ConfigError::Invalid(format!("{key}: {why}"));
        let nodes: Vec<String> = self
            .scylla_nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect();
        if nodes.is_empty() {
            return Err(invalid("scylla_nodes", "no node named".into()));
        }
        let credentials = match (&s.user, &s.password) {
            (Some(user), Some(password)) => Some((user.clone(), password.clone())),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "scylla.user",
                    "scylla.user and scylla.password go together".into(),
                ));
            }
        };
        let options = ScyllaOptions {
            nodes,
            keyspace: self.scylla_keyspace.clone(),
            replication: Replication {
                factor: s.replication_factor,
                datacenters: s.datacenters.clone(),
            },
            credentials,
            tls_ca_file: s.ca_file.clone(),
            consistency: parse_consistency(&s.consistency)
                .map_err(|e| invalid("scylla.consistency", e))?,
            serial_consistency: parse_serial_consistency(&s.serial_consistency)
                .map_err(|e| invalid("scylla.serial_consistency", e))?,
            local_datacenter: Some(s.local_datacenter.clone()).filter(|dc| !dc.is_empty()),
            request_timeout: Duration::from_millis(s.request_timeout_ms),
            connect_timeout: Duration::from_millis(s.connect_timeout_ms),
        };
        shopstream_infra::read_store::ScyllaReadStore::new(options.clone())
            .map_err(|e| invalid("scylla", e.to_string()))?;
        Ok(options)
    }

    /// Kafka as the settings describe it.
    pub fn kafka(&self) -> shopstream_infra::feed::kafka::KafkaSettings {
        shopstream_infra::feed::kafka::KafkaSettings {
            brokers: self.kafka_brokers.clone(),
            topic_prefix: self.kafka_topic_prefix.clone(),
            partitions: self.kafka.partitions,
            replication: self.kafka.replication,
            session_timeout: Duration::from_millis(self.kafka.session_timeout_ms),
            lease_ttl: Duration::from_millis(self.kafka.lease_ttl_ms),
            linger: Duration::from_millis(self.kafka.linger_ms),
            debug: self.kafka.debug.clone(),
        }
    }

    /// Whether rate limits apply (anything but `off`).
    pub fn rate_limited(&self) -> bool {
        self.rate_limits.as_deref().map(str::trim) != Some("off")
    }

    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    pub fn refresh_token_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_token_ttl_secs)
    }

    /// The configured token secret, or the one kept in the data directory
    /// (made on first use), so restarts and sibling processes agree.
    pub fn jwt_secret_bytes(&self) -> std::io::Result<Vec<u8>> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(secret.expose_secret().as_bytes().to_vec());
        }
        secret_file(&self.data_dir.join("jwt-secret"))
    }
}

fn secret_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    if let Some(dir) = path.parent() {
        shopstream_infra::files::private_dir(dir)?;
    }
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())?;
            file.sync_all()?;
            Ok(secret.into_bytes())
        }
        // Another process made it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?.trim().as_bytes().to_vec())
        }
        Err(e) => Err(e),
    }
}

/// Environment values are parsed ("12345678" becomes a number); secrets and
/// emails must stay text whatever they look like.
mod lenient {
    use secrecy::SecretString;
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Text(String),
        Int(i64),
        Uint(u64),
        Float(f64),
        Bool(bool),
    }

    impl Scalar {
        fn text(self) -> String {
            match self {
                Scalar::Text(t) => t,
                Scalar::Int(i) => i.to_string(),
                Scalar::Uint(u) => u.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Bool(b) => b.to_string(),
            }
        }
    }

    pub fn secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?.map(|s| SecretString::from(s.text())))
    }

    pub fn required_secret<'de, D: Deserializer<'de>>(d: D) -> Result<SecretString, D::Error> {
        Ok(secret(d)?.unwrap_or_else(|| SecretString::from(String::new())))
    }

    /// Text, whatever the environment's value looked like (`off`, `0`).
    pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(Option::<Scalar>::deserialize(d)?.map(Scalar::text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use figment::providers::Serialized;

    #[test]
    fn defaults_are_complete_and_valid() {
        let s = Settings::from_figment(Figment::from(Toml::string(DEFAULTS))).unwrap();
        assert_eq!(s.http_addr, "127.0.0.1:8080");
        assert_eq!(s.data_dir, PathBuf::from("./data"));
        assert_eq!(s.durability, Durability::Fsync);
        assert!(s.admin_email.is_none());
    }

    #[test]
    fn later_sources_override_and_numeric_secrets_stay_text() {
        let figment = Figment::from(Toml::string(DEFAULTS))
            .merge(Serialized::default("admin_email", "root@example.com"))
            .merge(Serialized::default("admin_password", 12345678))
            .merge(Serialized::default("http.workers", 3));
        let s = Settings::from_figment(figment).unwrap();
        assert_eq!(s.admin_password.unwrap().expose_secret(), "12345678");
        assert_eq!(s.http.workers, 3);
    }

    #[test]
    fn invalid_settings_are_refused_with_a_reason() {
        for (key, value) in [
            ("http_addr", "nonsense"),
            ("currency", "EURO"),
            ("jwt_secret", "short"),
            ("durability", "sometimes"),
            ("kurrentdb.namespace", "tenant1"),
        ] {
            let figment =
                Figment::from(Toml::string(DEFAULTS)).merge(Serialized::default(key, value));
            let err = Settings::from_figment(figment).unwrap_err().to_string();
            assert!(
                err.contains(key) || err.contains("durability"),
                "{key}: {err}"
            );
        }
        let lone = Figment::from(Toml::string(DEFAULTS))
            .merge(Serialized::default("admin_email", "a@b.co"));
        assert!(Settings::from_figment(lone).is_err());
    }

    #[test]
    fn scylla_settings_are_checked_when_the_read_store_is_scylla() {
        let with = |key: &str, value: &str| {
            Figment::from(Toml::string(DEFAULTS))
                .merge(Serialized::default("read_store", "scylla"))
                .merge(Serialized::default(key, value))
        };
        for (key, value, said) in [
            ("scylla.consistency", "sometimes", "scylla.consistency"),
            (
                "scylla.serial_consistency",
                "quorum",
                "scylla.serial_consistency",
            ),
            ("scylla_keyspace", "Bad-Name", "keyspace \"Bad-Name\""),
            ("scylla_nodes", " , ", "scylla_nodes"),
            ("scylla.user", "shop", "scylla.password"),
        ] {
            let err = Settings::from_figment(with(key, value))
                .unwrap_err()
                .to_string();
            assert!(err.contains(said), "{key}: {err}");
        }
        let s = Settings::from_figment(with("scylla_nodes", "a:9042, b:9042")).unwrap();
        let options = s.scylla_options().unwrap();
        assert_eq!(options.nodes, ["a:9042", "b:9042"]);
        assert_eq!(options.replication.factor, 3);
        assert_eq!(options.local_datacenter, None);
        let embedded = Figment::from(Toml::string(DEFAULTS))
            .merge(Serialized::default("scylla.consistency", "sometimes"));
        assert!(
            Settings::from_figment(embedded).is_ok(),
            "unused ScyllaDB settings are not in the way"
        );
    }

    #[test]
    fn secrets_never_print() {
        let figment = Figment::from(Toml::string(DEFAULTS))
            .merge(Serialized::default("jwt_secret", "x".repeat(40)));
        let s = Settings::from_figment(figment).unwrap();
        assert!(!format!("{s:?}").contains(&"x".repeat(40)));
    }

    #[test]
    fn the_generated_token_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwt-secret");
        let first = secret_file(&path).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(secret_file(&path).unwrap(), first);
    }
}
