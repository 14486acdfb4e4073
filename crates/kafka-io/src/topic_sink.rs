//! `TopicSink`: one topic of any `MessageSink`, counting what was acknowledged (the dead-letter and
//! alert sinks are built on it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use qadf_core_types::{MessageSink, OutgoingMessage, SendError};

/// Sends to one topic through a `MessageSink` and counts acknowledged messages.
pub(crate) struct TopicSink {
    sink: Arc<dyn MessageSink>,
    topic: String,
    sent: AtomicU64,
}

impl TopicSink {
    pub(crate) fn new(sink: Arc<dyn MessageSink>, topic: String) -> TopicSink {
        TopicSink { sink, topic, sent: AtomicU64::new(0) }
    }

    /// A message for this topic (partition chosen by the sink: by key, or round robin).
    pub(crate) fn message(
        &self,
        key: Option<Vec<u8>>,
        payload: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    ) -> OutgoingMessage {
        OutgoingMessage { topic: self.topic.clone(), partition: None, key, payload, headers }
    }

    /// Sends and waits for acknowledgement; unacknowledged messages come back in the error.
    pub(crate) fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        if messages.is_empty() {
            return Ok(());
        }
        let n = messages.len() as u64;
        self.sink.send(messages)?;
        self.sent.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
