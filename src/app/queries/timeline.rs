//! Times onto positions of `$all`, through the `timeline` read model (the
//! first position of every minute), so analysts' time ranges work the same
//! on every event store.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use shopstream_projections::timeline::{MinuteDoc, TIMELINE_BY_MINUTE, minute_key, next_month};

use super::history::Start;
use super::{Answer, QueryError, QueryService, decode, doc};

pub const PROJECTION: &str = "timeline";

/// Where to read `$all` from so that no event recorded at or after `time`
/// is missed: at the first such event the timeline knows of, and never
/// past what the timeline has seen (events it has not applied yet may be
/// earlier). Readers skip the events before `time` that the minute's
/// granularity lets through. `first_event` is when `$all` begins (`None`:
/// it is empty), so a search never looks at months before it.
pub async fn start_at(
    q: &QueryService,
    time: DateTime<Utc>,
    first_event: Option<DateTime<Utc>>,
) -> Result<Start, QueryError> {
    let known = q.checkpoint(PROJECTION);
    let Some(first_event) = first_event else {
        return Ok(Start::After(0));
    };
    let time = time.max(first_event);
    Ok(match first_minute_from(q, time).await? {
        Some(position) if position <= known => Start::At(position),
        _ => Start::After(known),
    })
}

/// The first position of the earliest minute at or after `time`'s minute,
/// looking at months up to the current one.
async fn first_minute_from(
    q: &QueryService,
    time: DateTime<Utc>,
) -> Result<Option<u64>, QueryError> {
    let (mut month, _) = minute_key(time);
    // The scan's bound is exclusive: start after the minute before, when
    // that minute is in the same month.
    let before = time - chrono::Duration::minutes(1);
    let mut after = {
        let (before_month, before_minute) = minute_key(before);
        (before_month == month).then_some(before_minute)
    };
    let (last_month, _) = minute_key(Utc::now());
    loop {
        if let Some(first) = first_in_month(q, &month, after.as_deref()).await? {
            return Ok(Some(first));
        }
        if month >= last_month {
            return Ok(None);
        }
        let Some(next) = next_month(&month) else {
            return Ok(None);
        };
        month = next;
        after = None;
    }
}

/// The first minute of a month after `after` (exclusive), if any.
async fn first_in_month(
    q: &QueryService,
    month: &str,
    after: Option<&str>,
) -> Result<Option<u64>, QueryError> {
    let key = format!("timeline/{month}/{}", after.unwrap_or(""));
    let answer: Arc<Answer> = q
        .answer(TIMELINE_BY_MINUTE, &key, async |r| {
            let rows = r.scan(TIMELINE_BY_MINUTE, month, after, 1).await?;
            let first = match rows.first() {
                Some((_, row)) => Some(decode::<MinuteDoc>(doc(row)?)?.first_position),
                None => None,
            };
            Answer::json(&first, None)
        })
        .await?;
    serde_json::from_slice(&answer.body).map_err(QueryError::Document)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use shopstream_infra::runner::RunnerObserver;
    use shopstream_projections::timeline::first_wins;
    use shopstream_projections::{Json, RowKey};

    use super::*;
    use crate::app::queries::testing::{doc_row, service_with};

    /// A query service over a read store whose timeline holds the first
    /// position of each of these minutes, applied up to `checkpoint`.
    async fn timeline_of(
        minutes: &[(DateTime<Utc>, u64)],
        checkpoint: u64,
    ) -> (QueryService, tempfile::TempDir) {
        let rows = minutes
            .iter()
            .map(|&(at, first_position)| {
                let (month, minute) = minute_key(at);
                let doc = MinuteDoc {
                    minute: at.to_rfc3339(),
                    first_position,
                };
                doc_row(
                    RowKey::new(TIMELINE_BY_MINUTE, month, minute),
                    Json::encode(&doc).unwrap(),
                    first_wins(first_position),
                )
            })
            .collect();
        let (q, dir) = service_with(rows).await;
        q.applied(PROJECTION, 1, checkpoint, &[], &[]);
        (q, dir)
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[tokio::test]
    async fn a_time_maps_to_just_before_the_first_event_of_its_minute_or_the_next() {
        let first = at(2026, 10, 31, 23, 59, 10);
        let minutes = [
            (first, 1),
            (at(2026, 11, 1, 0, 0, 5), 40),
            (at(2026, 11, 1, 0, 2, 0), 70),
            (at(2026, 12, 2, 9, 30, 0), 900),
        ];
        let (q, _dir) = timeline_of(&minutes, 1000).await;
        let start = async |t| start_at(&q, t, Some(first)).await.unwrap();
        // Within a minute with events: at its first event.
        assert_eq!(start(at(2026, 11, 1, 0, 0, 30)).await, Start::At(40));
        assert_eq!(start(at(2026, 11, 1, 0, 2, 0)).await, Start::At(70));
        // In a quiet minute: the next minute that has events.
        assert_eq!(start(at(2026, 11, 1, 0, 1, 0)).await, Start::At(70));
        // Across the end of a month, and over a month with no events.
        assert_eq!(start(at(2026, 10, 31, 23, 59, 59)).await, Start::At(1));
        assert_eq!(start(at(2026, 11, 20, 0, 0, 0)).await, Start::At(900));
        // Before the first event: from the first event.
        assert_eq!(start(at(2001, 1, 1, 0, 0, 0)).await, Start::At(1));
        // After everything the timeline has seen: where it has got to.
        assert_eq!(start(at(2026, 12, 2, 9, 31, 0)).await, Start::After(1000));
    }

    #[tokio::test]
    async fn nothing_the_timeline_has_not_applied_is_skipped() {
        // Rows beyond the checkpoint (a partitioned feed applies some
        // partitions ahead) may miss earlier events of their minute.
        let minutes = [
            (at(2026, 11, 1, 0, 0, 5), 40),
            (at(2026, 11, 1, 0, 5, 0), 80),
        ];
        let (q, _dir) = timeline_of(&minutes, 60).await;
        let first = Some(at(2026, 11, 1, 0, 0, 5));
        let start = start_at(&q, at(2026, 11, 1, 0, 4, 0), first).await;
        assert_eq!(
            start.unwrap(),
            Start::After(60),
            "not at 80: events 61 to 79 are not known yet"
        );
    }

    #[tokio::test]
    async fn an_empty_history_starts_at_the_beginning() {
        let (q, _dir) = timeline_of(&[], 0).await;
        let start = start_at(&q, at(2026, 11, 1, 0, 0, 0), None).await;
        assert_eq!(start.unwrap(), Start::After(0));
    }
}
