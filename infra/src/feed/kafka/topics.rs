//! The topics: created when absent, their partition counts, and a probe of
//! the broker's own produce → consume latency.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::{KafkaSettings, kafka};
use crate::feed::FeedError;

/// Creates the topics if absent. A broker that cannot create topics
/// through the admin API (librdkafka's mock cluster) is given the benefit
/// of the doubt when the topics already exist.
pub async fn ensure_topics(settings: &KafkaSettings) -> Result<(), FeedError> {
    let names = [
        settings.events_topic(),
        settings.dead_letter_topic(),
        settings.invalidations_topic(),
    ];
    create_missing(settings, &names, settings.partitions).await
}

async fn create_missing(
    settings: &KafkaSettings,
    names: &[String],
    partitions: i32,
) -> Result<(), FeedError> {
    let producer = settings.producer()?;
    let existing = partitions_of_all(&producer, names)?;
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !existing.contains_key(*n))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = settings.client().create().map_err(kafka)?;
    let topics: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                partitions,
                TopicReplication::Fixed(settings.replication),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    match tokio::time::timeout(
        Duration::from_secs(15),
        admin.create_topics(&topics, &options),
    )
    .await
    {
        Ok(Ok(results)) => {
            for result in results {
                match result {
                    Ok(name) => tracing::info!(topic = name, "created topic"),
                    Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                        tracing::debug!(topic = name, "topic exists")
                    }
                    Err((name, code)) => {
                        return Err(FeedError::kafka(format!("creating {name}"), code));
                    }
                }
            }
            Ok(())
        }
        Ok(Err(e)) => Err(kafka(e)),
        Err(_) => Err(FeedError::kafka_says(format!(
            "creating topics {missing:?} timed out; create them on the broker"
        ))),
    }
}

/// The broker's own produce → consume latency, the floor under commit →
/// queryable through Kafka: `count` small messages sent one at a time by a
/// producer configured like the relay's (idempotent, `acks=all`, the same
/// linger), each timed until a consumer of `<prefix>.probe` receives it.
pub async fn probe(settings: &KafkaSettings, count: usize) -> Result<Vec<Duration>, FeedError> {
    let topic = settings.probe_topic();
    create_missing(settings, std::slice::from_ref(&topic), 1).await?;
    let producer = settings.producer()?;
    let group = format!(
        "{}.probe.{}",
        settings.topic_prefix,
        uuid::Uuid::now_v7().simple()
    );
    let consumer = settings.consumer(&group, false)?;
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topic, 0, Offset::End)
        .map_err(kafka)?;
    consumer.assign(&assignment).map_err(kafka)?;
    let send = |payload: &[u8]| {
        let record = FutureRecord::<str, [u8]>::to(&topic)
            .key("probe")
            .payload(payload);
        producer.send_result(record).map_err(|(e, _)| kafka(e))
    };
    // The consumer starts reading at the end once it has looked the end
    // up: until a message sent now comes back, it may not have.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    'ready: loop {
        let _delivery = send(b"ready")?;
        let resend = tokio::time::Instant::now() + Duration::from_millis(250);
        while let Ok(message) = tokio::time::timeout_at(resend, consumer.recv()).await {
            if message.map_err(kafka)?.payload() == Some(b"ready".as_slice()) {
                break 'ready;
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(FeedError::kafka_says(format!(
                "{topic}: no message came back"
            )));
        }
    }
    let mut round_trips = Vec::with_capacity(count);
    for i in 0..count {
        let payload = i.to_string();
        let sent = std::time::Instant::now();
        let _delivery = send(payload.as_bytes())?;
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
                .await
                .map_err(|_| {
                    FeedError::kafka_says(format!("{topic}: message {i} did not come back"))
                })?
                .map_err(kafka)?;
            if message.payload() == Some(payload.as_bytes()) {
                break;
            }
        }
        round_trips.push(sent.elapsed());
    }
    Ok(round_trips)
}

/// Partition counts of the topics that exist among `names`.
pub(super) fn partitions_of_all(
    producer: &FutureProducer,
    names: &[String],
) -> Result<BTreeMap<String, usize>, FeedError> {
    let metadata = producer
        .client()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(kafka)?;
    Ok(metadata
        .topics()
        .iter()
        .filter(|t| names.iter().any(|n| n == t.name()) && t.error().is_none())
        .filter(|t| !t.partitions().is_empty())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect())
}
