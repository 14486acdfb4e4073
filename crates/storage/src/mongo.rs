//! `MongoStore`: history and offsets in MongoDB through the sync driver.
//!
//! Document per bucket (see `qadf_core_types::bucket` and docs/HISTORY.md): `_id` (the bucket's
//! deterministic id, so a replay stores nothing twice), `build_id`, `source_id`, `layer`,
//! `start` / `end` (BSON UTC datetimes, ms, for people and the TTL index), `start_ns` / `end_ns`
//! (exact), `count`, `has_position`, `signals` (names in column order), `tags` (a sub-document
//! of the samples' tags, `{}` for none), `summaries` (per signal
//! `{name, min, max, sum}`), `columns` (binary: the pcodec columns). Writes are unordered
//! `insert_many` calls of `storage_batch_size` documents; duplicate-key errors (code 11000)
//! count as already stored, any other error fails the call.

use std::time::Duration;

use mongodb::IndexModel;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::sync::{Client, Collection};
use qadf_core_types::bucket::{Bucket, BucketKey, SignalSummary};
use qadf_core_types::history::{answer, scan_start};
use qadf_core_types::{
    BackendError, BackendErrorKind, HistoryQuery, HistoryStore, LayerReport, LayerReportStore, LogPosition,
    OffsetStore, Sample, StoreReport, StreamingConfig, Tags, Timestamp,
};

const DUPLICATE_KEY: i32 = 11000;

/// What `MongoStore::statistics` reports.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoreStatistics {
    /// Whether the server answered.
    pub reachable: bool,
    /// Stored bucket documents.
    pub documents: u64,
    /// Index names of the sample collection.
    pub indexes: Vec<String>,
    /// Why it is unreachable, if it is.
    pub error: Option<String>,
}

/// Samples and offsets in one MongoDB database.
pub struct MongoStore {
    database: String,
    db: mongodb::sync::Database,
    samples: Collection<Document>,
    offsets: Collection<Document>,
    reports: Collection<Document>,
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
            db: db.clone(),
            samples: db.collection(&config.mongodb_collection),
            offsets: db.collection(&format!("{}_offsets", config.mongodb_collection)),
            reports: db.collection(&format!("{}_layer_reports", config.mongodb_collection)),
            batch_size: config.storage_batch_size.max(1),
        })
    }

    /// Creates the query indexes (start time; build + start; source + start) and, when
    /// `retention` is given, a TTL index that lets the server delete buckets that ended longer ago.
    pub fn create_time_series_index(&self, retention: Option<Duration>) -> Result<Vec<String>, BackendError> {
        let mut models = vec![
            IndexModel::builder().keys(doc! { "start_ns": 1 }).build(),
            IndexModel::builder().keys(doc! { "build_id": 1, "start_ns": 1 }).build(),
            IndexModel::builder().keys(doc! { "source_id": 1, "start_ns": 1 }).build(),
        ];
        if let Some(keep) = retention {
            let options = IndexOptions::builder().expire_after(keep).build();
            models.push(IndexModel::builder().keys(doc! { "end": 1 }).options(options).build());
        }
        self.samples.create_indexes(models).run().map_err(classify)?;
        self.index_names()
    }

    /// Names of the sample collection's indexes.
    pub fn index_names(&self) -> Result<Vec<String>, BackendError> {
        self.samples.list_index_names().run().map_err(classify)
    }

    /// Asks the server for `ping` (a health probe; fails after the connect timeout when unreachable).
    pub fn ping(&self) -> Result<(), BackendError> {
        self.db.run_command(doc! { "ping": 1 }).run().map(|_| ()).map_err(classify)
    }

    /// Number of stored samples.
    pub fn count(&self) -> Result<u64, BackendError> {
        self.count_samples(&HistoryQuery::all())
    }

    /// Number of stored bucket documents.
    pub fn bucket_count(&self) -> Result<u64, BackendError> {
        self.samples.count_documents(doc! {}).run().map_err(classify)
    }

    /// The sum of `count` over the buckets matching `filter` (only `count` is read).
    fn sum_counts(&self, filter: Document) -> Result<u64, BackendError> {
        let cursor = self.samples.find(filter).projection(doc! { "count": 1 }).run().map_err(classify)?;
        let mut n = 0u64;
        for d in cursor {
            n += u64::try_from(d.map_err(classify)?.get_i64("count").map_err(corrupt)?).map_err(corrupt)?;
        }
        Ok(n)
    }

    /// The buckets matching `filter`, by start then id, decoded as the cursor is read.
    fn find_buckets(
        &self,
        filter: Document,
    ) -> Result<impl Iterator<Item = Result<Bucket, BackendError>>, BackendError> {
        let cursor = self.samples.find(filter).sort(doc! { "start_ns": 1, "_id": 1 }).run().map_err(classify)?;
        Ok(cursor.map(|d| d.map_err(classify).and_then(|d| from_document(&d))))
    }

    /// Document count, index names and whether the server answers (an unreachable server is
    /// reported as `reachable: false`, not as an error).
    pub fn statistics(&self) -> StoreStatistics {
        match (self.bucket_count(), self.index_names()) {
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
        self.reports.drop().run().map_err(classify)?;
        self.offsets.drop().run().map_err(classify)
    }
}

fn datetime(t: Timestamp) -> DateTime {
    DateTime::from_millis(t.as_nanos().div_euclid(1_000_000))
}

fn to_document(b: &Bucket) -> Document {
    let summaries: Vec<Document> =
        b.summaries.iter().map(|s| doc! { "name": &s.name, "min": s.min, "max": s.max, "sum": s.sum }).collect();
    doc! {
        "_id": &b.id,
        "build_id": &b.key.build_id,
        "source_id": &b.key.source_id,
        "layer": i64::from(b.key.layer),
        "start": datetime(b.start),
        "end": datetime(b.end),
        "start_ns": b.start.as_nanos(),
        "end_ns": b.end.as_nanos(),
        "count": i64::from(b.count),
        "has_position": b.key.has_position,
        "signals": &b.key.signals,
        "tags": b.key.tags.iter().map(|(n, v)| (n.to_owned(), mongodb::bson::Bson::from(v))).collect::<Document>(),
        "summaries": summaries,
        "columns": mongodb::bson::Binary { subtype: BinarySubtype::Generic, bytes: b.columns.clone() },
    }
}

fn from_document(d: &Document) -> Result<Bucket, BackendError> {
    let int = |field: &str| d.get_i64(field).map_err(corrupt);
    let text = |field: &str| d.get_str(field).map(str::to_owned).map_err(corrupt);
    let signals: Vec<String> = d
        .get_array("signals")
        .map_err(corrupt)?
        .iter()
        .map(|n| n.as_str().map(str::to_owned).ok_or_else(|| corrupt("a signal name is not a string")))
        .collect::<Result<_, _>>()?;
    // Buckets written before tags existed have no `tags` field: no tags.
    let tags: Tags = match d.get_document("tags") {
        Ok(t) => t
            .iter()
            .map(|(n, v)| v.as_str().map(|v| (n.clone(), v.to_owned())).ok_or_else(|| corrupt("a tag is not a string")))
            .collect::<Result<_, _>>()?,
        Err(_) => Tags::new(),
    };
    let summaries: Vec<SignalSummary> = d
        .get_array("summaries")
        .map_err(corrupt)?
        .iter()
        .map(|s| {
            let s = s.as_document().ok_or_else(|| corrupt("a summary is not a document"))?;
            let number = |f: &str| s.get_f64(f).map_err(corrupt);
            Ok(SignalSummary {
                name: s.get_str("name").map_err(corrupt)?.to_owned(),
                min: number("min")?,
                max: number("max")?,
                sum: number("sum")?,
            })
        })
        .collect::<Result<_, BackendError>>()?;
    Ok(Bucket {
        id: text("_id")?,
        key: BucketKey {
            build_id: text("build_id")?,
            source_id: text("source_id")?,
            layer: u32::try_from(int("layer")?).map_err(corrupt)?,
            has_position: d.get_bool("has_position").map_err(corrupt)?,
            signals,
            tags,
        },
        start: Timestamp::from_nanos(int("start_ns")?),
        end: Timestamp::from_nanos(int("end_ns")?),
        count: u32::try_from(int("count")?).map_err(corrupt)?,
        summaries,
        columns: d.get_binary_generic("columns").map_err(corrupt)?.clone(),
    })
}

/// The build, source, layer and tag conditions of `q`, added to `filter`.
fn with_key(mut filter: Document, q: &HistoryQuery) -> Document {
    if let Some(b) = &q.build_id {
        filter.insert("build_id", b);
    }
    if let Some(s) = &q.source_id {
        filter.insert("source_id", s);
    }
    if let Some(l) = q.layer {
        filter.insert("layer", i64::from(l));
    }
    for (name, value) in &q.tags {
        filter.insert(format!("tags.{name}"), value);
    }
    filter
}

impl HistoryStore for MongoStore {
    fn store_buckets(&self, buckets: &[Bucket]) -> Result<StoreReport, BackendError> {
        let mut report = StoreReport::default();
        for chunk in buckets.chunks(self.batch_size) {
            let docs: Vec<Document> = chunk.iter().map(to_document).collect();
            let all: u64 = chunk.iter().map(|b| u64::from(b.count)).sum();
            match self.samples.insert_many(docs).ordered(false).run() {
                Ok(_) => report.inserted += all,
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
                        let duplicate: u64 =
                            errors.iter().filter_map(|w| chunk.get(w.index)).map(|b| u64::from(b.count)).sum();
                        report.already_stored += duplicate;
                        report.inserted += all - duplicate;
                    }
                    _ => return Err(classify(e)),
                },
            }
        }
        Ok(report)
    }

    fn query_stream_history(&self, q: &HistoryQuery) -> Result<Vec<Sample>, BackendError> {
        let filter = doc! {
            "start_ns": { "$gte": scan_start(q), "$lt": q.end.as_nanos() },
            "end_ns": { "$gte": q.start.as_nanos() },
        };
        answer(q, self.find_buckets(with_key(filter, q))?)
    }

    fn count_samples(&self, q: &HistoryQuery) -> Result<u64, BackendError> {
        let (start, end) = (q.start.as_nanos(), q.end.as_nanos());
        // Wholly inside: their counts. Across an edge (two disjoint ranges of start): decoded.
        let mut n = self.sum_counts(with_key(doc! { "start_ns": { "$gte": start }, "end_ns": { "$lt": end } }, q))?;
        let edges = [
            doc! { "start_ns": { "$gte": scan_start(q), "$lt": start }, "end_ns": { "$gte": start } },
            doc! { "start_ns": { "$gte": start, "$lt": end }, "end_ns": { "$gte": end } },
        ];
        for filter in edges {
            for bucket in self.find_buckets(with_key(filter, q))? {
                n += bucket?.count_in(q)?;
            }
        }
        Ok(n)
    }

    fn stored_buckets(&self, ids: &[String]) -> Result<Vec<bool>, BackendError> {
        let found = self.existing(ids)?;
        Ok(ids.iter().map(|id| found.contains(id)).collect())
    }

    fn delete_old_data(&self, older_than: Timestamp) -> Result<u64, BackendError> {
        let filter = doc! { "end_ns": { "$lt": older_than.as_nanos() } };
        let cursor = self.samples.find(filter).projection(doc! { "_id": 1, "count": 1 }).run().map_err(classify)?;
        let mut old: Vec<(String, u64)> = Vec::new();
        for d in cursor {
            let d = d.map_err(classify)?;
            let count = u64::try_from(d.get_i64("count").map_err(corrupt)?).map_err(corrupt)?;
            old.push((d.get_str("_id").map_err(corrupt)?.to_owned(), count));
        }
        for chunk in old.chunks(100) {
            let ids: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
            self.samples.delete_many(doc! { "_id": { "$in": ids } }).run().map_err(classify)?;
        }
        Ok(old.iter().map(|(_, n)| n).sum())
    }
}

impl MongoStore {
    /// Which of `ids` are stored, asked in small `$in` lists (some servers, SecantusDB among
    /// them, slow down sharply with long ones).
    fn existing(&self, ids: &[String]) -> Result<std::collections::HashSet<String>, BackendError> {
        let mut found = std::collections::HashSet::new();
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
        Ok(found)
    }
}

/// Layer reports, one document each: `_id` = `<build>/<layer>`, the report's fields beside it
/// (times as RFC 3339 text, as in the JSON everywhere else).
impl LayerReportStore for MongoStore {
    fn store_layer_reports(&self, reports: &[LayerReport]) -> Result<(), BackendError> {
        for r in reports {
            let id = format!("{}/{}", r.build_id, r.layer);
            let mut document = mongodb::bson::to_document(r).map_err(corrupt)?;
            document.insert("_id", &id);
            self.reports.replace_one(doc! { "_id": &id }, document).upsert(true).run().map_err(classify)?;
        }
        Ok(())
    }

    fn layer_reports(&self, build_id: &str) -> Result<Vec<LayerReport>, BackendError> {
        let cursor =
            self.reports.find(doc! { "build_id": build_id }).sort(doc! { "layer": 1 }).run().map_err(classify)?;
        cursor
            .map(|d| {
                let mut d = d.map_err(classify)?;
                d.remove("_id");
                mongodb::bson::from_document(d).map_err(corrupt)
            })
            .collect()
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
