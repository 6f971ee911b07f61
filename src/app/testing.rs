//! Recorded events for the application's unit tests.

use chrono::Utc;
use shopstream_infra::event_store::{Metadata, RecordedEvent};
use uuid::Uuid;

/// An event of `event_type` on `stream` with `data` (JSON), at
/// revision 0 and position 1.
pub fn recorded_event(event_type: &str, stream: &str, data: &str) -> RecordedEvent {
    RecordedEvent {
        event_id: Uuid::now_v7(),
        stream: stream.into(),
        revision: 0,
        position: 1,
        event_type: event_type.into(),
        schema_version: 1,
        recorded_at: Utc::now(),
        data: serde_json::value::RawValue::from_string(data.into()).expect("JSON data"),
        metadata: Metadata::default(),
    }
}
