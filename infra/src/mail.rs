//! Mail leaving the system: the [`MailTransport`] port and its adapters,
//! SMTP through `lettre` ([`SmtpMail`]) and `.eml` files in a directory
//! ([`FileMail`], the default when no SMTP server is configured, so the
//! links it carries can be followed by hand).
//!
//! A mail carries a Message-ID its sender chose: the same mail sent again
//! (after a crash between sending and recording it) has the same id, and
//! a file transport overwrites the same file.

use std::path::PathBuf;

use async_trait::async_trait;
use lettre::message::{Mailbox, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::error::{Cause, cause};

/// A mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    /// Without angle brackets, e.g. `verify-<uuid>@shopstream`.
    pub message_id: String,
    pub from: String,
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum MailError {
    /// The mail cannot be built (an address that is not one): sending it
    /// again will not help.
    #[error("the mail cannot be built")]
    Invalid(#[source] Cause),
    /// The server refused it for now or could not be reached: try again.
    #[error("the mail could not be handed over")]
    Unavailable(#[source] Cause),
}

#[async_trait]
pub trait MailTransport: Send + Sync + 'static {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError>;
}

fn message(mail: &OutgoingMail) -> Result<Message, MailError> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| MailError::Invalid(cause(format!("{text:?}: {e}"))))
    };
    Message::builder()
        .message_id(Some(format!("<{}>", mail.message_id)))
        .from(mailbox(&mail.from)?)
        .to(mailbox(&mail.to)?)
        .subject(mail.subject.clone())
        .header(ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| MailError::Invalid(cause(e)))
}

/// Mail through an SMTP server.
pub struct SmtpMail {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMail {
    /// A server named by URL: `smtp://user:password@host:587?tls=required`
    /// (STARTTLS), `smtps://…:465` (TLS), `smtp://host:25` (plain).
    pub fn new(url: &str) -> Result<Self, MailError> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Invalid(cause(e)))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        Ok(Self { transport })
    }
}

#[async_trait]
impl MailTransport for SmtpMail {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = message(mail)?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| {
            // A permanent refusal (5xx) will come again.
            if e.is_permanent() {
                MailError::Invalid(cause(e))
            } else {
                MailError::Unavailable(cause(e))
            }
        })
    }
}

/// Mail written as `<message-id>.eml` files into a directory (readable by
/// their owner only: they carry sign-in links).
pub struct FileMail {
    dir: PathBuf,
}

impl FileMail {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The file a mail goes to.
    pub fn path_of(&self, mail: &OutgoingMail) -> PathBuf {
        let name: String = mail
            .message_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{name}.eml"))
    }
}

#[async_trait]
impl MailTransport for FileMail {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let bytes = message(mail)?.formatted();
        let path = self.path_of(mail);
        let unavailable = |e: std::io::Error| MailError::Unavailable(cause(e));
        tokio::task::spawn_blocking(move || {
            // Written aside and renamed: a reader never sees half a mail.
            let partial = path.with_extension("eml.partial");
            crate::files::private_file(&partial)?;
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &path)
        })
        .await
        .map_err(|e| MailError::Unavailable(cause(e)))?
        .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail() -> OutgoingMail {
        OutgoingMail {
            message_id: "verify-0190@shopstream".into(),
            from: "shopstream <noreply@example.com>".into(),
            to: "ada@example.com".into(),
            subject: "Verify your email address".into(),
            text: "Follow https://shop.example.com/verify?token=abc".into(),
        }
    }

    #[tokio::test]
    async fn a_mail_is_written_once_under_its_message_id() {
        let dir = tempfile::tempdir().unwrap();
        let files = FileMail::new(dir.path().join("mail"));
        files.send(&mail()).await.unwrap();
        files.send(&mail()).await.unwrap();
        let written: Vec<_> = std::fs::read_dir(dir.path().join("mail"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            written,
            ["verify-0190_shopstream.eml"],
            "sent twice, one file"
        );
        let text = std::fs::read_to_string(files.path_of(&mail())).unwrap();
        assert!(
            text.contains("Message-ID: <verify-0190@shopstream>"),
            "{text}"
        );
        assert!(text.contains("To: ada@example.com"), "{text}");
        assert!(
            text.contains("https://shop.example.com/verify?token=abc"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_mail_to_no_address_is_refused_for_good() {
        let files = FileMail::new(tempfile::tempdir().unwrap().path());
        let bad = OutgoingMail {
            to: "not an address".into(),
            ..mail()
        };
        assert!(matches!(files.send(&bad).await, Err(MailError::Invalid(_))));
        assert!(matches!(
            SmtpMail::new("ftp://nope"),
            Err(MailError::Invalid(_))
        ));
    }
}
