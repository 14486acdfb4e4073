//! Where qadf-stream keeps things: caches for live views, history for later analysis, and the
//! committed Kafka offsets, behind the `Cache`, `HistoryStore` and `OffsetStore` traits.
//!
//! - [`EmbeddedStore`] (`embedded.rs`): history and offsets in one crash-safe redb file.
//! - [`MemoryCache`] (`memory_cache.rs`): an in-process cache with expiry.
//! - [`RedisCache`] (`redis_cache.rs`): Redis through a pooled, health-checked connection.
//! - [`MongoStore`] (`mongo.rs`): history and offsets in MongoDB (sync driver), idempotent by id.
//! - [`keys`] (`keys.rs`): the cache key scheme; [`LiveView`] (`live.rs`): latest state, layer slices
//!   and alerts for dashboards; [`CacheExt`]: the upstream `cache_recent_data` / `get_cached_data`.
//! - [`bucket`] (`bucket.rs`): runs of samples of one build, source and layer as compressed columns
//!   with summaries — the bucketed history layout (not yet used by the stores).
//! - [`spawn_writer`] (`writer.rs`): write-behind on a thread with a bounded queue; retries until
//!   the backend returns, never drops a batch, stores offsets after their data.
//!
//! ```
//! use qadf_core_types::{HistoryQuery, HistoryStore, Point3, Sample, StoredSample, Timestamp};
//! use qadf_storage::EmbeddedStore;
//!
//! let dir = std::env::temp_dir().join(format!("qadf-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = EmbeddedStore::open(&dir.join("history.redb")).unwrap();
//! let s = Sample::new(Timestamp::from_nanos(5), Point3::origin(), [("temperature", 1900.0)].into_iter().collect());
//! let stored = StoredSample::from_content(s);
//! assert_eq!(store.store_batch(&[stored.clone(), stored.clone()]).unwrap().already_stored, 1);
//! let q = HistoryQuery { start: Timestamp::EPOCH, end: Timestamp::from_nanos(10), build_id: None, source_id: None, layer: None, skip: 0, limit: 10 };
//! assert_eq!(store.query_stream_history(&q).unwrap(), vec![stored]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![deny(missing_docs)]

pub mod bucket;
mod embedded;
pub mod keys;
mod live;
mod memory_cache;
mod mongo;
mod redis_cache;
mod writer;

pub use embedded::EmbeddedStore;
pub use live::{CacheExt, LiveView};
pub use memory_cache::MemoryCache;
pub use mongo::{MongoStore, StoreStatistics};
pub use redis_cache::RedisCache;
pub use writer::{QueueLimit, StorageWriter, WriteDone, WriteJob, WriterStatistics, spawn_writer};
