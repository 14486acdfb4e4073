//! `MongoStore`: history and offsets in MongoDB through the sync driver.
//!
//! Document per sample: `_id` (the sample's origin id, so a replay stores nothing twice),
//! `timestamp` (BSON UTC datetime, ms, for people and TTL indexes), `timestamp_ns` (exact order),
//! `build_id`, `source_id`, `layer`, `position` (`[x, y, z]` or null), `signals` (name → number).
//! Writes are unordered `insert_many` calls of `storage_batch_size` documents; duplicate-key
//! errors (code 11000) count as already stored, any other error fails the call.

use std::time::Duration;

use mongodb::IndexModel;
use mongodb::bson::{Bson, DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::sync::{Client, Collection};
use qadf_core_types::{
    BackendError, BackendErrorKind, HistoryQuery, HistoryStore, LogPosition, OffsetStore, Point3, Sample, Signals,
    StoreReport, StoredSample, StreamingConfig, Timestamp,
};

const DUPLICATE_KEY: i32 = 11000;

/// What `MongoStore::statistics` reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoreStatistics {
    /// Whether the server answered.
    pub reachable: bool,
    /// Stored samples.
    pub documents: u64,
    /// Index names of the sample collection.
    pub indexes: Vec<String>,
    /// Why it is unreachable, if it is.
    pub error: Option<String>,
}

/// Samples and offsets in one MongoDB database.
pub struct MongoStore {
    database: String,
    samples: Collection<Document>,
    offsets: Collection<Document>,
    batch_size: usize,
}

/// Server error codes that a retry can outlive (shutdown, step-down, elections, timeouts, network).
const TRANSIENT_CODES: &[i32] =
    &[6, 7, 50, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 63, 150, 234, 46841];

/// Classifies a driver error: the network, server selection, pool resets and the transient server
/// codes are `Unavailable` (retried); bad documents (BSON encoding), invalid arguments,
/// authentication and every other server refusal are `Rejected` (retrying cannot help).
fn classify(e: mongodb::error::Error) -> BackendError {
    use mongodb::error::ErrorKind as K;
    let transient = match e.kind.as_ref() {
        K::Io(_) | K::ServerSelection { .. } | K::ConnectionPoolCleared { .. } | K::DnsResolve { .. } => true,
        K::Command(c) => TRANSIENT_CODES.contains(&c.code),
        K::Write(mongodb::error::WriteFailure::WriteConcernError(_)) => true,
        K::InvalidArgument { .. }
        | K::BsonSerialization(_)
        | K::BsonDeserialization(_)
        | K::Authentication { .. }
        | K::InvalidTlsConfig { .. }
        | K::IncompatibleServer { .. }
        | K::Write(_)
        | K::BulkWrite(_) => false,
        K::InsertMany(f) => f.write_concern_error.is_some(),
        _ => e.contains_label("RetryableWriteError") || e.contains_label("TransientTransactionError"),
    };
    let kind = if transient { BackendErrorKind::Unavailable } else { BackendErrorKind::Rejected };
    BackendError::new(kind, "mongodb", e.to_string())
}

fn corrupt(e: impl std::fmt::Display) -> BackendError {
    BackendError::new(BackendErrorKind::Corrupt, "mongodb", e.to_string())
}

impl MongoStore {
    /// Connects with the configured URI, database and collection (`<collection>_offsets` holds offsets).
    pub fn connect(config: &StreamingConfig, timeout: Duration) -> Result<MongoStore, BackendError> {
        let sep = if config.mongodb_uri.contains('?') { '&' } else { '?' };
        let uri = format!("{}{sep}serverSelectionTimeoutMS={}", config.mongodb_uri, timeout.as_millis());
        let client = Client::with_uri_str(&uri)
            .map_err(|e| BackendError::new(BackendErrorKind::Rejected, "mongodb", format!("bad URI: {e}")))?;
        let db = client.database(&config.mongodb_database);
        Ok(MongoStore {
            database: config.mongodb_database.clone(),
            samples: db.collection(&config.mongodb_collection),
            offsets: db.collection(&format!("{}_offsets", config.mongodb_collection)),
            batch_size: config.storage_batch_size.max(1),
        })
    }

    /// Creates the query indexes (time; build + time; source + time) and, when `retention` is
    /// given, a TTL index that lets the server delete samples older than it.
    pub fn create_time_series_index(&self, retention: Option<Duration>) -> Result<Vec<String>, BackendError> {
        let mut models = vec![
            IndexModel::builder().keys(doc! { "timestamp_ns": 1 }).build(),
            IndexModel::builder().keys(doc! { "build_id": 1, "timestamp_ns": 1 }).build(),
            IndexModel::builder().keys(doc! { "source_id": 1, "timestamp_ns": 1 }).build(),
        ];
        if let Some(keep) = retention {
            let options = IndexOptions::builder().expire_after(keep).build();
            models.push(IndexModel::builder().keys(doc! { "timestamp": 1 }).options(options).build());
        }
        self.samples.create_indexes(models).run().map_err(classify)?;
        self.index_names()
    }

    /// Names of the sample collection's indexes.
    pub fn index_names(&self) -> Result<Vec<String>, BackendError> {
        self.samples.list_index_names().run().map_err(classify)
    }

    /// Number of stored samples.
    pub fn count(&self) -> Result<u64, BackendError> {
        self.samples.count_documents(doc! {}).run().map_err(classify)
    }

    /// Document count, index names and whether the server answers (an unreachable server is
    /// reported as `reachable: false`, not as an error).
    pub fn statistics(&self) -> StoreStatistics {
        match (self.count(), self.index_names()) {
            (Ok(documents), Ok(indexes)) => StoreStatistics { reachable: true, documents, indexes, error: None },
            (Err(e), _) | (_, Err(e)) => {
                StoreStatistics { reachable: false, documents: 0, indexes: Vec::new(), error: Some(e.to_string()) }
            }
        }
    }

    /// The database and sample collection names.
    pub fn names(&self) -> (&str, &str) {
        (&self.database, self.samples.name())
    }

    /// Drops the sample and offset collections (tests and resets).
    pub fn drop_all(&self) -> Result<(), BackendError> {
        self.samples.drop().run().map_err(classify)?;
        self.offsets.drop().run().map_err(classify)
    }
}

fn to_document(s: &StoredSample) -> Document {
    let sample = &s.sample;
    let mut signals = Document::new();
    for (name, value) in sample.signals.iter() {
        signals.insert(name, value);
    }
    doc! {
        "_id": &s.id,
        "timestamp": DateTime::from_millis(sample.timestamp.as_nanos().div_euclid(1_000_000)),
        "timestamp_ns": sample.timestamp.as_nanos(),
        "build_id": &sample.build_id,
        "source_id": &sample.source_id,
        "layer": i64::from(sample.layer),
        "position": sample.position.map_or(Bson::Null, |p| Bson::Array(vec![p.x.into(), p.y.into(), p.z.into()])),
        "signals": signals,
    }
}

fn from_document(d: &Document) -> Result<StoredSample, BackendError> {
    let position = match d.get("position") {
        Some(Bson::Array(a)) if a.len() == 3 => {
            let c: Vec<f64> = a
                .iter()
                .map(|b| b.as_f64().ok_or_else(|| corrupt("position is not numeric")))
                .collect::<Result<_, _>>()?;
            Some(Point3::new(c[0], c[1], c[2]))
        }
        _ => None,
    };
    let mut signals = Signals::new();
    for (name, value) in d.get_document("signals").map_err(corrupt)? {
        signals.push(name, value.as_f64().ok_or_else(|| corrupt(format!("signal {name} is not a double")))?);
    }
    Ok(StoredSample {
        id: d.get_str("_id").map_err(corrupt)?.to_owned(),
        sample: Sample {
            build_id: d.get_str("build_id").map_err(corrupt)?.to_owned(),
            source_id: d.get_str("source_id").map_err(corrupt)?.to_owned(),
            layer: u32::try_from(d.get_i64("layer").map_err(corrupt)?).map_err(corrupt)?,
            timestamp: Timestamp::from_nanos(d.get_i64("timestamp_ns").map_err(corrupt)?),
            position,
            signals,
        },
    })
}

impl HistoryStore for MongoStore {
    fn store_batch(&self, samples: &[StoredSample]) -> Result<StoreReport, BackendError> {
        let mut report = StoreReport::default();
        for chunk in samples.chunks(self.batch_size) {
            let docs: Vec<Document> = chunk.iter().map(to_document).collect();
            match self.samples.insert_many(docs).ordered(false).run() {
                Ok(r) => report.inserted += r.inserted_ids.len() as u64,
                Err(e) => match *e.kind {
                    mongodb::error::ErrorKind::InsertMany(ref failure) if failure.write_concern_error.is_none() => {
                        let errors = failure.write_errors.as_deref().unwrap_or_default();
                        if let Some(other) = errors.iter().find(|w| w.code != DUPLICATE_KEY) {
                            return Err(BackendError::new(
                                BackendErrorKind::Rejected,
                                "mongodb",
                                other.message.clone(),
                            ));
                        }
                        report.already_stored += errors.len() as u64;
                        report.inserted += (chunk.len() - errors.len()) as u64;
                    }
                    _ => return Err(classify(e)),
                },
            }
        }
        Ok(report)
    }

    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<StoredSample>, BackendError> {
        let mut filter = doc! { "timestamp_ns": { "$gte": q.start.as_nanos(), "$lt": q.end.as_nanos() } };
        if let Some(b) = &q.build_id {
            filter.insert("build_id", b);
        }
        if let Some(s) = &q.source_id {
            filter.insert("source_id", s);
        }
        if let Some(l) = q.layer {
            filter.insert("layer", i64::from(l));
        }
        let mut find = self.samples.find(filter).sort(doc! { "timestamp_ns": 1, "_id": 1 }).skip(q.skip as u64);
        if q.limit < i64::MAX as usize {
            find = find.limit(q.limit as i64);
        }
        let cursor = find.run().map_err(classify)?;
        cursor.map(|d| d.map_err(classify).and_then(|d| from_document(&d))).collect()
    }

    fn stored_ids(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        let mut found = std::collections::HashSet::new();
        // Small `$in` lists: some servers (SecantusDB) slow down sharply with long ones.
        for chunk in ids.chunks(100) {
            let cursor = self
                .samples
                .find(doc! { "_id": { "$in": chunk } })
                .projection(doc! { "_id": 1 })
                .run()
                .map_err(classify)?;
            for d in cursor {
                found.insert(d.map_err(classify)?.get_str("_id").map_err(corrupt)?.to_owned());
            }
        }
        Ok(ids.iter().map(|id| found.contains(id)).collect())
    }

    fn delete_old_data(&self, older_than: Timestamp) -> Result<u64, BackendError> {
        let r = self
            .samples
            .delete_many(doc! { "timestamp_ns": { "$lt": older_than.as_nanos() } })
            .run()
            .map_err(classify)?;
        Ok(r.deleted_count)
    }
}

impl OffsetStore for MongoStore {
    fn load_offsets(&self, group: &str, topic: &str) -> Result<Vec<LogPosition>, BackendError> {
        let cursor = self
            .offsets
            .find(doc! { "group": group, "topic": topic })
            .sort(doc! { "partition": 1 })
            .run()
            .map_err(classify)?;
        cursor
            .map(|d| {
                let d = d.map_err(classify)?;
                Ok(LogPosition {
                    topic: topic.to_owned(),
                    partition: d.get_i32("partition").map_err(corrupt)?,
                    next_offset: d.get_i64("next_offset").map_err(corrupt)?,
                })
            })
            .collect()
    }

    fn store_offsets(&self, group: &str, positions: &[LogPosition]) -> Result<(), BackendError> {
        for c in positions {
            let id = format!("{group}/{}/{}", c.topic, c.partition);
            let document = doc! { "_id": &id, "group": group, "topic": &c.topic, "partition": c.partition, "next_offset": c.next_offset };
            self.offsets.replace_one(doc! { "_id": &id }, document).upsert(true).run().map_err(classify)?;
        }
        Ok(())
    }
}
