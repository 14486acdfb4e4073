//! `DeadLetterSink`: sends dead letters to a topic with their reason and origin, and counts them.

use std::sync::Arc;

use qadf_core_types::{DeadLetter, MessageSink, OutgoingMessage, SendError};

use crate::topic_sink::TopicSink;

/// Header carrying the reason a message was rejected.
pub const REASON_HEADER: &str = "qadf.error";
/// Header carrying `topic/partition/offset` of the original message, when known.
pub const ORIGIN_HEADER: &str = "qadf.origin";
/// Header carrying, for a dead letter of one refused sample, its index within the message at
/// [`ORIGIN_HEADER`] (the payload is then that sample in bincode, not the original message).
pub const SAMPLE_HEADER: &str = "qadf.sample";
/// Header carrying the original payload's length when the dead letter holds only its first bytes.
pub const TRUNCATED_HEADER: &str = "qadf.truncated";
/// Most original bytes a dead letter carries (a larger payload is cut, and says so in
/// [`TRUNCATED_HEADER`]), so a dead letter always fits a produce request the broker accepts.
pub const MAX_DEAD_LETTER_PAYLOAD: usize = 512 << 10;
/// Most bytes of a reason kept in [`REASON_HEADER`].
pub const MAX_REASON_BYTES: usize = 4096;

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
                let mut reason = l.reason.clone();
                if reason.len() > MAX_REASON_BYTES {
                    let mut cut = MAX_REASON_BYTES;
                    while !reason.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    reason.truncate(cut);
                }
                let mut headers = vec![(REASON_HEADER.to_owned(), reason.into_bytes())];
                if let Some(o) = &l.origin {
                    headers.push((
                        ORIGIN_HEADER.to_owned(),
                        format!("{}/{}/{}", o.topic, o.partition, o.offset).into_bytes(),
                    ));
                }
                if let Some(index) = l.sample_index {
                    headers.push((SAMPLE_HEADER.to_owned(), index.to_string().into_bytes()));
                }
                let mut payload = l.payload.clone();
                if payload.len() > MAX_DEAD_LETTER_PAYLOAD {
                    headers.push((TRUNCATED_HEADER.to_owned(), payload.len().to_string().into_bytes()));
                    payload.truncate(MAX_DEAD_LETTER_PAYLOAD);
                }
                self.out.message(None, payload, headers)
            })
            .collect();
        self.out.send(messages)
    }

    /// Dead letters acknowledged so far.
    pub fn sent(&self) -> u64 {
        self.out.sent()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use qadf_core_types::{MessageSource, Origin};

    use super::*;
    use crate::{MemoryOffsetStore, in_process};

    /// A dead letter always fits a produce request a broker accepts (issue 17, failure 6): a huge
    /// payload is cut and says how long it was, a huge reason is cut at a character boundary.
    #[test]
    fn a_huge_dead_letter_is_cut_to_fit_and_says_so() {
        let (sink, mut source) = in_process::channel(4, "g", Arc::new(MemoryOffsetStore::default()));
        let letters = DeadLetterSink::new(Arc::new(sink), "dlq");
        let reason = "é".repeat(3000); // 6000 bytes of two-byte characters
        let letter = DeadLetter {
            reason,
            origin: Some(Origin { topic: "t".into(), partition: 2, offset: 7 }),
            sample_index: None,
            payload: vec![b'x'; 2 << 20],
        };
        letters.send(std::slice::from_ref(&letter)).unwrap();
        let got = source.poll(1, Duration::from_millis(200)).unwrap();
        assert_eq!(got[0].payload.len(), MAX_DEAD_LETTER_PAYLOAD);
        let header = |name: &str| got[0].headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        assert_eq!(header(TRUNCATED_HEADER), Some(b"2097152".to_vec()));
        let kept = String::from_utf8(header(REASON_HEADER).unwrap()).expect("cut at a character boundary");
        assert!(kept.len() <= MAX_REASON_BYTES && kept.len() > MAX_REASON_BYTES - 2, "{}", kept.len());
        assert_eq!(header(ORIGIN_HEADER), Some(b"t/2/7".to_vec()));
        // A small one is sent whole, with no truncation header.
        letters.send(&[DeadLetter { payload: b"{bad".to_vec(), ..letter }]).unwrap();
        let got = source.poll(1, Duration::from_millis(200)).unwrap();
        assert_eq!(got[0].payload, b"{bad");
        assert!(got[0].headers.iter().all(|(k, _)| k != TRUNCATED_HEADER));
    }
}
