//! Wire codecs for sample batches: JSON (serde_json) and bincode 2 (`config::standard()`).
//!
//! One wire format per encoding, identical for every caller:
//! - JSON: an array of sample objects; a single sample object is read as a batch of one.
//! - bincode: the batch as a length-prefixed sequence of canonical samples.
//!
//! Decoding never panics: it returns a [`CodecError`] that says what was wrong.

use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};

use crate::error::CodecError;
use crate::limits::{IngestLimits, json_depth_exceeds};
use crate::sample::SampleBatch;
use crate::time::Timestamp;
use crate::wire::{BatchSeed, SampleSeed, TOO_MANY_SAMPLES};

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

/// Encodes and decodes sample batches in one encoding with a size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Codec {
    encoding: Encoding,
    max_message_bytes: usize,
    limits: IngestLimits,
}

impl Codec {
    /// A codec for `encoding` with the default size limit ([`DEFAULT_MAX_MESSAGE_BYTES`]).
    pub fn new(encoding: Encoding) -> Codec {
        Codec { encoding, max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES, limits: IngestLimits::default() }
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
        self.decode_with(bytes, None)
    }

    /// Decodes one message received at `record_timestamp` (the Kafka record's timestamp), which a
    /// JSON sample without its own timestamp takes.
    pub fn decode_at(&self, bytes: &[u8], record_timestamp: Timestamp) -> Result<SampleBatch, CodecError> {
        self.decode_with(bytes, Some(record_timestamp))
    }

    fn decode_with(&self, bytes: &[u8], default_timestamp: Option<Timestamp>) -> Result<SampleBatch, CodecError> {
        if bytes.is_empty() {
            return Err(CodecError::Empty);
        }
        if bytes.len() > self.max_message_bytes {
            return Err(CodecError::Oversize { len: bytes.len(), max: self.max_message_bytes });
        }
        let batch = match self.encoding {
            Encoding::Json => decode_json(bytes, default_timestamp, &self.limits)?,
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
    default_timestamp: Option<Timestamp>,
    limits: &IngestLimits,
) -> Result<SampleBatch, CodecError> {
    let text = std::str::from_utf8(bytes).map_err(|e| CodecError::InvalidUtf8 { valid_up_to: e.valid_up_to() })?;
    if json_depth_exceeds(bytes, limits.max_json_depth) {
        return Err(CodecError::TooDeep { max: limits.max_json_depth });
    }
    let json_error = |e: serde_json::Error| {
        if e.to_string().starts_with(TOO_MANY_SAMPLES) {
            return CodecError::TooManySamples { max: limits.max_samples_per_message };
        }
        CodecError::Json { line: e.line(), column: e.column(), message: e.to_string() }
    };
    let sample = SampleSeed(default_timestamp);
    let mut de = serde_json::Deserializer::from_str(text);
    let batch = match text.trim_start().as_bytes().first() {
        Some(b'[') => {
            BatchSeed { sample, max: limits.max_samples_per_message }.deserialize(&mut de).map(SampleBatch::new)
        }
        Some(b'{') => sample.deserialize(&mut de).map(|s| SampleBatch::new(vec![s])),
        _ => {
            return Err(CodecError::Json {
                line: 1,
                column: 1,
                message: "expected a sample object or an array of samples".to_owned(),
            });
        }
    };
    let batch = batch.and_then(|b| de.end().map(|()| b)).map_err(json_error)?;
    Ok(batch)
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
