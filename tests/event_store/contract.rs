//! The contract every EventStore adapter passes.

use std::sync::Arc;

use shopstream_infra::event_store::{
    EventFilter, EventStore, ExpectedRevision, Metadata, NewEvent, RecordedEvent, StreamWrite,
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

/// Instantiates every contract test for the adapter `$fixture` builds.
#[macro_export]
macro_rules! event_store_contract {
    ($fixture:expr) => {
        use std::collections::HashSet;

        use shopstream_infra::event_store::{
            AppendError, Direction, EventFilter, ExpectedRevision,
        };

        use $crate::contract::{event, events, read_all_events, write};

        fn fixture() -> $crate::Fixture {
            $fixture
        }

        #[tokio::test]
        async fn appended_events_read_back_in_both_directions() {
            let f = fixture();
            let s = &f.store;
            let appended = s
                .append_to_stream("order-1", ExpectedRevision::NoStream, events(3))
                .await
                .unwrap();
            assert_eq!(appended.streams[0].revision, Some(2));
            assert!(!appended.replayed);

            let forward = s.read_stream("order-1", None, Direction::Forward, 10).await.unwrap();
            assert_eq!(forward.iter().map(|e| e.revision).collect::<Vec<_>>(), [0, 1, 2]);
            assert_eq!(forward[2].position, appended.position);
            assert_eq!(forward[1].data.get(), r#"{"n":1}"#);
            assert_eq!(forward[0].metadata.actor.as_deref(), Some("system"));

            let backward = s.read_stream("order-1", None, Direction::Backward, 2).await.unwrap();
            assert_eq!(backward.iter().map(|e| e.revision).collect::<Vec<_>>(), [2, 1]);
            let from_one = s.read_stream("order-1", Some(1), Direction::Forward, 10).await.unwrap();
            assert_eq!(from_one.iter().map(|e| e.revision).collect::<Vec<_>>(), [1, 2]);
            let missing = s.read_stream("order-2", None, Direction::Forward, 10).await.unwrap();
            assert!(missing.is_empty());
            assert_eq!(s.stream_revision("order-1").await.unwrap(), Some(2));
            assert_eq!(s.stream_revision("order-2").await.unwrap(), None);
        }

        #[tokio::test]
        async fn every_expectation_is_checked_and_a_conflict_names_the_actual_revision() {
            let f = fixture();
            let s = &f.store;
            let conflict = |r: Result<_, AppendError>| match r {
                Err(AppendError::Conflict { actual, .. }) => actual,
                other => panic!("expected a conflict, got {other:?}"),
            };
            assert_eq!(
                conflict(s.append_to_stream("c-1", ExpectedRevision::StreamExists, events(1)).await),
                None
            );
            assert_eq!(
                conflict(s.append_to_stream("c-1", ExpectedRevision::Exact(0), events(1)).await),
                None
            );
            s.append_to_stream("c-1", ExpectedRevision::NoStream, events(2)).await.unwrap();
            assert_eq!(
                conflict(s.append_to_stream("c-1", ExpectedRevision::NoStream, events(1)).await),
                Some(1)
            );
            assert_eq!(
                conflict(s.append_to_stream("c-1", ExpectedRevision::Exact(0), events(1)).await),
                Some(1)
            );
            s.append_to_stream("c-1", ExpectedRevision::Exact(1), events(1)).await.unwrap();
            s.append_to_stream("c-1", ExpectedRevision::StreamExists, events(1)).await.unwrap();
            let any = s.append_to_stream("c-1", ExpectedRevision::Any, events(1)).await.unwrap();
            assert_eq!(any.streams[0].revision, Some(4));
            // A write of no events checks its expectation and changes nothing.
            let head = s.head_position().await.unwrap();
            let checked = s.append_to_stream("c-1", ExpectedRevision::Exact(4), vec![]).await.unwrap();
            assert_eq!(checked.streams[0].revision, Some(4));
            assert_eq!(s.head_position().await.unwrap(), head);
            assert_eq!(
                conflict(s.append_to_stream("c-1", ExpectedRevision::Exact(3), vec![]).await),
                Some(4)
            );
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn of_concurrent_appends_at_one_revision_exactly_one_wins() {
            let f = fixture();
            let s = f.store.clone();
            s.append_to_stream("inventory-HOT", ExpectedRevision::NoStream, events(1))
                .await
                .unwrap();
            let racers = (0..32).map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.append_to_stream("inventory-HOT", ExpectedRevision::Exact(0), vec![event("Raced", i)])
                        .await
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
            assert_eq!(s.stream_revision("inventory-HOT").await.unwrap(), Some(1));
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn concurrent_appends_from_two_handles_on_one_file_still_have_one_winner() {
            let f = fixture();
            let a = f.store.clone();
            let b = f.second_handle();
            a.append_to_stream("cart-X", ExpectedRevision::NoStream, events(1)).await.unwrap();
            let racers = (0..16).map(|i| {
                let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    s.append_to_stream("cart-X", ExpectedRevision::Exact(0), vec![event("Raced", i)])
                        .await
                })
            });
            let results: Vec<_> = futures::future::join_all(racers)
                .await
                .into_iter()
                .map(|r| r.expect("task"))
                .collect();
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
            assert_eq!(b.stream_revision("cart-X").await.unwrap(), Some(1));
        }

        #[tokio::test]
        async fn a_multi_stream_append_writes_every_stream_or_none() {
            let f = fixture();
            let s = &f.store;
            s.append_to_stream("inventory-A", ExpectedRevision::NoStream, events(1)).await.unwrap();
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
            assert_eq!(s.stream_revision("order-9").await.unwrap(), None, "nothing of a refused append is written");
            assert_eq!(s.head_position().await.unwrap(), head);

            let ok = s
                .append(vec![
                    write("order-9", ExpectedRevision::NoStream, events(2)),
                    write("inventory-A", ExpectedRevision::Exact(0), events(1)),
                ])
                .await
                .unwrap();
            assert_eq!(ok.streams[0].revision, Some(1));
            assert_eq!(ok.streams[1].revision, Some(1));
            assert_eq!(ok.position, head + 3);
            let all = read_all_events(s).await;
            let tail: Vec<_> = all.iter().skip(head as usize).map(|e| (e.stream.as_str(), e.revision)).collect();
            assert_eq!(tail, [("order-9", 0), ("order-9", 1), ("inventory-A", 1)]);
        }

        #[tokio::test]
        async fn repeating_an_append_with_the_same_event_ids_writes_nothing() {
            let f = fixture();
            let s = &f.store;
            let batch = events(3);
            let first = s.append_to_stream("customer-1", ExpectedRevision::NoStream, batch.clone()).await.unwrap();
            // The retry carries the now stale expectation, as a client's retry would.
            let again = s.append_to_stream("customer-1", ExpectedRevision::NoStream, batch.clone()).await.unwrap();
            assert!(again.replayed);
            assert_eq!(again.streams, first.streams);
            assert_eq!(again.position, first.position);
            assert_eq!(read_all_events(s).await.len(), 3);

            let mut mixed = batch[..1].to_vec();
            mixed.extend(events(1));
            let partial = s.append_to_stream("customer-1", ExpectedRevision::Any, mixed).await;
            assert!(matches!(partial, Err(AppendError::Invalid(_))), "{partial:?}");
            let elsewhere = s.append_to_stream("customer-2", ExpectedRevision::Any, batch[..1].to_vec()).await;
            assert!(matches!(elsewhere, Err(AppendError::Invalid(_))), "{elsewhere:?}");
            assert_eq!(read_all_events(s).await.len(), 3);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn all_is_gapless_and_agrees_with_every_stream() {
            let f = fixture();
            let s = f.store.clone();
            let writers = (0..8).map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for i in 0..25u64 {
                        let stream = format!("product-{}", (w * 31 + i) % 5);
                        s.append_to_stream(&stream, ExpectedRevision::Any, events(1 + i % 3)).await.unwrap();
                    }
                })
            });
            futures::future::join_all(writers).await;
            let all = read_all_events(&s).await;
            let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
            assert_eq!(positions, (1..=all.len() as u64).collect::<Vec<_>>());
            let mut last = std::collections::HashMap::new();
            for e in &all {
                let expected = last.get(&e.stream).map_or(0, |r: &u64| r + 1);
                assert_eq!(e.revision, expected, "revisions of {} follow positions", e.stream);
                last.insert(e.stream.clone(), e.revision);
            }
            let times: Vec<_> = all.iter().map(|e| e.recorded_at).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "recorded_at never decreases");
            assert_eq!(s.head_position().await.unwrap(), all.len() as u64);
        }

        #[tokio::test]
        async fn reading_all_filters_by_type_and_stream_prefix() {
            let f = fixture();
            let s = &f.store;
            s.append_to_stream("order-1", ExpectedRevision::Any, vec![event("OrderPlaced", 1), event("OrderPaid", 2)]).await.unwrap();
            s.append_to_stream("cart-1", ExpectedRevision::Any, vec![event("CartCreated", 3)]).await.unwrap();
            s.append_to_stream("order-2", ExpectedRevision::Any, vec![event("OrderPlaced", 4)]).await.unwrap();
            let by_type = EventFilter { types: vec!["OrderPlaced".into()], stream_prefix: None };
            let placed = s.read_all(0, &by_type, 10).await.unwrap();
            assert_eq!(placed.events.iter().map(|e| e.stream.as_str()).collect::<Vec<_>>(), ["order-1", "order-2"]);
            assert_eq!(placed.scanned_to, 4);
            let by_prefix = EventFilter { types: vec![], stream_prefix: Some("cart-".into()) };
            let carts = s.read_all(0, &by_prefix, 10).await.unwrap();
            assert_eq!(carts.events.len(), 1);
            assert_eq!(carts.events[0].event_type, "CartCreated");
            let both = EventFilter { types: vec!["OrderPaid".into(), "CartCreated".into()], stream_prefix: Some("order-".into()) };
            let paid = s.read_all(0, &both, 10).await.unwrap();
            assert_eq!(paid.events.iter().map(|e| e.position).collect::<Vec<_>>(), [2]);
            let paged = s.read_all(0, &EventFilter::default(), 3).await.unwrap();
            assert_eq!(paged.scanned_to, 3, "a full page continues after its last event");
            assert_eq!(s.read_all(4, &EventFilter::default(), 10).await.unwrap().events.len(), 0);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_subscription_catches_up_then_goes_live_without_gaps_or_duplicates() {
            let f = fixture();
            let s = f.store.clone();
            for i in 0..40 {
                s.append_to_stream(&format!("cart-{i}"), ExpectedRevision::Any, events(5)).await.unwrap();
            }
            let mut sub = s.subscribe_all(0, EventFilter::default()).await.unwrap();
            let writers: Vec<_> = (0..8)
                .map(|w| {
                    let s = s.clone();
                    tokio::spawn(async move {
                        for i in 0..25 {
                            s.append_to_stream(&format!("order-{w}-{}", i % 4), ExpectedRevision::Any, events(2)).await.unwrap();
                        }
                    })
                })
                .collect();
            let total = 40 * 5 + 8 * 25 * 2;
            let mut seen = Vec::with_capacity(total);
            while seen.len() < total {
                let slice = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next())
                    .await
                    .expect("the subscription delivers every committed event")
                    .unwrap();
                seen.extend(slice.events.iter().map(|e| e.position));
            }
            futures::future::join_all(writers).await;
            assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>());
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_filtered_subscription_from_a_position_sees_only_later_matching_events() {
            let f = fixture();
            let s = f.store.clone();
            s.append_to_stream("order-1", ExpectedRevision::Any, vec![event("OrderPlaced", 0)]).await.unwrap();
            let start = s.head_position().await.unwrap();
            let mut sub = s
                .subscribe_all(start, EventFilter { types: vec!["OrderPlaced".into()], stream_prefix: None })
                .await
                .unwrap();
            s.append_to_stream("cart-1", ExpectedRevision::Any, vec![event("CartCreated", 1)]).await.unwrap();
            s.append_to_stream("order-2", ExpectedRevision::Any, vec![event("OrderPlaced", 2)]).await.unwrap();
            // Slices may come with no events (only the cart event passed by),
            // but they never go backwards and end with exactly the match.
            let mut seen = Vec::new();
            let mut scanned = start;
            while scanned < start + 2 {
                let slice = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next()).await.unwrap().unwrap();
                assert!(slice.scanned_to > scanned, "a slice always moves forward");
                scanned = slice.scanned_to;
                seen.extend(slice.events.into_iter().map(|e| e.stream));
            }
            assert_eq!(seen, ["order-2"]);
            assert_eq!(scanned, start + 2);
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_subscriber_on_another_handle_sees_new_events() {
            let f = fixture();
            let writer = f.store.clone();
            let reader = f.second_handle();
            let mut sub = reader.subscribe_all(0, EventFilter::default()).await.unwrap();
            let mut ids = HashSet::new();
            for i in 0..10 {
                let batch = events(1 + i % 2);
                ids.extend(batch.iter().map(|e| e.event_id));
                writer.append_to_stream("product-P", ExpectedRevision::Any, batch).await.unwrap();
            }
            let mut seen = HashSet::new();
            while seen.len() < ids.len() {
                let slice = tokio::time::timeout(std::time::Duration::from_secs(20), sub.next())
                    .await
                    .expect("commits by another handle reach the subscriber")
                    .unwrap();
                seen.extend(slice.events.iter().map(|e| e.event_id));
            }
            assert_eq!(seen, ids);
        }

        #[tokio::test]
        async fn position_before_a_time_finds_where_that_time_starts() {
            let f = fixture();
            let s = &f.store;
            assert_eq!(s.position_before(chrono::Utc::now()).await.unwrap(), 0);
            for i in 0..20 {
                s.append_to_stream("t-1", ExpectedRevision::Any, vec![event("Ticked", i)]).await.unwrap();
            }
            let all = read_all_events(s).await;
            for e in &all {
                let before = s.position_before(e.recorded_at).await.unwrap();
                let first_at_or_after = all.iter().find(|x| x.recorded_at >= e.recorded_at).unwrap();
                assert_eq!(before + 1, first_at_or_after.position);
            }
            let later = all.last().unwrap().recorded_at + chrono::Duration::seconds(1);
            assert_eq!(s.position_before(later).await.unwrap(), all.len() as u64);
        }

        #[tokio::test]
        async fn an_append_of_nothing_is_refused() {
            let f = fixture();
            let refused = f.store.append(vec![]).await;
            assert!(matches!(refused, Err(AppendError::Invalid(_))), "{refused:?}");
        }
    };
}
