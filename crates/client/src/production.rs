//! The production modes of the CLI: `run` (Kafka → StreamingClient → stores), `produce-sim` (the
//! simulator as a Kafka producer) and `query` (history as a table or JSON).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use qadf_core_types::{
    BackendError, Cache, Codec, HistoryQuery, HistoryStore, LayerReport, LayerReportStore, MessageSink, MessageSource,
    OffsetStore, OutgoingMessage, PartitionAssignment, Sample, SampleBatch, StreamingConfig, Timestamp,
};
use qadf_kafka_io::{
    AlertSink, Assignment, ConsumerConfig, DeadLetterSink, GroupConfig, GroupConsumer, KafkaConsumer, KafkaProducer,
    Security, SharedStatistics,
};
use qadf_storage::{EmbeddedStore, LiveView, MongoStore, RedisCache};

use qadf_client::builds::BuildState;
use qadf_client::dashboard::{DashboardServer, LiveFeed, LiveOptions};
use qadf_client::logging::Logger;
use qadf_client::ops::health::Ping;
use qadf_client::ops::metrics::LiveViewCounters;
use qadf_client::ops::{Health, OpsRoutes, Sources};
use qadf_client::sim::{SimConfig, Simulator};
use qadf_client::{ConsumerReport, ConsumerSinks, Ingest, StreamingClient};

/// The history/offset backend chosen by the configuration.
pub enum Stores {
    /// MongoDB (`enable_mongodb_storage = true`).
    Mongo(Arc<MongoStore>),
    /// The embedded redb file under a data directory.
    Embedded(Arc<EmbeddedStore>),
}

impl Stores {
    /// MongoDB when enabled, otherwise `<data_dir>/history.redb`.
    pub fn open(config: &StreamingConfig, data_dir: &Path) -> Result<Stores, BackendError> {
        if config.enable_mongodb_storage {
            let store = MongoStore::connect(config, Duration::from_secs(10))?;
            store.create_time_series_index(retention(config))?;
            Ok(Stores::Mongo(Arc::new(store)))
        } else {
            std::fs::create_dir_all(data_dir).map_err(|e| {
                BackendError::new(qadf_core_types::BackendErrorKind::Unavailable, "embedded", e.to_string())
            })?;
            Ok(Stores::Embedded(Arc::new(EmbeddedStore::open(&data_dir.join("history.redb"))?)))
        }
    }

    /// The history store.
    pub fn history(&self) -> Arc<dyn HistoryStore> {
        match self {
            Stores::Mongo(m) => m.clone(),
            Stores::Embedded(e) => e.clone(),
        }
    }

    /// Where layer reports are kept (beside the history).
    pub fn reports(&self) -> Arc<dyn LayerReportStore> {
        match self {
            Stores::Mongo(m) => m.clone(),
            Stores::Embedded(e) => e.clone(),
        }
    }

    /// The offset store.
    pub fn offsets(&self) -> Arc<dyn OffsetStore> {
        match self {
            Stores::Mongo(m) => m.clone(),
            Stores::Embedded(e) => e.clone(),
        }
    }
}

/// How long history is kept (`history_retention_seconds`; `None`: everything).
fn retention(config: &StreamingConfig) -> Option<Duration> {
    (config.history_retention_seconds > 0).then(|| Duration::from_secs(config.history_retention_seconds))
}

/// How often the Redis live view is rewritten (only the builds that changed).
const LIVE_VIEW_EVERY: Duration = Duration::from_millis(500);

/// A build's `<prefix>:<build>:latest` value: its state and the stream's statistics.
#[derive(serde::Serialize)]
struct Latest<'a> {
    #[serde(flatten)]
    state: &'a BuildState,
    /// The newest sample's time, RFC 3339.
    newest_sample: Option<String>,
    /// When its last batch was processed, RFC 3339.
    last_update: String,
    /// The whole stream's statistics (every build together).
    statistics: &'a qadf_core_types::StreamStatistics,
}

/// Writes the Redis live view on its own thread from the client's build table, so a slow or
/// absent cache never holds up the consumer: every [`LIVE_VIEW_EVERY`], for each build that
/// changed, `<prefix>:<build>:latest` and `<prefix>:<build>:alerts`, then `<prefix>:builds`.
/// Failures are counted (metrics, progress line) and the next round tries again.
struct LiveViewWriter {
    stop: Arc<AtomicBool>,
    counters: Arc<LiveViewCounters>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveViewWriter {
    fn spawn(view: LiveView, client: Arc<StreamingClient>, log: Logger) -> LiveViewWriter {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(LiveViewCounters::default());
        let thread = {
            let (stop, counters) = (stop.clone(), counters.clone());
            std::thread::Builder::new()
                .name("qadf-live-view".to_owned())
                .spawn(move || {
                    let mut written = Written::default();
                    loop {
                        let last = stop.load(Ordering::SeqCst);
                        write_live_view(&view, &client, &mut written, &counters, &log);
                        if last {
                            break;
                        }
                        std::thread::sleep(LIVE_VIEW_EVERY);
                    }
                })
                .expect("spawning the live-view writer")
        };
        LiveViewWriter { stop, counters, thread: Some(thread) }
    }

    /// Writes what changed once more and stops.
    fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the live view holds: each build's version last written, and the build list.
#[derive(Default)]
struct Written {
    versions: HashMap<String, u64>,
    index: Vec<String>,
}

/// One round of the live view: the builds whose version moved since last written, then the
/// build list if it changed (a failed write is retried next round).
fn write_live_view(
    view: &LiveView,
    client: &StreamingClient,
    written: &mut Written,
    counters: &LiveViewCounters,
    log: &Logger,
) {
    let builds = client.builds().list();
    let statistics = client.get_stream_statistics();
    let mut failure = None;
    for b in &builds {
        if written.versions.get(&b.build) == Some(&b.version) {
            continue;
        }
        let latest = Latest {
            state: b,
            newest_sample: b.newest_sample_ns.map(|ns| Timestamp::from_nanos(ns).to_string()),
            last_update: Timestamp::from_nanos(b.last_update_ns).to_string(),
            statistics: &statistics,
        };
        let wrote = view
            .publish_latest(&b.build, &latest)
            .and_then(|()| view.publish_alerts(&b.build, &client.builds().recent_alerts(&b.build)));
        match wrote {
            Ok(()) => {
                counters.writes.fetch_add(2, Ordering::Relaxed);
                written.versions.insert(b.build.clone(), b.version);
            }
            Err(e) => {
                // The rest wait for the next round: one round waits out at most one timeout.
                failure = Some(e);
                break;
            }
        }
    }
    // Builds the table forgot are forgotten here too.
    written.versions.retain(|id, _| builds.iter().any(|b| &b.build == id));
    let ids: Vec<String> = builds.iter().map(|b| b.build.clone()).collect();
    if failure.is_none() && ids != written.index {
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        match view.publish_builds(&refs) {
            Ok(()) => {
                counters.writes.fetch_add(1, Ordering::Relaxed);
                written.index = ids;
            }
            Err(e) => failure = Some(e),
        }
    }
    if let Some(e) = failure
        && counters.failed.fetch_add(1, Ordering::Relaxed).is_multiple_of(100)
    {
        log.warn(&format!("live view: {e} (counted; retried next round, the stream goes on)"));
    }
}

/// Options of `run`.
pub struct RunOptions {
    /// This instance and how many share the topic (`None`: all partitions).
    pub instance: Option<(u32, u32)>,
    /// Stop after this long without a message (`None`: run until killed).
    pub exit_when_idle: Option<Duration>,
    /// Where the embedded store lives when MongoDB is disabled.
    pub data_dir: std::path::PathBuf,
    /// Rebuild the voxel grids from the whole history before consuming (after a restart).
    pub restore_voxels: bool,
    /// The monitors' sampling rate, for gap rules given in sample periods.
    pub sample_rate_hz: f64,
    /// The rules file (`None`: `rules_file` of the configuration, else the demo's rules).
    pub rules: Option<std::path::PathBuf>,
    /// Set on SIGTERM or SIGINT: stop fetching, store and commit what is in flight, return.
    pub shutdown: Arc<std::sync::atomic::AtomicBool>,
    /// Set on SIGHUP: reload the rules (they apply from the next batch; the change is logged).
    pub reload: Arc<std::sync::atomic::AtomicBool>,
}

/// What `run` serves on `dashboard_addr`: the live page, `/metrics`, `/health/*`.
struct Served {
    feed: Arc<LiveFeed>,
    server: DashboardServer,
}

/// Starts the health prober: the broker and the store pinged on connections of their own (2 s
/// timeouts), so a hung ping never holds up the stream.
fn start_health(config: &StreamingConfig, stores: &Stores, security: &Security) -> anyhow::Result<Arc<Health>> {
    let health = Health::new(config.ready_max_lag);
    let probe = KafkaProducer::secured(&config.kafka_bootstrap_servers, Duration::from_secs(2), security.clone())?;
    let broker: Ping = Box::new(move || probe.reachable().map_err(|e| e.to_string()));
    let store: Ping = match stores {
        Stores::Mongo(_) => {
            let mongo = MongoStore::connect(config, Duration::from_secs(2))?;
            Box::new(move || mongo.ping().map_err(|e| e.to_string()))
        }
        Stores::Embedded(_) => Box::new(|| Ok(())),
    };
    health.spawn_prober(broker, store)?;
    Ok(health)
}

/// A Kafka connection failure, with where and how `run` tried to connect.
fn kafka_context(config: &StreamingConfig, e: qadf_kafka_io::KafkaError) -> anyhow::Error {
    let how = serde_json::to_value(config.kafka_security_protocol)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    anyhow::anyhow!("Kafka at {} (kafka_security_protocol = {how}): {e}", config.kafka_bootstrap_servers.join(","),)
}

/// The source of `run`: a member of the consumer group, or (with `assignment = "static"` or
/// `--instance`) a consumer of the partitions it is told, offsets in the history store.
fn open_consumer(
    config: &StreamingConfig,
    instance: Option<(u32, u32)>,
    stores: &Stores,
    security: &Security,
    log: &Logger,
) -> anyhow::Result<(Box<dyn MessageSource>, SharedStatistics)> {
    if instance.is_none() && config.assignment == PartitionAssignment::Group {
        let mut group = GroupConfig::from_streaming(config);
        group.consumer.security = security.clone();
        let consumer = GroupConsumer::new(group).map_err(|e| kafka_context(config, e))?;
        log.info(&format!(
            "consuming {} in consumer group {} (partitions assigned by the group, offsets committed to it)",
            config.kafka_topic, config.consumer_group_id
        ));
        let stats = consumer.shared_statistics();
        return Ok((Box::new(consumer), stats));
    }
    let mut consumer_config = ConsumerConfig { security: security.clone(), ..ConsumerConfig::from_streaming(config) };
    if let Some((instance, instances)) = instance {
        consumer_config.assignment = Assignment::InstanceOf { instance, instances };
    }
    let consumer = KafkaConsumer::new(consumer_config, stores.offsets()).map_err(|e| kafka_context(config, e))?;
    log.info(&format!("consuming {} partitions of {}", consumer.assignment().len(), config.kafka_topic));
    let stats = consumer.shared_statistics();
    Ok((Box::new(consumer), stats))
}

/// Consumes the configured topic until idle (or forever), storing history and committing offsets.
pub fn run(config: StreamingConfig, options: RunOptions, log: &Logger) -> anyhow::Result<ConsumerReport> {
    let stores = Stores::open(&config, &options.data_dir)?;
    log.info(&match &stores {
        // The logger masks the URI's password.
        Stores::Mongo(_) => format!("history: MongoDB {} database {}", config.mongodb_uri, config.mongodb_database),
        Stores::Embedded(_) => format!("history: embedded store in {}", options.data_dir.display()),
    });
    let security = Security::from_streaming(&config)?;
    let (consumer, kafka_stats) = open_consumer(&config, options.instance, &stores, &security, log)?;
    let kafka = KafkaProducer::secured(&config.kafka_bootstrap_servers, Duration::from_secs(5), security.clone())?;
    // A dead letter must have somewhere to go before the first bad message arrives.
    kafka.create_topic(&config.dead_letter_topic, 1)?;
    kafka.create_topic(&config.alerts_topic, 1)?;
    kafka.create_topic(&config.layer_reports_topic, 1)?;
    let producer: Arc<dyn MessageSink> = Arc::new(kafka);
    let (producer_for_reports, topic) = (producer.clone(), config.layer_reports_topic.clone());
    let dead_letters = Arc::new(DeadLetterSink::new(producer.clone(), &config.dead_letter_topic));
    let alerts = Arc::new(AlertSink::new(producer, &config.alerts_topic));
    let cache: Option<Arc<dyn Cache>> = if config.enable_redis_cache {
        Some(Arc::new(RedisCache::from_config(&config, Duration::from_secs(2))?))
    } else {
        None
    };
    let view = |cache: &Arc<dyn Cache>| {
        LiveView::new(cache.clone(), &config.redis_key_prefix, Duration::from_secs(config.redis_ttl_seconds as u64))
    };
    let report_view = cache.as_ref().map(view);
    let health = start_health(&config, &stores, &security)?;
    let client = Arc::new(StreamingClient::new(config.clone())?);
    let live = cache.as_ref().map(|c| LiveViewWriter::spawn(view(c), client.clone(), log.clone()));
    let rules = client.load_rules(options.rules.as_deref(), Some(options.sample_rate_hz))?;
    log.info(&format!("rules: {} from {}", rules.rules.len(), rules.origin));
    if options.restore_voxels {
        let history = stores.history().query_stream_history(&HistoryQuery::all())?;
        let n = history.len();
        let applied = client.restore(history)?;
        log.info(&format!("restored the voxel grids and rule state from history: {applied} of {n} stored samples"));
    }
    let served = if config.dashboard_addr.is_empty() {
        None
    } else {
        client.layer_maps().set_history(stores.history());
        let feed = Arc::new(LiveFeed::start(client.clone(), LiveOptions::for_config(&config))?);
        let sources = Sources {
            client: client.clone(),
            kafka: Some(kafka_stats.clone()),
            live_view: live.as_ref().map(|l| l.counters.clone()),
            feed: Some(feed.clone()),
        };
        let routes = Arc::new(OpsRoutes { sources, health: health.clone() });
        let server = DashboardServer::start_with(config.dashboard_addr.as_str(), feed.clone(), Some(routes))
            .map_err(|e| {
                anyhow::anyhow!(
                    "dashboard_addr {}: {e} (set another with --dashboard-addr or QADF_DASHBOARD_ADDR, or \"\" to serve nothing)",
                    config.dashboard_addr
                )
            })?;
        log.info(&format!("serving the live page, /metrics and /health on {}", server.url()));
        Some(Served { feed, server })
    };
    let live_counters = live.as_ref().map(|l| l.counters.clone());
    let last_message = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let closed_layers: Arc<parking_lot::Mutex<Vec<LayerReport>>> = Arc::default();
    let ingest = {
        let (last_message, closed) = (last_message.clone(), closed_layers.clone());
        let feed = served.as_ref().map(|s| s.feed.clone());
        let notices: qadf_client::Notices = {
            let log = log.clone();
            Arc::new(move |line: &str| log.info(line))
        };
        let sinks = ConsumerSinks {
            history: Some(stores.history()),
            dead_letters: Some(dead_letters),
            alerts: Some(alerts),
            notices: Some(notices),
        };
        let callback = move |result: &qadf_core_types::StreamingResult| {
            last_message.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            if !result.layer_reports.is_empty() {
                closed.lock().extend(result.layer_reports.iter().cloned());
            }
            if let Some(feed) = &feed {
                feed.on_result(result);
            }
        };
        Ingest::start(&client, consumer, sinks, callback)
    };
    let mut last_report = Instant::now();
    // The embedded store has no TTL: `run` deletes what is older than the retention itself, once
    // a minute (or once per retention, if shorter). MongoDB's TTL index does it on the server.
    let embedded_retention = match (&stores, retention(client.config())) {
        (Stores::Embedded(store), Some(keep)) => Some((store.clone(), keep, keep.min(Duration::from_secs(60)))),
        _ => None,
    };
    let mut last_retention = Instant::now();
    let reports = ReportOutlets { store: stores.reports(), sink: producer_for_reports, topic, cache: report_view };
    loop {
        health.tick();
        health.set_consumer_running(ingest.running());
        std::thread::sleep(Duration::from_millis(200));
        let closed = std::mem::take(&mut *closed_layers.lock());
        keep_layer_reports(&reports, &closed, log);
        if !ingest.running() {
            break;
        }
        if let Some((store, keep, every)) = &embedded_retention
            && last_retention.elapsed() >= *every
        {
            last_retention = Instant::now();
            match store.delete_old_data(Timestamp::now() - *keep) {
                Ok(0) => {}
                Ok(n) => log.info(&format!("retention: deleted {n} samples that ended over {keep:?} ago")),
                Err(e) => log.warn(&format!("retention: {e} (retried in {every:?})")),
            }
        }
        if options.reload.swap(false, Ordering::SeqCst) {
            match client.load_rules(options.rules.as_deref(), Some(options.sample_rate_hz)) {
                Ok(rules) => log.info(&format!("rules reloaded: {} from {}", rules.rules.len(), rules.origin)),
                Err(e) => log.warn(&format!("rules not reloaded, the previous ones stay: {e}")),
            }
        }
        if options.shutdown.load(Ordering::SeqCst) {
            log.info("stopping: storing and committing what is in flight");
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            let (s, k) = (client.get_stream_statistics(), kafka_stats.get());
            log.info(&format!(
                "{} samples, {:.0} samples/s (last 10 s), {} stored, batch p99 {:.3} ms, {} dead letters, {} errors; \
                 kafka: lag {} messages{}, {} fetch errors, {} reconnects, {} empty fetches while behind; \
                 live view: {} failed",
                s.messages_processed,
                s.throughput_window,
                s.samples_stored,
                s.latency.p99_ms.unwrap_or(0.0),
                s.dead_letters,
                s.errors,
                s.consumer_lag,
                lag_by_partition(&s.consumer_lag_by_partition),
                k.fetch_errors,
                k.reconnects,
                k.empty_fetches_behind,
                live_counters.as_ref().map_or(0, |c| c.failed.load(Ordering::Relaxed)),
            ));
            last_report = Instant::now();
        }
        // A group member is not idle while it waits for its first assignment (a join can take
        // seconds, or a session timeout while a dead member is still in the group).
        let joining = config.assignment == PartitionAssignment::Group
            && options.instance.is_none()
            && kafka_stats.get().assignments == 0;
        if joining || ingest.busy() {
            last_message.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        if let Some(idle) = options.exit_when_idle {
            let last = Duration::from_millis(last_message.load(Ordering::Relaxed));
            if started.elapsed().saturating_sub(last) >= idle {
                break;
            }
        }
    }
    health.set_consumer_running(false);
    let report = stop_within(ingest, Duration::from_millis(client.config().shutdown_timeout_ms))?;
    // The layers still open when the stream ends are reported as they stand.
    let mut closed = std::mem::take(&mut *closed_layers.lock());
    closed.extend(client.finish_layers());
    keep_layer_reports(&reports, &closed, log);
    if let Some(live) = live {
        live.finish();
    }
    if let Some(mut served) = served {
        served.feed.shutdown();
        served.server.shutdown();
    }
    health.stop();
    for build in client.voxels().builds() {
        if let Some(grid) = client.voxels().grid(&build) {
            for digest in grid.read(|g| g.signals().iter().map(|s| g.digest(s)).collect::<Vec<_>>()) {
                let line = serde_json::json!({ "build": build, "grid": digest });
                log.info(&format!("grid {line}"));
            }
        }
    }
    log.info(&format!("replayed samples skipped (already stored before a restart): {}", report.replayed));
    if report.rebalances > 0 {
        let kafka = kafka_stats.get();
        log.info(&format!(
            "consumer group: {} rebalance events, {} builds rebuilt from the history, {} revocations released before \
             their data was stored (drain timeout), {} write jobs given up, {} commits refused",
            report.rebalances,
            report.builds_restored,
            kafka.drain_timeouts,
            report.writes_abandoned,
            kafka.commits_refused
        ));
    }
    Ok(report)
}

/// Where layer reports go: beside the history, on a topic of their own (JSON keyed by build) and,
/// with the cache enabled, into the live view (`<prefix>:<build>:report:<layer>`).
struct ReportOutlets {
    store: Arc<dyn LayerReportStore>,
    sink: Arc<dyn MessageSink>,
    topic: String,
    cache: Option<LiveView>,
}

/// Prints a line for each layer report, stores and publishes them (a failure is printed too: the
/// reports are derived data, and the stream goes on).
fn keep_layer_reports(outlets: &ReportOutlets, reports: &[LayerReport], log: &Logger) {
    let ReportOutlets { store, sink, topic, cache } = outlets;
    if reports.is_empty() {
        return;
    }
    for r in reports {
        let alerts: u64 = r.alerts_by_rule.values().sum();
        let by_rule: Vec<String> = r.alerts_by_rule.iter().map(|(rule, n)| format!("{rule} {n}")).collect();
        log.info(&format!(
            "layer report: build {} layer {}: {:?}, {} samples, {alerts} alerts{}, {:.2}% of {} voxels out of limits, dropout {:.3} ms",
            r.build_id,
            r.layer,
            r.verdict,
            r.samples,
            if by_rule.is_empty() { String::new() } else { format!(" ({})", by_rule.join(", ")) },
            100.0 * r.out_of_limits_share,
            r.voxels,
            r.dropout_ms
        ));
    }
    if let Err(e) = store.store_layer_reports(reports) {
        log.warn(&format!("layer reports not stored ({} reports): {e}", reports.len()));
    }
    let messages: Vec<OutgoingMessage> = reports
        .iter()
        .filter_map(|r| serde_json::to_vec(r).ok().map(|json| (r, json)))
        .map(|(r, payload)| OutgoingMessage {
            topic: topic.clone(),
            partition: None,
            key: Some(r.build_id.as_bytes().to_vec()),
            payload,
            headers: Vec::new(),
        })
        .collect();
    if let Err(e) = sink.send(messages) {
        log.warn(&format!("layer reports not published to {topic} ({} reports): {}", reports.len(), e.error));
    }
    for r in reports.iter().filter(|_| cache.is_some()) {
        if let Some(Err(e)) = cache.as_ref().map(|c| c.publish_layer_report(r)) {
            log.warn(&format!("layer report of build {} layer {} not cached: {e}", r.build_id, r.layer));
        }
    }
}

/// ` (p0 5, p1 7)`: each partition's lag, when there is more than one partition.
fn lag_by_partition(lag: &[(i32, u64)]) -> String {
    if lag.len() < 2 {
        return String::new();
    }
    let parts: Vec<String> = lag.iter().map(|(p, l)| format!("p{p} {l}")).collect();
    format!(" ({})", parts.join(", "))
}

/// Stops the consumer (store, commit, join), giving up after `timeout`: then the process exits
/// with status 1 and nothing further committed (a restart resumes from the last commit).
fn stop_within(ingest: Ingest, timeout: Duration) -> anyhow::Result<ConsumerReport> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(ingest.stop());
    });
    match rx.recv_timeout(timeout) {
        Ok(report) => Ok(report?),
        Err(_) => {
            eprintln!("could not store and commit within shutdown_timeout_ms ({timeout:?}); exiting uncommitted");
            std::process::exit(1);
        }
    }
}

/// Sends a simulated build to Kafka, one message per `processing_batch_size` samples, keyed by
/// build so a build stays in one partition. Returns how many samples were sent.
pub fn produce_sim(config: &StreamingConfig, sim: SimConfig, partitions: i32) -> anyhow::Result<u64> {
    let security = Security::from_streaming(config)?;
    let producer = KafkaProducer::secured(&config.kafka_bootstrap_servers, Duration::from_secs(5), security)?;
    producer.create_topic(&config.kafka_topic, partitions)?;
    let codec = Codec::new(config.message_encoding).with_max_message_bytes(config.max_message_bytes);
    let (layers, build) = (sim.layers, sim.build_id.to_string());
    let mut simulator = Simulator::new(sim, Timestamp::now());
    let mut sent = 0u64;
    for layer in 0..layers {
        let samples = simulator.layer(layer);
        let messages: Vec<OutgoingMessage> = samples
            .chunks(config.processing_batch_size)
            .map(|chunk| {
                Ok(OutgoingMessage {
                    topic: config.kafka_topic.clone(),
                    partition: None,
                    key: Some(build.as_bytes().to_vec()),
                    payload: codec.encode(&SampleBatch::new(chunk.to_vec()))?,
                    headers: Vec::new(),
                })
            })
            .collect::<Result<_, qadf_core_types::CodecError>>()?;
        producer
            .send(messages)
            .map_err(|e| anyhow::anyhow!("{} messages not acknowledged: {}", e.value.len(), e.error))?;
        sent += samples.len() as u64;
    }
    Ok(sent)
}

/// Reads history from the configured store.
pub fn query(config: &StreamingConfig, data_dir: &Path, q: &HistoryQuery) -> anyhow::Result<Vec<Sample>> {
    Ok(Stores::open(config, data_dir)?.history().query_stream_history(q)?)
}

/// Counts the samples `q` selects in the configured store (from bucket counts).
pub fn count(config: &StreamingConfig, data_dir: &Path, q: &HistoryQuery) -> anyhow::Result<u64> {
    Ok(Stores::open(config, data_dir)?.history().count_samples(q)?)
}

#[cfg(test)]
mod tests {
    use super::lag_by_partition;

    #[test]
    fn progress_lines_break_the_lag_down_only_for_several_partitions() {
        assert_eq!(lag_by_partition(&[]), "");
        assert_eq!(lag_by_partition(&[(0, 9)]), "");
        assert_eq!(lag_by_partition(&[(0, 5), (2, 7)]), " (p0 5, p2 7)");
    }
}
