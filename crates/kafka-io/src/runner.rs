//! `RunningConsumer`: a `KafkaConsumer` on its own thread behind crossbeam channels.
//!
//! The thread polls batches (by size or time, whichever comes first) and hands them over a bounded
//! channel, so a slow application back-pressures the fetch loop. Each `Delivery` carries the
//! positions that acknowledge it; the application calls `ack` once its sinks confirmed the batch,
//! and only acknowledged positions are committed. `stop` ends polling, commits every ack that
//! arrived before it, and joins the thread: nothing is committed that was not acknowledged.

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded, unbounded};
use qadf_core_types::{LogPosition, RawMessage};

use crate::consumer::{ConsumerStatistics, KafkaConsumer, SeekTo, positions_after};
use crate::error::KafkaError;

/// A batch of messages and the positions that acknowledge it.
#[derive(Debug)]
pub struct Delivery {
    /// The messages, in offset order per partition.
    pub messages: Vec<RawMessage>,
    /// Pass these to [`RunningConsumer::ack`] once the batch is fully handled.
    pub positions: Vec<LogPosition>,
}

enum Control {
    Ack(Vec<LogPosition>),
    Pause(String, i32),
    Resume(String, i32),
    Seek(String, i32, SeekTo),
    Stop,
}

/// A consumer thread; dropping it without `stop` stops it too (committing what was acknowledged).
pub struct RunningConsumer {
    deliveries: Receiver<Delivery>,
    control: Sender<Control>,
    thread: Option<JoinHandle<Result<ConsumerStatistics, KafkaError>>>,
}

/// Starts `consumer` on a thread delivering batches of up to `batch_size` messages, waiting at most
/// `max_wait` for a batch to fill, with at most `queued` undelivered batches.
pub fn spawn(mut consumer: KafkaConsumer, batch_size: usize, max_wait: Duration, queued: usize) -> RunningConsumer {
    let (deliver, deliveries) = bounded::<Delivery>(queued.max(1));
    let (control, commands) = unbounded::<Control>();
    let thread = std::thread::Builder::new()
        .name("qadf-kafka-consumer".to_owned())
        .spawn(move || {
            let mut pending: Option<Delivery> = None;
            loop {
                // Apply every command that is waiting.
                while let Ok(c) = commands.try_recv() {
                    match c {
                        Control::Ack(cps) => consumer.ack(&cps),
                        Control::Pause(t, p) => consumer.pause(&t, p),
                        Control::Resume(t, p) => consumer.resume(&t, p),
                        Control::Seek(t, p, to) => {
                            // Give back what was fetched but not handed over, then move.
                            if let Some(d) = pending.take() {
                                for (topic, partition, first) in first_offsets(&d.messages) {
                                    consumer.seek(&topic, partition, SeekTo::Offset(first))?;
                                }
                            }
                            consumer.seek(&t, p, to)?;
                        }
                        Control::Stop => {
                            consumer.commit_acked().map_err(|e| KafkaError::Unavailable(e.to_string()))?;
                            return Ok(consumer.statistics());
                        }
                    }
                }
                if pending.is_none() {
                    let messages = consumer.poll_messages(batch_size, max_wait)?;
                    if !messages.is_empty() {
                        let positions = positions_after(&messages);
                        pending = Some(Delivery { messages, positions });
                    }
                }
                // Hand the batch over; while the application is busy, keep serving commands.
                // `send_timeout` hands the batch back on timeout, so nothing fetched is dropped.
                if let Some(d) = pending.take() {
                    match deliver.send_timeout(d, Duration::from_millis(50)) {
                        Ok(()) => {}
                        Err(SendTimeoutError::Timeout(d)) => pending = Some(d),
                        Err(SendTimeoutError::Disconnected(_)) => {
                            consumer.commit_acked().map_err(|e| KafkaError::Unavailable(e.to_string()))?;
                            return Ok(consumer.statistics());
                        }
                    }
                }
            }
        })
        .expect("spawning the consumer thread");
    RunningConsumer { deliveries, control, thread: Some(thread) }
}

/// The first offset of each (topic, partition) in `messages`.
fn first_offsets(messages: &[RawMessage]) -> Vec<(String, i32, i64)> {
    let mut out: Vec<(String, i32, i64)> = Vec::new();
    for m in messages {
        match out.iter_mut().find(|(t, p, _)| *t == m.origin.topic && *p == m.origin.partition) {
            Some(entry) => entry.2 = entry.2.min(m.origin.offset),
            None => out.push((m.origin.topic.clone(), m.origin.partition, m.origin.offset)),
        }
    }
    out
}

impl RunningConsumer {
    /// The next batch, waiting up to `timeout`.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Delivery> {
        self.deliveries.recv_timeout(timeout).ok()
    }

    /// Acknowledges a delivered batch: its sinks have it, so its offsets may be committed.
    pub fn ack(&self, positions: &[LogPosition]) {
        let _ = self.control.send(Control::Ack(positions.to_vec()));
    }

    /// Pauses a partition.
    pub fn pause(&self, topic: &str, partition: i32) {
        let _ = self.control.send(Control::Pause(topic.to_owned(), partition));
    }

    /// Resumes a partition.
    pub fn resume(&self, topic: &str, partition: i32) {
        let _ = self.control.send(Control::Resume(topic.to_owned(), partition));
    }

    /// Moves a partition's position.
    pub fn seek(&self, topic: &str, partition: i32, to: SeekTo) {
        let _ = self.control.send(Control::Seek(topic.to_owned(), partition, to));
    }

    /// Stops polling, commits every ack sent before this call, and joins the thread.
    pub fn stop(mut self) -> Result<ConsumerStatistics, KafkaError> {
        self.finish()
    }

    fn finish(&mut self) -> Result<ConsumerStatistics, KafkaError> {
        let _ = self.control.send(Control::Stop);
        match self.thread.take() {
            Some(t) => {
                t.join().unwrap_or_else(|_| Err(KafkaError::Unavailable("the consumer thread panicked".to_owned())))
            }
            None => Err(KafkaError::Unavailable("the consumer was already stopped".to_owned())),
        }
    }
}

impl Drop for RunningConsumer {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.finish();
        }
    }
}
