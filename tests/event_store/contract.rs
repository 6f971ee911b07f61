//! The contract every EventStore adapter passes. It counts on what every
//! engine can promise: positions only grow (they may have gaps), revisions
//! count from 0 without gaps per stream, an append is atomic across its
//! streams, and a repeat of the same event ids at the same expected
//! revision writes nothing. It holds on a server other clients write to:
//! a fixture may give each test its own namespace of streams, so the test
//! never assumes `$all`'s head is its own.

use std::sync::Arc;

use shopstream_infra::event_store::{
    AppendError, Appended, Direction, EventFilter, EventStore, ExpectedRevision, Metadata,
    NewEvent, RecordedEvent, StreamWrite,
};
use uuid::Uuid;

pub fn event(kind: &str, n: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::now_v7(),
        event_type: kind.to_string(),
        schema_version: 1,
        data: format!(r#"{{"n":{n}}}"#).into_bytes(),
        metadata: Metadata {
            correlation_id: Some("test".into()),
            causation_id: None,
            actor: Some("system".into()),
        },
    }
}

pub fn events(n: u64) -> Vec<NewEvent> {
    (0..n).map(|i| event("Happened", i)).collect()
}

pub fn write(stream: &str, expected: ExpectedRevision, events: Vec<NewEvent>) -> StreamWrite {
    StreamWrite {
        stream: stream.to_string(),
        expected,
        events,
    }
}

/// An append to one stream.
pub async fn append_to(
    store: &Arc<dyn EventStore>,
    stream: &str,
    expected: ExpectedRevision,
    events: Vec<NewEvent>,
) -> Result<Appended, AppendError> {
    store.append(vec![write(stream, expected, events)]).await
}

/// A stream's current revision, read from its end.
pub async fn revision(store: &Arc<dyn EventStore>, stream: &str) -> Option<u64> {
    store
        .read_stream(stream, None, Direction::Backward, 1)
        .await
        .expect("stream readable")
        .first()
        .map(|e| e.revision)
}

pub async fn read_all_events(store: &Arc<dyn EventStore>) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let slice = store
            .read_all(after, &EventFilter::default(), 500)
            .await
            .unwrap();
        if slice.events.is_empty() {
            return out;
        }
        after = slice.scanned_to;
        out.extend(slice.events);
    }
}

/// Instantiates every contract test for the adapter the fixture expression
/// builds. The expression yields `Option<Fixture>` and may `.await`;
/// `None` skips the test (an adapter whose server is not configured), and
/// the fixture says so.
#[macro_export]
macro_rules! event_store_contract {
    ($fixture:expr) => {
        use std::collections::HashSet;
        use std::time::Duration;

        use shopstream_infra::event_store::{
            AppendError, Direction, EventFilter, ExpectedRevision,
        };

        use $crate::contract::{append_to, event, events, read_all_events, revision, write};

        async fn fixture() -> Option<$crate::Fixture> {
            $fixture
        }

        /// How long a subscriber may wait for events it is owed.
        const PATIENCE: Duration = Duration::from_secs(20);

        #[tokio::test]
        async fn appended_events_read_back_in_both_directions() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            let appended = append_to(s, "order-1", ExpectedRevision::NoStream, events(3)).await.unwrap();
            assert_eq!(appended.streams[0].revision, Some(2));
            assert!(!appended.replayed);

            let forward = s.read_stream("order-1", None, Direction::Forward, 10).await.unwrap();
            assert_eq!(forward.iter().map(|e| e.revision).collect::<Vec<_>>(), [0, 1, 2]);
            assert_eq!(forward[2].position, appended.position);
            assert!(forward.windows(2).all(|w| w[0].position < w[1].position));
            assert_eq!(forward[1].data.get(), r#"{"n":1}"#);
            assert_eq!(forward[1].event_type, "Happened");
            assert_eq!(forward[1].schema_version, 1);
            assert_eq!(forward[0].metadata.actor.as_deref(), Some("system"));
            assert_eq!(forward[0].metadata.correlation_id.as_deref(), Some("test"));

            let backward = s.read_stream("order-1", None, Direction::Backward, 2).await.unwrap();
            assert_eq!(backward.iter().map(|e| e.revision).collect::<Vec<_>>(), [2, 1]);
            let from_one = s.read_stream("order-1", Some(1), Direction::Forward, 10).await.unwrap();
            assert_eq!(from_one.iter().map(|e| e.revision).collect::<Vec<_>>(), [1, 2]);
            let down_from_one =
                s.read_stream("order-1", Some(1), Direction::Backward, 10).await.unwrap();
            assert_eq!(down_from_one.iter().map(|e| e.revision).collect::<Vec<_>>(), [1, 0]);
            let missing = s.read_stream("order-2", None, Direction::Forward, 10).await.unwrap();
            assert!(missing.is_empty());
            assert_eq!(revision(s, "order-1").await, Some(2));
            assert_eq!(revision(s, "order-2").await, None);
        }

        #[tokio::test]
        async fn every_expectation_is_checked_and_a_conflict_names_the_actual_revision() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            let conflict = |r: Result<_, AppendError>| match r {
                Err(AppendError::Conflict { actual, .. }) => actual,
                other => panic!("expected a conflict, got {other:?}"),
            };
            assert_eq!(conflict(append_to(s, "c-1", ExpectedRevision::StreamExists, events(1)).await), None);
            assert_eq!(conflict(append_to(s, "c-1", ExpectedRevision::Exact(0), events(1)).await), None);
            append_to(s, "c-1", ExpectedRevision::NoStream, events(2)).await.unwrap();
            assert_eq!(conflict(append_to(s, "c-1", ExpectedRevision::NoStream, events(1)).await), Some(1));
            assert_eq!(conflict(append_to(s, "c-1", ExpectedRevision::Exact(0), events(1)).await), Some(1));
            append_to(s, "c-1", ExpectedRevision::Exact(1), events(1)).await.unwrap();
            append_to(s, "c-1", ExpectedRevision::StreamExists, events(1)).await.unwrap();
            let any = append_to(s, "c-1", ExpectedRevision::Any, events(1)).await.unwrap();
            assert_eq!(any.streams[0].revision, Some(4));
            // A write of no events checks its expectation and changes nothing.
            let head = s.head_position().await.unwrap();
            let checked = append_to(s, "c-1", ExpectedRevision::Exact(4), vec![]).await.unwrap();
            assert_eq!(checked.streams[0].revision, Some(4));
            assert_eq!(s.count_after(head, 10).await.unwrap(), 0);
            assert_eq!(conflict(append_to(s, "c-1", ExpectedRevision::Exact(3), vec![]).await), Some(4));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn of_concurrent_appends_at_one_revision_exactly_one_wins() {
            let Some(f) = fixture().await else { return };
            let s = f.store.clone();
            append_to(&s, "inventory-HOT", ExpectedRevision::NoStream, events(1)).await.unwrap();
            let racers = (0..32).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    append_to(&s, "inventory-HOT", ExpectedRevision::Exact(0), vec![event("Raced", i)]).await
                })
            });
            let results: Vec<_> = futures::future::join_all(racers)
                .await
                .into_iter()
                .map(|r| r.expect("task"))
                .collect();
            let winners = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(winners, 1, "{results:?}");
            for r in results.iter().filter(|r| r.is_err()) {
                match r {
                    Err(AppendError::Conflict { actual, expected, stream }) => {
                        assert_eq!(*actual, Some(1));
                        assert_eq!(*expected, ExpectedRevision::Exact(0));
                        assert_eq!(stream, "inventory-HOT");
                    }
                    other => panic!("losers must see a conflict, got {other:?}"),
                }
            }
            assert_eq!(revision(&s, "inventory-HOT").await, Some(1));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_appends_from_two_handles_on_one_store_still_have_one_winner() {
            let Some(f) = fixture().await else { return };
            let (a, b) = (f.store.clone(), f.other.clone());
            append_to(&a, "cart-X", ExpectedRevision::NoStream, events(1)).await.unwrap();
            let racers = (0..16).map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    append_to(&s, "cart-X", ExpectedRevision::Exact(0), vec![event("Raced", i)]).await
                })
            });
            let results: Vec<_> = futures::future::join_all(racers)
                .await
                .into_iter()
                .map(|r| r.expect("task"))
                .collect();
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
            assert_eq!(revision(&b, "cart-X").await, Some(1));
        }

        #[tokio::test]
        async fn a_multi_stream_append_writes_every_stream_or_none() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            append_to(s, "inventory-A", ExpectedRevision::NoStream, events(1)).await.unwrap();
            let head = s.head_position().await.unwrap();
            let refused = s
                .append(vec![
                    write("order-9", ExpectedRevision::NoStream, events(2)),
                    write("inventory-A", ExpectedRevision::Exact(7), events(1)),
                ])
                .await;
            assert!(
                matches!(&refused, Err(AppendError::Conflict { stream, actual: Some(0), .. }) if stream == "inventory-A"),
                "{refused:?}"
            );
            assert_eq!(revision(s, "order-9").await, None, "nothing of a refused append is written");
            assert_eq!(s.count_after(head, 10).await.unwrap(), 0);

            let ok = s
                .append(vec![
                    write("order-9", ExpectedRevision::NoStream, events(2)),
                    write("inventory-A", ExpectedRevision::Exact(0), events(1)),
                ])
                .await
                .unwrap();
            assert_eq!(ok.streams[0].revision, Some(1));
            assert_eq!(ok.streams[1].revision, Some(1));
            assert!(ok.position > head);
            let tail: Vec<_> = read_all_events(s)
                .await
                .into_iter()
                .filter(|e| e.position > head)
                .map(|e| (e.stream, e.revision, e.position))
                .collect();
            let shape: Vec<_> = tail.iter().map(|(s, r, _)| (s.as_str(), *r)).collect();
            assert_eq!(shape, [("order-9", 0), ("order-9", 1), ("inventory-A", 1)]);
            assert_eq!(tail.last().map(|(_, _, p)| *p), Some(ok.position), "the append's position is its last event's");
            assert!(s.head_position().await.unwrap() >= ok.position);
        }

        #[tokio::test]
        async fn repeating_an_append_with_the_same_event_ids_writes_nothing() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            let batch = events(3);
            let first = append_to(s, "customer-1", ExpectedRevision::NoStream, batch.clone()).await.unwrap();
            // The retry carries the now stale expectation, as a client's retry would.
            let again = append_to(s, "customer-1", ExpectedRevision::NoStream, batch.clone()).await.unwrap();
            assert_eq!(again.streams, first.streams);
            assert_eq!(again.position, first.position);
            assert_eq!(read_all_events(s).await.len(), 3, "nothing written twice");

            let next = events(2);
            let second = append_to(s, "customer-1", ExpectedRevision::Exact(2), next.clone()).await.unwrap();
            let again = append_to(s, "customer-1", ExpectedRevision::Exact(2), next).await.unwrap();
            assert_eq!(again.streams, second.streams);
            assert_eq!(read_all_events(s).await.len(), 5);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn all_only_grows_and_agrees_with_every_stream() {
            let Some(f) = fixture().await else { return };
            let s = f.store.clone();
            let before = read_all_events(&s).await.len();
            let writers = (0..8).map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..25u64 {
                        let stream = format!("product-{}", (w * 31 + i) % 5);
                        append_to(&s, &stream, ExpectedRevision::Any, events(1 + i % 3)).await.unwrap();
                    }
                })
            });
            futures::future::join_all(writers).await;
            let all = read_all_events(&s).await;
            let written: usize = (0..8u64).map(|_| (0..25u64).map(|i| 1 + i % 3).sum::<u64>() as usize).sum();
            assert_eq!(all.len() - before, written, "every event once");
            assert!(all.windows(2).all(|w| w[0].position < w[1].position), "positions only grow");
            let mut last = std::collections::HashMap::new();
            for e in &all {
                let expected = last.get(&e.stream).map_or(0, |r: &u64| r + 1);
                assert_eq!(e.revision, expected, "revisions of {} follow positions", e.stream);
                last.insert(e.stream.clone(), e.revision);
            }
            let times: Vec<_> = all.iter().map(|e| e.recorded_at).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "recorded_at never decreases");
            assert!(s.head_position().await.unwrap() >= all.last().map_or(0, |e| e.position));
        }

        #[tokio::test]
        async fn reading_all_filters_by_type_and_stream_prefix() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            append_to(s, "order-1", ExpectedRevision::Any, vec![event("OrderPlaced", 1), event("OrderPaid", 2)]).await.unwrap();
            append_to(s, "cart-1", ExpectedRevision::Any, vec![event("CartCreated", 3)]).await.unwrap();
            append_to(s, "order-2", ExpectedRevision::Any, vec![event("OrderPlaced", 4)]).await.unwrap();
            let all = read_all_events(s).await;
            let position = |n: usize| all[n].position;

            let by_type = EventFilter { types: vec!["OrderPlaced".into()], stream_prefix: None };
            let placed = s.read_all(0, &by_type, 10).await.unwrap();
            assert_eq!(placed.events.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(), ["order-1", "order-2"]);
            assert!(placed.scanned_to >= position(3), "a short page looked to the end");
            let by_prefix = EventFilter { types: vec![], stream_prefix: Some("cart-".into()) };
            let carts = s.read_all(0, &by_prefix, 10).await.unwrap();
            assert_eq!(carts.events.len(), 1);
            assert_eq!(carts.events[0].event_type, "CartCreated");
            let both = EventFilter { types: vec!["OrderPaid".into(), "CartCreated".into()], stream_prefix: Some("order-".into()) };
            let paid = s.read_all(0, &both, 10).await.unwrap();
            assert_eq!(paid.events.iter().map(|e| e.position).collect::<Vec<_>>(), [position(1)]);
            let paged = s.read_all(0, &EventFilter::default(), 3).await.unwrap();
            assert_eq!(paged.events.len(), 3);
            assert_eq!(paged.scanned_to, position(2), "a full page continues after its last event");
            let rest = s.read_all(paged.scanned_to, &EventFilter::default(), 10).await.unwrap();
            assert_eq!(rest.events.iter().map(|e| e.position).collect::<Vec<_>>(), [position(3)]);
            assert_eq!(s.read_all(position(3), &EventFilter::default(), 10).await.unwrap().events.len(), 0);
            let after_last = s.read_all(position(3), &EventFilter::default(), 10).await.unwrap();
            assert!(after_last.scanned_to >= position(3), "an empty page still says how far it looked");
        }

        #[tokio::test]
        async fn the_head_and_the_count_after_a_position_follow_appends() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            let head = s.head_position().await.unwrap();
            assert_eq!(s.count_after(head, 100).await.unwrap(), 0, "nothing is past the head");
            assert_eq!(s.count_after(0, 100).await.unwrap(), 0, "a fresh store holds nothing");
            for i in 0..7 {
                append_to(s, &format!("order-{}", i % 3), ExpectedRevision::Any, events(1 + i % 2)).await.unwrap();
            }
            let all = read_all_events(s).await;
            assert_eq!(all.len(), 10);
            assert!(s.head_position().await.unwrap() >= all[9].position, "the head is at or past every event");
            assert_eq!(s.count_after(0, 100).await.unwrap(), 10);
            assert_eq!(s.count_after(all[3].position, 100).await.unwrap(), 6, "events, not positions");
            assert_eq!(s.count_after(all[9].position, 100).await.unwrap(), 0);
            assert_eq!(s.count_after(0, 4).await.unwrap(), 4, "counting stops at the cap");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_subscription_catches_up_then_goes_live_without_gaps_or_duplicates() {
            let Some(f) = fixture().await else { return };
            let s = f.store.clone();
            for i in 0..40 {
                append_to(&s, &format!("cart-{i}"), ExpectedRevision::Any, events(5)).await.unwrap();
            }
            let mut sub = s.subscribe_all(0, EventFilter::default()).await.unwrap();
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        for i in 0..25 {
                            append_to(&s, &format!("order-{w}-{}", i % 4), ExpectedRevision::Any, events(2)).await.unwrap();
                        }
                    })
                })
                .collect();
            let total = 40 * 5 + 8 * 25 * 2;
            let mut seen = Vec::with_capacity(total);
            while seen.len() < total {
                let slice = tokio::time::timeout(PATIENCE, sub.next())
                    .await
                    .expect("the subscription delivers every committed event")
                    .unwrap();
                seen.extend(slice.events.iter().map(|e| e.position));
            }
            futures::future::join_all(writers).await;
            let stored: Vec<u64> = read_all_events(&s).await.iter().map(|e| e.position).collect();
            assert_eq!(seen, stored, "every event once, in position order");
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_filtered_subscription_from_a_position_sees_only_later_matching_events() {
            let Some(f) = fixture().await else { return };
            let s = f.store.clone();
            append_to(&s, "order-1", ExpectedRevision::Any, vec![event("OrderPlaced", 0)]).await.unwrap();
            let start = s.head_position().await.unwrap();
            let mut sub = s
                .subscribe_all(start, EventFilter { types: vec!["OrderPlaced".into()], stream_prefix: None })
                .await
                .unwrap();
            append_to(&s, "cart-1", ExpectedRevision::Any, vec![event("CartCreated", 1)]).await.unwrap();
            let last = append_to(&s, "order-2", ExpectedRevision::Any, vec![event("OrderPlaced", 2)]).await.unwrap();
            // Slices may come with no events (only the cart event passed by),
            // but they never go backwards and end with exactly the match.
            let mut seen = Vec::new();
            let mut scanned = start;
            while scanned < last.position {
                let slice = tokio::time::timeout(PATIENCE, sub.next()).await.unwrap().unwrap();
                assert!(slice.scanned_to > scanned, "a slice always moves forward");
                scanned = slice.scanned_to;
                seen.extend(slice.events.into_iter().map(|e| e.stream));
            }
            assert_eq!(seen, ["order-2"]);
            assert!(scanned >= last.position);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_filtered_subscription_hears_that_all_moved_past_what_it_does_not_want() {
            // Read-your-writes waits for a command's last position, which
            // is often an event no projection wants.
            let Some(f) = fixture().await else { return };
            let s = f.store.clone();
            let start = s.head_position().await.unwrap();
            let mut sub = s
                .subscribe_all(start, EventFilter { types: vec!["OrderPlaced".into()], stream_prefix: None })
                .await
                .unwrap();
            let unwanted = append_to(&s, "cart-9", ExpectedRevision::Any, vec![event("CartCreated", 1)]).await.unwrap();
            let mut scanned = start;
            while scanned < unwanted.position {
                let slice = tokio::time::timeout(PATIENCE, sub.next())
                    .await
                    .expect("the subscription reports progress past an unwanted event")
                    .unwrap();
                assert!(slice.events.is_empty(), "{:?}", slice.events);
                scanned = slice.scanned_to;
            }
        }

        #[tokio::test]
        async fn reading_from_an_events_position_starts_at_that_event() {
            let Some(f) = fixture().await else { return };
            let s = &f.store;
            for i in 0..4 {
                append_to(s, &format!("order-{i}"), ExpectedRevision::Any, events(2)).await.unwrap();
            }
            let all = read_all_events(s).await;
            for e in &all {
                let after = s.preceding(e.position).await.unwrap();
                assert!(after < e.position);
                let first = s.read_all(after, &EventFilter::default(), 1).await.unwrap();
                assert_eq!(
                    first.events.iter().map(|e| e.position).collect::<Vec<_>>(),
                    [e.position],
                    "a read after what precedes an event starts at it"
                );
            }
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_subscriber_on_another_handle_sees_new_events() {
            let Some(f) = fixture().await else { return };
            let writer = f.store.clone();
            let reader = f.other.clone();
            let mut sub = reader.subscribe_all(0, EventFilter::default()).await.unwrap();
            let mut ids = HashSet::new();
            for i in 0..10 {
                let batch = events(1 + i % 2);
                ids.extend(batch.iter().map(|e| e.event_id));
                append_to(&writer, "product-P", ExpectedRevision::Any, batch).await.unwrap();
            }
            let mut seen = HashSet::new();
            while seen.len() < ids.len() {
                let slice = tokio::time::timeout(PATIENCE, sub.next())
                    .await
                    .expect("commits by another handle reach the subscriber")
                    .unwrap();
                seen.extend(slice.events.iter().map(|e| e.event_id));
            }
            assert_eq!(seen, ids);
        }

        #[tokio::test]
        async fn an_append_of_nothing_is_refused() {
            let Some(f) = fixture().await else { return };
            let refused = f.store.append(vec![]).await;
            assert!(matches!(refused, Err(AppendError::Invalid(_))), "{refused:?}");
        }
    };
}
