//! `ParallelProcessor`: several independent streams on a fixed pool of worker threads.
//!
//! Every stream is pinned to one worker (by a stable hash of its key), so its batches are processed
//! in submission order. Each worker has a bounded queue: `submit` blocks when the stream's worker is
//! behind (back-pressure; memory stays bounded), `try_submit` hands the batch back instead. A stage
//! panic is caught inside the pipeline; a stream stopped by a checkpoint or stage stays stopped.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use qadf_core_types::{SampleBatch, StreamingResult};

use crate::error::PipelineError;
use crate::pipeline::Pipeline;

struct Job {
    seq: u64,
    stream: String,
    batch: SampleBatch,
}

/// A finished batch.
#[derive(Debug)]
pub struct Completed {
    /// Submission number (increasing in submission order).
    pub seq: u64,
    /// The stream key the batch was submitted under.
    pub stream: String,
    /// What the pipeline returned.
    pub result: Result<StreamingResult, PipelineError>,
}

/// Why `try_submit` did not take a batch; the batch is handed back.
#[derive(Debug, thiserror::Error)]
pub enum TrySubmitError {
    /// The stream's worker queue is full.
    #[error("the worker queue of this stream is full")]
    Full(SampleBatch),
    /// The processor is shut down.
    #[error("the processor is shut down")]
    ShutDown(SampleBatch),
}

/// A fixed pool of workers running one shared pipeline.
pub struct ParallelProcessor {
    senders: Vec<Sender<Job>>,
    results: Receiver<Completed>,
    workers: Vec<JoinHandle<()>>,
    next_seq: AtomicU64,
}

impl ParallelProcessor {
    /// `workers` threads, each with a queue of `queue_capacity` batches (both at least 1).
    pub fn new(pipeline: Arc<Pipeline>, workers: usize, queue_capacity: usize) -> ParallelProcessor {
        let workers_n = workers.max(1);
        let (done_tx, results) = bounded(workers_n * queue_capacity.max(1));
        let mut senders = Vec::with_capacity(workers_n);
        let mut handles = Vec::with_capacity(workers_n);
        for i in 0..workers_n {
            let (tx, rx) = bounded::<Job>(queue_capacity.max(1));
            let (pipeline, done_tx) = (pipeline.clone(), done_tx.clone());
            let handle = std::thread::Builder::new()
                .name(format!("qadf-pipeline-{i}"))
                .spawn(move || worker(&pipeline, &rx, &done_tx))
                .expect("spawning a worker thread");
            senders.push(tx);
            handles.push(handle);
        }
        ParallelProcessor { senders, results, workers: handles, next_seq: AtomicU64::new(0) }
    }

    fn worker_of(&self, stream: &str) -> usize {
        let mut h = DefaultHasher::new();
        stream.hash(&mut h);
        (h.finish() % self.senders.len() as u64) as usize
    }

    /// Queues a batch of `stream`, waiting while its worker's queue is full; returns its sequence number.
    pub fn submit(&self, stream: &str, batch: SampleBatch) -> Result<u64, PipelineError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let job = Job { seq, stream: stream.to_owned(), batch };
        self.senders[self.worker_of(stream)].send(job).map_err(|_| PipelineError::ShutDown)?;
        Ok(seq)
    }

    /// Queues a batch without waiting; hands it back when the queue is full.
    pub fn try_submit(&self, stream: &str, batch: SampleBatch) -> Result<u64, TrySubmitError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let job = Job { seq, stream: stream.to_owned(), batch };
        self.senders[self.worker_of(stream)].try_send(job).map(|()| seq).map_err(|e| match e {
            TrySendError::Full(job) => TrySubmitError::Full(job.batch),
            TrySendError::Disconnected(job) => TrySubmitError::ShutDown(job.batch),
        })
    }

    /// The next finished batch, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Completed> {
        self.results.recv_timeout(timeout).ok()
    }

    /// Processes `items` (stream, batch) and returns their results in input order.
    ///
    /// Submits from a helper thread while this one collects, so bounded queues cannot deadlock.
    /// Meant for exclusive use: a concurrent `recv_timeout` caller could take results.
    pub fn process_all(&self, items: Vec<(String, SampleBatch)>) -> Vec<Result<StreamingResult, PipelineError>> {
        let n = items.len();
        let mut out: Vec<Option<Result<StreamingResult, PipelineError>>> = (0..n).map(|_| None).collect();
        std::thread::scope(|scope| {
            let submitter = scope
                .spawn(|| items.into_iter().map(|(stream, batch)| self.submit(&stream, batch)).collect::<Vec<_>>());
            let mut received = Vec::with_capacity(n);
            while received.len() < n {
                match self.results.recv() {
                    Ok(done) => received.push(done),
                    Err(_) => break,
                }
            }
            let seqs = submitter.join().expect("the submitting thread does not panic");
            for (slot, seq) in seqs.into_iter().enumerate() {
                match seq {
                    Ok(seq) => {
                        if let Some(i) = received.iter().position(|d| d.seq == seq) {
                            out[slot] = Some(received.swap_remove(i).result);
                        }
                    }
                    Err(e) => out[slot] = Some(Err(e)),
                }
            }
        });
        out.into_iter().map(|r| r.unwrap_or(Err(PipelineError::ShutDown))).collect()
    }

    /// Batches waiting in each worker's queue.
    pub fn queue_depths(&self) -> Vec<usize> {
        self.senders.iter().map(Sender::len).collect()
    }

    /// Stops accepting batches, lets the workers finish their queues, and joins them.
    pub fn shutdown(self) -> Vec<Completed> {
        let ParallelProcessor { senders, results, workers, .. } = self;
        drop(senders);
        let mut rest = Vec::new();
        for w in workers {
            while !w.is_finished() {
                rest.extend(results.try_iter());
                std::thread::yield_now();
            }
            let _ = w.join();
        }
        rest.extend(results.try_iter());
        rest
    }
}

fn worker(pipeline: &Pipeline, jobs: &Receiver<Job>, done: &Sender<Completed>) {
    let mut stopped: HashSet<String> = HashSet::new();
    for job in jobs {
        let result = if stopped.contains(&job.stream) {
            Err(PipelineError::StreamStopped {
                by: "an earlier batch of this stream".to_owned(),
                partial: Box::default(),
            })
        } else {
            catch_unwind(AssertUnwindSafe(|| pipeline.process(job.batch))).unwrap_or_else(|_| {
                Err(PipelineError::StageFailed {
                    stage: "pipeline".to_owned(),
                    message: "panicked".to_owned(),
                    partial: Box::default(),
                })
            })
        };
        if matches!(result, Err(PipelineError::StreamStopped { .. })) {
            stopped.insert(job.stream.clone());
        }
        if done.send(Completed { seq: job.seq, stream: job.stream, result }).is_err() {
            return;
        }
    }
}
