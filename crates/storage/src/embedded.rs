//! `EmbeddedStore`: crash-safe history and offsets on local disk (redb), for zero-service runs.
//!
//! Tables: samples keyed by (timestamp ns, id) so time ranges are ordered scans; an id index
//! (id → timestamp) that makes storing idempotent; offsets keyed by (group, topic, partition);
//! cache entries (the live view's latest state) with their expiry.
//! Every call is one redb transaction, committed durably before it returns.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::{
    BackendError, BackendErrorKind, Cache, Clock, HistoryQuery, HistoryStore, LogPosition, OffsetStore, Sample,
    StoreReport, StoredSample, SystemClock, Timestamp, Value,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

const SAMPLES: TableDefinition<(i64, &str), &[u8]> = TableDefinition::new("samples");
const IDS: TableDefinition<&str, i64> = TableDefinition::new("sample_ids");
const OFFSETS: TableDefinition<(&str, &str, i32), i64> = TableDefinition::new("offsets");
/// Cache entries: key → (expiry ns, bincode `Value`).
const CACHE: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("cache");

/// History and offsets in one redb file.
pub struct EmbeddedStore {
    db: Database,
    clock: Arc<dyn Clock>,
}

fn err(kind: BackendErrorKind) -> impl Fn(&dyn std::fmt::Display) -> BackendError {
    move |e| BackendError::new(kind, "embedded", e.to_string())
}

fn io(e: impl std::fmt::Display) -> BackendError {
    err(BackendErrorKind::Unavailable)(&e)
}

fn corrupt(e: impl std::fmt::Display) -> BackendError {
    err(BackendErrorKind::Corrupt)(&e)
}

/// Page cache of the embedded store: bounded, so a long stream does not grow the process (redb's
/// default is 1 GiB).
pub const CACHE_BYTES: usize = 16 << 20;

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path`, with a page cache of [`CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<EmbeddedStore, BackendError> {
        let db = redb::Builder::new().set_cache_size(CACHE_BYTES).create(path).map_err(io)?;
        let tx = db.begin_write().map_err(io)?;
        tx.open_table(SAMPLES).map_err(io)?;
        tx.open_table(IDS).map_err(io)?;
        tx.open_table(OFFSETS).map_err(io)?;
        tx.open_table(CACHE).map_err(io)?;
        tx.commit().map_err(io)?;
        Ok(EmbeddedStore { db, clock: Arc::new(SystemClock) })
    }

    /// Times cache expiry with `clock` (default: the system clock).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> EmbeddedStore {
        self.clock = clock;
        self
    }

    /// Number of stored samples.
    pub fn count(&self) -> Result<u64, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        tx.open_table(IDS).map_err(io)?.len().map_err(io)
    }
}

fn matches(q: &HistoryQuery, s: &Sample) -> bool {
    q.build_id.as_ref().is_none_or(|b| *b == s.build_id)
        && q.source_id.as_ref().is_none_or(|x| *x == s.source_id)
        && q.layer.is_none_or(|l| l == s.layer)
}

impl HistoryStore for EmbeddedStore {
    fn store_batch(&self, samples: &[StoredSample]) -> Result<StoreReport, BackendError> {
        let mut report = StoreReport::default();
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(SAMPLES).map_err(io)?;
            let mut ids = tx.open_table(IDS).map_err(io)?;
            for s in samples {
                if ids.get(s.id.as_str()).map_err(io)?.is_some() {
                    report.already_stored += 1;
                    continue;
                }
                let t = s.sample.timestamp.as_nanos();
                let bytes = bincode::serde::encode_to_vec(&s.sample, bincode::config::standard()).map_err(corrupt)?;
                table.insert((t, s.id.as_str()), bytes.as_slice()).map_err(io)?;
                ids.insert(s.id.as_str(), t).map_err(io)?;
                report.inserted += 1;
            }
        }
        tx.commit().map_err(io)?;
        Ok(report)
    }

    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<StoredSample>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(SAMPLES).map_err(io)?;
        let mut out = Vec::new();
        let mut skipped = 0;
        let range = table.range((q.start.as_nanos(), "")..(q.end.as_nanos(), "")).map_err(io)?;
        for entry in range {
            let (key, value) = entry.map_err(io)?;
            let (sample, _): (Sample, usize) =
                bincode::serde::decode_from_slice(value.value(), bincode::config::standard()).map_err(corrupt)?;
            if !matches(q, &sample) {
                continue;
            }
            if skipped < q.skip {
                skipped += 1;
                continue;
            }
            out.push(StoredSample { id: key.value().1.to_owned(), sample });
            if out.len() >= q.limit {
                break;
            }
        }
        Ok(out)
    }

    fn stored_ids(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(IDS).map_err(io)?;
        ids.iter().map(|id| table.get(id.as_str()).map(|v| v.is_some()).map_err(io)).collect()
    }

    fn delete_old_data(&self, older_than: Timestamp) -> Result<u64, BackendError> {
        let tx = self.db.begin_write().map_err(io)?;
        let mut deleted = 0;
        {
            let mut table = tx.open_table(SAMPLES).map_err(io)?;
            let mut ids = tx.open_table(IDS).map_err(io)?;
            let old: Vec<(i64, String)> = table
                .range((i64::MIN, "")..(older_than.as_nanos(), ""))
                .map_err(io)?
                .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_owned())))
                .collect::<Result<_, _>>()
                .map_err(io)?;
            for (t, id) in old {
                table.remove((t, id.as_str())).map_err(io)?;
                ids.remove(id.as_str()).map_err(io)?;
                deleted += 1;
            }
        }
        tx.commit().map_err(io)?;
        Ok(deleted)
    }
}

impl OffsetStore for EmbeddedStore {
    fn load_offsets(&self, group: &str, topic: &str) -> Result<Vec<LogPosition>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(OFFSETS).map_err(io)?;
        let mut out = Vec::new();
        for entry in table.range((group, topic, i32::MIN)..=(group, topic, i32::MAX)).map_err(io)? {
            let (k, v) = entry.map_err(io)?;
            out.push(LogPosition { topic: topic.to_owned(), partition: k.value().2, next_offset: v.value() });
        }
        Ok(out)
    }

    fn store_offsets(&self, group: &str, positions: &[LogPosition]) -> Result<(), BackendError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(OFFSETS).map_err(io)?;
            for c in positions {
                table.insert((group, c.topic.as_str(), c.partition), c.next_offset).map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }
}

impl Cache for EmbeddedStore {
    fn put(&self, key: &str, value: &Value, ttl: Duration) -> Result<(), BackendError> {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(corrupt)?;
        let expires = (self.clock.now() + ttl).as_nanos();
        let tx = self.db.begin_write().map_err(io)?;
        tx.open_table(CACHE).map_err(io)?.insert(key, (expires, bytes.as_slice())).map_err(io)?;
        tx.commit().map_err(io)
    }

    fn get(&self, key: &str) -> Result<Option<Value>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(CACHE).map_err(io)?;
        let Some(entry) = table.get(key).map_err(io)? else { return Ok(None) };
        let (expires, bytes) = entry.value();
        if expires <= self.clock.now().as_nanos() {
            return Ok(None);
        }
        bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| Some(v)).map_err(corrupt)
    }
}
