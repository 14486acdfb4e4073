//! Kafka input and output for qadf-stream on the pure-Rust `rskafka` client, plus an in-process
//! transport with the same traits.
//!
//! - [`KafkaConsumer`] (`consumer.rs`): a fetcher with positions — static assignment (all, a list,
//!   or instance i of n), start positions from an [`OffsetStore`](qadf_core_types::OffsetStore),
//!   `commit` only when its caller says the data is handled, pause/resume, seek, lag from the
//!   fetch high watermark, reconnection with backoff and jitter.
//! - [`GroupConsumer`] (`group.rs`): a member of a Kafka consumer group on `krafka` (classic
//!   protocol, range assignment): partitions rebalanced as members come and go, a revocation
//!   waits until its partitions' data is stored and committed, offsets on the group coordinator.
//! - [`KafkaProducer`] (`producer.rs`): acknowledged sends, Kafka's murmur2 key partitioning.
//! - [`LingeringProducer`] (`linger.rs`): batching by size or linger time, `flush` waits for acks.
//! - [`DeadLetterSink`] (`dead_letter.rs`): undecodable input to a topic, with reason and origin.
//! - [`in_process::channel`] (`in_process.rs`): the same traits over a bounded crossbeam channel.
//! - [`MemoryOffsetStore`] (`offsets.rs`): committed offsets in memory.
//!
//! rskafka is async: its tokio runtime is private to this crate (`broker.rs`); every public call
//! blocks. rskafka is patched to set `TCP_NODELAY` (see `vendor/README.md`).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use qadf_core_types::{MessageSink, MessageSource, OutgoingMessage};
//! use qadf_kafka_io::{MemoryOffsetStore, positions_after, in_process};
//!
//! let (sink, mut source) = in_process::channel(64, "group", Arc::new(MemoryOffsetStore::default()));
//! let m = OutgoingMessage { topic: "t".into(), partition: None, key: None, payload: b"{\"value\":1}".to_vec(), headers: vec![] };
//! sink.send(vec![m]).unwrap();
//! let got = source.poll(10, Duration::from_millis(100)).unwrap();
//! source.commit(&positions_after(&got)).unwrap();
//! ```
#![deny(missing_docs)]

mod alert_sink;
mod broker;
mod consumer;
mod dead_letter;
mod error;
mod group;
pub mod in_process;
mod linger;
mod offsets;
mod producer;
mod security;
mod topic_sink;

pub use alert_sink::{AlertSink, CHECKPOINT_HEADER};
pub use consumer::{
    Assignment, ConsumerConfig, ConsumerStatistics, KafkaConsumer, PartitionLag, SeekTo, SharedStatistics,
    positions_after,
};
pub use dead_letter::{DeadLetterSink, ORIGIN_HEADER, REASON_HEADER, SAMPLE_HEADER, TRUNCATED_HEADER};
pub use error::KafkaError;
pub use group::{GroupConfig, GroupConsumer};
pub use linger::LingeringProducer;
pub use offsets::MemoryOffsetStore;
pub use producer::{KafkaProducer, ProducerStatistics, SEND_ATTEMPTS, murmur2, partition_for_key};
pub use security::Security;
