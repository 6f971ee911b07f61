//! The event history in the formats analysts' tools open, for
//! `GET /v1/events?format=` and `shopstream events export`:
//!
//! - **NDJSON** (`application/x-ndjson`): the recorded-event JSON of
//!   API.md, one event a line.
//! - **CSV** (`text/csv`, RFC 4180, a header row): one row an event, the
//!   columns below, `data` as JSON text, absent metadata as empty cells.
//! - **Parquet** (`application/vnd.apache.parquet`): the same columns,
//!   typed: positions and revisions `UINT64`, `schema_version` `UINT16`,
//!   `recorded_at` a UTC timestamp in microseconds, text as UTF-8 (`data`
//!   is JSON text: DuckDB reads it with `data::JSON`); snappy-compressed,
//!   row groups of at most [`ROW_GROUP`] events or 64 MiB, so an export of
//!   any size needs memory for one row group only.
//!
//! Columns, in order: `position`, `stream`, `revision`, `event_id`, `type`,
//! `schema_version`, `recorded_at`, `data`, `correlation_id`,
//! `causation_id`, `actor`.
//!
//! Events arrive already redacted ([`crate::app::redaction`]); an export
//! is a stream of encoded chunks that the HTTP layer sends as they come and
//! the command line writes to a file. A Parquet file that stops early (a
//! failed read, a closed connection) has no footer, so no reader mistakes
//! it for a whole export.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray, UInt16Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use shopstream_infra::event_store::RecordedEvent;

use super::queries::QueryError;
use super::queries::history::Export;

/// Events per Parquet row group, at most.
pub const ROW_GROUP: usize = 65_536;

/// Bytes a Parquet row group holds before it is written, at most.
const ROW_GROUP_BYTES: usize = 64 << 20;

/// A format an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Csv,
    Parquet,
}

impl Format {
    /// The format a query parameter names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    /// The format a file name's extension says.
    pub fn of_file(name: &str) -> Option<Self> {
        let extension = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match extension.as_str() {
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            other => Self::parse(other),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Ndjson => "application/x-ndjson",
            Self::Csv => "text/csv; charset=utf-8; header=present",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] QueryError),
    #[error("encoding the export failed")]
    Encode(#[source] Box<dyn std::error::Error + Send + Sync>),
}

fn encoding(e: impl std::error::Error + Send + Sync + 'static) -> ExportError {
    ExportError::Encode(Box::new(e))
}

/// The export's columns, as Parquet types them.
fn schema() -> SchemaRef {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        text("stream", false),
        Field::new("revision", DataType::UInt64, false),
        text("event_id", false),
        text("type", false),
        Field::new("schema_version", DataType::UInt16, false),
        Field::new(
            "recorded_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        text("data", false),
        text("correlation_id", true),
        text("causation_id", true),
        text("actor", true),
    ]))
}

/// Turns pages of events into the bytes of one format.
pub struct Encoder(Inner);

enum Inner {
    Ndjson,
    Csv {
        header: bool,
    },
    Parquet {
        schema: SchemaRef,
        writer: Box<ArrowWriter<Vec<u8>>>,
    },
}

impl Encoder {
    pub fn new(format: Format) -> Result<Self, ExportError> {
        Ok(Self(match format {
            Format::Ndjson => Inner::Ndjson,
            Format::Csv => Inner::Csv { header: false },
            Format::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .set_max_row_group_row_count(Some(ROW_GROUP))
                    .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
                    .set_created_by(format!("shopstream {}", env!("CARGO_PKG_VERSION")))
                    .build();
                let schema = schema();
                let writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties))
                    .map_err(encoding)?;
                Inner::Parquet {
                    schema,
                    writer: Box::new(writer),
                }
            }
        }))
    }

    /// The bytes for these events that are ready to go out (Parquet holds
    /// rows back until a row group is full).
    pub fn encode(&mut self, events: &[RecordedEvent]) -> Result<Vec<u8>, ExportError> {
        match &mut self.0 {
            Inner::Ndjson => {
                let mut out = Vec::with_capacity(events.len() * 320);
                for event in events {
                    ndjson_line(&mut out, event).map_err(encoding)?;
                }
                Ok(out)
            }
            Inner::Csv { header } => {
                let mut csv = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(Vec::with_capacity(events.len() * 300));
                if !*header {
                    let names = schema();
                    csv.write_record(names.fields().iter().map(|f| f.name().as_str()))
                        .map_err(encoding)?;
                    *header = true;
                }
                for e in events {
                    let (position, revision) = (e.position.to_string(), e.revision.to_string());
                    let (id, version) = (e.event_id.to_string(), e.schema_version.to_string());
                    let at = recorded_at(e);
                    let m = &e.metadata;
                    csv.write_record([
                        position.as_str(),
                        &e.stream,
                        &revision,
                        &id,
                        &e.event_type,
                        &version,
                        &at,
                        e.data.get(),
                        m.correlation_id.as_deref().unwrap_or(""),
                        m.causation_id.as_deref().unwrap_or(""),
                        m.actor.as_deref().unwrap_or(""),
                    ])
                    .map_err(encoding)?;
                }
                csv.into_inner().map_err(|e| encoding(e.into_error()))
            }
            Inner::Parquet { schema, writer } => {
                if !events.is_empty() {
                    writer.write(&batch(schema, events)?).map_err(encoding)?;
                }
                // The writer counts what it wrote, not what its buffer
                // holds: taking the finished bytes out leaves it whole.
                Ok(std::mem::take(writer.inner_mut()))
            }
        }
    }

    /// What is left: the header of an empty CSV, the last row group and
    /// the footer of a Parquet file.
    pub fn finish(mut self) -> Result<Vec<u8>, ExportError> {
        match self.0 {
            Inner::Ndjson => Ok(Vec::new()),
            Inner::Csv { header: false } => self.encode(&[]),
            Inner::Csv { header: true } => Ok(Vec::new()),
            Inner::Parquet { writer, .. } => writer.into_inner().map_err(encoding),
        }
    }
}

/// One recorded event (already redacted) as an NDJSON line: its JSON
/// (API.md's recorded event) and a newline.
pub fn ndjson_line(out: &mut Vec<u8>, event: &RecordedEvent) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *out, event)?;
    out.push(b'\n');
    Ok(())
}

fn recorded_at(event: &RecordedEvent) -> String {
    event
        .recorded_at
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// One page of events as Arrow columns.
fn batch(schema: &SchemaRef, events: &[RecordedEvent]) -> Result<RecordBatch, ExportError> {
    let text = |f: fn(&RecordedEvent) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(events.iter().map(f)))
    };
    let maybe = |f: fn(&RecordedEvent) -> Option<&str>| -> ArrayRef {
        Arc::new(events.iter().map(f).collect::<StringArray>())
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(
            events.iter().map(|e| e.position),
        )),
        text(|e| &e.stream),
        Arc::new(UInt64Array::from_iter_values(
            events.iter().map(|e| e.revision),
        )),
        Arc::new(StringArray::from_iter_values(
            events.iter().map(|e| e.event_id.to_string()),
        )),
        text(|e| &e.event_type),
        Arc::new(UInt16Array::from_iter_values(
            events.iter().map(|e| e.schema_version),
        )),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                events.iter().map(|e| e.recorded_at.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        text(|e| e.data.get()),
        maybe(|e| e.metadata.correlation_id.as_deref()),
        maybe(|e| e.metadata.causation_id.as_deref()),
        maybe(|e| e.metadata.actor.as_deref()),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(encoding)
}

/// A piece of an export, ready to go out.
pub struct Chunk {
    pub bytes: Bytes,
    /// Events encoded so far, and the position of the last.
    pub events: u64,
    pub last_position: Option<u64>,
}

/// An export's pages, encoded: chunks in order, the last one closing the
/// format (Parquet's footer). Chunks without bytes are left out.
pub fn encoded(
    pages: Export,
    format: Format,
) -> Result<impl Stream<Item = Result<Chunk, ExportError>>, ExportError> {
    struct State {
        pages: Export,
        encoder: Option<Encoder>,
        events: u64,
        last_position: Option<u64>,
    }
    let state = State {
        pages,
        encoder: Some(Encoder::new(format)?),
        events: 0,
        last_position: None,
    };
    let chunks = futures::stream::unfold(state, |mut s| async move {
        let encoder = s.encoder.as_mut()?;
        let bytes = match s.pages.next().await {
            Some(Ok(page)) => {
                s.events += page.len() as u64;
                s.last_position = page.last().map(|e| e.position).or(s.last_position);
                encoder.encode(&page)
            }
            Some(Err(e)) => {
                s.encoder = None;
                Err(e.into())
            }
            None => s.encoder.take().map_or(Ok(Vec::new()), Encoder::finish),
        };
        let chunk = bytes.map(|bytes| Chunk {
            bytes: Bytes::from(bytes),
            events: s.events,
            last_position: s.last_position,
        });
        if chunk.is_err() {
            s.encoder = None;
        }
        Some((chunk, s))
    });
    Ok(chunks.filter(|c| std::future::ready(!matches!(c, Ok(c) if c.bytes.is_empty()))))
}
