//! A Kafka broker for tests: librdkafka's mock cluster, three brokers, the
//! topics created up front (its admin API does not create them).

use std::time::Duration;

use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::DefaultProducerContext;
use shopstream_infra::feed::kafka::KafkaSettings;

pub struct Broker {
    pub cluster: MockCluster<'static, DefaultProducerContext>,
    pub settings: KafkaSettings,
}

/// Partitions of the events topic in tests: enough for two workers to share.
pub const PARTITIONS: i32 = 6;

impl Broker {
    pub fn start() -> Broker {
        let cluster = MockCluster::new(3).expect("the mock cluster starts");
        let settings = KafkaSettings {
            brokers: cluster.bootstrap_servers(),
            topic_prefix: format!("t{}", uuid::Uuid::now_v7().simple()),
            partitions: PARTITIONS,
            replication: 1,
            session_timeout: Duration::from_secs(6),
            lease_ttl: Duration::from_secs(2),
            linger: Duration::from_millis(1),
            debug: String::new(),
        };
        for topic in [
            settings.events_topic(),
            settings.dead_letter_topic(),
            settings.invalidations_topic(),
        ] {
            let partitions = if topic == settings.events_topic() {
                PARTITIONS
            } else {
                1
            };
            cluster
                .create_topic(&topic, partitions, 1)
                .expect("topic created");
        }
        Broker { cluster, settings }
    }

    /// Makes broker 3 the coordinator of every projection's consumer group,
    /// so that taking broker 1 down (a partition leader) tests the data
    /// path: the mock cluster can abort when a group's coordinator goes away
    /// in the middle of a rebalance (`rd_kafka_mock_cgrp_classic_member_sync_set`).
    pub fn coordinate_groups_on_broker_3(&self) {
        for p in shopstream_projections::all() {
            let group = format!(
                "{}.projection.{}.v{}",
                self.settings.topic_prefix,
                p.name(),
                p.version()
            );
            self.cluster
                .coordinator(MockCoordinator::Group(group), 3)
                .expect("coordinator set");
        }
    }
}
