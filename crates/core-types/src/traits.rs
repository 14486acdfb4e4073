//! The small traits through which the crates compose, and the records they exchange.
//!
//! Contracts (every implementation MUST):
//! - [`MessageSource`]: return messages in offset order within a partition; never skip one; treat
//!   [`MessageSource::commit`] as "everything before `next_offset` is durably handled".
//! - [`MessageSink`]: return only after the messages are acknowledged, or hand the unacknowledged
//!   ones back in the error.
//! - [`Stage`]: leave the batch consistent on error; never panic on bad data (return a [`StageError`]).
//! - [`Cache`], [`HistoryStore`], [`OffsetStore`]: round-trip values exactly; storing the same
//!   [`Bucket::id`] twice keeps one copy and counts the second as already stored.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bucket::Bucket;
use crate::error::{BackendError, SendError, StageError};
use crate::result::StreamingResult;
use crate::sample::{Sample, SampleBatch};
use crate::time::Timestamp;
use crate::value::Value;

/// Where a message came from in a partitioned log.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// A message as received, before decoding.
#[derive(Clone, Debug, PartialEq)]
pub struct RawMessage {
    /// Where it came from.
    pub origin: Origin,
    /// Optional key bytes.
    pub key: Option<Vec<u8>>,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// Header name/value pairs.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The broker's (or producer's) timestamp.
    pub timestamp: Timestamp,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingMessage {
    /// Destination topic.
    pub topic: String,
    /// Explicit partition, or `None` to choose by key hash (round-robin without a key).
    pub partition: Option<i32>,
    /// Optional key bytes.
    pub key: Option<Vec<u8>>,
    /// Payload bytes.
    pub payload: Vec<u8>,
    /// Header name/value pairs (e.g. the error of a dead letter).
    pub headers: Vec<(String, Vec<u8>)>,
}

/// A committed position: the next offset to read in one partition (not the last one read).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LogPosition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
    /// The next offset to read.
    pub next_offset: i64,
}

/// A source of raw messages with at-least-once delivery (Kafka or in-process).
pub trait MessageSource: Send {
    /// Waits up to `timeout` for at most `max` messages; an empty vector means none arrived.
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, BackendError>;
    /// Marks everything before each position as handled, so a restart resumes there.
    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError>;
    /// Messages the source holds past what `poll` delivered, per partition (`None`: unknown).
    fn lag(&self) -> Option<Vec<(i32, u64)>> {
        None
    }
    /// A change of the partitions this source reads (a consumer group's rebalance), if one is
    /// waiting; asked after every poll. After [`Rebalance::Revoking`] the caller stores and commits
    /// what was delivered, then calls [`MessageSource::release`].
    fn rebalance(&mut self) -> Option<Rebalance> {
        None
    }
    /// Gives up the partitions of the last [`Rebalance::Revoking`] (their data is stored and committed).
    fn release(&mut self) {}
    /// Whether a rebalance waits to be taken (by the next poll, then [`MessageSource::rebalance`]):
    /// a caller held by back-pressure gives way to it, so a revocation is not kept waiting.
    fn rebalance_pending(&self) -> bool {
        false
    }
}

/// A change of the partitions a group member reads, as [`MessageSource::rebalance`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rebalance {
    /// These partitions are being taken away: what was delivered of them must be stored and
    /// committed before [`MessageSource::release`] (nothing after it is delivered).
    Revoking(Vec<(String, i32)>),
    /// These partitions were taken away without a chance to commit (the member's session
    /// expired): their uncommitted data is the new owner's to read again.
    Lost(Vec<(String, i32)>),
    /// These partitions are now this member's, from the group's committed offsets.
    Assigned(Vec<(String, i32)>),
}

/// A destination for raw messages (Kafka producer, dead-letter topic, in-process channel).
pub trait MessageSink: Send + Sync {
    /// Sends and waits for acknowledgement; on failure hands back the messages not acknowledged.
    fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>>;
}

/// One processing step of a pipeline.
pub trait Stage: Send + Sync {
    /// The stage's name, used in metrics and errors.
    fn name(&self) -> &str;
    /// Processes a batch in place, adding what it found to `result`.
    fn process(&self, batch: &mut SampleBatch, result: &mut StreamingResult) -> Result<(), StageError>;
}

/// A key/value cache with expiry, for live dashboards.
pub trait Cache: Send + Sync {
    /// Stores `value` under `key` for `ttl`.
    fn put(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError>;
    /// The value under `key`, or `None` if absent or expired.
    fn get(&self, key: &str) -> Result<Option<Value>, BackendError>;
    /// Stores `text` under `key` for `ttl` exactly as given, so any client reads it (the live
    /// view's JSON). The default keeps it as a [`Value::Text`].
    fn put_text(&self, key: &str, text: &str, ttl: Duration) -> Result<(), BackendError> {
        self.put(key, &Value::Text(text.to_owned()), ttl)
    }
    /// The text [`Cache::put_text`] stored under `key`, or `None` if absent or expired.
    fn get_text(&self, key: &str) -> Result<Option<String>, BackendError> {
        match self.get(key)? {
            Some(Value::Text(text)) => Ok(Some(text)),
            Some(other) => Err(BackendError::new(
                crate::BackendErrorKind::Corrupt,
                "cache",
                format!("{key} holds {other:?}, not text"),
            )),
            None => Ok(None),
        }
    }
}

/// How many samples a store call wrote, and how many it already had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreReport {
    /// Newly written.
    pub inserted: u64,
    /// Skipped because their bucket was already stored (a replay).
    pub already_stored: u64,
}

/// A time-range query over stored samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryQuery {
    /// Inclusive start.
    pub start: Timestamp,
    /// Exclusive end.
    pub end: Timestamp,
    /// Only this build.
    pub build_id: Option<String>,
    /// Only this source.
    pub source_id: Option<String>,
    /// Only this layer.
    pub layer: Option<u32>,
    /// Only samples carrying every one of these tags (name, value).
    pub tags: Vec<(String, String)>,
    /// Samples to skip (paging).
    pub skip: usize,
    /// Most samples to return.
    pub limit: usize,
}

/// Durable history of samples, kept as buckets (see [`crate::bucket`]), sorted by time on read.
pub trait HistoryStore: Send + Sync {
    /// Stores buckets idempotently by id; the report counts their samples.
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError>;
    /// Samples matching `query`, sorted by timestamp (see [`crate::history::answer`]).
    fn query_stream_history(&self, query: &HistoryQuery) -> Result<Vec<Sample>, BackendError>;
    /// How many samples match `query`, skip and limit aside (bucket counts where a bucket lies
    /// wholly inside the range).
    fn count_samples(&self, query: &HistoryQuery) -> Result<u64, BackendError>;
    /// Deletes the buckets that ended before `older_than`; returns how many samples they held.
    fn delete_old_data(&self, older_than: Timestamp) -> Result<u64, BackendError>;
    /// For each of `ids`, whether a bucket with that id is stored (same order).
    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError>;

    /// Stores `samples` as the buckets [`Bucket::runs`] cuts them into (as one message).
    fn store_samples(&self, samples: &[Sample]) -> Result<StoreReport, BackendError> {
        let buckets: Vec<Bucket> = Bucket::runs(samples)
            .into_iter()
            .map(|r| Bucket::encode(&samples[r]))
            .collect::<Result<_, _>>()
            .map_err(crate::history::corrupt)?;
        self.store_buckets(&buckets)
    }
}

impl HistoryQuery {
    /// Every stored sample, oldest first.
    pub fn all() -> HistoryQuery {
        HistoryQuery {
            start: Timestamp::from_nanos(i64::MIN),
            end: Timestamp::from_nanos(i64::MAX),
            build_id: None,
            source_id: None,
            layer: None,
            tags: Vec::new(),
            skip: 0,
            limit: usize::MAX,
        }
    }
}

/// Where layer reports are kept beside the history.
///
/// MUST: storing is idempotent by (build, layer) — a report stored again replaces the earlier one;
/// `layer_reports` returns a build's reports by layer, each as last stored.
pub trait LayerReportStore: Send + Sync {
    /// Stores (or replaces) each report.
    fn store_layer_reports(&self, reports: &[crate::LayerReport]) -> Result<(), BackendError>;
    /// The reports of `build_id`, by layer.
    fn layer_reports(&self, build_id: &str) -> Result<Vec<crate::LayerReport>, BackendError>;
}

/// Durable committed offsets per consumer group (rskafka has no group API).
pub trait OffsetStore: Send + Sync {
    /// The committed positions of `group` on `topic`, one per partition that has one.
    fn load_offsets(&self, group: &str, topic: &str) -> Result<Vec<LogPosition>, BackendError>;
    /// Records positions of `group`; later calls overwrite earlier ones per partition.
    fn store_offsets(&self, group: &str, positions: &[LogPosition]) -> Result<(), BackendError>;
}

/// How long to wait for a backend before reporting [`crate::BackendErrorKind::Timeout`], by default.
pub const DEFAULT_BACKEND_TIMEOUT: Duration = Duration::from_secs(5);
