//! What of an event may leave the system: everything but its secret fields
//! (the domain names them: password hashes), which read `"[redacted]"`
//! wherever events go out (exports, stream reads, live tails, Kafka).

use shopstream_domain::customer::SECRET_FIELDS;
use shopstream_infra::event_store::RecordedEvent;
use shopstream_infra::feed::Outbound;

/// What a secret field reads as outside.
pub const REDACTED: &str = "[redacted]";

/// The event as it may leave the system. Events without secret fields
/// (nearly all) are returned as they are, without parsing their data.
pub fn redact(mut event: RecordedEvent) -> Result<RecordedEvent, serde_json::Error> {
    for (event_type, field) in SECRET_FIELDS {
        if event.event_type != *event_type {
            continue;
        }
        let mut data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(event.data.get())?;
        if let Some(value) = data.get_mut(*field) {
            *value = REDACTED.into();
            event.data = serde_json::value::to_raw_value(&data)?;
        }
    }
    Ok(event)
}

/// Events leave through Kafka redacted, as everywhere else.
pub struct Redacted;

impl Outbound for Redacted {
    fn to_json(&self, event: &RecordedEvent) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&redact(event.clone())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(event_type: &str, data: &str) -> RecordedEvent {
        crate::app::testing::recorded_event(event_type, "customer-1", data)
    }

    #[test]
    fn secret_fields_are_redacted_and_the_rest_kept() {
        let (event_type, field) = SECRET_FIELDS[0];
        let data = format!(r#"{{"{field}":"$argon2id$secret","customer_id":"c-1"}}"#);
        let out = redact(recorded(event_type, &data)).unwrap();
        let json: serde_json::Value = serde_json::from_str(out.data.get()).unwrap();
        assert_eq!(json[field], REDACTED);
        assert_eq!(json["customer_id"], "c-1");
        let wire: serde_json::Value =
            serde_json::from_slice(&Redacted.to_json(&recorded(event_type, &data)).unwrap())
                .unwrap();
        assert_eq!(wire["data"][field], REDACTED);
    }

    #[test]
    fn other_events_pass_untouched() {
        let data = r#"{"password_hash":"looks secret but is not one"}"#;
        let out = redact(recorded("ProductCreated", data)).unwrap();
        assert_eq!(out.data.get(), data);
    }
}
