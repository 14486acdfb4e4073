//! `LingeringProducer`: batches messages by size or linger time; `flush` waits for every ack.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use qadf_core_types::{BackendError, MessageSink, OutgoingMessage, SendError};

#[derive(Default)]
struct Queue {
    pending: Vec<OutgoingMessage>,
    first_enqueued: Option<Instant>,
    in_flight: usize,
    failed: Vec<OutgoingMessage>,
    last_error: Option<BackendError>,
    stop: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// Sends through any `MessageSink` in batches of up to `max_batch` messages, at most `linger`
/// after the first one was queued. Failed messages are kept and handed back by `flush`.
pub struct LingeringProducer {
    shared: Arc<Shared>,
    sink: Arc<dyn MessageSink>,
    max_batch: usize,
    thread: Option<JoinHandle<()>>,
}

impl LingeringProducer {
    /// A producer batching into `sink`.
    pub fn new(sink: Arc<dyn MessageSink>, max_batch: usize, linger: Duration) -> LingeringProducer {
        let shared = Arc::new(Shared { queue: Mutex::default(), changed: Condvar::new() });
        let max_batch = max_batch.max(1);
        let thread = {
            let (shared, sink) = (shared.clone(), sink.clone());
            std::thread::Builder::new()
                .name("qadf-kafka-linger".to_owned())
                .spawn(move || sender(&shared, sink.as_ref(), max_batch, linger))
                .expect("spawning the linger thread")
        };
        LingeringProducer { shared, sink, max_batch, thread: Some(thread) }
    }

    /// Queues a message; it is sent with the next batch.
    pub fn enqueue(&self, message: OutgoingMessage) {
        let mut q = self.shared.queue.lock();
        q.first_enqueued.get_or_insert_with(Instant::now);
        q.pending.push(message);
        if q.pending.len() >= self.max_batch {
            self.shared.changed.notify_all();
        }
    }

    /// Sends everything queued and returns once all of it (and every batch in flight) is
    /// acknowledged; messages that failed since the last flush come back in the error.
    pub fn flush(&self) -> Result<(), SendError<Vec<OutgoingMessage>>> {
        let batch = {
            let mut q = self.shared.queue.lock();
            q.first_enqueued = None;
            std::mem::take(&mut q.pending)
        };
        if let Err(e) = self.sink.send(batch) {
            let mut q = self.shared.queue.lock();
            q.failed.extend(e.value);
            q.last_error = Some(e.error);
        }
        let mut q = self.shared.queue.lock();
        while q.in_flight > 0 {
            self.shared.changed.wait(&mut q);
        }
        if q.failed.is_empty() {
            return Ok(());
        }
        let error = q.last_error.take().unwrap_or_else(|| {
            BackendError::new(qadf_core_types::BackendErrorKind::Unavailable, "kafka", "a batch failed")
        });
        Err(SendError { value: std::mem::take(&mut q.failed), error })
    }
}

fn sender(shared: &Shared, sink: &dyn MessageSink, max_batch: usize, linger: Duration) {
    loop {
        let batch = {
            let mut q = shared.queue.lock();
            loop {
                if q.stop {
                    return;
                }
                let due = q.first_enqueued.is_some_and(|t| t.elapsed() >= linger);
                if q.pending.len() >= max_batch || (due && !q.pending.is_empty()) {
                    break;
                }
                let wait = q.first_enqueued.map_or(linger, |t| linger.saturating_sub(t.elapsed()));
                shared.changed.wait_for(&mut q, wait.max(Duration::from_micros(100)));
            }
            let n = q.pending.len().min(max_batch);
            let batch: Vec<OutgoingMessage> = q.pending.drain(..n).collect();
            q.first_enqueued = if q.pending.is_empty() { None } else { Some(Instant::now()) };
            q.in_flight += batch.len();
            batch
        };
        let n = batch.len();
        let result = sink.send(batch);
        let mut q = shared.queue.lock();
        q.in_flight -= n;
        if let Err(e) = result {
            q.failed.extend(e.value);
            q.last_error = Some(e.error);
        }
        shared.changed.notify_all();
    }
}

impl Drop for LingeringProducer {
    /// Flushes what is queued (failures are dropped with a warning on stderr) and stops the thread.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            eprintln!("warning: {} queued messages were not sent: {}", e.value.len(), e.error);
        }
        self.shared.queue.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use qadf_core_types::{BackendErrorKind, SendError};

    use super::*;

    /// Records batch sizes; fails messages whose payload is "bad".
    #[derive(Default)]
    struct Recorder(Mutex<Vec<usize>>);

    impl MessageSink for Recorder {
        fn send(&self, messages: Vec<OutgoingMessage>) -> Result<(), SendError<Vec<OutgoingMessage>>> {
            self.0.lock().push(messages.len());
            if messages.iter().any(|m| m.payload == b"bad") {
                return Err(SendError {
                    value: messages,
                    error: BackendError::new(BackendErrorKind::Rejected, "test", "bad"),
                });
            }
            Ok(())
        }
    }

    fn m(payload: &[u8]) -> OutgoingMessage {
        OutgoingMessage { topic: "t".into(), partition: None, key: None, payload: payload.to_vec(), headers: vec![] }
    }

    #[test]
    fn batches_by_size_and_by_linger_and_flush_waits() {
        let sink = Arc::new(Recorder::default());
        let p = LingeringProducer::new(sink.clone(), 10, Duration::from_secs(2));
        for _ in 0..25 {
            p.enqueue(m(b"ok"));
        }
        let wait_for = |n: usize, within: Duration| {
            let deadline = Instant::now() + within;
            while sink.0.lock().len() < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            sink.0.lock().clone()
        };
        assert_eq!(wait_for(2, Duration::from_secs(1)), [10, 10], "full batches go at once; 5 wait for the linger");
        assert_eq!(wait_for(3, Duration::from_secs(10)), [10, 10, 5], "the rest goes when the linger expires");
        p.enqueue(m(b"ok"));
        p.flush().unwrap();
        assert_eq!(sink.0.lock().iter().sum::<usize>(), 26);
    }

    #[test]
    fn flush_hands_back_what_failed() {
        let sink = Arc::new(Recorder::default());
        let p = LingeringProducer::new(sink, 100, Duration::from_secs(60));
        p.enqueue(m(b"ok"));
        p.enqueue(m(b"bad"));
        let err = p.flush().unwrap_err();
        assert_eq!(err.into_inner().len(), 2, "the whole failed batch comes back");
        assert!(p.flush().is_ok(), "handed back once");
    }
}
