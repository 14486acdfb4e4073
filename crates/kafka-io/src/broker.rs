//! `Broker`: the private tokio runtime and the rskafka client, behind a blocking API.
//!
//! Nothing async leaves this module: every call blocks the calling thread on the runtime with a
//! timeout. A failed connection is dropped and rebuilt on the next call (counted as a reconnect).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rskafka::BackoffConfig;
use rskafka::client::partition::{PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};

use crate::error::KafkaError;
use crate::security::Security;

/// A private one-worker tokio runtime (every Kafka client of this crate runs on one of its own).
pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime, KafkaError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| KafkaError::Config(format!("cannot start the Kafka runtime: {e}")))
}

/// A connection to a Kafka cluster with its own single-threaded runtime.
pub(crate) struct Broker {
    runtime: tokio::runtime::Runtime,
    bootstrap: Vec<String>,
    client: Mutex<Option<Arc<Client>>>,
    timeout: Duration,
    security: Security,
    reconnects: AtomicU64,
}

impl Broker {
    /// A broker handle with TLS and SASL as `security` says; connects lazily on first use.
    pub(crate) fn new(bootstrap: Vec<String>, timeout: Duration, security: Security) -> Result<Broker, KafkaError> {
        if bootstrap.is_empty() {
            return Err(KafkaError::Config("no bootstrap servers".to_owned()));
        }
        let runtime = runtime("qadf-kafka")?;
        Ok(Broker { runtime, bootstrap, client: Mutex::new(None), timeout, security, reconnects: AtomicU64::new(0) })
    }

    /// Runs `f` on the runtime, failing with `Timeout` after the configured timeout.
    pub(crate) fn run<T>(&self, f: impl Future<Output = Result<T, KafkaError>>) -> Result<T, KafkaError> {
        let timeout = self.timeout;
        self.runtime
            .block_on(async move { tokio::time::timeout(timeout, f).await.map_err(|_| KafkaError::Timeout(timeout))? })
    }

    /// The connected client, connecting first if needed.
    pub(crate) fn client(&self) -> Result<Arc<Client>, KafkaError> {
        let mut slot = self.client.lock();
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // rskafka retries internally; bound it so our own reconnect loop stays in charge.
        let backoff = BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
            base: 2.0,
            // Before the call's own timeout, so the last failure (a refused certificate, a
            // refused login) is what the caller sees, not a bare timeout.
            deadline: Some(self.timeout.mul_f64(0.8)),
        };
        let mut builder = ClientBuilder::new(self.bootstrap.clone()).client_id("qadf-stream").backoff_config(backoff);
        if let Some(tls) = self.security.rustls()? {
            builder = builder.tls_config(tls);
        }
        if let Some(sasl) = self.security.rskafka_sasl() {
            builder = builder.sasl_config(sasl);
        }
        let client = Arc::new(self.run(async { builder.build().await.map_err(KafkaError::from) })?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drops the connection after a failure; the next call reconnects.
    pub(crate) fn reset(&self) {
        if self.client.lock().take().is_some() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Connections rebuilt after a failure.
    pub(crate) fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// A client bound to one partition.
    pub(crate) fn partition_client(&self, topic: &str, partition: i32) -> Result<Arc<PartitionClient>, KafkaError> {
        let client = self.client()?;
        let topic = topic.to_owned();
        self.run(async move {
            client
                .partition_client(topic, partition, UnknownTopicHandling::Error)
                .await
                .map(Arc::new)
                .map_err(KafkaError::from)
        })
    }

    /// The partitions of `topic`, sorted.
    pub(crate) fn partitions(&self, topic: &str) -> Result<Vec<i32>, KafkaError> {
        let client = self.client()?;
        let topics = self.run(async move { client.list_topics().await.map_err(KafkaError::from) })?;
        topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.into_iter().collect())
            .ok_or_else(|| KafkaError::UnknownTopic(topic.to_owned()))
    }

    /// Creates `topic` with `partitions` partitions (replication 1); an existing topic is fine.
    pub(crate) fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), KafkaError> {
        if self.partitions(topic).is_ok() {
            return Ok(());
        }
        let controller = self.client()?.controller_client().map_err(KafkaError::from)?;
        let name = topic.to_owned();
        let created = self.run(async move {
            match controller.create_topic(&name, partitions, 1, 5_000).await {
                // Another client created it between our check and our request: that is success.
                Err(rskafka::client::error::Error::ServerError {
                    protocol_error: rskafka::client::error::ProtocolError::TopicAlreadyExists,
                    ..
                }) => Ok(false),
                other => other.map(|()| true).map_err(KafkaError::from),
            }
        })?;
        // Wait until the metadata shows it, so the first produce or fetch does not race it.
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.partitions(topic) {
                Ok(p) if !created && !p.is_empty() => return Ok(()),
                Ok(p) if p.len() == partitions as usize => return Ok(()),
                _ if std::time::Instant::now() > deadline => return Err(KafkaError::UnknownTopic(topic.to_owned())),
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}
