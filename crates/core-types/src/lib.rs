//! Core types of qadf-stream: the sample model, codecs, configuration, results, statistics,
//! errors, and the small traits through which the other crates compose.
//!
//! This crate does no I/O and starts no runtime; every other crate depends on it and on nothing
//! heavier for its shared vocabulary.
//!
//! ```
//! use qadf_core_types::{Codec, Encoding, Sample, SampleBatch, Timestamp};
//! use nalgebra::Point3;
//!
//! let sample = Sample::new(
//!     Timestamp::from_nanos(1_795_000_000_000_000_000),
//!     Point3::new(10.0, 20.0, 0.03),
//!     [("temperature", 1650.0)].into_iter().collect(),
//! );
//! let codec = Codec::new(Encoding::Bincode);
//! let bytes = codec.encode(&SampleBatch::new(vec![sample.clone()])).unwrap();
//! assert_eq!(codec.decode(&bytes).unwrap().samples, vec![sample]);
//! ```
//!
//! # Generic JSON mapping
//! Besides the canonical object (`build_id`, `source_id`, `layer`, `timestamp`, `position`,
//! `signals`), a JSON sample may be a flat object such as the Python original's `{"value": 1.0}`:
//! - every other field holding a number becomes a signal of the same name (`value` → signal `value`);
//!   a field holding anything else (string, bool, null, array, object) is a decode error naming it;
//! - `x`, `y`, `z` (all three) may replace `position`; without either, `position` is `None` and the
//!   voxel stage counts the sample as unplaceable instead of inventing a location;
//! - a missing `timestamp` is the Kafka record's timestamp ([`Codec::decode_at`]; only a caller
//!   with no record, through [`Codec::decode`], gets the decode time); missing `build_id`/`source_id` are `"unknown"`; a
//!   missing `layer` is 0;
//! - signal values must be finite: JSON has no NaN, and [`Sample::validate`] rejects NaN from bincode.
#![deny(missing_docs)]

mod backoff;
pub mod bucket;
mod clock;
mod codec;
mod config;
mod error;
pub mod history;
mod layer_report;
mod limits;
mod result;
pub mod rules;
mod sample;
pub mod schema;
pub mod secret;
mod stats;
mod tags;
mod time;
mod traits;
mod value;
mod wire;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, DEFAULT_MAX_MESSAGE_BYTES, Encoding};
pub use config::{
    ENV_PREFIX, KafkaSecurityProtocol, OffsetReset, PartitionAssignment, SaslMechanism, StoreFailurePolicy,
    StreamingConfig, TEST_ENV_PREFIX,
};
pub use error::{
    BackendError, BackendErrorKind, CodecError, ConfigError, FieldError, SampleError, SendError, StageError,
};
pub use layer_report::{LayerReport, LayerSignal, Verdict};
pub use limits::{IngestLimits, json_depth_exceeds};
pub use result::{Alert, DeadLetter, Severity, SpcResult, StreamingResult};
pub use sample::{Sample, SampleBatch, Signals, UNKNOWN, signal};
pub use schema::{RecordContext, Schema, SchemaConfig};
pub use stats::{LatencySummary, StreamStatistics, finite_ratio};
pub use tags::Tags;
pub use time::Timestamp;
pub use traits::{
    Cache, DEFAULT_BACKEND_TIMEOUT, HistoryQuery, HistoryStore, LayerReportStore, LogPosition, MessageSink,
    MessageSource, OffsetStore, Origin, OutgoingMessage, RawMessage, Rebalance, Stage, StoreReport,
};
pub use value::Value;

/// Re-exported so users need not depend on nalgebra to build positions.
pub use nalgebra::Point3;
