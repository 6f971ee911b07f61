//! PostgreSQL as a peer for the appends: a throwaway cluster started on
//! this machine (Debian's `postgresql` package, which `bench/run.sh`
//! installs), with the schema event stores on PostgreSQL use (Message DB's,
//! Marten's): one `messages` table with a global `bigserial` position and
//! `UNIQUE (stream_name, position)`, and an append function that takes the
//! stream's advisory lock, checks the expected version and inserts every
//! event, in the append's one transaction, one round trip per append.
//!
//! The server runs as shipped where durability is concerned (`fsync`,
//! `synchronous_commit` and `full_page_writes` on; its own group commit
//! among concurrent transactions), with room for one connection per
//! writer, which is how it serves many writers at once.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use shopstream_infra::event_store::NewEvent;
use tokio_postgres::{Client, NoTls, Statement};

/// A PostgreSQL cluster in a temporary directory, stopped and removed on
/// drop.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

const SCHEMA: &str = r#"
CREATE TABLE messages (
    global_position bigserial PRIMARY KEY,
    stream_name     text        NOT NULL,
    position        bigint      NOT NULL,
    id              uuid        NOT NULL UNIQUE,
    type            text        NOT NULL,
    data            jsonb       NOT NULL,
    metadata        jsonb,
    time            timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (stream_name, position)
);

CREATE FUNCTION append_events(
    stream text, expected bigint,
    ids uuid[], types text[], datas jsonb[], metas jsonb[]
) RETURNS bigint AS $$
DECLARE
    current bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(stream, 0));
    SELECT max(position) INTO current FROM messages WHERE stream_name = stream;
    IF current IS DISTINCT FROM expected THEN
        RAISE EXCEPTION 'stream % is at %, not %', stream, current, expected;
    END IF;
    INSERT INTO messages (stream_name, position, id, type, data, metadata)
        SELECT stream, coalesce(current, -1) + n, i, t, d, m
        FROM unnest(ids, types, datas, metas) WITH ORDINALITY AS e(i, t, d, m, n);
    RETURN coalesce(current, -1) + array_length(ids, 1);
END
$$ LANGUAGE plpgsql;
"#;

impl Cluster {
    /// Initialises and starts a cluster listening on a Unix socket in its
    /// own directory; as root, the server runs as the `postgres` user (it
    /// refuses to run as root).
    pub fn start() -> anyhow::Result<Cluster> {
        let bin = bin_dir()?;
        let dir = tempfile::Builder::new().prefix("shopstream-pg").tempdir()?;
        let as_root = unsafe { libc::geteuid() } == 0;
        if as_root {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(dir.path())
                .status()?;
            if !status.success() {
                bail!("chown postgres {}: {status}", dir.path().display());
            }
        }
        let data = dir.path().join("data");
        let cluster = Cluster {
            dir,
            bin,
            port: 5432,
        };
        cluster.run(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "bench",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-c listen_addresses='' -k {} -p {} -c max_connections=200",
            cluster.dir.path().display(),
            cluster.port
        );
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-l",
                &cluster.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    /// Runs one of the server's programs, as `postgres` when root.
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = if unsafe { libc::geteuid() } == 0 {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .output()
            .with_context(|| format!("running {}", path.display()))?;
        if !output.status.success() {
            bail!(
                "{program} failed ({}): {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    /// A new connection.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host={} port={} user=bench dbname=postgres",
                self.dir.path().display(),
                self.port
            ),
            NoTls,
        )
        .await
        .context("connecting to PostgreSQL")?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    /// Creates the table and the append function.
    pub async fn create_schema(&self) -> anyhow::Result<()> {
        self.connect().await?.batch_execute(SCHEMA).await?;
        Ok(())
    }

    /// The server's version, for the results, once it has confirmed that
    /// every commit is flushed to disk.
    pub async fn version(&self) -> anyhow::Result<String> {
        let client = self.connect().await?;
        for setting in ["fsync", "synchronous_commit"] {
            let value: String = client
                .query_one(&format!("SHOW {setting}"), &[])
                .await?
                .get(0);
            if value != "on" {
                bail!("PostgreSQL runs with {setting} = {value}");
            }
        }
        let version: String = client.query_one("SHOW server_version", &[]).await?.get(0);
        Ok(version
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"]);
    }
}

/// Where the server's programs are: beside `initdb` on the PATH, or in
/// Debian's versioned directory (the newest).
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Ok(path) = which("initdb") {
        let real = std::fs::canonicalize(&path).unwrap_or(path);
        if let Some(dir) = real.parent() {
            return Ok(dir.to_path_buf());
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("PostgreSQL is not installed (Debian: apt-get install postgresql)")
}

fn which(program: &str) -> anyhow::Result<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
        .with_context(|| format!("{program} is not on the PATH"))
}

/// One writer's connection and its prepared append.
pub struct Writer {
    client: Client,
    append: Statement,
}

impl Writer {
    pub async fn connect(cluster: &Cluster) -> anyhow::Result<Writer> {
        let client = cluster.connect().await?;
        let append = client
            .prepare(
                "SELECT append_events($1, $2, $3::text[]::uuid[], $4, \
                 $5::text[]::jsonb[], $6::text[]::jsonb[])",
            )
            .await?;
        Ok(Writer { client, append })
    }

    /// Appends `events` to `stream` expecting it at `expected` (`None`:
    /// no stream yet); the stream's new version.
    pub async fn append(
        &self,
        stream: &str,
        expected: Option<u64>,
        events: &[NewEvent],
    ) -> anyhow::Result<u64> {
        let ids: Vec<String> = events.iter().map(|e| e.event_id.to_string()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<String> = events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .collect();
        let metadata: Vec<String> = events
            .iter()
            .map(|e| serde_json::to_string(&e.metadata))
            .collect::<Result<_, _>>()?;
        let expected = expected.map(|v| v as i64);
        let row = self
            .client
            .query_one(
                &self.append,
                &[&stream, &expected, &ids, &types, &data, &metadata],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }
}
