//! `EmbeddedStore`: crash-safe history and offsets on local disk (redb), for zero-service runs.
//!
//! Tables: buckets (see `qadf_core_types::bucket`) keyed by (start ns, id) so time ranges are
//! ordered scans, each value (end ns, count, bincode of the bucket) so a scan skips buckets
//! ending before the range and counts whole ones without decoding them; an id index (id →
//! start) that makes storing idempotent; offsets keyed by (group, topic, partition); cache
//! entries (the live view's latest state) with their expiry. A file written by a version that
//! kept one record per sample (table `samples`) is refused with an error saying so.
//! Every call is one redb transaction, committed durably before it returns.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use qadf_core_types::bucket::Bucket;
use qadf_core_types::history::{answer, scan_start};
use qadf_core_types::{
    BackendError, BackendErrorKind, Cache, Clock, HistoryQuery, HistoryStore, LayerReport, LayerReportStore,
    LogPosition, OffsetStore, Sample, StoreReport, SystemClock, Timestamp, Value,
};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};

/// (start ns, id) → (end ns, count, bincode `Bucket`).
const BUCKETS: TableDefinition<(i64, &str), (i64, u32, &[u8])> = TableDefinition::new("buckets");
/// Bucket id → start ns.
const IDS: TableDefinition<&str, i64> = TableDefinition::new("bucket_ids");
/// The table of the per-sample layout of earlier versions.
const OLD_SAMPLES: &str = "samples";
const OFFSETS: TableDefinition<(&str, &str, i32), i64> = TableDefinition::new("offsets");
/// Cache entries: key → (expiry ns, bincode `Value`).
const CACHE: TableDefinition<&str, (i64, &[u8])> = TableDefinition::new("cache");
/// Layer reports as JSON, by (build, layer).
const REPORTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("layer_reports");

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
        if tx.list_tables().map_err(io)?.any(|t| t.name() == OLD_SAMPLES) {
            return Err(BackendError::new(
                BackendErrorKind::Rejected,
                "embedded",
                format!(
                    "{} holds history in the per-sample layout of an earlier version; this version stores \
                     buckets: move the file away (or query it with that version) and start again",
                    path.display()
                ),
            ));
        }
        tx.open_table(BUCKETS).map_err(io)?;
        tx.open_table(IDS).map_err(io)?;
        tx.open_table(OFFSETS).map_err(io)?;
        tx.open_table(CACHE).map_err(io)?;
        tx.open_table(REPORTS).map_err(io)?;
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
        self.count_samples(&HistoryQuery::all())
    }

    /// Calls `f` with the buckets that may overlap `q`'s time range, in (start, id) order,
    /// decoded lazily (those ending before the range are passed over undecoded).
    fn with_buckets<T>(
        &self,
        q: &HistoryQuery,
        f: impl FnOnce(&mut dyn Iterator<Item = Result<Bucket, BackendError>>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(BUCKETS).map_err(io)?;
        let start = q.start.as_nanos();
        let mut buckets =
            table.range((scan_start(q), "")..(q.end.as_nanos(), "")).map_err(io)?.filter_map(|e| match e {
                Err(e) => Some(Err(io(e))),
                Ok((_, value)) => {
                    let (end, _, record) = value.value();
                    (end >= start).then(|| decode(record))
                }
            });
        f(&mut buckets)
    }
}

fn decode(record: &[u8]) -> Result<Bucket, BackendError> {
    bincode::serde::decode_from_slice(record, bincode::config::standard()).map(|(b, _)| b).map_err(corrupt)
}

impl HistoryStore for EmbeddedStore {
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError> {
        let mut report = StoreReport::default();
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(BUCKETS).map_err(io)?;
            let mut ids = tx.open_table(IDS).map_err(io)?;
            for b in buckets {
                if ids.get(b.id.as_str()).map_err(io)?.is_some() {
                    report.already_stored += u64::from(b.count);
                    continue;
                }
                let record = bincode::serde::encode_to_vec(b, bincode::config::standard()).map_err(corrupt)?;
                let start = b.start.as_nanos();
                table.insert((start, b.id.as_str()), (b.end.as_nanos(), b.count, record.as_slice())).map_err(io)?;
                ids.insert(b.id.as_str(), start).map_err(io)?;
                report.inserted += u64::from(b.count);
            }
        }
        tx.commit().map_err(io)?;
        Ok(report)
    }

    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<Sample>, BackendError> {
        self.with_buckets(q, |buckets| answer(q, buckets))
    }

    fn count_samples(&self, q: &HistoryQuery) -> Result<u64, BackendError> {
        self.with_buckets(q, |buckets| buckets.map(|b| b?.count_in(q)).sum())
    }

    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(IDS).map_err(io)?;
        ids.iter().map(|id| table.get(id.as_str()).map(|v| v.is_some()).map_err(io)).collect()
    }

    fn delete_old_data(&self, older_than: Timestamp) -> Result<u64, BackendError> {
        let tx = self.db.begin_write().map_err(io)?;
        let mut deleted = 0;
        {
            let mut table = tx.open_table(BUCKETS).map_err(io)?;
            let mut ids = tx.open_table(IDS).map_err(io)?;
            let mut old: Vec<(i64, String, u32)> = Vec::new();
            for entry in table.range((i64::MIN, "")..(older_than.as_nanos(), "")).map_err(io)? {
                let (key, value) = entry.map_err(io)?;
                let (end, count, _) = value.value();
                if end < older_than.as_nanos() {
                    old.push((key.value().0, key.value().1.to_owned(), count));
                }
            }
            for (start, id, count) in old {
                table.remove((start, id.as_str())).map_err(io)?;
                ids.remove(id.as_str()).map_err(io)?;
                deleted += u64::from(count);
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

impl LayerReportStore for EmbeddedStore {
    fn store_layer_reports(&self, reports: &[LayerReport]) -> Result<(), BackendError> {
        let tx = self.db.begin_write().map_err(io)?;
        {
            let mut table = tx.open_table(REPORTS).map_err(io)?;
            for r in reports {
                let json = serde_json::to_vec(r).map_err(corrupt)?;
                table.insert((r.build_id.as_str(), r.layer), json.as_slice()).map_err(io)?;
            }
        }
        tx.commit().map_err(io)
    }

    fn layer_reports(&self, build_id: &str) -> Result<Vec<LayerReport>, BackendError> {
        let tx = self.db.begin_read().map_err(io)?;
        let table = tx.open_table(REPORTS).map_err(io)?;
        let mut out = Vec::new();
        for entry in table.range((build_id, 0)..=(build_id, u32::MAX)).map_err(io)? {
            let (_, v) = entry.map_err(io)?;
            out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
        }
        Ok(out)
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
