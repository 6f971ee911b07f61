//! The timeline: for every minute (UTC) in which events were recorded, the
//! position of its first event. It maps analysts' time ranges onto `$all`
//! positions with what every event store has (a position and a recorded
//! time on each event), instead of a time index only one store keeps.
//!
//! Rows are partitioned by month (`2026-12`) and clustered by the minute
//! within it (`02T01:28`), so finding the first minute at or after an
//! instant is a range scan of one partition, then of the months after it.
//!
//! Every event of a minute writes that minute's row, with a version that
//! falls as the position grows ([`first_wins`]): the row keeps the earliest
//! position whatever order, and however often, events arrive, which is
//! ScyllaDB's last-write-wins turned around. The projection never reads.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::projection::{Envelope, Projection, ProjectionError, RowSource};
use crate::row::{RowKey, RowWrite};
use crate::{DOC, encode};

pub const TIMELINE_BY_MINUTE: &str = "timeline_by_minute";

/// A minute of the timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinuteDoc {
    /// The minute, `2026-12-02T01:28Z`.
    pub minute: String,
    /// The position of the first event recorded in it.
    pub first_position: u64,
}

/// Versions fall from here as positions grow. Kept well below the largest
/// version a store holds (ScyllaDB's write timestamps are twice a version,
/// in a signed 64-bit integer: see its adapter's `MAX_VERSION`).
const FIRST_WINS_BASE: u64 = 1 << 60;

/// The version under which an event at `position` writes its minute: the
/// smaller the position, the newer the version, so the first event wins.
pub fn first_wins(position: u64) -> u64 {
    FIRST_WINS_BASE.saturating_sub(position)
}

/// The partition (month) and clustering key (minute within it) of the
/// minute `at` falls in.
pub fn minute_key(at: DateTime<Utc>) -> (String, String) {
    (
        format!("{:04}-{:02}", at.year(), at.month()),
        format!("{:02}T{:02}:{:02}", at.day(), at.hour(), at.minute()),
    )
}

/// The month partition after `month` (`2026-12` → `2027-01`).
pub fn next_month(month: &str) -> Option<String> {
    let (year, month) = month.split_once('-')?;
    let (year, month): (i32, u32) = (year.parse().ok()?, month.parse().ok()?);
    if !(1..=12).contains(&month) {
        return None;
    }
    Some(if month == 12 {
        format!("{:04}-01", year + 1)
    } else {
        format!("{year:04}-{:02}", month + 1)
    })
}

pub struct Timeline;

impl Projection for Timeline {
    fn name(&self) -> &'static str {
        "timeline"
    }

    fn version(&self) -> u32 {
        // 2: versions fall from 2^60 rather than 2^62.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &[TIMELINE_BY_MINUTE]
    }

    fn reads(&self) -> &'static [&'static str] {
        &[]
    }

    /// Every event, whatever its type.
    fn event_types(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn apply(
        &self,
        env: &Envelope<'_>,
        _rows: &dyn RowSource,
    ) -> Result<Vec<RowWrite>, ProjectionError> {
        let (month, minute) = minute_key(env.recorded_at);
        let doc = MinuteDoc {
            minute: env.recorded_at.format("%Y-%m-%dT%H:%MZ").to_string(),
            first_position: env.position,
        };
        Ok(vec![RowWrite::upsert(
            RowKey::new(TIMELINE_BY_MINUTE, month, minute),
            DOC,
            encode(&doc)?,
            first_wins(env.position),
        )])
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::memory::MemoryRows;

    fn at(position: u64, time: DateTime<Utc>) -> Envelope<'static> {
        Envelope {
            stream: "order-1",
            revision: position,
            position,
            event_type: "Anything",
            schema_version: 1,
            recorded_at: time,
            data: b"{}",
        }
    }

    fn first(rows: &MemoryRows, time: DateTime<Utc>) -> Option<u64> {
        let (month, minute) = minute_key(time);
        let row = rows.live(&RowKey::new(TIMELINE_BY_MINUTE, month, minute))?;
        row.cell(DOC)?
            .decode::<MinuteDoc>()
            .ok()
            .map(|d| d.first_position)
    }

    #[test]
    fn each_minute_keeps_its_first_position_whatever_the_order_of_delivery() {
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 1, 28, 5).unwrap();
        let later = t + chrono::Duration::seconds(40);
        let next_minute = t + chrono::Duration::seconds(70);
        let mut rows = MemoryRows::default();
        for (position, time) in [(12, later), (9, t), (30, next_minute), (9, t), (10, t)] {
            rows.project(&Timeline, &at(position, time)).unwrap();
        }
        assert_eq!(first(&rows, t), Some(9));
        assert_eq!(first(&rows, next_minute), Some(30));
        let doc: MinuteDoc = rows
            .live(&RowKey::new(TIMELINE_BY_MINUTE, "2026-12", "02T01:28"))
            .unwrap()
            .cell(DOC)
            .unwrap()
            .decode()
            .unwrap();
        assert_eq!(doc.minute, "2026-12-02T01:28Z");
    }

    #[test]
    fn minutes_sort_within_their_month_and_months_follow_each_other() {
        let a = minute_key(Utc.with_ymd_and_hms(2026, 12, 2, 9, 5, 0).unwrap());
        let b = minute_key(Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap());
        assert_eq!(a, ("2026-12".to_string(), "02T09:05".to_string()));
        assert!(a.1 < b.1);
        assert_eq!(next_month("2026-12").as_deref(), Some("2027-01"));
        assert_eq!(next_month("2026-01").as_deref(), Some("2026-02"));
        assert_eq!(next_month("2026-13"), None);
        assert_eq!(next_month("garbage"), None);
    }

    #[test]
    fn earlier_positions_always_carry_newer_versions() {
        assert!(first_wins(1) > first_wins(2));
        assert!(first_wins(u64::MAX) < first_wins(1));
        assert!(first_wins(0) <= i64::MAX as u64);
    }
}
