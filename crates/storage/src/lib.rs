//! Where qadf-stream keeps things: caches for live views, history for later analysis, and the
//! committed Kafka offsets, behind the `Cache`, `HistoryStore` and `OffsetStore` traits.
//!
//! History is kept as buckets (`qadf_core_types::bucket`): one record or document per run of
//! samples of one build, source and layer, as compressed columns with per-signal summaries.
//!
//! - [`EmbeddedStore`] (`embedded.rs`): history and offsets in one crash-safe redb file.
//! - [`MemoryCache`] (`memory_cache.rs`): an in-process cache with expiry.
//! - [`RedisCache`] (`redis_cache.rs`): Redis through a pooled, health-checked connection.
//! - [`MongoStore`] (`mongo.rs`): history and offsets in MongoDB (sync driver), idempotent by bucket id.
//! - [`keys`] (`keys.rs`): the cache key scheme; [`LiveView`] (`live.rs`): latest state, layer slices
//!   and alerts for dashboards; [`CacheExt`]: the upstream `cache_recent_data` / `get_cached_data`.
//! - [`spawn_writer`] (`writer.rs`): write-behind on a thread with a bounded queue; retries until
//!   the backend returns, never drops a batch, stores offsets after their data.
//!
//! ```
//! use qadf_core_types::{HistoryQuery, HistoryStore, Point3, Sample, Timestamp};
//! use qadf_storage::EmbeddedStore;
//!
//! let dir = std::env::temp_dir().join(format!("qadf-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let store = EmbeddedStore::open(&dir.join("history.redb")).unwrap();
//! let s = Sample::new(Timestamp::from_nanos(5), Point3::origin(), [("temperature", 1900.0)].into_iter().collect());
//! assert_eq!(store.store_samples(&[s.clone(), s.clone()]).unwrap().inserted, 2);
//! assert_eq!(store.store_samples(&[s.clone(), s.clone()]).unwrap().already_stored, 2, "a replay");
//! let q = HistoryQuery { start: Timestamp::EPOCH, end: Timestamp::from_nanos(10), build_id: None, source_id: None, layer: None, tags: vec![], skip: 0, limit: 10 };
//! assert_eq!(store.query_stream_history(&q).unwrap(), vec![s.clone(), s]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```
#![deny(missing_docs)]

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
