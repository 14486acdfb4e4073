//! `BufferPool`: one buffer per stream key (build, source, signal, ...) under a global memory budget.
//!
//! Each buffer reserves its worst case when created: `capacity * (8 + 8 * channels)` bytes of samples
//! plus `capacity` metadata entries (heap owned by a metadata value itself is not counted). The sum of
//! reservations never exceeds the budget: a new stream is refused, or the least recently written
//! stream's buffer is evicted, according to [`BudgetPolicy`]. Either way it is counted.

use std::collections::HashMap;
use std::hash::Hash;

use qadf_core_types::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::BufferError;
use crate::manager::{BufferManager, OverflowPolicy, validate_shape};

/// What happens when a new stream would exceed the budget.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPolicy {
    /// Refuse the new stream's sample with [`BufferError::BudgetExceeded`] (the default).
    #[default]
    Reject,
    /// Drop whole buffers of the least recently written streams until the new one fits.
    EvictLeastRecentlyUsed,
}

/// Shape of every buffer in a pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    /// Default window length of each buffer.
    pub window_size: usize,
    /// Capacity of each buffer in samples.
    pub buffer_size: usize,
    /// Values per sample.
    pub channels: usize,
    /// Overflow policy of each buffer.
    pub overflow: OverflowPolicy,
    /// Total bytes all buffers may reserve.
    pub budget_bytes: usize,
    /// What to do when a new stream does not fit.
    pub budget_policy: BudgetPolicy,
}

/// Memory use of a pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUsage {
    /// Streams with a buffer.
    pub buffers: usize,
    /// Bytes reserved by those buffers.
    pub reserved_bytes: usize,
    /// The budget.
    pub budget_bytes: usize,
    /// Buffers dropped to make room.
    pub evicted_buffers: u64,
    /// Samples those buffers held when dropped.
    pub evicted_samples: u64,
    /// Samples refused because the budget was exhausted.
    pub rejected_samples: u64,
}

struct Entry<M> {
    buffer: BufferManager<M>,
    last_write: u64,
}

/// Buffers keyed by stream, within one memory budget.
pub struct BufferPool<K, M = ()> {
    config: PoolConfig,
    per_buffer: usize,
    buffers: HashMap<K, Entry<M>>,
    tick: u64,
    usage: PoolUsage,
}

impl<K: Hash + Eq + Clone, M: Clone> BufferPool<K, M> {
    /// An empty pool; fails if the shape is invalid or one buffer alone exceeds the budget.
    pub fn new(config: PoolConfig) -> Result<BufferPool<K, M>, BufferError> {
        validate_shape(config.window_size, config.buffer_size, config.channels)?;
        let per_buffer =
            config.buffer_size * (size_of::<Timestamp>() + config.channels * size_of::<f64>() + size_of::<(u64, M)>());
        if per_buffer > config.budget_bytes {
            return Err(BufferError::BudgetExceeded { needed: per_buffer, used: 0, budget: config.budget_bytes });
        }
        Ok(BufferPool {
            config,
            per_buffer,
            buffers: HashMap::new(),
            tick: 0,
            usage: PoolUsage { budget_bytes: config.budget_bytes, ..PoolUsage::default() },
        })
    }

    /// Bytes each buffer reserves.
    pub fn bytes_per_buffer(&self) -> usize {
        self.per_buffer
    }

    /// Appends a sample to `key`'s buffer, creating it within the budget if needed.
    pub fn add_data(
        &mut self,
        key: &K,
        data: &[f64],
        timestamp: Timestamp,
        metadata: Option<M>,
    ) -> Result<(), BufferError> {
        self.buffer_mut(key)?.add_data(data, timestamp, metadata)
    }

    /// `key`'s buffer for writing (marked as just written), created within the budget if needed.
    pub fn buffer_mut(&mut self, key: &K) -> Result<&mut BufferManager<M>, BufferError> {
        self.tick += 1;
        if !self.buffers.contains_key(key) {
            self.make_room()?;
            let buffer =
                BufferManager::with_channels(self.config.window_size, self.config.buffer_size, self.config.channels)?
                    .with_policy(self.config.overflow);
            self.buffers.insert(key.clone(), Entry { buffer, last_write: 0 });
            self.usage.reserved_bytes += self.per_buffer;
        }
        let entry = self.buffers.get_mut(key).expect("inserted above");
        entry.last_write = self.tick;
        Ok(&mut entry.buffer)
    }

    fn make_room(&mut self) -> Result<(), BufferError> {
        while self.usage.reserved_bytes + self.per_buffer > self.config.budget_bytes {
            let refuse = || BufferError::BudgetExceeded {
                needed: self.per_buffer,
                used: self.usage.reserved_bytes,
                budget: self.config.budget_bytes,
            };
            if self.config.budget_policy == BudgetPolicy::Reject {
                self.usage.rejected_samples += 1;
                return Err(refuse());
            }
            let Some(oldest) = self.buffers.iter().min_by_key(|(_, e)| e.last_write).map(|(k, _)| k.clone()) else {
                self.usage.rejected_samples += 1;
                return Err(refuse());
            };
            let entry = self.buffers.remove(&oldest).expect("key taken from the map");
            self.usage.evicted_buffers += 1;
            self.usage.evicted_samples += entry.buffer.len() as u64;
            self.usage.reserved_bytes -= self.per_buffer;
        }
        Ok(())
    }

    /// The buffer of `key`, if it exists.
    pub fn get(&self, key: &K) -> Option<&BufferManager<M>> {
        self.buffers.get(key).map(|e| &e.buffer)
    }

    /// The keys with a buffer.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.buffers.keys()
    }

    /// Memory use and eviction counts.
    pub fn usage(&self) -> PoolUsage {
        PoolUsage { buffers: self.buffers.len(), ..self.usage }
    }

    /// Drops `key`'s buffer, returning its reservation to the budget.
    pub fn remove(&mut self, key: &K) -> Option<BufferManager<M>> {
        let entry = self.buffers.remove(key)?;
        self.usage.reserved_bytes -= self.per_buffer;
        Some(entry.buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(budget_policy: BudgetPolicy) -> PoolConfig {
        PoolConfig {
            window_size: 2,
            buffer_size: 10,
            channels: 1,
            overflow: OverflowPolicy::EvictOldest,
            budget_bytes: 3 * 10 * 24, // three buffers of 10 x (8 + 8 + 8 metadata) bytes
            budget_policy,
        }
    }

    #[test]
    fn the_budget_refuses_a_stream_that_does_not_fit() {
        let mut pool: BufferPool<&str> = BufferPool::new(config(BudgetPolicy::Reject)).unwrap();
        assert_eq!(pool.bytes_per_buffer(), 240);
        for key in ["a", "b", "c"] {
            pool.add_data(&key, &[1.0], Timestamp::EPOCH, None).unwrap();
        }
        let err = pool.add_data(&"d", &[1.0], Timestamp::EPOCH, None).unwrap_err();
        assert_eq!(err, BufferError::BudgetExceeded { needed: 240, used: 720, budget: 720 });
        pool.add_data(&"a", &[2.0], Timestamp::EPOCH, None).unwrap();
        let usage = pool.usage();
        assert_eq!((usage.buffers, usage.reserved_bytes, usage.rejected_samples), (3, 720, 1));
        pool.remove(&"b");
        pool.add_data(&"d", &[1.0], Timestamp::EPOCH, None).unwrap();
    }

    #[test]
    fn lru_eviction_drops_the_least_recently_written_stream_and_counts_it() {
        let mut pool: BufferPool<&str> = BufferPool::new(config(BudgetPolicy::EvictLeastRecentlyUsed)).unwrap();
        for key in ["a", "b", "c", "a", "c", "c"] {
            pool.add_data(&key, &[1.0], Timestamp::EPOCH, None).unwrap();
        }
        pool.add_data(&"d", &[1.0], Timestamp::EPOCH, None).unwrap();
        assert!(pool.get(&"b").is_none(), "b was written least recently");
        let usage = pool.usage();
        assert_eq!((usage.buffers, usage.evicted_buffers, usage.evicted_samples), (3, 1, 1));
        assert!(usage.reserved_bytes <= usage.budget_bytes);
    }

    #[test]
    fn a_budget_smaller_than_one_buffer_is_refused_up_front() {
        let tiny = PoolConfig { budget_bytes: 100, ..config(BudgetPolicy::Reject) };
        assert!(matches!(BufferPool::<&str>::new(tiny), Err(BufferError::BudgetExceeded { .. })));
    }
}
