//! `KafkaConsumer`: a fetcher with positions — static partition assignment, start positions from
//! an `OffsetStore`, pause/resume, seek, lag, and reconnection.
//!
//! It never commits by itself: the one commit path is its caller's ([`MessageSource::commit`],
//! called by the client's delivery loop with positions whose data is stored), so nothing is
//! committed that was not handled and a crash re-delivers it. Without a committed offset a
//! partition starts at `auto_offset_reset` (earliest by default); a position beyond the log (the
//! broker lost its data) is reset the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use qadf_core_types::{
    BackendError, Backoff, LogPosition, MessageSource, OffsetReset, OffsetStore, Origin, RawMessage, StreamingConfig,
    Timestamp,
};
use rskafka::client::partition::PartitionClient;

use crate::broker::Broker;
use crate::error::KafkaError;
use crate::security::Security;

/// Shortest fetch wait: Tansu answers a fetch with `max_wait_ms = 0` with no topic at all.
const MIN_FETCH_WAIT_MS: i32 = 1;
/// Longest wait of one fetch for new records (a poll waits in such slices until its timeout).
const WAIT_SLICE: Duration = Duration::from_millis(5);
/// Bounds of the wait given to a fetch of a partition the broker holds records for but returned
/// none (see [`catch_up_wait`]).
const CATCH_UP_MIN: Duration = Duration::from_millis(10);
const CATCH_UP_MAX: Duration = Duration::from_secs(1);

/// The next catch-up wait of a partition after a fetch: doubled (from [`CATCH_UP_MIN`], up to
/// [`CATCH_UP_MAX`]) when the broker reported records past the position but returned none in the
/// wait it had (Tansu's in-memory log needs longer to assemble a response as it grows, and answers
/// empty when the wait runs out: with 1-5 ms waits a consumer falls behind and then stalls for
/// good); shrunk by a tenth when records came, so it settles just above what the broker needs.
fn catch_up_wait(current: Duration, behind_but_empty: bool, got_records: bool) -> Duration {
    if behind_but_empty {
        (current * 2).clamp(CATCH_UP_MIN, CATCH_UP_MAX)
    } else if got_records {
        let shrunk = current.mul_f64(0.9);
        if shrunk < CATCH_UP_MIN { Duration::ZERO } else { shrunk }
    } else {
        current
    }
}

/// Which partitions this consumer reads (rskafka has no group coordination: assignment is static).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Assignment {
    /// Every partition of every topic.
    All,
    /// These partition numbers of every topic.
    Partitions(Vec<i32>),
    /// Instance `instance` of `instances`: partition `p` when `p % instances == instance`.
    InstanceOf {
        /// This instance, from 0.
        instance: u32,
        /// How many instances share the topics.
        instances: u32,
    },
}

impl Assignment {
    fn takes(&self, partition: i32) -> bool {
        match self {
            Assignment::All => true,
            Assignment::Partitions(list) => list.contains(&partition),
            Assignment::InstanceOf { instance, instances } => {
                partition.rem_euclid(*instances as i32) == *instance as i32
            }
        }
    }
}

/// Consumer settings.
#[derive(Clone, Debug)]
pub struct ConsumerConfig {
    /// `host:port` brokers.
    pub bootstrap: Vec<String>,
    /// Topics to read.
    pub topics: Vec<String>,
    /// Group id: the key of committed offsets.
    pub group: String,
    /// Which partitions to read.
    pub assignment: Assignment,
    /// Start without a committed offset.
    pub auto_offset_reset: OffsetReset,
    /// Largest fetch response per partition in bytes.
    pub fetch_max_bytes: i32,
    /// Longest a single broker call may take.
    pub request_timeout: Duration,
    /// TLS and SASL.
    pub security: Security,
}

impl ConsumerConfig {
    /// Settings from the shared configuration (all partitions of `kafka_topic`).
    pub fn from_streaming(c: &StreamingConfig) -> ConsumerConfig {
        ConsumerConfig {
            bootstrap: c.kafka_bootstrap_servers.clone(),
            topics: vec![c.kafka_topic.clone()],
            group: c.consumer_group_id.clone(),
            assignment: Assignment::All,
            auto_offset_reset: c.auto_offset_reset,
            // Kafka's own default (max.partition.fetch.bytes = 1 MiB), or one largest message: what
            // a partition's answer may bring at once is what a burst costs in memory.
            fetch_max_bytes: i32::try_from(c.max_message_bytes.max(1 << 20)).unwrap_or(i32::MAX),
            request_timeout: Duration::from_millis(c.session_timeout_ms.min(10_000)),
            security: Security::default(),
        }
    }
}

/// Where to move a partition's position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeekTo {
    /// The oldest retained message.
    Beginning,
    /// After the newest message (the high watermark).
    End,
    /// A given offset.
    Offset(i64),
}

/// One partition's position and lag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLag {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset this consumer will deliver.
    pub position: i64,
    /// High watermark from the latest fetch (`None` before the first fetch).
    pub high_watermark: Option<i64>,
    /// `high_watermark - position` (0 before the first fetch).
    pub lag: i64,
    /// Whether the partition is paused.
    pub paused: bool,
}

/// Consumer statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerStatistics {
    /// Messages delivered by `poll`.
    pub messages: u64,
    /// Fetch calls that failed.
    pub fetch_errors: u64,
    /// Connections rebuilt after a failure.
    pub reconnects: u64,
    /// Positions reset because they were outside the log.
    pub offset_resets: u64,
    /// Commits written to the offset store.
    pub commits: u64,
    /// Fetches that asked the broker to wait for data (sent only when a round found nothing).
    pub waiting_fetches: u64,
    /// Fetches sent.
    pub fetches: u64,
    /// Records a fetch returned again from below the position (brokers answer from a batch start).
    pub records_refetched: u64,
    /// Fetches that came back empty although the broker held records past the position (each
    /// one lengthens that partition's wait: see `catch_up_wait`).
    pub empty_fetches_behind: u64,
    /// Messages the broker held past what `poll` delivered, summed over partitions, at the last poll.
    pub lag: u64,
    /// Assignments a consumer-group member received (0 for a static consumer, and while joining).
    pub assignments: u64,
    /// Revocations released before their data was stored and committed (`drain_timeout`
    /// passed): the next owner reads that data again and skips what was stored.
    pub drain_timeouts: u64,
    /// Commits the group coordinator refused (a rebalance under way): the next owner reads those
    /// messages again and skips what was stored.
    pub commits_refused: u64,
}

/// The statistics of a consumer, readable from another thread while the consumer runs (updated after each poll).
#[derive(Clone, Debug, Default)]
pub struct SharedStatistics(pub(crate) Arc<parking_lot::Mutex<ConsumerStatistics>>);

impl SharedStatistics {
    /// The statistics as of the last poll.
    pub fn get(&self) -> ConsumerStatistics {
        *self.0.lock()
    }
}

struct PartitionState {
    topic: String,
    partition: i32,
    client: Option<Arc<PartitionClient>>,
    /// Next offset to fetch (buffered messages come before it).
    position: i64,
    /// Fetched but not yet delivered, in offset order.
    buffered: std::collections::VecDeque<RawMessage>,
    paused: bool,
    high_watermark: Option<i64>,
    /// The least wait a fetch gets while the partition is behind the high watermark.
    catch_up_wait: Duration,
}

/// What one poll collects: at most `max` messages and, once it holds one, about `max_bytes` of payload.
struct PollOut {
    messages: Vec<RawMessage>,
    bytes: usize,
    max: usize,
    max_bytes: usize,
}

impl PollOut {
    fn full(&self) -> bool {
        self.messages.len() >= self.max || self.bytes >= self.max_bytes
    }

    /// Moves messages from the front of `buffered` until full.
    fn take_from(&mut self, buffered: &mut std::collections::VecDeque<RawMessage>) {
        while !self.full()
            && let Some(m) = buffered.pop_front()
        {
            self.bytes += m.payload.len();
            self.messages.push(m);
        }
    }
}

impl PartitionState {
    /// The offset `poll` delivers next.
    fn next_delivered(&self) -> i64 {
        self.buffered.front().map_or(self.position, |m| m.origin.offset)
    }

    /// Messages the broker holds past `next_delivered` (as of the last fetch).
    fn lag(&self) -> i64 {
        self.high_watermark.map_or(0, |hw| (hw - self.next_delivered()).max(0))
    }
}

/// A Kafka consumer that delivers raw messages in offset order per partition.
pub struct KafkaConsumer {
    broker: Broker,
    config: ConsumerConfig,
    offsets: Arc<dyn OffsetStore>,
    partitions: Vec<PartitionState>,
    next: usize,
    stats: ConsumerStatistics,
    shared: SharedStatistics,
    /// The wait before the next reconnect (the workspace's one retry policy).
    reconnect: Backoff,
}

impl KafkaConsumer {
    /// Connects, resolves the assigned partitions and their start positions.
    pub fn new(config: ConsumerConfig, offsets: Arc<dyn OffsetStore>) -> Result<KafkaConsumer, KafkaError> {
        let broker = Broker::new(config.bootstrap.clone(), config.request_timeout, config.security.clone())?;
        let mut partitions = Vec::new();
        for topic in &config.topics {
            let committed: HashMap<i32, i64> = offsets
                .load_offsets(&config.group, topic)
                .map_err(|e| KafkaError::Unavailable(format!("offset store: {e}")))?
                .into_iter()
                .map(|c| (c.partition, c.next_offset))
                .collect();
            // A topic created a moment ago may not be in every broker answer yet (Tansu).
            let deadline = Instant::now() + config.request_timeout;
            let ids = loop {
                match broker.partitions(topic) {
                    Err(KafkaError::UnknownTopic(_)) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    other => break other?,
                }
            };
            for p in ids.into_iter().filter(|&p| config.assignment.takes(p)) {
                partitions.push(PartitionState {
                    topic: topic.clone(),
                    partition: p,
                    client: None,
                    position: committed.get(&p).copied().unwrap_or(-1),
                    buffered: std::collections::VecDeque::new(),
                    paused: false,
                    high_watermark: None,
                    catch_up_wait: Duration::ZERO,
                });
            }
        }
        let mut consumer = KafkaConsumer {
            broker,
            config,
            offsets,
            partitions,
            next: 0,
            stats: ConsumerStatistics::default(),
            shared: SharedStatistics::default(),
            reconnect: Backoff::default(),
        };
        for i in 0..consumer.partitions.len() {
            if consumer.partitions[i].position < 0 {
                let reset = consumer.config.auto_offset_reset;
                consumer.partitions[i].position = consumer.reset_position(i, reset)?;
            }
        }
        Ok(consumer)
    }

    /// Reads exactly `partitions` from now on (a consumer group's assignment): kept ones go on
    /// from their position, dropped ones are forgotten with what was fetched of them and not
    /// delivered, new ones start at the given offset (`None`: `auto_offset_reset`).
    pub fn reassign(&mut self, partitions: &[(String, i32, Option<i64>)]) -> Result<(), KafkaError> {
        self.partitions.retain(|p| partitions.iter().any(|(t, n, _)| *t == p.topic && *n == p.partition));
        for (topic, partition, start) in partitions {
            if self.partitions.iter().any(|p| p.topic == *topic && p.partition == *partition) {
                continue;
            }
            self.partitions.push(PartitionState {
                topic: topic.clone(),
                partition: *partition,
                client: None,
                position: start.unwrap_or(-1),
                buffered: std::collections::VecDeque::new(),
                paused: false,
                high_watermark: None,
                catch_up_wait: Duration::ZERO,
            });
            if start.is_none() {
                let (i, reset) = (self.partitions.len() - 1, self.config.auto_offset_reset);
                self.partitions[i].position = self.reset_position(i, reset)?;
            }
        }
        self.next = 0;
        Ok(())
    }

    /// The assigned (topic, partition) pairs.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect()
    }

    fn client(&mut self, i: usize) -> Result<Arc<PartitionClient>, KafkaError> {
        if let Some(c) = &self.partitions[i].client {
            return Ok(c.clone());
        }
        let c = self.broker.partition_client(&self.partitions[i].topic, self.partitions[i].partition)?;
        self.partitions[i].client = Some(c.clone());
        Ok(c)
    }

    /// The earliest offset, or the high watermark from a fetch (ListOffsets "latest" is unreliable on Tansu).
    fn reset_position(&mut self, i: usize, to: OffsetReset) -> Result<i64, KafkaError> {
        let client = self.client(i)?;
        let earliest =
            self.broker.run({
                let client = client.clone();
                async move {
                    client.get_offset(rskafka::client::partition::OffsetAt::Earliest).await.map_err(KafkaError::from)
                }
            })?;
        if to == OffsetReset::Earliest {
            return Ok(earliest);
        }
        // Only the high watermark of this fetch is used.
        let (_, hw) = self.broker.run(async move {
            client.fetch_records(earliest, 1..65_536, MIN_FETCH_WAIT_MS).await.map_err(KafkaError::from)
        })?;
        self.partitions[i].high_watermark = Some(hw);
        Ok(hw)
    }

    /// Waits up to `timeout` for up to `max` messages across the unpaused partitions.
    ///
    /// Returns as soon as `max` messages or `fetch_max_bytes` of payload are collected (what a
    /// poll holds stays bounded however large the messages), or at the timeout with what arrived
    /// (maybe nothing).
    /// A broker failure is retried (reconnecting with exponential backoff and jitter) until the
    /// timeout; messages are never skipped.
    pub fn poll_messages(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, KafkaError> {
        let deadline = Instant::now() + timeout;
        let max_bytes = usize::try_from(self.config.fetch_max_bytes).unwrap_or(1).max(1);
        let mut out = PollOut { messages: Vec::new(), bytes: 0, max, max_bytes };
        let n = self.partitions.len();
        let mut waiter = self.next;
        loop {
            // Rounds that do not wait: buffered records first, then a fetch of every partition
            // that asks the broker for what it has now, as long as rounds bring something.
            let mut fetched_any = false;
            for step in 0..n {
                let i = (self.next + step) % n;
                if self.partitions[i].paused || out.full() {
                    continue;
                }
                if !self.partitions[i].buffered.is_empty() {
                    out.take_from(&mut self.partitions[i].buffered);
                    fetched_any = true;
                    continue;
                }
                fetched_any |= self.fetch_into(i, Duration::ZERO, &mut out)?;
            }
            self.next = (self.next + 1) % n.max(1);
            if out.full() || (!out.messages.is_empty() && !fetched_any) {
                break;
            }
            if fetched_any {
                continue;
            }
            // Nothing at hand: wait for data on one partition (rotating), in short slices until
            // the deadline. Some brokers (Tansu) hold a fetch for its whole `max_wait` even when
            // records arrive meanwhile, so a long wait on one partition would starve the others.
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let active: Vec<usize> = (0..n).filter(|&i| !self.partitions[i].paused).collect();
            if active.is_empty() {
                std::thread::sleep(left.min(Duration::from_millis(10)));
                continue;
            }
            waiter = active[waiter % active.len()];
            self.stats.waiting_fetches += 1;
            self.fetch_into(waiter, left.min(WAIT_SLICE), &mut out)?;
            waiter += 1;
        }
        self.stats.messages += out.messages.len() as u64;
        *self.shared.0.lock() = self.statistics();
        Ok(out.messages)
    }

    /// Fetches partition `i` into `out` (until it is full, the rest buffered); whether records came.
    fn fetch_into(&mut self, i: usize, wait: Duration, out: &mut PollOut) -> Result<bool, KafkaError> {
        match self.fetch(i, wait) {
            Ok(messages) => {
                self.reconnect.reset();
                let got = !messages.is_empty();
                self.partitions[i].buffered.extend(messages);
                out.take_from(&mut self.partitions[i].buffered);
                Ok(got)
            }
            Err(e) => {
                self.recover(i, e)?;
                Ok(false)
            }
        }
    }

    fn fetch(&mut self, i: usize, wait: Duration) -> Result<Vec<RawMessage>, KafkaError> {
        let client = self.client(i)?;
        let (position, behind) = {
            let p = &self.partitions[i];
            (p.position, p.high_watermark.is_some_and(|hw| hw > p.position))
        };
        let wait = if behind { wait.max(self.partitions[i].catch_up_wait) } else { wait };
        let max_bytes = self.config.fetch_max_bytes;
        let wait_ms = (wait.as_millis().min(i32::MAX as u128) as i32).max(MIN_FETCH_WAIT_MS);
        let (records, hw) = self.broker.run(async move {
            client.fetch_records(position, 1..max_bytes, wait_ms).await.map_err(KafkaError::from)
        })?;
        self.stats.fetches += 1;
        self.stats.records_refetched += records.iter().filter(|r| r.offset < position).count() as u64;
        let p = &mut self.partitions[i];
        p.high_watermark = Some(hw);
        if hw < position {
            // Only a truncated or recreated log puts the end before us (some brokers answer
            // with an empty fetch instead of OffsetOutOfRange).
            return Err(KafkaError::OffsetOutOfRange(format!("position {position} is beyond the log end {hw}")));
        }
        let fresh = records.iter().filter(|r| r.offset >= position).count();
        let behind_but_empty = fresh == 0 && hw > position;
        self.stats.empty_fetches_behind += u64::from(behind_but_empty);
        p.catch_up_wait = catch_up_wait(p.catch_up_wait, behind_but_empty, fresh > 0);
        let mut out = Vec::with_capacity(records.len());
        for r in records.into_iter().filter(|r| r.offset >= position) {
            p.position = r.offset + 1;
            out.push(RawMessage {
                origin: Origin { topic: p.topic.clone(), partition: p.partition, offset: r.offset },
                key: r.record.key,
                payload: r.record.value.unwrap_or_default(),
                headers: r.record.headers.into_iter().collect(),
                timestamp: Timestamp::from_nanos(r.record.timestamp.timestamp_nanos_opt().unwrap_or(0)),
            });
        }
        Ok(out)
    }

    /// Handles a fetch failure: an offset outside the log is reset; a lost broker is reconnected.
    fn recover(&mut self, i: usize, e: KafkaError) -> Result<(), KafkaError> {
        self.stats.fetch_errors += 1;
        if matches!(e, KafkaError::OffsetOutOfRange(_)) {
            self.stats.offset_resets += 1;
            let reset = self.config.auto_offset_reset;
            self.partitions[i].position = self.reset_position(i, reset)?;
            self.partitions[i].buffered.clear();
            return Ok(());
        }
        if !matches!(e, KafkaError::Unavailable(_) | KafkaError::Timeout(_)) {
            return Err(e);
        }
        self.broker.reset();
        self.stats.reconnects = self.broker.reconnects();
        for p in &mut self.partitions {
            p.client = None;
        }
        std::thread::sleep(self.reconnect.next_delay());
        Ok(())
    }

    /// Writes `positions` to the offset store: a restart (of this consumer or another in its
    /// group) starts there. Call it only with positions whose messages are handled.
    pub fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError> {
        if positions.is_empty() {
            return Ok(());
        }
        self.offsets.store_offsets(&self.config.group, positions)?;
        self.stats.commits += 1;
        Ok(())
    }

    /// Stops reading a partition; its position is kept.
    pub fn pause(&mut self, topic: &str, partition: i32) {
        self.set_paused(topic, partition, true);
    }

    /// Resumes a paused partition where it stopped.
    pub fn resume(&mut self, topic: &str, partition: i32) {
        self.set_paused(topic, partition, false);
    }

    fn set_paused(&mut self, topic: &str, partition: i32, paused: bool) {
        for p in self.partitions.iter_mut().filter(|p| p.topic == topic && p.partition == partition) {
            p.paused = paused;
        }
    }

    /// Moves a partition's position; the next poll reads from there.
    pub fn seek(&mut self, topic: &str, partition: i32, to: SeekTo) -> Result<(), KafkaError> {
        let i = self
            .partitions
            .iter()
            .position(|p| p.topic == topic && p.partition == partition)
            .ok_or_else(|| KafkaError::Config(format!("{topic}/{partition} is not assigned to this consumer")))?;
        self.partitions[i].position = match to {
            SeekTo::Beginning => self.reset_position(i, OffsetReset::Earliest)?,
            SeekTo::End => self.reset_position(i, OffsetReset::Latest)?,
            SeekTo::Offset(o) => o,
        };
        self.partitions[i].buffered.clear();
        Ok(())
    }

    /// Position, high watermark and lag of every assigned partition.
    pub fn lag(&self) -> Vec<PartitionLag> {
        self.partitions
            .iter()
            .map(|p| PartitionLag {
                topic: p.topic.clone(),
                partition: p.partition,
                position: p.next_delivered(),
                high_watermark: p.high_watermark,
                lag: p.lag(),
                paused: p.paused,
            })
            .collect()
    }

    /// Statistics so far.
    pub fn statistics(&self) -> ConsumerStatistics {
        let lag = self.partitions.iter().map(|p| p.lag() as u64).sum();
        ConsumerStatistics { reconnects: self.broker.reconnects(), lag, ..self.stats }
    }

    /// A handle on the statistics that stays readable after the consumer moves to another thread.
    pub fn shared_statistics(&self) -> SharedStatistics {
        self.shared.clone()
    }
}

impl MessageSource for KafkaConsumer {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, BackendError> {
        self.poll_messages(max, timeout).map_err(BackendError::from)
    }

    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError> {
        KafkaConsumer::commit(self, positions)
    }

    fn lag(&self) -> Option<Vec<(i32, u64)>> {
        Some(self.partitions.iter().map(|p| (p.partition, p.lag() as u64)).collect())
    }
}

/// The positions that acknowledge `messages`: per partition, one past the highest offset.
pub fn positions_after(messages: &[RawMessage]) -> Vec<LogPosition> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    for m in messages {
        let e = next.entry((&m.origin.topic, m.origin.partition)).or_insert(m.origin.offset + 1);
        *e = (*e).max(m.origin.offset + 1);
    }
    let mut out: Vec<LogPosition> = next
        .into_iter()
        .map(|((topic, partition), next_offset)| LogPosition { topic: topic.to_owned(), partition, next_offset })
        .collect();
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_assignment_splits_partitions_without_overlap() {
        let a = Assignment::InstanceOf { instance: 0, instances: 2 };
        let b = Assignment::InstanceOf { instance: 1, instances: 2 };
        let (pa, pb): (Vec<i32>, Vec<i32>) =
            ((0..4).filter(|&p| a.takes(p)).collect(), (0..4).filter(|&p| b.takes(p)).collect());
        assert_eq!((pa, pb), (vec![0, 2], vec![1, 3]));
        assert!(Assignment::Partitions(vec![3]).takes(3) && !Assignment::Partitions(vec![3]).takes(1));
    }

    #[test]
    fn positions_point_one_past_the_highest_offset_per_partition() {
        let m = |p: i32, o: i64| RawMessage {
            origin: Origin { topic: "t".into(), partition: p, offset: o },
            key: None,
            payload: Vec::new(),
            headers: Vec::new(),
            timestamp: Timestamp::EPOCH,
        };
        let cps = positions_after(&[m(0, 5), m(1, 2), m(0, 6)]);
        let got: Vec<(i32, i64)> = cps.iter().map(|c| (c.partition, c.next_offset)).collect();
        assert_eq!(got, [(0, 7), (1, 3)], "the committed offset is the next one to read");
    }

    /// The soak found a consumer stalled for good behind a broker that answers empty when its wait
    /// runs out: the wait must grow until records come, and settle back when they do.
    #[test]
    fn a_partition_behind_with_empty_answers_gets_longer_waits_then_settles() {
        let mut wait = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..10 {
            wait = catch_up_wait(wait, true, false);
            seen.push(wait.as_millis());
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        assert_eq!(catch_up_wait(wait, false, false), wait, "caught up and idle: unchanged");
        let mut settled = wait;
        for _ in 0..60 {
            settled = catch_up_wait(settled, false, true);
        }
        assert_eq!(settled, Duration::ZERO, "records flow again: back to the short waits");
    }
}
