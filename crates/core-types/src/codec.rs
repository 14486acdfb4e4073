//! Wire codecs for sample batches: JSON (serde_json) and bincode 2 (`config::standard()`).
//!
//! One wire format per encoding, identical for every caller:
//! - JSON: an array of sample objects; a single sample object is read as a batch of one. Input
//!   is read through the configured message schema ([`crate::schema`]): other producers' shapes,
//!   envelopes and columnar batches.
//! - bincode: the batch as a length-prefixed sequence of canonical samples.
//!
//! Decoding never panics: it returns a [`CodecError`] that says what was wrong.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::limits::IngestLimits;
use crate::sample::SampleBatch;
use crate::schema::{RecordContext, Schema};
use crate::time::Timestamp;

/// A wire encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// UTF-8 JSON (the default; what other languages' producers send).
    #[default]
    Json,
    /// bincode 2 with the standard configuration (compact, fastest).
    Bincode,
}

/// Default largest accepted message: 1 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// The most bytes bincode may claim for allocations while decoding one message (64 MiB).
const BINCODE_ALLOC_LIMIT: usize = 64 * 1024 * 1024;

fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<BINCODE_ALLOC_LIMIT>()
}

/// Encodes and decodes sample batches in one encoding with a size limit and a message schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Codec {
    encoding: Encoding,
    max_message_bytes: usize,
    limits: IngestLimits,
    schema: Arc<Schema>,
}

impl Codec {
    /// A codec for `encoding` with the default size limit ([`DEFAULT_MAX_MESSAGE_BYTES`]) and
    /// the default schema.
    pub fn new(encoding: Encoding) -> Codec {
        Codec {
            encoding,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            limits: IngestLimits::default(),
            schema: Arc::new(crate::wire::default_schema().clone()),
        }
    }

    /// The codec a configuration describes: its encoding, message size, ingest limits and schema.
    pub fn for_config(config: &crate::StreamingConfig) -> Result<Codec, crate::ConfigError> {
        let schema = Schema::compile(&config.schema).map_err(crate::ConfigError::Invalid)?;
        Ok(Codec::new(config.message_encoding)
            .with_max_message_bytes(config.max_message_bytes)
            .with_limits(config.ingest_limits())
            .with_schema(Arc::new(schema)))
    }

    /// Reads JSON messages through `schema` (bincode messages are always canonical).
    pub fn with_schema(mut self, schema: Arc<Schema>) -> Codec {
        self.schema = schema;
        self
    }

    /// The message schema JSON is read through.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Sets the samples-per-message and JSON-depth bounds applied by [`Codec::decode_at`].
    pub fn with_limits(mut self, limits: IngestLimits) -> Codec {
        self.limits = limits;
        self
    }

    /// Sets the largest message accepted by [`Codec::decode`] (and produced by [`Codec::encode`]).
    pub fn with_max_message_bytes(mut self, max: usize) -> Codec {
        self.max_message_bytes = max;
        self
    }

    /// The encoding.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// The size limit in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Encodes a batch; fails if the result would exceed the size limit.
    pub fn encode(&self, batch: &SampleBatch) -> Result<Vec<u8>, CodecError> {
        let bytes = match self.encoding {
            Encoding::Json => {
                reject_non_finite(batch)?;
                serde_json::to_vec(batch).map_err(|e| CodecError::Encode { message: e.to_string() })?
            }
            Encoding::Bincode => bincode::serde::encode_to_vec(batch, bincode_config())
                .map_err(|e| CodecError::Encode { message: e.to_string() })?,
        };
        if bytes.len() > self.max_message_bytes {
            return Err(CodecError::Oversize { len: bytes.len(), max: self.max_message_bytes });
        }
        Ok(bytes)
    }

    /// Decodes one message into a batch (structure only; see [`crate::Sample::validate`] for the semantic
    /// rules); a JSON sample without a timestamp gets the decode time. Consumers of a log use
    /// [`Codec::decode_at`], so a replay decodes to the same samples.
    pub fn decode(&self, bytes: &[u8]) -> Result<SampleBatch, CodecError> {
        self.decode_record(bytes, &RecordContext::default())
    }

    /// Decodes one message received at `record_timestamp` (the Kafka record's timestamp), which a
    /// JSON sample without its own timestamp takes.
    pub fn decode_at(&self, bytes: &[u8], record_timestamp: Timestamp) -> Result<SampleBatch, CodecError> {
        self.decode_record(bytes, &RecordContext { timestamp: Some(record_timestamp), key: None })
    }

    /// Decodes one message with what its Kafka record adds: the timestamp a JSON sample without
    /// its own takes, and the key the schema may take the build from.
    pub fn decode_record(&self, bytes: &[u8], record: &RecordContext<'_>) -> Result<SampleBatch, CodecError> {
        if bytes.is_empty() {
            return Err(CodecError::Empty);
        }
        if bytes.len() > self.max_message_bytes {
            return Err(CodecError::Oversize { len: bytes.len(), max: self.max_message_bytes });
        }
        let batch = match self.encoding {
            Encoding::Json => decode_json(bytes, &self.schema, record, &self.limits)?,
            Encoding::Bincode => decode_bincode(bytes)?,
        };
        if batch.len() > self.limits.max_samples_per_message {
            return Err(CodecError::TooManySamples { max: self.limits.max_samples_per_message });
        }
        Ok(batch)
    }
}

/// JSON has no NaN or infinity (serde_json would write `null`), so refuse rather than corrupt.
fn reject_non_finite(batch: &SampleBatch) -> Result<(), CodecError> {
    for sample in &batch.samples {
        let coords = sample.position.iter().flat_map(|p| [p.x, p.y, p.z]);
        let values = sample.signals.iter().map(|(_, v)| v);
        if let Some(bad) = coords.chain(values).find(|v| !v.is_finite()) {
            return Err(CodecError::Encode { message: format!("JSON cannot represent the non-finite number {bad}") });
        }
    }
    Ok(())
}

fn decode_json(
    bytes: &[u8],
    schema: &Schema,
    record: &RecordContext<'_>,
    limits: &IngestLimits,
) -> Result<SampleBatch, CodecError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CodecError::InvalidUtf8 { valid_up_to: e.valid_up_to() })?;
    schema.decode(text, record, limits).map(SampleBatch::new)
}

fn decode_bincode(bytes: &[u8]) -> Result<SampleBatch, CodecError> {
    let (batch, read): (SampleBatch, usize) = bincode::serde::decode_from_slice(bytes, bincode_config())
        .map_err(|e| CodecError::Bincode { message: e.to_string() })?;
    if read != bytes.len() {
        return Err(CodecError::TrailingBytes { extra: bytes.len() - read });
    }
    Ok(batch)
}

#[cfg(test)]
mod tests;
