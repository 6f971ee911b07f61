//! Leases (`leases`: holder, expiry, a position kept under the lease),
//! every write a lightweight transaction; dead letters (`dead_letters`,
//! one per projection and event).

use std::time::Duration;

use async_trait::async_trait;

use super::cql::position;
use super::{ScyllaReadStore, corrupt, idempotent, outcome, transaction};
use crate::read_store::{Coordination, DeadLetter, ReadStoreError};

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
        self.execute(
            transaction(format!(
                "INSERT INTO {}.dead_letters (projection, event_id, position, event_type, error, at) \
                 VALUES (?, ?, ?, ?, ?, toTimestamp(now())) IF NOT EXISTS",
                self.ks()
            )),
            (
                &letter.projection,
                &letter.event_id,
                position(letter.position),
                &letter.event_type,
                &letter.error,
            ),
        )
        .await?;
        Ok(())
    }

    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError> {
        let result = self
            .execute(
                idempotent(format!(
                    "SELECT projection, COUNT(*) FROM {}.dead_letters GROUP BY projection",
                    self.ks()
                )),
                (),
            )
            .await?;
        let rows = result.into_rows_result().map_err(corrupt)?;
        let mut counts = rows
            .rows::<(String, i64)>()
            .map_err(corrupt)?
            .map(|row| {
                let (projection, n) = row.map_err(corrupt)?;
                Ok((projection, n.max(0) as u64))
            })
            .collect::<Result<Vec<_>, ReadStoreError>>()?;
        counts.sort();
        Ok(counts)
    }
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
