//! Copying a shop's history from one event store into another (the
//! embedded file into KurrentDB, when a shop outgrows one machine), through
//! the port alone, so every store pair takes the same path.
//!
//! Every event keeps its stream, revision, id, type, schema version, data
//! and metadata, and `$all` keeps its order. Recorded times are the
//! target's: a store stamps its own. The copy appends runs of `$all` in
//! batches, each batch one atomic append in which a stream appears once
//! (as KurrentDB's multi-stream append requires), every stream expected
//! at the revision before its first event there. It is resumable: a
//! target holding the source's first N events (the whole batches a
//! stopped copy appended) continues after them, and a batch repeated after
//! a crash is recognised by its event ids and expectations, and changes
//! nothing.

use std::collections::HashSet;
use std::ops::ControlFlow;

use shopstream_infra::event_store::{
    AppendError, Direction, EventFilter, EventStore, ExpectedRevision, NewEvent, RecordedEvent,
    StoreError, StreamWrite,
};

/// Events read from the source per page.
const PAGE: usize = 4096;

/// The most events one append of the copy carries.
const BATCH: usize = 500;

/// How far a copy has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Events in the target (the source's first `events`).
    pub events: u64,
    /// Events the source held when the copy started.
    pub total: u64,
    /// Events that were in the target already when this copy started.
    pub resumed_after: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("reading the source")]
    Source(#[source] StoreError),
    #[error("appending to the target")]
    Target(#[source] AppendError),
    #[error("reading the target")]
    TargetRead(#[source] StoreError),
    /// The target holds events that are not the source's first ones.
    #[error(
        "the target's event {0} is not the source's: it holds history of its own, so nothing was copied"
    )]
    Diverged(u64),
}

/// An event as it is written again.
fn new_event(event: &RecordedEvent) -> NewEvent {
    NewEvent {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        schema_version: event.schema_version,
        data: event.data.get().as_bytes().to_vec(),
        metadata: event.metadata.clone(),
    }
}

/// One atomic append of consecutive events: a run per stream, each stream
/// in one run only.
fn batches(events: &[RecordedEvent]) -> Vec<Vec<StreamWrite>> {
    let mut batches: Vec<Vec<StreamWrite>> = Vec::new();
    let mut current: Vec<StreamWrite> = Vec::new();
    let mut streams: HashSet<&str> = HashSet::new();
    let mut size = 0;
    for event in events {
        let continues = current.last().is_some_and(|w| w.stream == event.stream);
        if size >= BATCH || (!continues && streams.contains(event.stream.as_str())) {
            batches.push(std::mem::take(&mut current));
            streams.clear();
            size = 0;
        }
        if current.last().is_some_and(|w| w.stream == event.stream) {
            if let Some(run) = current.last_mut() {
                run.events.push(new_event(event));
            }
        } else {
            streams.insert(&event.stream);
            current.push(StreamWrite {
                stream: event.stream.clone(),
                expected: match event.revision {
                    0 => ExpectedRevision::NoStream,
                    r => ExpectedRevision::Exact(r - 1),
                },
                events: vec![new_event(event)],
            });
        }
        size += 1;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// Whether the target holds this event of the source, where the source has it.
async fn holds(target: &dyn EventStore, event: &RecordedEvent) -> Result<bool, CopyError> {
    let found = target
        .read_stream(&event.stream, Some(event.revision), Direction::Forward, 1)
        .await
        .map_err(CopyError::TargetRead)?;
    Ok(found
        .first()
        .is_some_and(|e| e.event_id == event.event_id && e.revision == event.revision))
}

/// Copies `source` into `target`, telling `progress` after every append;
/// it may stop the copy (a stopped copy resumes where it stopped).
pub async fn copy_events(
    source: &dyn EventStore,
    target: &dyn EventStore,
    progress: &mut dyn FnMut(Copied) -> ControlFlow<()>,
) -> Result<Copied, CopyError> {
    let all = EventFilter::default();
    let total = source
        .count_after(0, u64::MAX)
        .await
        .map_err(CopyError::Source)?;
    let resumed_after = target
        .count_after(0, u64::MAX)
        .await
        .map_err(CopyError::TargetRead)?;
    let mut copied = Copied {
        events: 0,
        total,
        resumed_after,
    };
    let mut after = 0;
    loop {
        let page = source
            .read_all(after, &all, PAGE)
            .await
            .map_err(CopyError::Source)?;
        if page.events.is_empty() {
            return Ok(copied);
        }
        after = page.scanned_to;
        // The events the target holds already: the source's first ones.
        let skip = (resumed_after - copied.events.min(resumed_after)).min(page.events.len() as u64)
            as usize;
        if skip > 0 {
            let last_held = &page.events[skip - 1];
            if !holds(target, last_held).await? {
                return Err(CopyError::Diverged(copied.events + skip as u64));
            }
            copied.events += skip as u64;
        }
        for batch in batches(&page.events[skip..]) {
            let events: u64 = batch.iter().map(|w| w.events.len() as u64).sum();
            target.append(batch).await.map_err(CopyError::Target)?;
            copied.events += events;
            if progress(copied).is_break() {
                return Ok(copied);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(stream: &str, revision: u64, position: u64) -> RecordedEvent {
        RecordedEvent {
            revision,
            position,
            ..crate::app::testing::recorded_event("Happened", stream, "{}")
        }
    }

    fn shape(batches: &[Vec<StreamWrite>]) -> Vec<Vec<(String, ExpectedRevision, usize)>> {
        batches
            .iter()
            .map(|b| {
                b.iter()
                    .map(|w| (w.stream.clone(), w.expected, w.events.len()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_batch_holds_each_stream_once_and_keeps_the_order_of_all() {
        let events = [
            recorded("order-1", 0, 1),
            recorded("order-1", 1, 2),
            recorded("cart-1", 4, 3),
            // order-1 again after another stream: a new batch.
            recorded("order-1", 2, 4),
            recorded("inventory-A", 0, 5),
        ];
        assert_eq!(
            shape(&batches(&events)),
            [
                vec![
                    ("order-1".into(), ExpectedRevision::NoStream, 2),
                    ("cart-1".into(), ExpectedRevision::Exact(3), 1)
                ],
                vec![
                    ("order-1".into(), ExpectedRevision::Exact(1), 1),
                    ("inventory-A".into(), ExpectedRevision::NoStream, 1)
                ],
            ]
        );
    }

    #[test]
    fn a_long_run_of_one_stream_is_split_and_still_expected_right() {
        let events: Vec<_> = (0..1_001).map(|r| recorded("order-1", r, r + 1)).collect();
        assert_eq!(
            shape(&batches(&events)),
            [
                vec![("order-1".into(), ExpectedRevision::NoStream, 500)],
                vec![("order-1".into(), ExpectedRevision::Exact(499), 500)],
                vec![("order-1".into(), ExpectedRevision::Exact(999), 1)],
            ]
        );
    }

    #[test]
    fn batches_stay_small() {
        let events: Vec<_> = (0..1_200)
            .map(|i| recorded(&format!("s-{i}"), 0, i + 1))
            .collect();
        let sizes: Vec<usize> = batches(&events)
            .iter()
            .map(|b| b.iter().map(|w| w.events.len()).sum())
            .collect();
        assert_eq!(sizes, [500, 500, 200]);
    }
}
