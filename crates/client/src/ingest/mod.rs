//! Ingest, the one owner of delivery: batches from any `MessageSource` (Kafka or
//! in-process) go through the same `process_stream_batch` path and statistics as batches handed
//! in directly.
//!
//! Per poll, in parts of at most [`CHUNK_BYTES`] of payload: decode under the ingest limits
//! (undecodable messages → dead letters), skip what a killed run already stored (`skip_stored`),
//! process (refused samples → dead letters traced to their message and index), publish the alerts
//! (when there is an alerts sink), hand the kept samples to the history writer (which holds at
//! most [`WRITER_QUEUE`], so memory stays bounded however the input bursts) with the job's raw
//! messages kept in flight, and commit a position only when the writer reports its data stored.
//! Completions come back in order, so commits stay in order. A job the store refuses for good goes
//! whole to the dead-letter sink before its position may be committed, or (`on_store_failure =
//! "stop"`, or no dead-letter sink) halts the consumer with nothing after it committed. Stored
//! positions are committed together: at most every `auto_commit_interval_ms` while messages keep
//! coming (every poll with auto-commit off), at once when the source goes idle, and at stop;
//! transient failures of commits, polls and look-ups are retried with the one [`Backoff`]. A batch
//! the pipeline refuses goes to the dead-letter sink (then it is committed) or, without one, stops
//! the consumer uncommitted, so a restart delivers it again: nothing is lost and nothing is
//! silent. Alerts are published before their samples are stored, so every stored sample's alerts
//! were published (at least once: a crash between the two publishes them again).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use qadf_core_types::{BackendError, HistoryStore, MessageSource, StreamingResult};
use qadf_kafka_io::{AlertSink, DeadLetterSink};
use qadf_storage::QueueLimit;

use crate::client::{ClientError, StreamingClient};

mod delivery;

/// Where the consumer path sends what it produced.
#[derive(Default)]
pub struct ConsumerSinks {
    /// Durable history (samples are stored with content-derived ids, so replays are idempotent).
    pub history: Option<Arc<dyn HistoryStore>>,
    /// Where undecodable messages and refused batches go, with their reason.
    pub dead_letters: Option<Arc<DeadLetterSink>>,
    /// Where quality alerts are published (before the batch is stored, so a failed publish stops
    /// the consumer uncommitted and a restart raises the alerts again).
    pub alerts: Option<Arc<AlertSink>>,
    /// Where the loop tells what an operator should see — a consumer group's assignments, builds
    /// rebuilt from the history (`None`: standard error).
    pub notices: Option<Notices>,
}

/// A receiver of the delivery loop's notices (one line each).
pub type Notices = Arc<dyn Fn(&str) + Send + Sync>;

/// Why the consumer stopped by itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerError {
    /// The source failed permanently.
    #[error("source failed: {0}")]
    Source(BackendError),
    /// A commit failed permanently (or the consumer was stopped while it was retried).
    #[error("commit failed: {0}")]
    Commit(BackendError),
    /// The history refused a batch and `on_store_failure = "stop"` (or there is no dead-letter sink).
    #[error("stopped uncommitted: the history refused a batch: {0}")]
    Store(BackendError),
    /// Dead letters could not be sent (nothing after them is committed).
    #[error("dead-letter sink failed: {0}")]
    DeadLetters(BackendError),
    /// Alerts could not be published (their batch is not stored or committed).
    #[error("alerts sink failed: {0}")]
    Alerts(BackendError),
    /// The pipeline refused a batch and there is no dead-letter sink.
    #[error("stopped uncommitted: {0}")]
    Refused(String),
    /// Looking up replayed samples failed.
    #[error("checking for replayed samples failed: {0}")]
    ReplayCheck(BackendError),
    /// The storage writer thread is gone.
    #[error("the storage writer stopped")]
    WriterStopped,
    /// A build given to this member could not be rebuilt from the history.
    #[error("rebuilding a build from the history failed: {0}")]
    Restore(String),
}

/// What a consumer run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerReport {
    /// Polls that returned messages.
    pub polls: u64,
    /// Messages received.
    pub messages: u64,
    /// Commits made (each after its data was stored).
    pub commits: u64,
    /// Dead letters sent (undecodable messages, invalid samples, refused batches' messages).
    pub dead_letters: u64,
    /// Alerts published to the alerts sink.
    pub alerts_published: u64,
    /// Batches the pipeline refused.
    pub failed_batches: u64,
    /// Samples delivered again after a restart that the history already held (not processed twice).
    pub replayed: u64,
    /// Batches the history refused permanently (their messages went to the dead-letter sink, or the consumer stopped).
    pub store_failures: u64,
    /// Polls, commits and replay look-ups retried after a transient failure.
    pub retries: u64,
    /// Consumer-group rebalances this member took part in (revocations, losses, assignments).
    pub rebalances: u64,
    /// Builds whose voxel grids were rebuilt from the history when their partitions came to this member.
    pub builds_restored: u64,
    /// Write jobs given up at a revocation that outlasted `drain_timeout_ms` (never committed:
    /// the partitions' next owner reads them again).
    pub writes_abandoned: u64,
    /// Why the consumer stopped by itself, if it did.
    pub error: Option<String>,
}

/// What may wait for the history writer (the write in progress included): a burst of input waits
/// in the source, compact, instead of piling up decoded samples (~400 bytes each, so ~8 MB here).
/// The writer stores what queued up in one call, so this also bounds a MongoDB request: 20,000
/// samples are ~20 bucket documents (at 5,000, ~5 documents a request held `run` at ~230,000
/// samples/s on SecantusDB; docs/PERFORMANCE.md).
pub const WRITER_QUEUE: QueueLimit = QueueLimit { jobs: 8, samples: 5_000 };

/// Payload bytes decoded at a time: a poll holding more is handled in parts (each its own batch).
pub const CHUNK_BYTES: usize = 256 << 10;

/// A running delivery loop (the upstream `start_consumer`/`stop_consumer` pair): start it with
/// [`Ingest::start`], end it with [`Ingest::stop`]; dropping it asks the loop to stop (it still
/// stores and commits what it handled) without waiting.
pub struct Ingest {
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    thread: Option<JoinHandle<ConsumerReport>>,
}

impl Ingest {
    /// Consumes `source` on a thread through `client`'s processing path and statistics (the same
    /// as `process_stream_batch`), calling `callback` with each batch's result.
    pub fn start(
        client: &Arc<StreamingClient>,
        source: Box<dyn MessageSource>,
        sinks: ConsumerSinks,
        callback: impl Fn(&StreamingResult) + Send + 'static,
    ) -> Ingest {
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicBool::new(false));
        let run = delivery::Run::new(client.clone(), source, sinks, stop.clone(), busy.clone());
        let thread = std::thread::Builder::new()
            .name("qadf-ingest".to_owned())
            .spawn(move || run.run(&callback))
            .expect("spawning the ingest thread");
        Ingest { stop, busy, thread: Some(thread) }
    }

    /// Whether the loop still runs (it may have stopped by itself: see [`Ingest::stop`]).
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Whether the loop is handling a poll right now (decoding, processing, storing).
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// Stops the loop: finishes the current poll, stores and commits what was processed, and
    /// joins the thread; the report says what the run did and why it stopped if it did by itself.
    pub fn stop(mut self) -> Result<ConsumerReport, ClientError> {
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take().ok_or(ClientError::ConsumerPanicked)?;
        thread.join().map_err(|_| ClientError::ConsumerPanicked)
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}
