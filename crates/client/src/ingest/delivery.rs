//! The delivery loop behind [`Ingest`](super::Ingest): poll → decode → skip what is stored →
//! process → side outputs → store → commit (see the module docs of `ingest`).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qadf_core_types::bucket::Bucket;
use qadf_core_types::{
    Alert, Backoff, Codec, DeadLetter, LogPosition, MessageSource, Origin, RawMessage, Rebalance, Sample, SampleBatch,
    StoreFailurePolicy, StreamingResult,
};
use qadf_kafka_io::positions_after;
use qadf_pipeline::decode_messages;
use qadf_storage::{StorageWriter, WriteDone, WriteJob, spawn_writer};

use super::{CHUNK_BYTES, ConsumerError, ConsumerReport, ConsumerSinks, WRITER_QUEUE};
use crate::client::StreamingClient;

/// Why a dead letter was sent: the `reason` label of `qadf_dead_letters_total` (a fixed set, so
/// the metric's cardinality stays small; the full reason travels with the letter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeadLetterReason {
    /// The message could not be decoded or mapped by the schema, or broke an ingest limit.
    Undecodable,
    /// The pipeline refused a sample (validation, grid bounds, signal limits).
    RefusedSample,
    /// A rule or stage refused the whole batch.
    BatchRefused,
    /// The history refused the batch permanently.
    StoreRefused,
}

impl DeadLetterReason {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            DeadLetterReason::Undecodable => "undecodable",
            DeadLetterReason::RefusedSample => "refused_sample",
            DeadLetterReason::BatchRefused => "batch_refused",
            DeadLetterReason::StoreRefused => "store_refused",
        }
    }
}

/// Splits `messages` into runs of at most `max_bytes` of payload, in order (a larger message is a run of its own).
fn chunks_by_bytes(mut messages: Vec<RawMessage>, max_bytes: usize) -> Vec<Vec<RawMessage>> {
    let mut chunks = Vec::new();
    while !messages.is_empty() {
        let mut bytes = 0;
        let n = messages.iter().take_while(|m| {
            bytes += m.payload.len();
            bytes <= max_bytes
        });
        let rest = messages.split_off(n.count().max(1));
        chunks.push(std::mem::replace(&mut messages, rest));
    }
    chunks
}

/// How long a parked job waits for room in the writer's queue.
#[derive(Clone, Copy)]
enum Until {
    /// Until a rebalance waits (or the consumer is stopped).
    Rebalance,
    /// Until this instant.
    Deadline(Instant),
    /// Until it is handed over.
    Stored,
}

pub(super) struct Run {
    client: Arc<StreamingClient>,
    source: Box<dyn MessageSource>,
    sinks: ConsumerSinks,
    writer: Option<StorageWriter>,
    codec: Codec,
    report: ConsumerReport,
    /// Set while a poll's messages are being handled.
    busy: Arc<AtomicBool>,
    /// Partitions whose replay after a restart is over (see `skip_stored`).
    replay_done: HashSet<(String, i32)>,
    /// The messages of each job handed to the writer and not yet reported, oldest first (a
    /// job the store refuses goes to the dead-letter sink whole, with its original bytes).
    in_flight: VecDeque<Vec<RawMessage>>,
    /// Jobs not yet handed to the writer (its queue was full when a rebalance came), oldest first,
    /// with their messages: handed over, in order, before any later job.
    parked: VecDeque<(WriteJob, Vec<RawMessage>)>,
    /// Set when a job could not be stored or dead-lettered: nothing is committed from then on.
    halted: bool,
    /// What to do with a job the store refuses.
    on_store_failure: StoreFailurePolicy,
    /// Set by `Ingest::stop`: retries of transient failures give up.
    stop: Arc<AtomicBool>,
    /// The wait after a transient poll failure.
    poll_backoff: Backoff,
    /// Stored positions not yet committed (the latest per partition).
    pending: Vec<LogPosition>,
    /// When `pending` was last committed.
    last_commit: Instant,
    /// Commit at most this often while messages keep coming (`auto_commit_interval_ms`).
    commit_interval: Duration,
    /// What a consumer-group member holds; empty for other sources.
    group: GroupState,
}

/// A consumer-group member's partitions and the builds seen on them (see [`Run::rebalanced`]).
#[derive(Default)]
struct GroupState {
    /// Partitions of the last assignment.
    held: HashSet<(String, i32)>,
    /// Partitions new to this member at the last assignment: a build first seen on one of them
    /// is rebuilt from the history before its samples are processed.
    gained: HashSet<(String, i32)>,
    /// Builds rebuilt (or found new) since the last assignment.
    restored: HashSet<String>,
    /// The partitions each build's samples came from.
    build_partitions: HashMap<String, HashSet<(String, i32)>>,
    /// Longest a revocation waits for the writer.
    drain_timeout: Duration,
}

impl Run {
    /// A loop over `source` for `client`; `stop` ends it, `busy` is set while a poll is handled.
    pub(super) fn new(
        client: Arc<StreamingClient>,
        source: Box<dyn MessageSource>,
        sinks: ConsumerSinks,
        stop: Arc<AtomicBool>,
        busy: Arc<AtomicBool>,
    ) -> Run {
        let config = client.config();
        let codec = client.codec().clone();
        let writer = sinks.history.clone().map(|h| spawn_writer(h, None, WRITER_QUEUE));
        let on_store_failure = config.on_store_failure;
        let drain_timeout = Duration::from_millis(config.drain_timeout_ms);
        let commit_interval = if config.enable_auto_commit {
            Duration::from_millis(config.auto_commit_interval_ms)
        } else {
            Duration::ZERO
        };
        Run {
            client,
            source,
            sinks,
            writer,
            codec,
            report: ConsumerReport::default(),
            replay_done: HashSet::new(),
            in_flight: VecDeque::new(),
            parked: VecDeque::new(),
            halted: false,
            on_store_failure,
            stop,
            poll_backoff: Backoff::default(),
            busy,
            pending: Vec::new(),
            last_commit: Instant::now(),
            commit_interval,
            group: GroupState { drain_timeout, ..GroupState::default() },
        }
    }

    /// Tells the operator `line` (the configured notices, else standard error).
    fn notice(&self, line: &str) {
        match &self.sinks.notices {
            Some(notices) => notices(line),
            None => eprintln!("{line}"),
        }
    }

    /// Waits (at most `within`) until every job handed to the writer is stored, then queues their positions.
    fn drain(&mut self, within: Duration) -> Result<(), ConsumerError> {
        let deadline = Instant::now() + within;
        self.submit_parked(Until::Deadline(deadline))?;
        while !self.in_flight.is_empty() && !self.halted && Instant::now() < deadline {
            self.submit_parked(Until::Deadline(deadline))?;
            let Some(w) = &self.writer else { break };
            let done: Vec<WriteDone> = w.recv_done(Duration::from_millis(10)).into_iter().collect();
            self.finish_done(done)?;
        }
        Ok(())
    }

    /// Follows a consumer-group rebalance. Revoking: store and commit everything handed over
    /// (within `drain_timeout_ms`), then let the partitions go. Lost: drop their uncommitted
    /// positions and their builds. Assigned: builds seen only on partitions no longer held are
    /// forgotten; those on newly gained partitions are rebuilt from the history when first seen,
    /// and replayed samples of those partitions are looked for again.
    fn rebalanced(&mut self, change: Rebalance) -> Result<(), ConsumerError> {
        self.report.rebalances += 1;
        match change {
            Rebalance::Revoking(parts) => {
                // Four fifths of the bound: the rest covers the time the event took to get here
                // (the membership releases the partitions at the bound, whatever this loop does).
                self.drain(self.group.drain_timeout * 4 / 5)?;
                if !self.in_flight.is_empty() || !self.parked.is_empty() {
                    self.fence(parts);
                }
                self.flush_commits(true)?;
                self.source.release();
            }
            Rebalance::Lost(parts) => {
                let lost: HashSet<(String, i32)> = parts.into_iter().collect();
                self.pending.retain(|c| !lost.contains(&(c.topic.clone(), c.partition)));
                self.forget_builds_only_on(&lost);
                for p in &lost {
                    self.group.held.remove(p);
                    self.replay_done.remove(p);
                }
            }
            Rebalance::Assigned(parts) => {
                let list: Vec<String> = parts.iter().map(|(t, p)| format!("{t}/{p}")).collect();
                self.notice(&format!(
                    "consuming {} partitions (assigned by the group): {}",
                    parts.len(),
                    list.join(", ")
                ));
                let now: HashSet<(String, i32)> = parts.into_iter().collect();
                let gone: HashSet<(String, i32)> = self.group.held.difference(&now).cloned().collect();
                self.forget_builds_only_on(&gone);
                self.group.gained = now.difference(&self.group.held).cloned().collect();
                for p in &self.group.gained {
                    self.replay_done.remove(p);
                }
                self.group.restored.clear();
                self.group.held = now;
            }
        }
        Ok(())
    }

    /// After a drain that did not finish in time: gives up the writes not yet under way, so this
    /// member stores nothing more of partitions another member reads next (a store call already
    /// under way may still land), and forgets the partitions' builds, whose grids held samples
    /// now never stored by this member: held again, they are rebuilt from the history.
    fn fence(&mut self, parts: Vec<(String, i32)>) {
        if let Some(w) = &self.writer {
            w.abandon();
        }
        let parked = self.parked.len();
        self.parked.clear(); // never handed over
        self.report.writes_abandoned += parked as u64;
        let revoked: HashSet<(String, i32)> = parts.into_iter().collect();
        self.notice(&format!(
            "{} write jobs not stored within drain_timeout_ms; given up (the next owner of {} partitions reads them again)",
            self.in_flight.len() + parked,
            revoked.len()
        ));
        self.forget_builds_only_on(&revoked);
        for p in &revoked {
            self.group.held.remove(p);
            self.replay_done.remove(p);
        }
    }

    /// Forgets the builds whose samples all came from `partitions` (another member reads them now).
    fn forget_builds_only_on(&mut self, partitions: &HashSet<(String, i32)>) {
        let client = &self.client;
        self.group.build_partitions.retain(|build, seen| {
            let elsewhere = seen.iter().any(|p| !partitions.contains(p));
            if !elsewhere {
                client.forget_build(build);
            }
            elsewhere
        });
    }

    /// Notes each sample's build and partition; a build met for the first time since the last
    /// assignment on a newly gained partition is rebuilt from the history first (after the
    /// writer has stored what this member holds of it).
    fn follow_builds(&mut self, batch: &SampleBatch, origins: &[(Origin, usize)]) -> Result<(), ConsumerError> {
        let mut last: Option<(&str, &str, i32)> = None;
        let mut to_restore: Vec<String> = Vec::new();
        for (sample, (origin, _)) in batch.samples.iter().zip(origins) {
            let here = (sample.build_id.as_str(), origin.topic.as_str(), origin.partition);
            if last == Some(here) {
                continue;
            }
            last = Some(here);
            let key = (origin.topic.clone(), origin.partition);
            match self.group.build_partitions.get_mut(sample.build_id.as_str()) {
                Some(seen) => {
                    seen.insert(key.clone());
                }
                None => {
                    self.group.build_partitions.insert(sample.build_id.to_string(), HashSet::from([key.clone()]));
                }
            }
            if self.group.gained.contains(&key) && !self.group.restored.contains(sample.build_id.as_str()) {
                self.group.restored.insert(sample.build_id.to_string());
                to_restore.push(sample.build_id.to_string());
            }
        }
        if to_restore.is_empty() {
            return Ok(());
        }
        let Some(history) = self.sinks.history.clone() else { return Ok(()) };
        // Until stored (a store that is down holds the loop here, as it holds the writer).
        self.drain(Duration::from_secs(3600))?;
        for build in to_restore {
            let (client, stop, retries) = (&self.client, &self.stop, &mut self.report.retries);
            // Like the writer: wait for a store that is down (the consumer holds still meanwhile).
            let applied = Backoff::default()
                .retry(
                    || client.rebuild_from_history(&build, &*history).map_err(crate::ClientError::into_backend),
                    || stop.load(Ordering::SeqCst),
                    |e, wait| {
                        *retries += 1;
                        eprintln!("rebuilding build {build} from the history: {e}; retrying in {wait:?}");
                    },
                )
                .map_err(|e| ConsumerError::Restore(e.to_string()))?;
            if applied > 0 {
                self.report.builds_restored += 1;
                self.notice(&format!(
                    "build {build}: voxel grid and rule state rebuilt from {applied} stored samples (its partitions came to this member)"
                ));
            }
        }
        Ok(())
    }

    /// Commits through the source, retrying transient failures (one backoff policy) until stopped.
    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), ConsumerError> {
        let (source, stop, retries) = (&mut self.source, &self.stop, &mut self.report.retries);
        Backoff::default()
            .retry(
                || source.commit(positions),
                || stop.load(Ordering::SeqCst),
                |e, wait| {
                    *retries += 1;
                    eprintln!("commit: {e}; retrying in {wait:?}");
                },
            )
            .map_err(ConsumerError::Commit)?;
        self.report.commits += 1;
        Ok(())
    }

    /// Queues stored positions for the next commit, keeping the latest per partition (none once halted).
    fn stage_commit(&mut self, positions: Vec<LogPosition>) {
        if self.halted {
            return;
        }
        for c in positions {
            match self.pending.iter_mut().find(|l| l.topic == c.topic && l.partition == c.partition) {
                Some(l) => *l = c,
                None => self.pending.push(c),
            }
        }
    }

    /// Commits the queued positions when `force`d or when the interval has passed (one durable
    /// write per interval however many polls were stored).
    fn flush_commits(&mut self, force: bool) -> Result<(), ConsumerError> {
        if self.pending.is_empty() || !(force || self.last_commit.elapsed() >= self.commit_interval) {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        self.commit(&pending)?;
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Queues the positions of finished jobs, in order. A job the store refused goes whole to the
    /// dead-letter sink before its position may be committed; with `on_store_failure = "stop"`,
    /// or when that send fails, the consumer halts with nothing after it committed.
    fn finish_done(&mut self, done: Vec<WriteDone>) -> Result<(), ConsumerError> {
        if self.halted {
            return Ok(()); // already stopped: nothing after the failure is looked at or committed
        }
        for d in done {
            let messages = self.in_flight.pop_front().unwrap_or_default();
            if d.abandoned {
                self.report.writes_abandoned += 1; // no position: the next owner reads it again
                continue;
            }
            if let Ok(report) = &d.result {
                self.client.metrics().record_stored(report.inserted);
            }
            self.client.metrics().record_store(d.elapsed);
            if let Err(e) = d.result {
                self.report.store_failures += 1;
                if self.on_store_failure == StoreFailurePolicy::Stop || self.sinks.dead_letters.is_none() {
                    self.halted = true;
                    return Err(ConsumerError::Store(e));
                }
                let letters: Vec<DeadLetter> = messages
                    .into_iter()
                    .map(|m| DeadLetter {
                        reason: format!("the history refused this batch: {e}"),
                        origin: Some(m.origin),
                        sample_index: None,
                        payload: m.payload,
                    })
                    .collect();
                if let Err(e) = self.dead_letter(&letters, DeadLetterReason::StoreRefused, true) {
                    self.halted = true;
                    return Err(e);
                }
            }
            self.stage_commit(d.positions);
        }
        Ok(())
    }

    /// Stores `samples` as the buckets `runs` cut, then commits `positions` (through the writer
    /// when there is one, in order).
    fn store_then_commit(
        &mut self,
        samples: Vec<Sample>,
        runs: Vec<std::ops::Range<usize>>,
        positions: Vec<LogPosition>,
        messages: Vec<RawMessage>,
    ) -> Result<(), ConsumerError> {
        if self.writer.is_none() {
            self.stage_commit(positions);
            return Ok(());
        }
        self.parked.push_back((WriteJob { samples, runs, positions }, messages));
        self.submit_parked(Until::Rebalance)
    }

    /// Hands the parked jobs to the writer in order, waiting for room in its queue until `until`;
    /// what is left stays parked.
    fn submit_parked(&mut self, until: Until) -> Result<(), ConsumerError> {
        let (Some(w), source, stop) = (&self.writer, &self.source, &self.stop) else { return Ok(()) };
        let give_up = || match until {
            Until::Rebalance => source.rebalance_pending() || stop.load(Ordering::SeqCst),
            Until::Deadline(at) => Instant::now() >= at,
            Until::Stored => false,
        };
        while let Some((job, messages)) = self.parked.pop_front() {
            match w.submit_unless(job, &give_up) {
                Ok(()) => self.in_flight.push_back(messages),
                Err((job, true)) => {
                    self.parked.push_front((job, messages));
                    break;
                }
                Err((_, false)) => return Err(ConsumerError::WriterStopped),
            }
        }
        Ok(())
    }

    /// Sends dead letters, counted under `reason` (a [`DeadLetterReason`]); `unseen` ones (not
    /// produced by the pipeline) also count in the client's dead-letter total.
    fn dead_letter(
        &mut self,
        letters: &[DeadLetter],
        reason: DeadLetterReason,
        unseen: bool,
    ) -> Result<(), ConsumerError> {
        if letters.is_empty() {
            return Ok(());
        }
        let metrics = self.client.metrics();
        if unseen {
            metrics.record_dead_letters(letters.len() as u64);
        }
        metrics.record_dead_letter_reason(reason.label(), letters.len() as u64);
        match &self.sinks.dead_letters {
            Some(dlq) => dlq.send(letters).map_err(|e| ConsumerError::DeadLetters(e.error))?,
            None => {
                for l in letters {
                    eprintln!("dead letter (no dead-letter sink configured): {} at {:?}", l.reason, l.origin);
                }
            }
        }
        self.report.dead_letters += letters.len() as u64;
        Ok(())
    }

    /// Drops samples the history already holds (stored, but not committed, before a restart), so
    /// the voxel grids, positions and statistics see each sample once.
    ///
    /// The writer stores each partition in order, one insert request after the other, so what a
    /// killed run stored is a prefix of each partition's buckets. Only samples the pipeline would
    /// keep ([`StreamingClient::admits`]) are looked at: one that failed validation or fell
    /// outside the grid was never stored. Per partition and poll, those samples are cut into the
    /// buckets they would be stored as (per message, [`Bucket::runs_by`]) and the first and last
    /// bucket ids looked up: both stored, all are; the first not stored, none is (and that
    /// partition's replay is over); otherwise every one is looked up. Assumes registered
    /// processors do not drop or rewrite samples, and a store that applies an insert request whole.
    fn skip_stored(
        &mut self,
        batch: &mut SampleBatch,
        origins: &mut Vec<(Origin, usize)>,
    ) -> Result<(), ConsumerError> {
        let Some(history) = self.sinks.history.clone() else { return Ok(()) };
        let message = message_numbers(origins);
        let mut partitions: Vec<((String, i32), Vec<usize>)> = Vec::new();
        for (i, (origin, _)) in origins.iter().enumerate().take(batch.samples.len()) {
            let key = (origin.topic.clone(), origin.partition);
            if self.replay_done.contains(&key) || !self.client.admits(&batch.samples[i]) {
                continue;
            }
            match partitions.iter_mut().find(|(k, _)| *k == key) {
                Some((_, picked)) => picked.push(i),
                None => partitions.push((key, vec![i])),
            }
        }
        let (stop, retries) = (&self.stop, &mut self.report.retries);
        let mut lookup = |ids: &[String]| -> Result<Vec<bool>, ConsumerError> {
            // Like the writer: wait for a store that is down (the consumer holds still meanwhile).
            Backoff::default()
                .retry(
                    || history.stored_buckets(ids),
                    || stop.load(Ordering::SeqCst),
                    |e, wait| {
                        *retries += 1;
                        eprintln!("checking for replayed samples: {e}; retrying in {wait:?}");
                    },
                )
                .map_err(ConsumerError::ReplayCheck)
        };
        let mut skip = vec![false; batch.samples.len()];
        for (key, picked) in partitions {
            let samples: Vec<Sample> = picked.iter().map(|&i| batch.samples[i].clone()).collect();
            let runs = Bucket::runs_by(&samples, |a, b| message[picked[a]] == message[picked[b]]);
            let ids: Vec<String> = runs.iter().map(|r| Bucket::id_of(&samples[r.clone()])).collect();
            let ends = lookup(&[ids[0].clone(), ids[ids.len() - 1].clone()])?;
            let stored = match (ends[0], ends[1]) {
                (false, _) => {
                    self.replay_done.insert(key);
                    continue;
                }
                (true, true) => vec![true; runs.len()],
                (true, false) => lookup(&ids)?,
            };
            for (run, was_stored) in runs.into_iter().zip(stored) {
                for k in run {
                    skip[picked[k]] = was_stored;
                }
            }
        }
        let replayed = skip.iter().filter(|&&s| s).count();
        let mut flags = skip.iter();
        batch.samples.retain(|_| !flags.next().copied().unwrap_or(false));
        let mut flags = skip.iter();
        origins.retain(|_| !flags.next().copied().unwrap_or(false));
        self.report.replayed += replayed as u64;
        Ok(())
    }

    /// Publishes the batch's alerts, if there is an alerts sink.
    fn publish_alerts(&mut self, alerts: &[Alert]) -> Result<(), ConsumerError> {
        if let Some(sink) = &self.sinks.alerts
            && !alerts.is_empty()
        {
            sink.send(alerts).map_err(|e| ConsumerError::Alerts(e.error))?;
            self.report.alerts_published += alerts.len() as u64;
        }
        Ok(())
    }

    fn handle(&mut self, messages: Vec<RawMessage>, callback: &dyn Fn(&StreamingResult)) -> Result<(), ConsumerError> {
        self.report.messages += messages.len() as u64;
        let positions = positions_after(&messages);
        let decoded = decode_messages(&self.codec, &messages);
        self.dead_letter(&decoded.dead_letters, DeadLetterReason::Undecodable, true)?;
        let (mut batch, mut origins) = (decoded.batch, decoded.origins);
        self.client.metrics().record_consumed(messages.len() as u64, batch.len() as u64);
        // Only a consumer-group member holds partitions (what it gained is among them).
        if !self.group.held.is_empty() {
            self.follow_builds(&batch, &origins)?;
        }
        self.skip_stored(&mut batch, &mut origins)?;
        // Digests of the samples as decoded: a refused one is traced back to its message, and the
        // kept ones to theirs, where their buckets are cut (only when there is a history or a
        // dead-letter sink to use them).
        let ids: Option<Vec<u64>> = (self.writer.is_some() || self.sinks.dead_letters.is_some())
            .then(|| batch.samples.iter().map(Sample::digest).collect());
        match self.client.process_in_place(&mut batch) {
            Ok(mut result) => {
                callback(&result);
                let kept = ids.and_then(|ids| attribute(ids, &origins, batch.len(), &mut result.dead_letters));
                self.dead_letter(&result.dead_letters, DeadLetterReason::RefusedSample, false)?;
                self.publish_alerts(&result.alerts)?;
                let runs = match (&self.writer, kept) {
                    (None, _) => Vec::new(),
                    (Some(_), Some(kept)) => {
                        let message = message_numbers(&origins);
                        Bucket::runs_by(&batch.samples, |a, b| message[kept[a]] == message[kept[b]])
                    }
                    // A registered processor changed or dropped samples: cut by key alone.
                    (Some(_), None) => Bucket::runs(&batch.samples),
                };
                let samples = if self.writer.is_some() { batch.samples } else { Vec::new() };
                self.store_then_commit(samples, runs, positions, messages)
            }
            Err(e) => {
                self.report.failed_batches += 1;
                // A rule that drops its batch still raised its alerts.
                if let crate::ClientError::Pipeline(failed) = &e
                    && let Some(partial) = failed.partial()
                {
                    self.publish_alerts(&partial.alerts)?;
                }
                if self.sinks.dead_letters.is_none() {
                    return Err(ConsumerError::Refused(e.to_string()));
                }
                let letters: Vec<DeadLetter> = messages
                    .iter()
                    .map(|m| DeadLetter {
                        reason: format!("batch refused: {e}"),
                        origin: Some(m.origin.clone()),
                        sample_index: None,
                        payload: m.payload.clone(),
                    })
                    .collect();
                self.dead_letter(&letters, DeadLetterReason::BatchRefused, true)?;
                self.store_then_commit(Vec::new(), Vec::new(), positions, Vec::new())
            }
        }
    }

    /// Runs until stopped or a failure stops it; then stores what was handed over and commits what was stored.
    pub(super) fn run(mut self, callback: &dyn Fn(&StreamingResult)) -> ConsumerReport {
        let stop = self.stop.clone();
        let (max, wait) = {
            let c = self.client.config();
            (c.max_poll_records, Duration::from_millis(c.max_batch_wait_ms))
        };
        let outcome: Result<(), ConsumerError> = (|| {
            while !stop.load(Ordering::SeqCst) {
                self.submit_parked(Until::Rebalance)?;
                let finished: Vec<WriteDone> = self
                    .writer
                    .as_ref()
                    .map_or_else(Vec::new, |w| std::iter::from_fn(|| w.recv_done(Duration::ZERO)).collect());
                self.finish_done(finished)?;
                if let Some(w) = &self.writer {
                    self.client.metrics().record_store_queue(w.queued_samples() as u64);
                }
                self.flush_commits(false)?;
                let polled = self.source.poll(max, wait);
                if let Some(lag) = self.source.lag() {
                    self.client.metrics().record_consumer_lag(lag);
                }
                if polled.is_ok() {
                    self.poll_backoff.reset();
                }
                match polled {
                    Ok(messages) if messages.is_empty() => self.flush_commits(true)?,
                    Ok(messages) => {
                        self.report.polls += 1;
                        self.busy.store(true, Ordering::SeqCst);
                        let handled = chunks_by_bytes(messages, CHUNK_BYTES)
                            .into_iter()
                            .try_for_each(|m| self.handle(m, callback));
                        self.busy.store(false, Ordering::SeqCst);
                        handled?
                    }
                    Err(e) if e.is_transient() => {
                        self.report.retries += 1;
                        std::thread::sleep(self.poll_backoff.next_delay());
                    }
                    Err(e) => return Err(ConsumerError::Source(e)),
                }
                while let Some(change) = self.source.rebalance() {
                    self.rebalanced(change)?;
                }
            }
            Ok(())
        })();
        // Whatever happened: store what was handed over and commit what was stored.
        // The loop's error, if any, came first: it is the one reported.
        let mut first_error = outcome.err();
        if first_error.is_none()
            && let Err(e) = self.submit_parked(Until::Stored)
        {
            first_error = Some(e);
        }
        if let Some(w) = self.writer.take()
            && let Err(e) = self.finish_done(w.finish())
        {
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.flush_commits(true) {
            first_error.get_or_insert(e);
        }
        self.report.error = first_error.map(|e| e.to_string());
        self.report
    }
}

/// For each decoded sample, the number of its message within the poll (consecutive samples of
/// one message share it), so cutting buckets per message compares integers, not origins.
fn message_numbers(origins: &[(Origin, usize)]) -> Vec<u32> {
    let mut n = 0u32;
    origins
        .iter()
        .enumerate()
        .map(|(i, (o, _))| {
            if i > 0 && origins[i - 1].0 != *o {
                n += 1;
            }
            n
        })
        .collect()
}

/// Traces each sample the pipeline refused (a dead letter holding it in bincode) to its message
/// and index, walking the samples as decoded (`ids`, aligned with `origins`); returns where the
/// `kept` samples were as decoded (indices into `origins`), in order, or `None` when the walk
/// does not account for them (a registered processor changed or dropped samples), leaving those
/// dead letters without an origin.
fn attribute(
    ids: Vec<u64>,
    origins: &[(Origin, usize)],
    kept: usize,
    letters: &mut [DeadLetter],
) -> Option<Vec<usize>> {
    if letters.is_empty() {
        return (ids.len() == kept).then(|| (0..kept).collect());
    }
    let mut refused: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
    for (i, letter) in letters.iter().enumerate().rev() {
        if letter.origin.is_none()
            && let Some(sample) = letter.sample()
        {
            refused.entry(sample.digest()).or_default().push(i);
        }
    }
    let mut kept_at = Vec::with_capacity(kept);
    for (at, (id, (origin, index))) in ids.into_iter().zip(origins).enumerate() {
        match refused.get_mut(&id).and_then(Vec::pop) {
            Some(i) => {
                letters[i].origin = Some(origin.clone());
                letters[i].sample_index = Some(*index);
            }
            None => kept_at.push(at),
        }
    }
    (kept_at.len() == kept).then_some(kept_at)
}

#[cfg(test)]
mod tests {
    use qadf_core_types::Timestamp;

    use super::*;

    fn message(offset: i64, bytes: usize) -> RawMessage {
        RawMessage {
            origin: Origin { topic: "t".into(), partition: 0, offset },
            key: None,
            payload: vec![0; bytes],
            headers: Vec::new(),
            timestamp: Timestamp::from_nanos(0),
        }
    }

    #[test]
    fn a_poll_is_split_by_payload_bytes_in_order_and_an_oversize_message_stands_alone() {
        let sizes = [400, 400, 300, 1500, 100, 900, 50];
        let messages: Vec<RawMessage> = sizes.iter().enumerate().map(|(i, &b)| message(i as i64, b)).collect();
        let chunks = chunks_by_bytes(messages, 1000);
        let offsets: Vec<Vec<i64>> = chunks.iter().map(|c| c.iter().map(|m| m.origin.offset).collect()).collect();
        assert_eq!(offsets, [vec![0, 1], vec![2], vec![3], vec![4, 5], vec![6]]);
        assert!(chunks_by_bytes(Vec::new(), 1000).is_empty());
    }
}
