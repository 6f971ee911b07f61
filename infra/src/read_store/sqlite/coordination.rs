//! Leases (`leases`: holder, expiry, a position kept under the lease) and
//! dead letters (`dead_letters`, one per projection and event).

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteReadStore, sql_err};
use crate::read_store::{Coordination, DeadLetter, KeptLetter, LetterStatus, ReadStoreError};

/// A letter's columns, in the order [`kept_letter`] reads them.
const LETTER: &str = "projection, position, event_id, event_type, error, at, status, generation";

fn unreadable(why: String) -> ReadStoreError {
    ReadStoreError::Corrupt(crate::error::cause(why))
}

/// A letter from its row (a status or time this build cannot read makes
/// the letter unreadable, not the query).
fn kept_letter(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<KeptLetter, ReadStoreError>> {
    let letter = DeadLetter {
        projection: r.get(0)?,
        position: r.get::<_, i64>(1)?.max(0) as u64,
        event_id: r.get(2)?,
        event_type: r.get(3)?,
        error: r.get(4)?,
        generation: r.get(7)?,
    };
    let (at, status): (String, String) = (r.get(5)?, r.get(6)?);
    Ok((|| {
        let status = LetterStatus::parse(&status)
            .ok_or_else(|| unreadable(format!("dead letter status {status:?}")))?;
        let at = chrono::DateTime::parse_from_rfc3339(&at)
            .map_err(|e| unreadable(format!("dead letter time {at:?}: {e}")))?
            .with_timezone(&chrono::Utc);
        Ok(KeptLetter { letter, status, at })
    })())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[async_trait]
impl Coordination for SqliteReadStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            let now = now_ms();
            let until = now.saturating_add(ttl.as_millis().min(i64::MAX as u128) as i64);
            conn.execute(
                "INSERT INTO leases (name, holder, expires_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms \
                 WHERE leases.holder = excluded.holder OR leases.expires_ms < ?4",
                params![name, holder, until, now],
            )
            .map_err(sql_err)?;
            let current: String = conn
                .query_row("SELECT holder FROM leases WHERE name = ?1", [&name], |r| r.get(0))
                .map_err(sql_err)?;
            Ok(current == holder)
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            conn.execute(
                "UPDATE leases SET expires_ms = 0 WHERE name = ?1 AND holder = ?2",
                params![name, holder],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn lease_position(&self, name: &str) -> Result<u64, ReadStoreError> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.query_row(
                "SELECT position FROM leases WHERE name = ?1",
                [&name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|p| p.unwrap_or(0) as u64)
            .map_err(sql_err)
        })
        .await
    }

    async fn advance_lease(
        &self,
        name: &str,
        holder: &str,
        position: u64,
    ) -> Result<bool, ReadStoreError> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.write(move |conn| {
            let moved = conn
                .execute(
                    "UPDATE leases SET position = MAX(position, ?1) WHERE name = ?2 AND holder = ?3",
                    params![position.min(i64::MAX as u64) as i64, name, holder],
                )
                .map_err(sql_err)?;
            Ok(moved == 1)
        })
        .await
    }

    async fn dead_letter(&self, letter: DeadLetter) -> Result<(), ReadStoreError> {
        self.write(move |conn| {
            conn.execute(
                "INSERT INTO dead_letters \
                   (projection, position, event_id, event_type, error, generation) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (projection, event_id) DO UPDATE SET error = excluded.error, \
                   at = excluded.at, generation = excluded.generation, \
                   status = CASE status WHEN 'skipped' THEN 'skipped' ELSE 'open' END",
                params![
                    letter.projection,
                    letter.position.min(i64::MAX as u64) as i64,
                    letter.event_id,
                    letter.event_type,
                    letter.error,
                    letter.generation
                ],
            )
            .map_err(sql_err)?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(&self) -> Result<Vec<(String, u64)>, ReadStoreError> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT projection, COUNT(*) FROM dead_letters \
                 WHERE status IN ('open', 'retrying') GROUP BY projection ORDER BY projection",
            )
            .map_err(sql_err)?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)
        })
        .await
    }

    async fn letters(&self, projection: Option<&str>) -> Result<Vec<KeptLetter>, ReadStoreError> {
        let projection = projection.map(str::to_string);
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {LETTER} FROM dead_letters WHERE ?1 IS NULL OR projection = ?1 \
                 ORDER BY projection, position"
            ))
            .map_err(sql_err)?
            .query_map([projection], kept_letter)
            .map_err(sql_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_err)?
            .into_iter()
            .collect()
        })
        .await
    }

    async fn letter(
        &self,
        projection: &str,
        event_id: &str,
    ) -> Result<Option<KeptLetter>, ReadStoreError> {
        let (projection, event_id) = (projection.to_string(), event_id.to_string());
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {LETTER} FROM dead_letters WHERE projection = ?1 AND event_id = ?2"
            ))
            .map_err(sql_err)?
            .query_row(params![projection, event_id], kept_letter)
            .optional()
            .map_err(sql_err)?
            .transpose()
        })
        .await
    }

    async fn resolve_letters_before(
        &self,
        projection: &str,
        generation: u32,
    ) -> Result<u64, ReadStoreError> {
        let projection = projection.to_string();
        self.write(move |conn| {
            let resolved = conn
                .execute(
                    "UPDATE dead_letters SET status = 'retried' \
                     WHERE projection = ?1 AND generation < ?2 \
                       AND status IN ('open', 'retrying')",
                    params![projection, generation],
                )
                .map_err(sql_err)?;
            Ok(resolved as u64)
        })
        .await
    }

    async fn set_letter_status(
        &self,
        projection: &str,
        event_id: &str,
        from: &[LetterStatus],
        to: LetterStatus,
    ) -> Result<bool, ReadStoreError> {
        let (projection, event_id) = (projection.to_string(), event_id.to_string());
        // The statuses are this module's own words: safe to splice.
        let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE dead_letters SET status = ?1 \
             WHERE projection = ?2 AND event_id = ?3 AND status IN ({})",
            from.join(", ")
        );
        self.write(move |conn| {
            let moved = conn
                .execute(&sql, params![to.as_str(), projection, event_id])
                .map_err(sql_err)?;
            Ok(moved == 1)
        })
        .await
    }
}
