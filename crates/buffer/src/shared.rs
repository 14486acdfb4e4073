//! `SharedBuffer`: one writer and many readers over a `BufferManager`.
//!
//! A `parking_lot::RwLock` guards the buffer. Writers hold the write lock for one append (O(1)) or
//! one batch; readers hold the read lock only while copying their window out (O(window)), so the
//! writer waits at most one window copy, never a scan of the whole buffer (except time windows while
//! out-of-order samples are held, which scan the buffer once).

use parking_lot::RwLock;
use qadf_core_types::Timestamp;

use crate::error::BufferError;
use crate::manager::{BufferManager, BufferStatistics, Window};

/// A `BufferManager` safe to share between threads (`Arc<SharedBuffer<M>>`).
#[derive(Debug)]
pub struct SharedBuffer<M = ()> {
    inner: RwLock<BufferManager<M>>,
}

impl<M: Clone> SharedBuffer<M> {
    /// Wraps a buffer.
    pub fn new(buffer: BufferManager<M>) -> SharedBuffer<M> {
        SharedBuffer { inner: RwLock::new(buffer) }
    }

    /// Appends one sample.
    pub fn add_data(&self, data: &[f64], timestamp: Timestamp, metadata: Option<M>) -> Result<(), BufferError> {
        self.inner.write().add_data(data, timestamp, metadata)
    }

    /// Appends single-value samples under one lock; stops at the first refused sample and returns how many went in.
    pub fn add_values(&self, values: &[f64], timestamps: &[Timestamp]) -> (usize, Result<(), BufferError>) {
        let mut buffer = self.inner.write();
        for (i, (&v, &t)) in values.iter().zip(timestamps).enumerate() {
            if let Err(e) = buffer.add_value(v, t) {
                return (i, Err(e));
            }
        }
        (values.len().min(timestamps.len()), Ok(()))
    }

    /// The last `n` samples.
    pub fn get_sliding_window(&self, n: usize) -> Result<Window<M>, BufferError> {
        self.inner.read().get_sliding_window(n)
    }

    /// Samples of the last `seconds`.
    pub fn get_time_window(&self, seconds: f64) -> Result<Window<M>, BufferError> {
        self.inner.read().get_time_window(seconds)
    }

    /// Statistics.
    pub fn get_buffer_statistics(&self) -> BufferStatistics {
        self.inner.read().get_buffer_statistics()
    }

    /// Runs `f` with shared access (keep it short: the writer waits).
    pub fn read<R>(&self, f: impl FnOnce(&BufferManager<M>) -> R) -> R {
        f(&self.inner.read())
    }

    /// Runs `f` with exclusive access.
    pub fn write<R>(&self, f: impl FnOnce(&mut BufferManager<M>) -> R) -> R {
        f(&mut self.inner.write())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Readers running beside a writer only ever see whole, consistent windows.
    #[test]
    fn readers_see_consistent_windows_while_a_writer_appends() {
        let shared = Arc::new(SharedBuffer::<()>::new(BufferManager::new(100, 1000).unwrap()));
        let done = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (shared, done) = (shared.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !done.load(Ordering::Relaxed) || reads == 0 {
                        let w = shared.get_sliding_window(100).unwrap();
                        for (t, v) in w.timestamps.iter().zip(&w.values) {
                            assert_eq!(t.as_nanos() as f64, *v, "value and timestamp of one sample belong together");
                        }
                        assert!(w.timestamps.windows(2).all(|p| p[1].as_nanos() == p[0].as_nanos() + 1), "no gaps");
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for i in 0..200_000i64 {
            shared.add_data(&[i as f64], Timestamp::from_nanos(i), None).unwrap();
        }
        done.store(true, Ordering::Relaxed);
        for r in readers {
            assert!(r.join().unwrap() > 0);
        }
        assert_eq!(shared.get_buffer_statistics().total_added, 200_000);
    }

    #[test]
    fn batch_append_stops_at_the_first_refusal() {
        let shared = SharedBuffer::<()>::new(BufferManager::new(1, 10).unwrap());
        let ts = [Timestamp::EPOCH; 3];
        let (n, result) = shared.add_values(&[1.0, f64::NAN, 3.0], &ts);
        assert_eq!(n, 1);
        assert!(matches!(result, Err(BufferError::NonFinite { .. })));
        assert_eq!(shared.read(|b| b.len()), 1);
    }
}
