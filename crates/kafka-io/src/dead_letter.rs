//! `DeadLetterSink`: sends dead letters to a topic with their reason and origin, and counts them.

use std::sync::Arc;

use qadf_core_types::{DeadLetter, MessageSink, OutgoingMessage, SendError};

use crate::topic_sink::TopicSink;

/// Header carrying the reason a message was rejected.
pub const REASON_HEADER: &str = "qadf.error";
/// Header carrying `topic/partition/offset` of the original message, when known.
pub const ORIGIN_HEADER: &str = "qadf.origin";

/// Writes dead letters (original bytes as the payload) to one topic of any `MessageSink`.
pub struct DeadLetterSink {
    out: TopicSink,
}

impl DeadLetterSink {
    /// Dead letters go to `topic` through `sink`.
    pub fn new(sink: Arc<dyn MessageSink>, topic: impl Into<String>) -> DeadLetterSink {
        DeadLetterSink { out: TopicSink::new(sink, topic.into()) }
    }

    /// Sends the dead letters and waits for acknowledgement; unacknowledged ones come back in the error.
    pub fn send(&self, letters: &[DeadLetter]) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let messages = letters
            .iter()
            .map(|l| {
                let mut headers = vec![(REASON_HEADER.to_owned(), l.reason.clone().into_bytes())];
                if let Some(o) = &l.origin {
                    headers.push((
                        ORIGIN_HEADER.to_owned(),
                        format!("{}/{}/{}", o.topic, o.partition, o.offset).into_bytes(),
                    ));
                }
                self.out.message(None, l.payload.clone(), headers)
            })
            .collect();
        self.out.send(messages)
    }

    /// Dead letters acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.out.sent()
    }
}
