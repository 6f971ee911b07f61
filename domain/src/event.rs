//! How an aggregate's events become bytes and back.
//!
//! Each aggregate has one enum of events whose variants wrap a struct of the
//! same name (`ProductEvent::ProductCreated(ProductCreated)`). The event
//! store keeps the variant name as the event type, a schema version, and the
//! struct alone as JSON data, which is exactly what analysts see in an export.
//! The [`event_set!`](crate::event_set) macro writes that mapping once.

use thiserror::Error;

/// Why stored bytes could not become a domain event.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("{event_type} has schema version {found}, newer than this build knows ({known})")]
    UnsupportedVersion {
        event_type: String,
        found: u16,
        known: u16,
    },
    #[error("{event_type}: {source}")]
    Data {
        event_type: String,
        #[source]
        source: serde_json::Error,
    },
}

/// The events of one aggregate, with their wire names and schema versions.
pub trait EventSet: Sized + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Every event type name of this set.
    const TYPES: &'static [&'static str];

    /// The event type name: the variant's name, in past tense.
    fn event_type(&self) -> &'static str;

    /// The schema version this build writes for this event type.
    fn schema_version(&self) -> u16;

    /// The event's data as JSON bytes (without the type tag).
    fn encode(&self) -> Vec<u8>;

    /// The event back from its type, schema version and JSON data. Older
    /// schema versions are upcast here when a type's shape changes.
    fn decode(event_type: &str, schema_version: u16, data: &[u8]) -> Result<Self, DecodeError>;
}

/// Declares an aggregate's event enum over structs named like its variants,
/// with the schema version each is written at.
///
/// ```ignore
/// event_set! {
///     /// Events of a product.
///     pub enum ProductEvent {
///         ProductCreated = 1,
///         ProductDiscontinued = 1,
///     }
/// }
/// ```
#[macro_export]
macro_rules! event_set {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($variant:ident = $version:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $($variant($variant)),+
        }

        impl $crate::event::EventSet for $name {
            const TYPES: &'static [&'static str] = &[$(stringify!($variant)),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => stringify!($variant)),+
                }
            }

            fn schema_version(&self) -> u16 {
                match self {
                    $(Self::$variant(_) => $version),+
                }
            }

            fn encode(&self) -> Vec<u8> {
                // Serialising these plain structs to JSON cannot fail: they
                // hold no maps with non-string keys and no failing Serialize.
                match self {
                    $(Self::$variant(e) => serde_json::to_vec(e).expect("event serialises")),+
                }
            }

            fn decode(
                event_type: &str,
                schema_version: u16,
                data: &[u8],
            ) -> Result<Self, $crate::event::DecodeError> {
                match event_type {
                    $(stringify!($variant) => {
                        if schema_version > $version {
                            return Err($crate::event::DecodeError::UnsupportedVersion {
                                event_type: event_type.to_string(),
                                found: schema_version,
                                known: $version,
                            });
                        }
                        serde_json::from_slice::<$variant>(data)
                            .map(Self::$variant)
                            .map_err(|source| $crate::event::DecodeError::Data {
                                event_type: event_type.to_string(),
                                source,
                            })
                    })+
                    other => Err($crate::event::DecodeError::UnknownType(other.to_string())),
                }
            }
        }

        $(
            impl From<$variant> for $name {
                fn from(event: $variant) -> Self {
                    Self::$variant(event)
                }
            }
        )+
    };
}
