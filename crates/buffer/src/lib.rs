//! Bounded temporal buffers for monitoring streams: the last N samples and the last T seconds,
//! in typed contiguous storage, with exact statistics and a memory budget.
//!
//! - [`BufferManager`] (`manager.rs`): the upstream surface (`add_data`, `get_window`,
//!   `get_sliding_window`, `get_time_window`, `flush_buffer`, `clear_old_data`,
//!   `get_buffer_statistics`, `is_full`, `reset`) over a ring of 16 bytes per single-value sample.
//! - [`SharedBuffer`] (`shared.rs`): one writer, many readers, behind a `parking_lot::RwLock`.
//! - [`BufferPool`] (`pool.rs`): one buffer per stream key within a global byte budget.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use qadf_buffer::BufferManager;
//! use qadf_core_types::{ManualClock, Timestamp};
//!
//! let clock = Arc::new(ManualClock::new(Timestamp::from_nanos(10_000_000_000)));
//! let mut buffer: BufferManager = BufferManager::new(2, 3).unwrap().with_clock(clock.clone());
//! for (second, value) in [(7, 1.0), (8, 2.0), (9, 3.0), (10, 4.0)] {
//!     buffer.add_data(&[value], Timestamp::from_nanos(second * 1_000_000_000), None).unwrap();
//! }
//! assert_eq!(buffer.get_window(2).unwrap(), [3.0, 4.0]);
//! assert_eq!(buffer.get_time_window(1.5).unwrap().values, [3.0, 4.0]);
//! let stats = buffer.get_buffer_statistics();
//! assert_eq!((stats.total_added, stats.total_removed, stats.evicted_on_overflow), (4, 1, 1));
//! assert_eq!(stats.oldest_timestamp, Some(Timestamp::from_nanos(8_000_000_000))); // 7 s is gone
//! clock.advance(Duration::from_secs(1));
//! assert_eq!(buffer.clear_old_data(Duration::from_secs(2)), 1); // the 8 s sample
//! ```
#![deny(missing_docs)]

mod error;
mod manager;
mod pool;
mod ring;
mod shared;

pub use error::BufferError;
pub use manager::{BufferManager, BufferStatistics, OverflowPolicy, Window};
pub use pool::{BudgetPolicy, BufferPool, PoolConfig, PoolUsage};
pub use shared::SharedBuffer;
