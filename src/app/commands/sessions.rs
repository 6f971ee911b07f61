//! Sessions: starting one at login, exchanging its refresh token, ending it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shopstream_domain::session::{EndReason, Session, SessionCommand, SessionEvent};
use shopstream_domain::values::{CustomerId, SessionId};
use shopstream_domain::{Aggregate, DomainError, stream_name};

use super::{Command, CommandError, UnitOfWork};

/// Starts a session for a customer whose password was just checked.
#[derive(Debug, Clone)]
pub struct StartSession {
    pub session_id: SessionId,
    pub customer_id: CustomerId,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionView {
    pub session_id: SessionId,
    pub customer_id: CustomerId,
}

impl Command for StartSession {
    type Output = SessionView;
    const NAME: &'static str = "start_session";

    fn target(&self) -> String {
        stream_name::<Session>(self.session_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<SessionView, CommandError> {
        let session = uow.create::<Session>(self.session_id);
        let events = session.state.decide(&SessionCommand::Start {
            session_id: self.session_id,
            customer_id: self.customer_id,
            token_hash: self.token_hash.clone(),
            expires_at: self.expires_at,
            at: uow.now(),
        })?;
        uow.stage(&session, events);
        Ok(SessionView {
            session_id: self.session_id,
            customer_id: self.customer_id,
        })
    }
}

/// Exchanges a session's current refresh token (by hash) for a new one.
/// A replaced token presented again ends the session, and is refused.
#[derive(Debug, Clone)]
pub struct RefreshSession {
    pub session_id: SessionId,
    pub presented_hash: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

impl Command for RefreshSession {
    type Output = SessionView;
    const NAME: &'static str = "refresh_session";

    fn target(&self) -> String {
        stream_name::<Session>(self.session_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<SessionView, CommandError> {
        let session = uow.load::<Session>(self.session_id).await?;
        let Some(live) = session.state.live.clone() else {
            return Err(DomainError::NotFound("session").into());
        };
        let events = session.state.decide(&SessionCommand::Refresh {
            presented_hash: self.presented_hash.clone(),
            token_hash: self.token_hash.clone(),
            expires_at: self.expires_at,
            at: uow.now(),
        })?;
        let reused = events
            .iter()
            .any(|e| matches!(e, SessionEvent::SessionEnded(_)));
        uow.stage(&session, events);
        if reused {
            // Record the end, then refuse: the token was stolen or replayed.
            uow.refuse_after_commit();
            return Err(DomainError::InvalidState {
                entity: "session",
                state: "ended",
                action: "refresh",
            }
            .into());
        }
        Ok(SessionView {
            session_id: self.session_id,
            customer_id: live.customer_id,
        })
    }
}

/// Ends a session (its customer logged out).
#[derive(Debug, Clone)]
pub struct EndSession {
    pub session_id: SessionId,
    pub reason: EndReason,
}

impl Command for EndSession {
    type Output = ();
    const NAME: &'static str = "end_session";

    fn target(&self) -> String {
        stream_name::<Session>(self.session_id)
    }

    async fn decide(&self, uow: &mut UnitOfWork<'_>) -> Result<(), CommandError> {
        let session = uow.load::<Session>(self.session_id).await?;
        let events = session.state.decide(&SessionCommand::End {
            reason: self.reason,
            at: uow.now(),
        })?;
        uow.stage(&session, events);
        Ok(())
    }
}
