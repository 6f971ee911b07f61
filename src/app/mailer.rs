//! The mailer: sends the verification mail that registrations and resend
//! requests ask for, and records each one sent as an event.
//!
//! It follows the event store from a position of its own, kept under a
//! lease in the read store, so however many API nodes run it one sends at
//! a time, and a restart goes on where the last holder stopped. It is no
//! projection: rebuilding read models replays nothing here, and nothing on
//! the projection side can reach it (projections are pure functions from
//! events to rows; the mailer lives in the application, beside them).
//!
//! A request is answered once: before sending, the mailer reads the
//! customer's stream and skips a request already answered
//! ([`VerificationMailSent`](shopstream_domain::customer::VerificationMailSent))
//! or an address already verified; after the server took the mail it
//! records it. Only a crash in the instant between the two sends the mail
//! again, with the same Message-ID. A server that cannot take mail now is
//! tried again with growing pauses; the position does not move past a
//! request until it is answered.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use shopstream_domain::customer::Customer;
use shopstream_domain::values::CustomerId;
use shopstream_infra::crypto::token::TokenIssuer;
use shopstream_infra::event_store::{EventFilter, EventStore, RecordedEvent, StoreError};
use shopstream_infra::mail::{MailError, MailTransport, OutgoingMail};
use shopstream_infra::read_store::{Coordination, ReadStoreError};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::commands::aggregates::AggregateCache;
use super::commands::customers::RecordVerificationMail;
use super::commands::{Actor, CommandContext, CommandError, CommandService};

/// The lease (and position) the mailer sends under.
pub const MAIL_LEASE: &str = "mailer";

/// What a verification mail says, and how long its link lasts.
#[derive(Debug, Clone)]
pub struct MailerSettings {
    pub from: String,
    /// The link is this with the token appended.
    pub link_base: String,
    pub link_ttl: Duration,
    pub lease_ttl: Duration,
    /// Requests read per round.
    pub batch: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MailerError {
    #[error(transparent)]
    Events(#[from] StoreError),
    #[error(transparent)]
    Lease(#[from] ReadStoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("signing a link failed")]
    Token(#[source] shopstream_infra::crypto::token::TokenError),
    /// Another process took the lease while this one was sending.
    #[error("another mailer took the lease")]
    LostLease,
    /// The process is stopping; the request stays unanswered for the next.
    #[error("stopping")]
    Stopped,
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Round {
    /// Another process holds the lease.
    NotHolder,
    /// Nothing new to answer.
    Idle,
    /// This many mails sent (requests already answered are not counted).
    Sent(usize),
}

pub struct Mailer {
    pub(super) events: Arc<dyn EventStore>,
    pub(super) coordination: Arc<dyn Coordination>,
    pub(super) commands: CommandService,
    pub(super) aggregates: AggregateCache,
    pub(super) tokens: TokenIssuer,
    pub(super) transport: Arc<dyn MailTransport>,
    pub(super) settings: MailerSettings,
    pub(super) holder: String,
}

/// The requests the mailer answers.
fn requests() -> EventFilter {
    EventFilter {
        types: vec!["CustomerRegistered".into(), "VerificationRequested".into()],
        stream_prefix: Some("customer-".into()),
    }
}

/// The customer and the request an event is: a registration asks by
/// itself (its event id names the request); a resend names its own.
fn request_of(event: &RecordedEvent) -> Option<(CustomerId, Uuid)> {
    let customer = CustomerId(event.stream.strip_prefix("customer-")?.parse().ok()?);
    let request = match event.event_type.as_str() {
        "CustomerRegistered" => event.event_id,
        "VerificationRequested" => {
            #[derive(serde::Deserialize)]
            struct Requested {
                request_id: Uuid,
            }
            serde_json::from_str::<Requested>(event.data.get())
                .ok()?
                .request_id
        }
        _ => return None,
    };
    Some((customer, request))
}

/// The pauses between tries of a server that cannot take mail now.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.saturating_pow(attempt.min(8))).min(Duration::from_secs(60))
}

impl Mailer {
    /// Sends until `stop`, taking the lease when it is free.
    pub async fn run(&self, stop: CancellationToken) {
        let mut failures = 0;
        while !stop.is_cancelled() {
            let round = tokio::select! {
                round = self.round(&stop) => round,
                _ = stop.cancelled() => break,
            };
            let pause = match round {
                Ok(Round::Sent(_)) => {
                    failures = 0;
                    continue;
                }
                Ok(Round::Idle) => {
                    failures = 0;
                    // Wait for news (or renew the lease in a while).
                    self.wait_for_requests().await;
                    continue;
                }
                Ok(Round::NotHolder) => self.settings.lease_ttl / 2,
                Err(e) => {
                    tracing::warn!(error = %shopstream_infra::error::Report(&e), "mailer: trying again");
                    failures += 1;
                    backoff(failures)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.cancelled() => break,
            }
        }
        let _ = self
            .coordination
            .release_lease(MAIL_LEASE, &self.holder)
            .await;
    }

    /// Waits until a request may have arrived after the mailer's position,
    /// at most a third of the lease's time (so it is renewed in time).
    async fn wait_for_requests(&self) {
        let wait = async {
            let position = self.coordination.lease_position(MAIL_LEASE).await.ok()?;
            let mut sub = self.events.subscribe_all(position, requests()).await.ok()?;
            loop {
                let slice = sub.next().await.ok()?;
                if !slice.events.is_empty() {
                    return Some(());
                }
            }
        };
        let _ = tokio::time::timeout(self.settings.lease_ttl / 3, wait).await;
    }

    /// One round: takes (or renews) the lease, answers the requests after
    /// the mailer's position, and moves the position past each.
    pub async fn round(&self, stop: &CancellationToken) -> Result<Round, MailerError> {
        let held = self
            .coordination
            .acquire_lease(MAIL_LEASE, &self.holder, self.settings.lease_ttl)
            .await?;
        if !held {
            return Ok(Round::NotHolder);
        }
        let position = self.coordination.lease_position(MAIL_LEASE).await?;
        let slice = self
            .events
            .read_all(position, &requests(), self.settings.batch)
            .await?;
        let mut sent = 0;
        for event in &slice.events {
            if let Some((customer, request)) = request_of(event)
                && self.answer(customer, request, stop).await?
            {
                sent += 1;
            }
            self.record_position(event.position).await?;
        }
        if slice.scanned_to > position {
            self.record_position(slice.scanned_to).await?;
        }
        Ok(if slice.events.is_empty() {
            Round::Idle
        } else {
            Round::Sent(sent)
        })
    }

    async fn record_position(&self, position: u64) -> Result<(), MailerError> {
        let still_ours = self
            .coordination
            .advance_lease(MAIL_LEASE, &self.holder, position)
            .await?;
        if still_ours {
            Ok(())
        } else {
            Err(MailerError::LostLease)
        }
    }

    /// Answers one request unless it was answered (or the address
    /// verified) already; whether a mail went out.
    async fn answer(
        &self,
        customer: CustomerId,
        request: Uuid,
        stop: &CancellationToken,
    ) -> Result<bool, MailerError> {
        let state = self.aggregates.load_fresh::<Customer>(customer).await?;
        let Some(registration) = state.state.registered else {
            return Ok(false);
        };
        if registration.email_verified || registration.mails_sent.contains(&request) {
            return Ok(false);
        }
        let email = registration.email.to_string();
        let token = self
            .tokens
            .issue_verification(
                customer,
                &email,
                chrono::Duration::from_std(self.settings.link_ttl)
                    .unwrap_or(chrono::Duration::days(1)),
                Utc::now(),
            )
            .map_err(MailerError::Token)?;
        let mail = OutgoingMail {
            message_id: format!("verify-{request}@shopstream"),
            from: self.settings.from.clone(),
            to: email.clone(),
            subject: "Verify your email address".into(),
            text: format!(
                "Hello {},\n\nplease confirm that {email} is your address by following this \
                 link within {} hours:\n\n{}{token}\n\nIf you did not register, ignore this mail.\n",
                registration.name,
                self.settings.link_ttl.as_secs() / 3600,
                self.settings.link_base
            ),
        };
        let mut attempt = 0;
        loop {
            match self.transport.send(&mail).await {
                Ok(()) => break,
                Err(MailError::Invalid(why)) => {
                    // It would be refused again: say so and go on.
                    tracing::error!(
                        customer = %customer,
                        error = %shopstream_infra::error::Report(&why),
                        "a verification mail cannot be sent"
                    );
                    return Ok(false);
                }
                Err(MailError::Unavailable(why)) => {
                    attempt += 1;
                    tracing::warn!(
                        customer = %customer,
                        attempt,
                        error = %shopstream_infra::error::Report(&why),
                        "the mail server did not take a verification mail; trying again"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(attempt)) => {}
                        _ = stop.cancelled() => return Err(MailerError::Stopped),
                    }
                    // Still the sender?
                    let held = self
                        .coordination
                        .acquire_lease(MAIL_LEASE, &self.holder, self.settings.lease_ttl)
                        .await?;
                    if !held {
                        return Err(MailerError::LostLease);
                    }
                }
            }
        }
        let ctx = CommandContext::new(Actor::System, format!("mail-{request}"));
        self.commands
            .execute(
                &ctx,
                &RecordVerificationMail {
                    customer_id: customer,
                    request_id: request,
                },
            )
            .await?;
        tracing::info!(customer = %customer, %request, "verification mail sent");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, stream: &str, data: &str) -> RecordedEvent {
        RecordedEvent {
            event_id: Uuid::from_u128(7),
            ..crate::app::testing::recorded_event(event_type, stream, data)
        }
    }

    #[test]
    fn a_registration_and_a_resend_are_requests_of_their_customer() {
        let id = Uuid::from_u128(5);
        let stream = format!("customer-{id}");
        assert_eq!(
            request_of(&event("CustomerRegistered", &stream, "{}")),
            Some((CustomerId(id), Uuid::from_u128(7))),
            "a registration's own event id names it"
        );
        let resend = format!(
            r#"{{"request_id":"{}","at":"2026-12-01T00:00:00Z"}}"#,
            Uuid::from_u128(9)
        );
        assert_eq!(
            request_of(&event("VerificationRequested", &stream, &resend)),
            Some((CustomerId(id), Uuid::from_u128(9)))
        );
        assert_eq!(
            request_of(&event("CustomerRegistered", "order-1", "{}")),
            None
        );
        assert_eq!(
            request_of(&event("VerificationRequested", &stream, "{}")),
            None
        );
    }

    #[test]
    fn pauses_grow_and_stop_growing() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert!(backoff(3) > backoff(2));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
