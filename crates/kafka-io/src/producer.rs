//! `KafkaProducer`: acknowledged sends with Kafka's key partitioning, as a `MessageSink`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use qadf_core_types::{BackendError, Backoff, Codec, MessageSink, OutgoingMessage, SampleBatch, SendError};
use rskafka::client::partition::{Compression, PartitionClient};
use rskafka::record::Record;

use crate::broker::Broker;
use crate::error::KafkaError;
use crate::security::Security;

/// Kafka's murmur2 (the Java client's default partitioner hash), so keyed messages land where any
/// Kafka client would put them.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    match tail.len() {
        3 => {
            h ^= (tail[2] as u32) << 16;
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= (tail[1] as u32) << 8;
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= tail[0] as u32;
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

/// The partition of a key among `partitions`, as Kafka's default partitioner chooses it.
pub fn partition_for_key(key: &[u8], partitions: usize) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as usize % partitions.max(1)) as i32
}

/// Attempts per partition batch before its messages are handed back.
pub const SEND_ATTEMPTS: u32 = 4;

/// Most payload, key and header bytes in one produce request: under Kafka's default
/// `message.max.bytes` (1 MiB) with room for the record framing, so a poll's many dead letters or
/// alerts never make a request the broker refuses. A larger message goes in a request of its own.
pub const MAX_REQUEST_BYTES: usize = 768 << 10;

/// The bytes `m` adds to a produce request, framing aside.
fn message_bytes(m: &OutgoingMessage) -> usize {
    m.payload.len()
        + m.key.as_ref().map_or(0, Vec::len)
        + m.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
}

/// Splits one partition's messages into requests of at most `max` bytes, in order.
fn split_by_bytes(messages: Vec<OutgoingMessage>, max: usize) -> Vec<Vec<OutgoingMessage>> {
    let mut requests: Vec<Vec<OutgoingMessage>> = Vec::new();
    let mut bytes = 0;
    for m in messages {
        let n = message_bytes(&m);
        match requests.last_mut() {
            Some(last) if bytes + n <= max => last.push(m),
            _ => {
                requests.push(vec![m]);
                bytes = 0;
            }
        }
        bytes += n;
    }
    requests
}

/// Producer statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProducerStatistics {
    /// Messages acknowledged by the broker.
    pub acknowledged: u64,
    /// Messages handed back after a failure.
    pub failed: u64,
    /// Connections rebuilt after a failure.
    pub reconnects: u64,
}

/// Sends messages and returns once the broker acknowledged them (a batch per partition).
pub struct KafkaProducer {
    broker: Broker,
    clients: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
    partition_counts: Mutex<HashMap<String, usize>>,
    round_robin: AtomicU64,
    acknowledged: AtomicU64,
    failed: AtomicU64,
}

impl KafkaProducer {
    /// A producer for the given `host:port` brokers (connects on first send), with a 5 s request timeout.
    pub fn new(bootstrap: &[String]) -> Result<KafkaProducer, KafkaError> {
        KafkaProducer::with_timeout(bootstrap, Duration::from_secs(5))
    }

    /// A producer whose broker calls time out after `timeout` (a send tries [`SEND_ATTEMPTS`] times).
    pub fn with_timeout(bootstrap: &[String], timeout: Duration) -> Result<KafkaProducer, KafkaError> {
        KafkaProducer::secured(bootstrap, timeout, Security::default())
    }

    /// A producer connecting with TLS and SASL as `security` says, broker calls timing out after `timeout`.
    pub fn secured(bootstrap: &[String], timeout: Duration, security: Security) -> Result<KafkaProducer, KafkaError> {
        Ok(KafkaProducer {
            broker: Broker::new(bootstrap.to_vec(), timeout, security)?,
            clients: Mutex::default(),
            partition_counts: Mutex::default(),
            round_robin: AtomicU64::new(0),
            acknowledged: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
    }

    /// Creates `topic` with `partitions` partitions unless it exists.
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        self.broker.create_topic(topic, partitions)
    }

    /// Asks the cluster for its topics (a health probe): `Ok` when a broker answered within the
    /// timeout. A failure drops the connection, so the next probe connects afresh.
    pub fn reachable(&self) -> Result<(), KafkaError> {
        let answered = self.broker.client().and_then(|client| {
            self.broker.run(async move { client.list_topics().await.map(|_| ()).map_err(KafkaError::from) })
        });
        if answered.is_err() {
            self.broker.reset();
        }
        answered
    }

    /// Encodes `batch` with `codec` and sends it as one message.
    pub fn send_batch(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        batch: &SampleBatch,
        codec: &Codec,
    ) -> Result<(), KafkaError> {
        let payload = codec.encode(batch).map_err(|e| KafkaError::Rejected(e.to_string()))?;
        let message = OutgoingMessage {
            topic: topic.to_owned(),
            partition: None,
            key: key.map(<[u8]>::to_vec),
            payload,
            headers: Vec::new(),
        };
        self.send(vec![message]).map_err(|e| KafkaError::Unavailable(e.error.message))
    }

    /// Statistics so far.
    pub fn statistics(&self) -> ProducerStatistics {
        ProducerStatistics {
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            reconnects: self.broker.reconnects(),
        }
    }

    fn partition_count(&self, topic: &str) -> Result<usize, KafkaError> {
        if let Some(&n) = self.partition_counts.lock().get(topic) {
            return Ok(n);
        }
        let n = self.broker.partitions(topic)?.len();
        self.partition_counts.lock().insert(topic.to_owned(), n);
        Ok(n)
    }

    fn choose_partition(&self, m: &OutgoingMessage) -> Result<i32, KafkaError> {
        if let Some(p) = m.partition {
            return Ok(p);
        }
        let n = self.partition_count(&m.topic)?;
        Ok(match &m.key {
            Some(key) => partition_for_key(key, n),
            None => (self.round_robin.fetch_add(1, Ordering::Relaxed) % n.max(1) as u64) as i32,
        })
    }

    fn client(&self, topic: &str, partition: i32) -> Result<Arc<PartitionClient>, KafkaError> {
        if let Some(c) = self.clients.lock().get(&(topic.to_owned(), partition)) {
            return Ok(c.clone());
        }
        let c = self.broker.partition_client(topic, partition)?;
        self.clients.lock().insert((topic.to_owned(), partition), c.clone());
        Ok(c)
    }

    /// Produces, retrying transient failures (reconnecting) up to [`SEND_ATTEMPTS`] times.
    ///
    /// A retry after a timeout may duplicate the batch in the log; delivery is at-least-once and
    /// stored samples are idempotent by origin.
    fn produce_with_retry(&self, topic: &str, partition: i32, messages: &[OutgoingMessage]) -> Result<(), KafkaError> {
        let (mut attempt, mut backoff) = (0, Backoff::default());
        loop {
            match self.produce(topic, partition, messages) {
                Ok(()) => return Ok(()),
                Err(e @ (KafkaError::Unavailable(_) | KafkaError::Timeout(_))) => {
                    self.broker.reset();
                    self.clients.lock().clear();
                    attempt += 1;
                    if attempt >= SEND_ATTEMPTS {
                        return Err(e);
                    }
                    std::thread::sleep(backoff.next_delay());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn produce(&self, topic: &str, partition: i32, messages: &[OutgoingMessage]) -> Result<(), KafkaError> {
        let client = self.client(topic, partition)?;
        let records: Vec<Record> = messages
            .iter()
            .map(|m| Record {
                key: m.key.clone(),
                value: Some(m.payload.clone()),
                headers: m.headers.iter().cloned().collect::<BTreeMap<_, _>>(),
                timestamp: chrono::Utc::now(),
            })
            .collect();
        self.broker
            .run(async move { client.produce(records, Compression::NoCompression).await.map_err(KafkaError::from) })?;
        Ok(())
    }
}

impl MessageSink for KafkaProducer {
    /// Groups by partition and produces each group; on the first failure hands back that group and all later ones.
    fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let mut groups: Vec<((String, i32), Vec<OutgoingMessage>)> = Vec::new();
        let mut pending = messages.into_iter();
        while let Some(m) = pending.next() {
            let partition = match self.choose_partition(&m) {
                Ok(p) => p,
                Err(e) => {
                    let mut rest: Vec<OutgoingMessage> = groups.into_iter().flat_map(|(_, g)| g).collect();
                    rest.push(m);
                    rest.extend(pending);
                    self.failed.fetch_add(rest.len() as u64, Ordering::Relaxed);
                    return Err(SendError { value: rest, error: BackendError::from(e) });
                }
            };
            let key = (m.topic.clone(), partition);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, g)) => g.push(m),
                None => groups.push((key, vec![m])),
            }
        }
        let mut groups = groups
            .into_iter()
            .flat_map(|(key, g)| split_by_bytes(g, MAX_REQUEST_BYTES).into_iter().map(move |r| (key.clone(), r)));
        while let Some(((topic, partition), group)) = groups.next() {
            if let Err(e) = self.produce_with_retry(&topic, partition, &group) {
                let mut rest = group;
                rest.extend(groups.flat_map(|(_, g)| g));
                self.failed.fetch_add(rest.len() as u64, Ordering::Relaxed);
                return Err(SendError { value: rest, error: BackendError::from(e) });
            }
            self.acknowledged.fetch_add(group.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(n: usize) -> OutgoingMessage {
        OutgoingMessage { topic: "t".into(), partition: Some(0), key: None, payload: vec![0; n], headers: Vec::new() }
    }

    #[test]
    fn requests_are_split_by_bytes_in_order_and_an_oversize_message_goes_alone() {
        let sizes = [400, 400, 300, 1500, 100, 900];
        let requests = split_by_bytes(sizes.iter().map(|&n| sized(n)).collect(), 1000);
        let lens: Vec<Vec<usize>> = requests.iter().map(|r| r.iter().map(|m| m.payload.len()).collect()).collect();
        assert_eq!(lens, [vec![400, 400], vec![300], vec![1500], vec![100, 900]]);
        assert!(split_by_bytes(Vec::new(), 1000).is_empty());
    }

    /// Reference values from the Java client's `Utils.murmur2` (positive-masked, as the partitioner uses them).
    #[test]
    fn murmur2_matches_the_java_client() {
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973932308),
            (b"foobar", -790332482),
            (b"a-little-bit-long-string", -985981536),
            (b"abc", 479470107),
        ];
        for (key, java) in cases {
            assert_eq!(murmur2(key) as i32, java, "{:?}", String::from_utf8_lossy(key));
        }
        assert_eq!(partition_for_key(b"21", 4), ((-973932308i32 & 0x7fffffff) % 4));
    }
}
