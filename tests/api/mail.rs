//! Verification mail through a real SMTP server (aiosmtpd, with the small
//! handler in `tests/mail/smtp_sink.py` that files every message it
//! accepts): sent once per request, whatever restarts; links that verify;
//! nothing sent by rebuilding read models.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::process::{Child, Command};

use crate::helpers::{Read, TestApp, spawn_app_with};

/// An SMTP server that files what it accepts in a directory.
struct Sink {
    _child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Sink {
    /// Starts one; `delay_ms` holds every recipient that long before it
    /// is accepted (a message is then on its way, but not yet held).
    async fn start(delay_ms: u64) -> Sink {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "smtp_sink.Sink"])
            .arg(dir.path())
            .arg(delay_ms.to_string())
            .env(
                "PYTHONPATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mail"),
            )
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (tests/run.sh installs aiosmtpd)");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the SMTP server did not start: is aiosmtpd installed (python3 -m pip install aiosmtpd)?"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Sink {
            _child: child,
            dir,
            port,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, in order.
    fn messages(&self) -> Vec<String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .expect("the sink's directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        files.sort_by_key(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
        });
        files
            .iter()
            .map(|p| std::fs::read_to_string(p).expect("a message"))
            .collect()
    }

    /// Waits until at least `n` messages arrived; all of them.
    async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} messages arrived",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A header's value in a message.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The token of the verification link in a message (its body may be
/// quoted-printable: soft line breaks are joined first).
fn link_token(message: &str) -> String {
    let body = message
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=");
    let start = body.find("token=").expect("a link in the mail") + "token=".len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect()
}

async fn app_mailing_to(sink: &Sink) -> TestApp {
    spawn_app_with(&[
        ("mail.enabled", json!(true)),
        ("mail.smtp_url", json!(sink.url())),
    ])
    .await
}

#[tokio::test]
async fn registering_sends_one_mail_whose_link_verifies_the_address() {
    let sink = Sink::start(0).await;
    let app = app_mailing_to(&sink).await;
    let (id, token) = app.customer("ada@example.com").await;
    // The configured admin registered at start, and is mailed too.
    let messages = sink.wait_for(2).await;
    let ours: Vec<&String> = messages
        .iter()
        .filter(|m| header(m, "To") == Some("ada@example.com"))
        .collect();
    assert_eq!(ours.len(), 1, "{messages:#?}");
    let mail = ours[0];
    assert_eq!(header(mail, "Subject"), Some("Verify your email address"));
    assert!(header(mail, "Message-ID").is_some_and(|m| m.starts_with("<verify-")));

    let me = app.get("/v1/customers/me", Some(&token)).await.expect(200);
    assert_eq!(me.body["email_verified"], false);
    let verified = app
        .post(
            "/v1/customers/verify-email",
            None,
            json!({"token": link_token(mail)}),
        )
        .await;
    assert_eq!(verified.status.as_u16(), 204, "{verified:#?}");
    let read = Read::by(&token).with_consistency_token(
        verified
            .header("x-consistency-token")
            .expect("a consistency token"),
    );
    let me = app.query("/v1/customers/me", &[], &read).await;
    assert_eq!(me.body["email_verified"], true, "{me:#?}");
    let stream = app.stream(&format!("customer-{id}")).await;
    let types: Vec<&str> = stream.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"VerificationMailSent"), "{types:?}");
    assert!(types.contains(&"EmailVerified"), "{types:?}");

    // A verified address asks for nothing more; a link that is not one is
    // refused.
    app.post_empty("/v1/customers/me/verification", Some(&token))
        .await
        .expect_problem(409, "invalid_state");
    app.post(
        "/v1/customers/verify-email",
        None,
        json!({"token": "nonsense"}),
    )
    .await
    .expect_problem(422, "validation_failed");
}

#[tokio::test]
async fn asking_again_sends_another_mail_and_rebuilding_sends_none() {
    let sink = Sink::start(0).await;
    let app = app_mailing_to(&sink).await;
    let (_, token) = app.customer("bo@example.com").await;
    let bo = |messages: &[String]| {
        messages
            .iter()
            .filter(|m| header(m, "To") == Some("bo@example.com"))
            .count()
    };
    assert_eq!(bo(&sink.wait_for(2).await), 1);
    let again = app
        .post_empty("/v1/customers/me/verification", Some(&token))
        .await;
    assert_eq!(again.status.as_u16(), 202, "{again:#?}");
    let messages = sink.wait_for(3).await;
    let ids: std::collections::BTreeSet<&str> = messages
        .iter()
        .filter(|m| header(m, "To") == Some("bo@example.com"))
        .filter_map(|m| header(m, "Message-ID"))
        .collect();
    assert_eq!(ids.len(), 2, "two requests, two mails: {messages:#?}");

    // Every projection rebuilt from the first event: the mailer is no
    // projection, and hears nothing of it.
    for name in [
        "catalogue",
        "carts",
        "orders",
        "customers",
        "sales",
        "timeline",
    ] {
        app.post_empty(
            &format!("/v1/admin/projections/{name}/rebuild"),
            Some(&app.admin),
        )
        .await
        .expect(202);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let views = app
            .get("/v1/admin/projections", Some(&app.admin))
            .await
            .expect(200);
        let busy = views
            .body
            .as_array()
            .expect("a list")
            .iter()
            .any(|p| p["status"] != "live");
        if !busy {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{:#?}", views.body);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A request after the rebuild is answered; none before it again.
    let last = app
        .post_empty("/v1/customers/me/verification", Some(&token))
        .await;
    assert_eq!(last.status.as_u16(), 202);
    let messages = sink.wait_for(4).await;
    assert_eq!(bo(&messages), 3, "{messages:#?}");
    assert_eq!(messages.len(), 4, "{messages:#?}");
}

/// One `shopstream serve` process, killed with SIGKILL when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(data: &Path, port: u16, smtp: &str) -> Serve {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shopstream"));
    // The process dies with this test, however the test ends.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.with_extension("log"))
        .expect("a log file");
    let child = command
        .arg("serve")
        .env("SHOPSTREAM_DATA_DIR", data)
        .env("SHOPSTREAM_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("SHOPSTREAM_MAIL__SMTP_URL", smtp)
        .env("SHOPSTREAM_MAIL__LEASE_TTL_MS", "1000")
        .env("SHOPSTREAM_RATE_LIMITS", "off")
        .env("SHOPSTREAM_PASSWORDS__MEMORY_KIB", "1024")
        .env("SHOPSTREAM_PASSWORDS__ITERATIONS", "1")
        .env(
            "SHOPSTREAM_LOG__FILTER",
            "warn,shopstream::app::mailer=info",
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::from(log.try_clone().expect("log")))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("shopstream starts");
    Serve(child)
}

async fn ready(base: &str) {
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the node never became ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mailer_killed_mid_batch_neither_loses_nor_doubles_a_message() {
    const CUSTOMERS: usize = 12;
    // Each recipient waits 300 ms: a kill lands while a message is on its
    // way (the server holds none of it), not in the instant between the
    // server taking one and the mailer recording it.
    let sink = Sink::start(300).await;
    let root = tempfile::tempdir().expect("temp dir");
    let data = root.path().join("data");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let first = serve(&data, port, &sink.url());
    ready(&base).await;
    let client = reqwest::Client::new();
    for i in 0..CUSTOMERS {
        let reply = client
            .post(format!("{base}/v1/customers"))
            .json(&json!({"email": format!("c{i}@example.com"), "password": "password-123", "name": "C"}))
            .send()
            .await
            .expect("registers");
        assert_eq!(reply.status().as_u16(), 201);
    }
    // Killed while sending: some mails are out, the rest are not.
    sink.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(first);
    let before = sink.messages().len();
    assert!(
        before < CUSTOMERS,
        "the kill came mid-batch ({before} sent)"
    );

    let _second = serve(&data, port, &sink.url());
    ready(&base).await;
    let messages = sink.wait_for(CUSTOMERS).await;
    let recipients: std::collections::BTreeSet<&str> =
        messages.iter().filter_map(|m| header(m, "To")).collect();
    assert_eq!(recipients.len(), CUSTOMERS, "none lost");
    assert_eq!(messages.len(), CUSTOMERS, "none doubled: {recipients:?}");
}
