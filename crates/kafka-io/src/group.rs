//! `GroupConsumer`: a member of a Kafka consumer group behind the blocking [`MessageSource`] API.
//!
//! Two clients, each doing what it measured best at (docs/ARCHITECTURE.md): `krafka` keeps the
//! membership — the classic protocol's FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, OffsetCommit and OffsetFetch — with every partition it is given paused, so it never
//! fetches; the rskafka [`KafkaConsumer`] fetches exactly the partitions of the current
//! assignment, from the group's committed offsets.
//!
//! A task on the private runtime drives the membership (`poll`); its rebalance callbacks become
//! events, in order, on a channel that [`MessageSource::poll`] reads first. A revocation waits (at
//! most `drain_timeout`) until the caller has stored and committed what it was given of those
//! partitions and called [`MessageSource::release`]: only then does the partition move, so the
//! next owner starts where this one stopped. Offsets go to the group coordinator (standard tools
//! show the group's lag), only for partitions this member still owns, and only when the caller
//! says the data is stored.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use krafka::consumer::{
    AutoOffsetReset, Consumer, ConsumerRebalanceListener, OffsetAndMetadata, PartitionAssignmentStrategy,
    TopicPartition,
};
use qadf_core_types::{
    BackendError, BackendErrorKind, LogPosition, MessageSource, OffsetReset, RawMessage, Rebalance, StreamingConfig,
};

use crate::consumer::{Assignment, ConsumerConfig, ConsumerStatistics, KafkaConsumer, SharedStatistics};
use crate::error::KafkaError;
use crate::offsets::MemoryOffsetStore;

/// Rebalance events the channel holds before the membership task waits for the reader.
const EVENT_QUEUE: usize = 16;
/// One turn of the membership task (krafka's `poll` runs the rebalances; nothing is fetched).
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Longest a poll fetches before it looks for rebalance events again.
const FETCH_SLICE: Duration = Duration::from_millis(100);

/// Settings of a group member.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// The fetcher's settings (brokers, topics, the group id as the key of committed offsets,
    /// reset, fetch size, call timeout, TLS and SASL); its assignment is the group's to set.
    pub consumer: ConsumerConfig,
    /// The member's session timeout: silent this long, it is removed and its partitions move.
    pub session_timeout: Duration,
    /// Longest a revocation waits for the caller to store and commit.
    pub drain_timeout: Duration,
}

impl GroupConfig {
    /// Settings from the shared configuration (group `consumer_group_id` on `kafka_topic`).
    pub fn from_streaming(c: &StreamingConfig) -> GroupConfig {
        GroupConfig {
            consumer: ConsumerConfig::from_streaming(c),
            session_timeout: Duration::from_millis(c.session_timeout_ms),
            drain_timeout: Duration::from_millis(c.drain_timeout_ms),
        }
    }
}

/// (topic, partition) pairs, sorted.
type Partitions = Vec<(String, i32)>;

/// The membership consumer, shared with its own listener once built.
type MembershipSlot = Arc<parking_lot::Mutex<Option<Arc<Consumer>>>>;

/// What the membership task hands over, in the order it happened.
enum Event {
    /// Partitions being revoked; the sender is answered on `release`.
    Revoking(Vec<(String, i32)>, Sender<()>),
    Lost(Vec<(String, i32)>),
    Assigned(Vec<(String, i32)>),
}

fn pairs(partitions: &[TopicPartition]) -> Vec<(String, i32)> {
    let mut out: Vec<(String, i32)> = partitions.iter().map(|tp| (tp.topic.clone(), tp.partition)).collect();
    out.sort();
    out
}

/// Sends `event`, waiting while the reader is behind; gives up once the member is closing.
async fn hand_over(events: &Sender<Event>, mut event: Event, closing: &AtomicBool) -> bool {
    loop {
        match events.try_send(event) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) if !closing.load(Ordering::SeqCst) => {
                event = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => return false,
        }
    }
}

/// The rebalance callbacks: each one becomes an event; a revocation waits for its release.
struct Listener {
    events: Sender<Event>,
    closing: Arc<AtomicBool>,
    drain_timeout: Duration,
    rebalances: Arc<AtomicU64>,
    drain_timeouts: Arc<AtomicU64>,
    /// The membership consumer, set once built (and cleared on drop): assigned partitions are
    /// paused in it at once, since the rskafka fetcher reads them.
    membership: MembershipSlot,
}

impl ConsumerRebalanceListener for Listener {
    async fn on_partitions_assigned(&self, partitions: &[TopicPartition]) {
        self.rebalances.fetch_add(1, Ordering::Relaxed);
        let membership = self.membership.lock().clone();
        if let Some(consumer) = membership {
            for (topic, partition) in pairs(partitions) {
                consumer.pause(&topic, &[partition]).await;
            }
        }
        hand_over(&self.events, Event::Assigned(pairs(partitions)), &self.closing).await;
    }

    async fn on_partitions_revoked(&self, partitions: &[TopicPartition]) {
        // On close the owner has stored and committed everything already.
        if partitions.is_empty() || self.closing.load(Ordering::SeqCst) {
            return;
        }
        let (done, released) = crossbeam_channel::bounded(1);
        if !hand_over(&self.events, Event::Revoking(pairs(partitions), done), &self.closing).await {
            return;
        }
        let deadline = Instant::now() + self.drain_timeout;
        loop {
            match released.try_recv() {
                Ok(()) | Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) if self.closing.load(Ordering::SeqCst) => return,
                Err(TryRecvError::Empty) if Instant::now() >= deadline => {
                    // The next owner reads again from the last commit (stored samples are skipped).
                    self.drain_timeouts.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(2)).await,
            }
        }
    }

    async fn on_partitions_lost(&self, partitions: &[TopicPartition]) {
        hand_over(&self.events, Event::Lost(pairs(partitions)), &self.closing).await;
    }
}

/// A Kafka consumer-group member delivering raw messages in offset order per partition.
pub struct GroupConsumer {
    runtime: tokio::runtime::Runtime,
    membership: Arc<Consumer>,
    membership_slot: MembershipSlot,
    fetcher: KafkaConsumer,
    config: GroupConfig,
    events: Receiver<Event>,
    closing: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// A rebalance event whose taking failed, taken again at the next poll.
    retry: Option<Event>,
    /// Rebalances received and not yet asked for by `rebalance`.
    changes: VecDeque<Rebalance>,
    /// The answer of the revocation in progress.
    releasing: Option<(Partitions, Sender<()>)>,
    /// The partitions this member owns now.
    owned: HashSet<(String, i32)>,
    shared: SharedStatistics,
    membership_errors: Arc<AtomicU64>,
    rebalances: Arc<AtomicU64>,
    drain_timeouts: Arc<AtomicU64>,
    commits: u64,
    commit_failures: u64,
}

fn krafka_error(e: krafka::KrafkaError) -> KafkaError {
    KafkaError::Unavailable(e.to_string())
}

impl GroupConsumer {
    /// Connects and joins the group (the first assignment arrives with the first polls).
    pub fn new(config: GroupConfig) -> Result<GroupConsumer, KafkaError> {
        let c = &config.consumer;
        if c.bootstrap.is_empty() {
            return Err(KafkaError::Config("no bootstrap servers".to_owned()));
        }
        let fetcher = KafkaConsumer::new(
            ConsumerConfig { assignment: Assignment::Partitions(Vec::new()), ..c.clone() },
            Arc::new(MemoryOffsetStore::default()),
        )?;
        let runtime = crate::broker::runtime("qadf-kafka-group")?;
        let (sender, events) = crossbeam_channel::bounded(EVENT_QUEUE);
        let closing = Arc::new(AtomicBool::new(false));
        let (rebalances, drain_timeouts, membership_errors) = (Arc::default(), Arc::default(), Arc::default());
        let membership_slot: MembershipSlot = Arc::default();
        let listener = Listener {
            events: sender.clone(),
            closing: closing.clone(),
            drain_timeout: config.drain_timeout,
            rebalances: Arc::clone(&rebalances),
            drain_timeouts: Arc::clone(&drain_timeouts),
            membership: membership_slot.clone(),
        };
        let consumer = runtime.block_on(async {
            let connect = async {
                let kafka = krafka::Kafka::builder(c.bootstrap.join(","))
                    .client_id("qadf-stream")
                    .request_timeout(c.request_timeout)
                    .connect_timeout(c.request_timeout)
                    .tcp_nodelay(true)
                    .security(c.security.krafka())
                    .connect()
                    .await?;
                kafka
                    .consumer(c.group.clone())
                    .auto_offset_reset(match c.auto_offset_reset {
                        OffsetReset::Earliest => AutoOffsetReset::Earliest,
                        OffsetReset::Latest => AutoOffsetReset::Latest,
                    })
                    .enable_auto_commit(false)
                    .session_timeout(config.session_timeout)
                    // A sixth of the session: members hear of a rebalance soon after it starts.
                    .heartbeat_interval(config.session_timeout / 6)
                    // Eager range assignment: what librdkafka and the Java client pick by default,
                    // so members of other clients can share the group.
                    .partition_assignment_strategy(PartitionAssignmentStrategy::Range)
                    .rebalance_listener(listener)
                    .build()
                    .await
            };
            tokio::time::timeout(c.request_timeout, connect)
                .await
                .map_err(|_| KafkaError::Timeout(c.request_timeout))?
                .map_err(krafka_error)
        })?;
        let membership = Arc::new(consumer);
        *membership_slot.lock() = Some(membership.clone());
        let subscribe = membership.clone();
        let topics = c.topics.clone();
        runtime.block_on(async move { subscribe.subscribe(topics.iter()).await }).map_err(krafka_error)?;
        let task = runtime.spawn(membership_task(membership.clone(), closing.clone(), Arc::clone(&membership_errors)));
        Ok(GroupConsumer {
            runtime,
            membership,
            membership_slot,
            fetcher,
            config,
            events,
            closing,
            task: Some(task),
            retry: None,
            changes: VecDeque::new(),
            releasing: None,
            owned: HashSet::new(),
            shared: SharedStatistics::default(),
            membership_errors,
            rebalances,
            drain_timeouts,
            commits: 0,
            commit_failures: 0,
        })
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        let mut out: Vec<(String, i32)> = self.owned.iter().cloned().collect();
        out.sort();
        out
    }

    /// The statistics, readable from another thread (updated after each poll).
    pub fn shared_statistics(&self) -> SharedStatistics {
        self.shared.clone()
    }

    fn publish(&mut self) {
        let mut stats: ConsumerStatistics = self.fetcher.statistics();
        stats.commits = self.commits;
        stats.assignments = self.rebalances.load(Ordering::Relaxed);
        stats.drain_timeouts = self.drain_timeouts.load(Ordering::Relaxed);
        stats.commits_refused = self.commit_failures;
        stats.fetch_errors += self.membership_errors.load(Ordering::Relaxed);
        *self.shared.0.lock() = stats;
    }

    /// The fetcher reads the owned partitions, minus `except`; `starts` are the committed
    /// offsets of partitions new to it.
    fn refetch(&mut self, except: &[(String, i32)], starts: &HashMap<(String, i32), i64>) -> Result<(), KafkaError> {
        let mut wanted: Vec<(String, i32, Option<i64>)> = self
            .owned
            .iter()
            .filter(|p| !except.contains(p))
            .map(|p| (p.0.clone(), p.1, starts.get(p).copied()))
            .collect();
        wanted.sort();
        self.fetcher.reassign(&wanted)
    }

    /// The group's committed offsets of `parts` (absent: never committed).
    fn committed(&self, parts: &[(String, i32)]) -> Result<HashMap<(String, i32), i64>, KafkaError> {
        let (consumer, timeout) = (self.membership.clone(), self.config.consumer.request_timeout);
        let request: Vec<(String, i32)> = parts.to_vec();
        let answer = self.runtime.block_on(async move {
            let refs: Vec<(&str, i32)> = request.iter().map(|(t, p)| (t.as_str(), *p)).collect();
            tokio::time::timeout(timeout, consumer.committed(&refs)).await
        });
        let found = answer.map_err(|_| KafkaError::Timeout(timeout))?.map_err(krafka_error)?;
        Ok(found.into_iter().filter(|(_, c)| c.offset >= 0).map(|(k, c)| (k, c.offset)).collect())
    }

    /// Takes one rebalance into the member's state (the fetcher follows at once). On a broker
    /// failure (reading the committed offsets, resolving a start) the event comes back to be
    /// taken again at the next poll: taking it twice is harmless, losing it would leave
    /// partitions owned and never read.
    fn take(&mut self, event: Event) -> Result<(), (KafkaError, Event)> {
        match event {
            Event::Assigned(parts) => {
                let starts = match self.committed(&parts) {
                    Ok(starts) => starts,
                    Err(e) => return Err((e, Event::Assigned(parts))),
                };
                self.owned.extend(parts.iter().cloned());
                if let Err(e) = self.refetch(&[], &starts) {
                    return Err((e, Event::Assigned(parts)));
                }
                self.changes.push_back(Rebalance::Assigned(parts));
            }
            Event::Lost(parts) => {
                for p in &parts {
                    self.owned.remove(p);
                }
                if let Err(e) = self.refetch(&[], &HashMap::new()) {
                    return Err((e, Event::Lost(parts)));
                }
                self.changes.push_back(Rebalance::Lost(parts));
            }
            Event::Revoking(parts, done) => {
                // Nothing more of these partitions is delivered: what was fetched of them and
                // not delivered is the next owner's to read.
                if let Err(e) = self.refetch(&parts, &HashMap::new()) {
                    return Err((e, Event::Revoking(parts, done)));
                }
                self.changes.push_back(Rebalance::Revoking(parts.clone()));
                self.releasing = Some((parts, done));
            }
        }
        Ok(())
    }
}

impl MessageSource for GroupConsumer {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, BackendError> {
        loop {
            let event = match self.retry.take().map_or_else(|| self.events.try_recv(), Ok) {
                Ok(event) => event,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    return Err(BackendError::new(
                        BackendErrorKind::Unavailable,
                        "kafka",
                        "the group membership stopped",
                    ));
                }
            };
            if let Err((e, event)) = self.take(event) {
                self.retry = Some(event);
                return Err(BackendError::from(e));
            }
        }
        if !self.changes.is_empty() || self.releasing.is_some() {
            return Ok(Vec::new());
        }
        let out = self.fetcher.poll_messages(max, timeout.min(FETCH_SLICE));
        self.publish();
        out.map_err(BackendError::from)
    }

    /// Commits to the group coordinator the positions of partitions this member owns. A commit
    /// the coordinator refuses (a rebalance under way) is counted, not retried: the next commit
    /// carries later positions, and the next owner reads the rest again (stored samples skipped).
    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError> {
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = positions
            .iter()
            .filter(|c| self.owned.contains(&(c.topic.clone(), c.partition)))
            .map(|c| (TopicPartition::new(c.topic.clone(), c.partition), OffsetAndMetadata::new(c.next_offset)))
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let (consumer, timeout) = (self.membership.clone(), self.config.consumer.request_timeout);
        let outcome = self.runtime.block_on(async move {
            tokio::time::timeout(timeout, consumer.commit_offsets(offsets.iter().map(|(tp, o)| (tp, o)))).await
        });
        match outcome {
            Ok(Ok(())) => self.commits += 1,
            Ok(Err(e @ (krafka::KrafkaError::Config { .. } | krafka::KrafkaError::Auth { .. }))) => {
                return Err(BackendError::from(KafkaError::Rejected(e.to_string())));
            }
            Ok(Err(_)) | Err(_) => self.commit_failures += 1,
        }
        Ok(())
    }

    fn lag(&self) -> Option<Vec<(i32, u64)>> {
        MessageSource::lag(&self.fetcher)
    }

    fn rebalance(&mut self) -> Option<Rebalance> {
        self.changes.pop_front()
    }

    fn rebalance_pending(&self) -> bool {
        !self.changes.is_empty() || self.retry.is_some() || !self.events.is_empty()
    }

    fn release(&mut self) {
        if let Some((parts, done)) = self.releasing.take() {
            for p in &parts {
                self.owned.remove(p);
            }
            let _ = done.send(());
        }
    }
}

impl Drop for GroupConsumer {
    /// Leaves the group (its partitions move at once, not after the session timeout).
    fn drop(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.release();
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
        let (consumer, timeout) = (self.membership.clone(), self.config.drain_timeout);
        let _ = self.runtime.block_on(async move { tokio::time::timeout(timeout, consumer.close()).await });
        self.membership_slot.lock().take();
    }
}

/// Runs the membership until closing: krafka's `poll` joins, heartbeats and calls the listener;
/// every partition is paused in it, so it returns no records.
async fn membership_task(consumer: Arc<Consumer>, closing: Arc<AtomicBool>, errors: Arc<AtomicU64>) {
    let mut backoff = qadf_core_types::Backoff::default();
    while !closing.load(Ordering::SeqCst) {
        match consumer.poll(POLL_WAIT).await {
            Ok(_) => backoff.reset(),
            Err(_) => {
                errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
