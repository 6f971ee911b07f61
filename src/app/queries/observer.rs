//! What the query service hears from projection runners (in this process,
//! or through Kafka on an API node): rows changed, checkpoints reached,
//! generations switched.

use std::time::Duration;

use shopstream_infra::event_store::RecordedEvent;
use shopstream_infra::read_store::RowKey;
use shopstream_infra::runner::RunnerObserver;

use super::QueryService;

impl RunnerObserver for QueryService {
    fn applied(
        &self,
        projection: &str,
        generation: u32,
        checkpoint: u64,
        changed: &[RowKey],
        lags: &[Duration],
    ) {
        // A runner still writing a generation that is no longer served
        // (a rebuild replaced it) must not vouch for the served one.
        if self.generation(projection) != generation {
            return;
        }
        self.invalidate(changed);
        if let Some(tx) = self.checkpoints.get(projection) {
            tx.send_if_modified(|c| {
                let moved = checkpoint > *c;
                *c = (*c).max(checkpoint);
                moved
            });
        }
        let histogram = self.metrics.projection_lag.with_label_values(&[projection]);
        for lag in lags {
            histogram.observe(lag.as_secs_f64());
        }
    }

    fn changed(&self, projection: &str, generation: u32, changed: &[RowKey]) {
        if self.generation(projection) == generation {
            self.invalidate(changed);
        }
    }

    fn switched(&self, projection: &str, generation: u32, checkpoint: u64) {
        let previous = self
            .routing
            .write()
            .ok()
            .and_then(|mut routing| routing.insert(projection.to_string(), generation));
        if previous == Some(generation) {
            return;
        }
        if let Some(tx) = self.checkpoints.get(projection) {
            tx.send_if_modified(|c| {
                let moved = checkpoint > *c;
                *c = (*c).max(checkpoint);
                moved
            });
        }
        tracing::info!(
            projection,
            generation,
            checkpoint,
            "rebuilt projection is live"
        );
    }

    /// The runner has logged it; here it is counted.
    fn dead_lettered(&self, projection: &str, _: &RecordedEvent, _: &str) {
        self.metrics
            .dead_letters
            .with_label_values(&[projection])
            .inc();
    }
}
