//! `DeadLetterSink`: sends dead letters to a topic with their reason and origin, and counts them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use qadf_core_types::{DeadLetter, MessageSink, OutgoingMessage, SendError};

/// Header carrying the reason a message was rejected.
pub const REASON_HEADER: &str = "qadf.error";
/// Header carrying `topic/partition/offset` of the original message, when known.
pub const ORIGIN_HEADER: &str = "qadf.origin";

/// Writes dead letters (original bytes as the payload) to one topic of any `MessageSink`.
pub struct DeadLetterSink {
    sink: Arc<dyn MessageSink>,
    topic: String,
    sent: AtomicU64,
}

impl DeadLetterSink {
    /// Dead letters go to `topic` through `sink`.
    pub fn new(sink: Arc<dyn MessageSink>, topic: impl Into<String>) -> DeadLetterSink {
        DeadLetterSink { sink, topic: topic.into(), sent: AtomicU64::new(0) }
    }

    /// Sends the dead letters and waits for acknowledgement; unacknowledged ones come back in the error.
    pub fn send(&self, letters: &[DeadLetter]) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        if letters.is_empty() {
            return Ok(());
        }
        let messages: Vec<OutgoingMessage> = letters
            .iter()
            .map(|l| {
                let mut headers = vec![(REASON_HEADER.to_owned(), l.reason.clone().into_bytes())];
                if let Some(o) = &l.origin {
                    headers.push((
                        ORIGIN_HEADER.to_owned(),
                        format!("{}/{}/{}", o.topic, o.partition, o.offset).into_bytes(),
                    ));
                }
                OutgoingMessage {
                    topic: self.topic.clone(),
                    partition: None,
                    key: None,
                    payload: l.payload.clone(),
                    headers,
                }
            })
            .collect();
        let n = messages.len() as u64;
        self.sink.send(messages)?;
        self.sent.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Dead letters acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}
