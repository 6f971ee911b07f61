//! Session: one login of a customer, kept alive by rotating refresh tokens.
//!
//! A refresh token is presented once: refreshing replaces it with a new
//! one. A token presented again after it was replaced is the sign of a
//! stolen token (the thief and the owner cannot both hold the current one),
//! so the session ends, for both. Only hashes of the tokens are kept.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainError};
use crate::event_set;
use crate::values::{CustomerId, SessionId};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStarted {
    pub session_id: SessionId,
    pub customer_id: CustomerId,
    /// The hash of the first refresh token.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRefreshed {
    /// The hash of the refresh token that replaces the current one.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// Its customer logged out.
    Logout,
    /// A replaced refresh token was presented again.
    TokenReused,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    pub reason: EndReason,
    pub at: DateTime<Utc>,
}

event_set! {
    /// Events of a session stream.
    pub enum SessionEvent {
        SessionStarted = 1,
        SessionRefreshed = 1,
        SessionEnded = 1,
    }
}

#[derive(Debug, Clone)]
pub enum SessionCommand {
    Start {
        session_id: SessionId,
        customer_id: CustomerId,
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    /// Exchanges the current refresh token (its hash) for a new one.
    Refresh {
        presented_hash: String,
        token_hash: String,
        expires_at: DateTime<Utc>,
        at: DateTime<Utc>,
    },
    End {
        reason: EndReason,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    pub live: Option<Live>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub session_id: SessionId,
    pub customer_id: CustomerId,
    pub token_hash: String,
    /// Hashes of the refresh tokens replaced so far.
    pub replaced: BTreeSet<String>,
    pub expires_at: DateTime<Utc>,
    pub ended: Option<EndReason>,
}

impl Session {
    /// Whether the session's tokens are still good at `at`.
    pub fn active(&self, at: DateTime<Utc>) -> bool {
        self.live
            .as_ref()
            .is_some_and(|l| l.ended.is_none() && at < l.expires_at)
    }
}

fn ended() -> DomainError {
    DomainError::InvalidState {
        entity: "session",
        state: "ended",
        action: "refresh",
    }
}

impl Aggregate for Session {
    type Event = SessionEvent;
    type Command = SessionCommand;
    const CATEGORY: &'static str = "session";

    fn decide(&self, command: &SessionCommand) -> Result<Vec<SessionEvent>, DomainError> {
        use SessionCommand::*;
        match (command, &self.live) {
            (
                Start {
                    session_id,
                    customer_id,
                    token_hash,
                    expires_at,
                    at,
                },
                None,
            ) => Ok(vec![
                SessionStarted {
                    session_id: *session_id,
                    customer_id: *customer_id,
                    token_hash: token_hash.clone(),
                    expires_at: *expires_at,
                    at: *at,
                }
                .into(),
            ]),
            (Start { .. }, Some(_)) => Err(DomainError::AlreadyExists("session")),
            (_, None) => Err(DomainError::NotFound("session")),
            (
                Refresh {
                    presented_hash,
                    token_hash,
                    expires_at,
                    at,
                },
                Some(live),
            ) => {
                if live.ended.is_some() {
                    return Err(ended());
                }
                if live.replaced.contains(presented_hash) {
                    // Someone else refreshed with this token already.
                    return Ok(vec![
                        SessionEnded {
                            reason: EndReason::TokenReused,
                            at: *at,
                        }
                        .into(),
                    ]);
                }
                if *presented_hash != live.token_hash {
                    return Err(DomainError::NotFound("refresh token"));
                }
                if *at >= live.expires_at {
                    return Err(DomainError::InvalidState {
                        entity: "session",
                        state: "expired",
                        action: "refresh",
                    });
                }
                Ok(vec![
                    SessionRefreshed {
                        token_hash: token_hash.clone(),
                        expires_at: *expires_at,
                        at: *at,
                    }
                    .into(),
                ])
            }
            (End { reason, at }, Some(live)) => {
                if live.ended.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![
                    SessionEnded {
                        reason: *reason,
                        at: *at,
                    }
                    .into(),
                ])
            }
        }
    }

    fn evolve(&mut self, event: &SessionEvent) {
        match (event, &mut self.live) {
            (SessionEvent::SessionStarted(e), _) => {
                self.live = Some(Live {
                    session_id: e.session_id,
                    customer_id: e.customer_id,
                    token_hash: e.token_hash.clone(),
                    replaced: BTreeSet::new(),
                    expires_at: e.expires_at,
                    ended: None,
                });
            }
            (SessionEvent::SessionRefreshed(e), Some(live)) => {
                let old = std::mem::replace(&mut live.token_hash, e.token_hash.clone());
                live.replaced.insert(old);
                live.expires_at = e.expires_at;
            }
            (SessionEvent::SessionEnded(e), Some(live)) => live.ended = Some(e.reason),
            (_, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use uuid::Uuid;

    use super::*;
    use crate::testing::given;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, minute, 0).unwrap()
    }

    fn started() -> SessionEvent {
        SessionStarted {
            session_id: SessionId(Uuid::from_u128(1)),
            customer_id: CustomerId(Uuid::from_u128(2)),
            token_hash: "h1".into(),
            expires_at: at(50),
            at: at(0),
        }
        .into()
    }

    fn refresh(presented: &str, new: &str, minute: u32) -> SessionCommand {
        SessionCommand::Refresh {
            presented_hash: presented.into(),
            token_hash: new.into(),
            expires_at: at(55),
            at: at(minute),
        }
    }

    #[test]
    fn the_current_token_is_exchanged_for_a_new_one() {
        given::<Session>(vec![started()])
            .when(refresh("h1", "h2", 5))
            .then(vec![
                SessionRefreshed {
                    token_hash: "h2".into(),
                    expires_at: at(55),
                    at: at(5),
                }
                .into(),
            ]);
    }

    #[test]
    fn a_replaced_token_presented_again_ends_the_session() {
        let refreshed: SessionEvent = SessionRefreshed {
            token_hash: "h2".into(),
            expires_at: at(55),
            at: at(5),
        }
        .into();
        given::<Session>(vec![started(), refreshed.clone()])
            .when(refresh("h1", "h3", 6))
            .then(vec![
                SessionEnded {
                    reason: EndReason::TokenReused,
                    at: at(6),
                }
                .into(),
            ]);
        let reused: SessionEvent = SessionEnded {
            reason: EndReason::TokenReused,
            at: at(6),
        }
        .into();
        given::<Session>(vec![started(), refreshed, reused])
            .when(refresh("h2", "h3", 7))
            .then_error(ended());
    }

    #[test]
    fn unknown_and_expired_tokens_are_refused() {
        given::<Session>(vec![started()])
            .when(refresh("nope", "h2", 5))
            .then_error(DomainError::NotFound("refresh token"));
        given::<Session>(vec![started()])
            .when(refresh("h1", "h2", 50))
            .then_error(DomainError::InvalidState {
                entity: "session",
                state: "expired",
                action: "refresh",
            });
    }

    #[test]
    fn ending_twice_changes_nothing() {
        let logout = |minute| SessionCommand::End {
            reason: EndReason::Logout,
            at: at(minute),
        };
        given::<Session>(vec![started()]).when(logout(3)).then(vec![
            SessionEnded {
                reason: EndReason::Logout,
                at: at(3),
            }
            .into(),
        ]);
        let ended_event: SessionEvent = SessionEnded {
            reason: EndReason::Logout,
            at: at(3),
        }
        .into();
        given::<Session>(vec![started(), ended_event])
            .when(logout(4))
            .then(vec![]);
    }
}
