//! `StorageWriter`: write-behind persistence on its own thread with bounded memory.
//!
//! The pipeline hands over batches through a queue bounded in jobs and in samples ([`QueueLimit`]):
//! `submit` blocks when full, so a slow or absent backend back-pressures the consumer, and a burst
//! of input cannot pile up decoded samples; `try_submit` hands the batch back. Samples count as
//! queued until they are stored, so the limit covers the write in progress too. The thread
//! stores each batch, retrying transient failures with backoff until the backend returns — a
//! batch is never dropped — then stores the offsets it covers (after the data) and reports the
//! completion, so the caller acknowledges the source only for data that is durably stored.
//!
//! Group commit: jobs that queued up while the previous write ran are stored together in one
//! `store_buckets` call (one durable transaction or request series), up to [`GROUP_SAMPLES`]
//! samples, so a store with a costly commit keeps up with many small polls. Each job still gets
//! its own completion, in order. When a group fails permanently, each of its jobs is stored
//! again on its own (stores are idempotent), so only the jobs the store really refuses are
//! reported failed; the caller decides what a failed job means for its positions (the writer
//! never stores positions past a failed job: it stops storing offsets at the first one).
//!
//! Fence: [`StorageWriter::abandon`] gives up every job handed over so far that is not being
//! stored yet (a consumer-group member whose partitions went to another member before its writes
//! were done): those jobs come back abandoned, with no position, and a write retrying for them
//! stops at its next attempt, so the member writes nothing more of data that is no longer its own.
//! Only a store call already under way may still land.
//!
//! The writer encodes each job's runs into buckets (see `qadf_core_types::bucket`) on its own
//! thread, so the column compression runs beside the consumer's decoding and checks.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use parking_lot::{Condvar, Mutex};
use qadf_core_types::bucket::Bucket;
use qadf_core_types::history::corrupt;
use qadf_core_types::{BackendError, Backoff, HistoryStore, LogPosition, OffsetStore, Sample, StoreReport};

/// A batch to persist and the source positions it covers.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteJob {
    /// The samples.
    pub samples: Vec<Sample>,
    /// The bucket each run of `samples` is stored as (from `Bucket::runs_by`; in order, covering all).
    pub runs: Vec<Range<usize>>,
    /// Positions to commit once the samples are stored.
    pub positions: Vec<LogPosition>,
}

impl WriteJob {
    /// `samples` as one message's buckets ([`Bucket::runs`]), covering `positions`.
    pub fn whole(samples: Vec<Sample>, positions: Vec<LogPosition>) -> WriteJob {
        WriteJob { runs: Bucket::runs(&samples), samples, positions }
    }

    /// Encodes the runs (a run that is not one bucket's worth is refused) and drops the samples.
    fn take_buckets(&mut self) -> Result<Vec<Bucket>, BackendError> {
        let samples = std::mem::take(&mut self.samples);
        let covered: usize = self.runs.iter().map(|r| r.len()).sum();
        if covered != samples.len() || self.runs.iter().any(|r| r.end > samples.len()) {
            return Err(BackendError::new(
                qadf_core_types::BackendErrorKind::Rejected,
                "history",
                format!("runs cover {covered} of {} samples", samples.len()),
            ));
        }
        self.runs.iter().map(|r| Bucket::encode(&samples[r.clone()]).map_err(corrupt)).collect()
    }
}

/// A finished job.
#[derive(Debug)]
pub struct WriteDone {
    /// The positions now safe to acknowledge.
    pub positions: Vec<LogPosition>,
    /// What the store reported for the group commit that held this job, or the permanent error
    /// that refused this job's samples.
    pub result: Result<StoreReport, BackendError>,
    /// How long the group commit that held this job took, retries included.
    pub elapsed: Duration,
    /// Given up by [`StorageWriter::abandon`] before it was stored: nothing of it was stored
    /// (a store call under way when its retries stopped may still have landed) and `positions`
    /// is empty.
    pub abandoned: bool,
}

/// Counters of a writer.
#[derive(Debug, Default)]
pub struct WriterStatistics {
    /// Jobs stored.
    pub jobs_written: AtomicU64,
    /// Samples newly inserted.
    pub inserted: AtomicU64,
    /// Samples the store already had (replays).
    pub already_stored: AtomicU64,
    /// Failed attempts that were retried.
    pub retries: AtomicU64,
    /// Jobs refused permanently (reported in their `WriteDone`).
    pub failed_jobs: AtomicU64,
    /// Jobs given up by [`StorageWriter::abandon`].
    pub abandoned_jobs: AtomicU64,
    /// The last error seen.
    pub last_error: Mutex<Option<String>>,
}

/// How much may wait for the writer, counting the write in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLimit {
    /// Jobs waiting (at least 1).
    pub jobs: usize,
    /// Samples not yet stored; a job is let in over this only when nothing else is queued.
    pub samples: usize,
}

impl QueueLimit {
    /// At most `jobs` jobs, whatever their size.
    pub fn jobs(jobs: usize) -> QueueLimit {
        QueueLimit { jobs, samples: usize::MAX }
    }
}

/// Samples handed over and not yet stored, with a signal for when some were.
#[derive(Default)]
struct Queued {
    samples: Mutex<usize>,
    stored: Condvar,
}

impl Queued {
    /// Counts `n` samples as no longer queued (stored, or never handed over after all).
    fn release(&self, n: usize) {
        *self.samples.lock() -= n;
        self.stored.notify_all();
    }
}

/// The writer thread's handle.
pub struct StorageWriter {
    jobs: Option<Sender<(u64, WriteJob)>>,
    /// The number the next job is handed over with.
    next: AtomicU64,
    /// Jobs numbered below this are abandoned.
    fence: Arc<AtomicU64>,
    done: Receiver<WriteDone>,
    stats: Arc<WriterStatistics>,
    queued: Arc<Queued>,
    max_samples: usize,
    thread: Option<JoinHandle<()>>,
}

/// Starts a writer storing into `history` (and offsets of `group` into `offsets`), with at most
/// `limit` waiting.
pub fn spawn_writer(
    history: Arc<dyn HistoryStore>,
    offsets: Option<(Arc<dyn OffsetStore>, String)>,
    limit: QueueLimit,
) -> StorageWriter {
    let (jobs, rx) = bounded::<(u64, WriteJob)>(limit.jobs.max(1));
    let (done_tx, done) = unbounded::<WriteDone>();
    let stats = Arc::new(WriterStatistics::default());
    let queued = Arc::new(Queued::default());
    let fence = Arc::new(AtomicU64::new(0));
    let thread = {
        let (stats, queued, fence) = (stats.clone(), queued.clone(), fence.clone());
        std::thread::Builder::new()
            .name("qadf-storage-writer".to_owned())
            .spawn(move || {
                // Set at the first refused job: no offset is stored after it.
                let mut halted = false;
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    let mut samples = group[0].1.samples.len();
                    while samples < GROUP_SAMPLES
                        && let Ok(next) = rx.try_recv()
                    {
                        samples += next.1.samples.len();
                        group.push(next);
                    }
                    let started = std::time::Instant::now();
                    // Numbers rise through the queue: the jobs abandoned are a prefix of the group.
                    let gone = group.partition_point(|(n, _)| *n < fence.load(Ordering::SeqCst));
                    let last = group[group.len() - 1].0;
                    let fenced = || last < fence.load(Ordering::SeqCst);
                    let mut jobs: Vec<WriteJob> = group.into_iter().map(|(_, j)| j).collect();
                    let results = persist_group(
                        history.as_ref(),
                        offsets.as_ref(),
                        &mut jobs[gone..],
                        &stats,
                        &mut halted,
                        &fenced,
                    );
                    let elapsed = started.elapsed();
                    queued.release(samples);
                    let mut results = results.into_iter();
                    for (k, job) in jobs.into_iter().enumerate() {
                        let result =
                            if k < gone { Err(abandoned()) } else { results.next().unwrap_or(Err(abandoned())) };
                        let done = if k < gone || (result.is_err() && fenced()) {
                            stats.abandoned_jobs.fetch_add(1, Ordering::Relaxed);
                            WriteDone {
                                positions: Vec::new(),
                                result: Ok(StoreReport::default()),
                                elapsed,
                                abandoned: true,
                            }
                        } else {
                            WriteDone { positions: job.positions, result, elapsed, abandoned: false }
                        };
                        // Nobody may listen for completions any more; keep storing what was handed over.
                        let _ = done_tx.send(done);
                    }
                }
            })
            .expect("spawning the storage writer")
    };
    StorageWriter {
        jobs: Some(jobs),
        next: AtomicU64::new(0),
        fence,
        done,
        stats,
        queued,
        max_samples: limit.samples,
        thread: Some(thread),
    }
}

/// Retries `op` while it fails transiently (the workspace's one [`Backoff`]) and `give_up` is
/// false; a permanent error, or the last one when given up, comes back.
fn with_retry<T>(
    stats: &WriterStatistics,
    give_up: &dyn Fn() -> bool,
    mut op: impl FnMut() -> Result<T, BackendError>,
) -> Result<T, BackendError> {
    // Given up: no further call (one under way may still land).
    let attempt = || if give_up() { Err(abandoned()) } else { op() };
    let result = Backoff::default().retry(attempt, give_up, |e, wait| {
        *stats.last_error.lock() = Some(e.to_string());
        stats.retries.fetch_add(1, Ordering::Relaxed);
        eprintln!("storage writer: {e}; retrying in {wait:?}");
    });
    if let Err(e) = &result {
        *stats.last_error.lock() = Some(e.to_string());
    }
    result
}

/// The error of a job given up before its store call.
fn abandoned() -> BackendError {
    BackendError::new(qadf_core_types::BackendErrorKind::Closed, "history", "abandoned before it was stored")
}

/// Most samples stored in one group commit.
pub const GROUP_SAMPLES: usize = 50_000;

/// Encodes the jobs' buckets and stores them in one call, or job by job when that call is
/// refused, then the last positions up to the first refused job. One result per job.
fn persist_group(
    history: &dyn HistoryStore,
    offsets: Option<&(Arc<dyn OffsetStore>, String)>,
    group: &mut [WriteJob],
    stats: &WriterStatistics,
    halted: &mut bool,
    give_up: &dyn Fn() -> bool,
) -> Vec<Result<StoreReport, BackendError>> {
    let mut encoded: Vec<Result<Vec<Bucket>, BackendError>> = group.iter_mut().map(WriteJob::take_buckets).collect();
    let mut results: Vec<Option<Result<StoreReport, BackendError>>> =
        encoded.iter().map(|e| e.as_ref().err().map(|e| Err(e.clone()))).collect();
    let good: Vec<usize> = (0..group.len()).filter(|&i| encoded[i].is_ok()).collect();
    if good.len() > 1 {
        // Moved, not copied, into one call; handed back job by job only if that call is refused.
        let sizes: Vec<usize> = good.iter().map(|&i| encoded[i].as_ref().map_or(0, Vec::len)).collect();
        let mut joined: Vec<Bucket> =
            good.iter().flat_map(|&i| std::mem::replace(&mut encoded[i], Ok(Vec::new())).unwrap_or_default()).collect();
        match with_retry(stats, give_up, || history.store_buckets(&joined)) {
            Ok(report) => {
                // The group's report goes to its first job; the others stored nothing of their own.
                for (k, &i) in good.iter().enumerate() {
                    results[i] = Some(Ok(if k == 0 { report } else { StoreReport::default() }));
                }
            }
            Err(_) => {
                for (&i, len) in good.iter().zip(sizes).rev() {
                    encoded[i] = Ok(joined.split_off(joined.len() - len));
                }
            }
        }
    }
    let results: Vec<Result<StoreReport, BackendError>> = results
        .into_iter()
        .zip(encoded)
        .map(|(done, buckets)| match (done, buckets) {
            (Some(r), _) => r,
            (None, Ok(_)) if give_up() => Err(abandoned()),
            (None, Ok(buckets)) => with_retry(stats, give_up, || history.store_buckets(&buckets)),
            (None, Err(e)) => Err(e),
        })
        .collect();
    // Positions up to (not including) the first refused job, and none ever after it (a group
    // given up is no refusal: its positions are just not stored).
    let stored = if *halted { 0 } else { results.iter().take_while(|r| r.is_ok()).count() };
    let given_up = give_up();
    *halted |= stored < group.len() && !given_up;
    let positions: Vec<LogPosition> = group[..stored].iter().flat_map(|j| j.positions.iter().cloned()).collect();
    let mut results = results;
    if let Some((store, consumer_group)) = offsets
        && !positions.is_empty()
        && !given_up
        && let Err(e) = with_retry(stats, &|| false, || store.store_offsets(consumer_group, &positions))
    {
        // The data is stored but its positions are not: report the jobs failed, store no more positions.
        *halted = true;
        for r in results.iter_mut().take(stored) {
            *r = Err(e.clone());
        }
    }
    for r in &results {
        match r {
            Ok(report) => {
                stats.jobs_written.fetch_add(1, Ordering::Relaxed);
                stats.inserted.fetch_add(report.inserted, Ordering::Relaxed);
                stats.already_stored.fetch_add(report.already_stored, Ordering::Relaxed);
            }
            Err(_) if given_up => {} // counted as abandoned by the writer thread
            Err(_) => {
                stats.failed_jobs.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    results
}

impl StorageWriter {
    /// Hands a batch over, waiting while the queue is at its limit.
    pub fn submit(&self, job: WriteJob) -> Result<(), WriteJob> {
        self.submit_unless(job, &|| false).map_err(|(job, _)| job)
    }

    /// Hands a batch over, waiting while the queue is at its limit unless `give_up` turns true
    /// (asked every 100 ms); gives the batch back with whether it gave up (else the writer stopped).
    pub fn submit_unless(&self, job: WriteJob, give_up: &dyn Fn() -> bool) -> Result<(), (WriteJob, bool)> {
        let Some(tx) = &self.jobs else { return Err((job, false)) };
        let n = job.samples.len();
        if !self.reserve(n, Some(give_up)) {
            return Err((job, true));
        }
        let mut item = (self.next.fetch_add(1, Ordering::SeqCst), job);
        loop {
            match tx.send_timeout(item, Duration::from_millis(100)) {
                Ok(()) => return Ok(()),
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) if !give_up() => item = back,
                Err(e) => {
                    self.queued.release(n);
                    let gave_up = matches!(e, crossbeam_channel::SendTimeoutError::Timeout(_));
                    // A job given up was never handed over: its number is simply skipped.
                    return Err((e.into_inner().1, gave_up));
                }
            }
        }
    }

    /// Hands a batch over without waiting; gives it back when the queue is full.
    pub fn try_submit(&self, job: WriteJob) -> Result<(), WriteJob> {
        let Some(tx) = &self.jobs else { return Err(job) };
        let n = job.samples.len();
        if !self.reserve(n, None) {
            return Err(job);
        }
        tx.try_send((self.next.fetch_add(1, Ordering::SeqCst), job)).map_err(|e| {
            self.queued.release(n);
            match e {
                TrySendError::Full((_, j)) | TrySendError::Disconnected((_, j)) => j,
            }
        })
    }

    /// Gives up every job handed over so far that is not being stored yet (see the module's
    /// "Fence"): each comes back as a [`WriteDone`] marked `abandoned`, in order.
    pub fn abandon(&self) {
        self.fence.store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// The next completion, waiting up to `timeout`.
    pub fn recv_done(&self, timeout: Duration) -> Option<WriteDone> {
        self.done.recv_timeout(timeout).ok()
    }

    /// Batches waiting to be stored.
    pub fn queued(&self) -> usize {
        self.jobs.as_ref().map_or(0, Sender::len)
    }

    /// Counts `n` more samples as queued once they fit the limit (an empty queue takes any job),
    /// waiting for room while `wait` gives no sign to give up (`None`: refusing at once); whether
    /// they were counted.
    fn reserve(&self, n: usize, wait: Option<&dyn Fn() -> bool>) -> bool {
        let mut queued = self.queued.samples.lock();
        while *queued > 0 && *queued + n > self.max_samples {
            if wait.is_none_or(|give_up| give_up()) {
                return false;
            }
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                break; // the writer died: let the send fail instead of waiting forever
            }
            self.queued.stored.wait_for(&mut queued, Duration::from_millis(100));
        }
        *queued += n;
        true
    }

    /// Samples handed over and not yet stored (the write in progress included).
    pub fn queued_samples(&self) -> usize {
        *self.queued.samples.lock()
    }

    /// The counters.
    pub fn statistics(&self) -> &WriterStatistics {
        &self.stats
    }

    /// Stops accepting batches, stores everything already handed over, and joins the thread.
    /// Returns the completions not yet received.
    pub fn finish(mut self) -> Vec<WriteDone> {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.done.try_iter().collect()
    }
}

impl Drop for StorageWriter {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests;
