//! The in-process transport: the same `MessageSink` / `MessageSource` traits over a bounded
//! crossbeam channel, for the embedded default and tests. The pipeline cannot tell it from Kafka.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use parking_lot::Mutex;
use qadf_core_types::{
    BackendError, BackendErrorKind, LogPosition, MessageSink, MessageSource, OffsetStore, Origin, OutgoingMessage,
    RawMessage, SendError, Timestamp,
};

/// A connected sink/source pair whose queue holds at most `capacity` messages (the sink blocks when full).
pub fn channel(capacity: usize, group: &str, offsets: Arc<dyn OffsetStore>) -> (InProcessSink, InProcessSource) {
    let (tx, rx) = bounded(capacity.max(1));
    let sink = InProcessSink { tx, next_offsets: Arc::default() };
    let source = InProcessSource { rx, group: group.to_owned(), offsets };
    (sink, source)
}

/// Assigns offsets per (topic, partition) in send order and queues the messages.
#[derive(Clone)]
pub struct InProcessSink {
    tx: Sender<RawMessage>,
    next_offsets: Arc<Mutex<HashMap<(String, i32), i64>>>,
}

impl MessageSink for InProcessSink {
    fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let mut messages = messages.into_iter();
        while let Some(m) = messages.next() {
            let chosen = m.partition;
            let partition = chosen.unwrap_or(0);
            let offset = {
                let mut next = self.next_offsets.lock();
                let e = next.entry((m.topic.clone(), partition)).or_insert(0);
                *e += 1;
                *e - 1
            };
            let raw = RawMessage {
                origin: Origin { topic: m.topic, partition, offset },
                key: m.key,
                payload: m.payload,
                headers: m.headers,
                timestamp: Timestamp::now(),
            };
            if let Err(returned) = self.tx.send(raw) {
                let raw = returned.into_inner();
                let back = OutgoingMessage {
                    topic: raw.origin.topic,
                    partition: chosen,
                    key: raw.key,
                    payload: raw.payload,
                    headers: raw.headers,
                };
                let mut rest = vec![back];
                rest.extend(messages);
                return Err(SendError {
                    value: rest,
                    error: BackendError::new(BackendErrorKind::Closed, "in-process", "the source was dropped"),
                });
            }
        }
        Ok(())
    }
}

/// Receives what the paired sink sent; commits go to an `OffsetStore`.
pub struct InProcessSource {
    rx: Receiver<RawMessage>,
    group: String,
    offsets: Arc<dyn OffsetStore>,
}

impl MessageSource for InProcessSource {
    fn poll(&mut self, max: usize, timeout: Duration) -> Result<Vec<RawMessage>, BackendError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // Like a Kafka fetch with fetch.min.bytes = 1: wait up to `timeout` for the first message,
        // then return it with whatever else is already queued.
        match self.rx.recv_timeout(timeout) {
            Ok(first) => {
                let mut out = vec![first];
                out.extend(self.rx.try_iter().take(max.saturating_sub(1)));
                Ok(out)
            }
            Err(RecvTimeoutError::Timeout) => Ok(Vec::new()),
            Err(RecvTimeoutError::Disconnected) => {
                Err(BackendError::new(BackendErrorKind::Closed, "in-process", "every sink was dropped"))
            }
        }
    }

    fn lag(&self) -> Option<Vec<(i32, u64)>> {
        Some(vec![(0, self.rx.len() as u64)])
    }

    fn commit(&mut self, positions: &[LogPosition]) -> Result<(), BackendError> {
        self.offsets.store_offsets(&self.group, positions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryOffsetStore;

    fn message(topic: &str, payload: &[u8]) -> OutgoingMessage {
        OutgoingMessage { topic: topic.into(), partition: None, key: None, payload: payload.to_vec(), headers: vec![] }
    }

    #[test]
    fn messages_flow_in_order_with_offsets_and_commits_reach_the_store() {
        let store = Arc::new(MemoryOffsetStore::default());
        let (sink, mut source) = channel(16, "g", store.clone());
        sink.send(vec![message("t", b"a"), message("t", b"b"), message("u", b"c")]).unwrap();
        let got = source.poll(10, Duration::from_millis(50)).unwrap();
        let seen: Vec<(&str, i64, &[u8])> =
            got.iter().map(|m| (m.origin.topic.as_str(), m.origin.offset, m.payload.as_slice())).collect();
        assert_eq!(seen, [("t", 0, &b"a"[..]), ("t", 1, b"b"), ("u", 0, b"c")]);
        source.commit(&crate::positions_after(&got)).unwrap();
        assert_eq!(store.load_offsets("g", "t").unwrap()[0].next_offset, 2);
        assert!(
            source.poll(10, Duration::from_millis(10)).unwrap().is_empty(),
            "a timeout with nothing is an empty poll"
        );
    }

    #[test]
    fn a_dropped_source_hands_the_messages_back() {
        let (sink, source) = channel(1, "g", Arc::new(MemoryOffsetStore::default()));
        drop(source);
        let err = sink.send(vec![message("t", b"a"), message("t", b"b")]).unwrap_err();
        assert_eq!(err.into_inner().len(), 2);
    }
}
