//! Leases (`leases`: holder, expiry, a position kept under the lease),
//! every write a lightweight transaction; dead letters (`dead_letters`,
//! one per projection and event).

use std::time::Duration;

use async_trait::async_trait;

use super::cql::position;
use super::{ScyllaReadStore, corrupt, idempotent, outcome, transaction};
use scylla::value::CqlTimestamp;

use crate::read_store::{Coordination, DeadLetter, KeptLetter, LetterStatus, ReadStoreError};

/// Rounds of taking a lease against other takers before answering no.
const ROUNDS: usize = 8;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether `holder` may take a lease held by `current` until `expires_ms`.
fn may_take(holder: &str, current: &str, expires_ms: i64, now_ms: i64) -> bool {
    current == holder || expires_ms < now_ms
}

#[async_trait]
impl Coordination for ScyllaReadStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, ReadStoreError> {
        let ks = self.ks();
        let until = |now: i64| now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
        let created = self
            .execute(
                transaction(format!(
                    "INSERT INTO {ks}.leases (name, holder, expires_ms, position) \
                     VALUES (?, ?, ?, 0) IF NOT EXISTS"
                )),
                (name, holder, until(now_ms())),
            )
            .await?;
        if outcome(created)?.0 {
            return Ok(true);
        }
        for _ in 0..ROUNDS {
            let row = self.lease_row(name).await?;
            let (Some(current), Some(expires)) = (row.text("holder"), row.bigint("expires_ms"))
            else {
                return Err(ReadStoreError::Corrupt(crate::error::cause(format!(
                    "the lease {name} lacks its holder"
                ))));
            };
            let now = now_ms();
            if !may_take(holder, &current, expires as i64, now) {
                return Ok(false);
            }
            // Taken only if nobody else renewed or took it since the read.
            let taken = self
                .execute(
                    transaction(format!(
                        "UPDATE {ks}.leases SET holder = ?, expires_ms = ? WHERE name = ? \
                         IF holder = ? AND expires_ms = ?"
                    )),
                    (holder, until(now), name, current, expires as i64),
                )
                .await?;
            if outcome(taken)?.0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ReadStoreError> {
        self.execute(
            transaction(format!(
                "UPDATE {}.leases SET expires_ms = 0 WHERE name = ? IF holder = ?",
                self.ks()
            )),
            (name, holder),
        )
        .await?;
        Ok(())
    }

    async fn lease_position(&self, name: &str) -> Result<u64, ReadStoreError> {
        Ok(self.lease_row(name).await?.bigint("position").unwrap_or(0))
    }

    async fn advance_lease(
        &self,
        name: &str,
        holder: &str,
        to: u64,
    ) -> Result<bool, ReadStoreError> {
        let result = self
            .execute(
                transaction(format!(
                    "UPDATE {}.leases SET position = ? WHERE name = ? IF holder = ? AND position < ?",
                    self.ks()
                )),
                (position(to), name, holder, position(to)),
            )
            .await?;
        if outcome(result)?.0 {
            return Ok(true);
        }
        // Not moved: still ours (and already as far), or someone else's.
        Ok(self.lease_row(name).await?.text("holder").as_deref() == Some(holder))
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), ReadStoreError> {
        let inserted = self
            .execute(
                transaction(format!(
                    "INSERT INTO {}.dead_letters \
                     (projection, event_id, position, event_type, error, at, status, generation) \
                     VALUES (?, ?, ?, ?, ?, toTimestamp(now()), 'open', ?) IF NOT EXISTS",
                    self.ks()
                )),
                (
                    &letter.projection,
                    &letter.event_id,
                    position(letter.position),
                    &letter.event_type,
                    &letter.error,
                    letter.generation as i32,
                ),
            )
            .await?;
        if outcome(inserted)?.0 {
            return Ok(());
        }
        // Set aside again: open again, unless an operator skipped it.
        self.execute(
            transaction(format!(
                "UPDATE {}.dead_letters SET error = ?, at = toTimestamp(now()), status = 'open', \
                 generation = ? WHERE projection = ? AND event_id = ? IF status != 'skipped'",
                self.ks()
            )),
            (
                &letter.error,
                letter.generation as i32,
                &letter.projection,
                &letter.event_id,
            ),
        )
        .await?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError> {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for kept in self.letters(None).await? {
            if kept.status.unresolved() {
                *counts.entry(kept.letter.projection).or_default() += 1;
            }
        }
        Ok(counts.into_iter().collect())
    }

    async fn letters(&self, projection: Option<&str>) -> Result<Vec<KeptLetter>, ReadStoreError> {
        let select = format!("SELECT {LETTER} FROM {}.dead_letters", self.ks());
        let result = match projection {
            Some(p) => {
                self.execute(idempotent(format!("{select} WHERE projection = ?")), (p,))
                    .await?
            }
            None => self.execute(idempotent(select), ()).await?,
        };
        let mut letters = kept_letters(result)?;
        letters.sort_by(|a, b| {
            (&a.letter.projection, a.letter.position)
                .cmp(&(&b.letter.projection, b.letter.position))
        });
        Ok(letters)
    }

    async fn letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<Option<KeptLetter>, ReadStoreError> {
        let result = self
            .execute(
                idempotent(format!(
                    "SELECT {LETTER} FROM {}.dead_letters WHERE projection = ? AND event_id = ?",
                    self.ks()
                )),
                (projection, event_id),
            )
            .await?;
        Ok(kept_letters(result)?.into_iter().next())
    }

    async fn resolve_letters_before(
        &self,
        projection: &str,
        generation: u32,
    ) -> Result<u64, ReadStoreError> {
        let mut resolved = 0;
        for kept in self.letters(Some(projection)).await? {
            if kept.status.unresolved()
                && kept.letter.generation < generation
                && self
                    .set_letter_status(
                        projection,
                        &kept.letter.event_id,
                        &[LetterStatus::Open, LetterStatus::Retrying],
                        LetterStatus::Retried,
                    )
                    .await?
            {
                resolved += 1;
            }
        }
        Ok(resolved)
    }

    async fn set_letter_status(
        &self,
        projection: &str,
        event_id: &str,
        from: &[LetterStatus],
        to: LetterStatus,
    ) -> Result<bool, ReadStoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        // The statuses are this module's own words: safe to splice.
        let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let result = self
            .execute(
                transaction(format!(
                    "UPDATE {}.dead_letters SET status = ? WHERE projection = ? AND event_id = ? \
                     IF status IN ({})",
                    self.ks(),
                    from.join(", ")
                )),
                (to.as_str(), projection, event_id),
            )
            .await?;
        Ok(outcome(result)?.0)
    }
}

/// A letter's columns, in the order [`kept_letters`] reads them.
const LETTER: &str = "projection, position, event_id, event_type, error, at, status, generation";

type LetterRow = (
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<CqlTimestamp>,
    Option<String>,
    Option<i32>,
);

/// Letters from their rows (a row written before statuses reads as open).
fn kept_letters(
    result: scylla::response::query_result::QueryResult,
) -> Result<Vec<KeptLetter>, ReadStoreError> {
    let rows = result.into_rows_result().map_err(corrupt)?;
    rows.rows::<LetterRow>()
        .map_err(corrupt)?
        .map(|row| {
            let (projection, position, event_id, event_type, error, at, status, generation) =
                row.map_err(corrupt)?;
            let status = match status.as_deref() {
                None => LetterStatus::Open,
                Some(s) => LetterStatus::parse(s).ok_or_else(|| {
                    ReadStoreError::Corrupt(crate::error::cause(format!(
                        "dead letter status {s:?}"
                    )))
                })?,
            };
            let at = at
                .and_then(|t| chrono::DateTime::from_timestamp_millis(t.0))
                .unwrap_or_default();
            Ok(KeptLetter {
                letter: DeadLetter {
                    projection,
                    position: position.max(0) as u64,
                    event_id,
                    event_type,
                    error: error.unwrap_or_default(),
                    generation: generation.unwrap_or(0).max(0) as u32,
                },
                status,
                at,
            })
        })
        .collect()
}

impl ScyllaReadStore {
    /// A lease's row as a serial read (it sees every transaction decided
    /// before it).
    async fn lease_row(&self, name: &str) -> Result<super::Named, ReadStoreError> {
        self.serial_row(
            format!(
                "SELECT holder, expires_ms, position FROM {}.leases WHERE name = ?",
                self.ks()
            ),
            name,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_by_its_holder_or_once_it_ran_out() {
        assert!(may_take("a", "a", 100, 50), "its holder renews it");
        assert!(!may_take("b", "a", 100, 50), "not while it runs");
        assert!(!may_take("b", "a", 100, 100), "not at its last instant");
        assert!(may_take("b", "a", 100, 101), "after it ran out");
        assert!(may_take("b", "a", 0, 1), "a released lease is free");
    }
}
