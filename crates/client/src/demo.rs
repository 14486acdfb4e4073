//! The demo: a simulated build with labelled defects, sent through the in-process transport and
//! consumed by [`StreamingClient`] exactly as production consumes Kafka (decode → validate →
//! voxel fusion → live view → quality checkpoints → optional history → offset commit), on
//! embedded defaults, with the live dashboard served while it runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use qadf_core_types::{
    Alert, Codec, HistoryStore, MessageSink, OffsetStore, OutgoingMessage, SampleBatch, StreamingConfig, Timestamp,
};
use qadf_kafka_io::{MemoryOffsetStore, in_process};
use qadf_storage::EmbeddedStore;
use qadf_voxel::ProcessorStatistics;

use crate::dashboard::{DashboardServer, FeedStatistics, LiveFeed, LiveOptions};
use crate::sim::{Defect, DefectKind, SimConfig, Simulator};
use crate::{ConsumerSinks, Ingest, StreamingClient};

/// Topic name used on the in-process transport.
const TOPIC: &str = "ispm-demo";
/// Consumer group of the demo's offsets.
const GROUP: &str = "qadf-demo";

/// What the demo runs.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The simulated build (defects included).
    pub sim: SimConfig,
    /// Samples per second to send; `None` sends as fast as the pipeline takes them.
    pub rate: Option<f64>,
    /// Address to serve the live dashboard on (`None`: no dashboard).
    pub dashboard: Option<String>,
    /// Keep history in `<dir>/history.redb` (`None`: history is not kept).
    pub data_dir: Option<PathBuf>,
    /// After the build, keep serving the dashboard until interrupted.
    pub hold: bool,
    /// Start the build only once a dashboard viewer is connected.
    pub wait_for_viewer: bool,
    /// Set (e.g. by Ctrl-C) to stop early; the summary still comes.
    pub interrupt: Arc<AtomicBool>,
    /// The rules file (`None`: `rules_file` of the configuration, else examples/rules/demo.toml).
    pub rules: Option<PathBuf>,
    /// Stop sending for a while after this layer (layer number, pause): a machine that halts.
    pub pause: Option<(u32, Duration)>,
}

impl DemoOptions {
    /// `sim` at full speed, with no dashboard, no history and no hold (for tests and benchmarks).
    pub fn headless(sim: SimConfig) -> DemoOptions {
        DemoOptions {
            sim,
            rate: None,
            dashboard: None,
            data_dir: None,
            hold: false,
            wait_for_viewer: false,
            interrupt: Arc::default(),
            rules: None,
            pause: None,
        }
    }
}

/// Something to tell the operator.
#[derive(Debug)]
pub enum DemoEvent<'a> {
    /// The dashboard is up at this URL.
    Serving(String),
    /// Waiting for the first viewer before starting the build.
    Waiting,
    /// A layer has been sent; the summary so far.
    Layer(u32, &'a DemoSummary),
    /// The build is done; the dashboard stays up until interrupted.
    Holding,
}

/// What the demo measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    /// Layers sent.
    pub layers_done: u32,
    /// Samples the simulator generated (and sent).
    pub samples: u64,
    /// Messages sent (one batch of samples each).
    pub messages: u64,
    /// Samples processed by the client.
    pub processed: u64,
    /// Samples and messages that went to the dead-letter path.
    pub dead_letters: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// Injected defects.
    pub defects: usize,
    /// Injected defects with an alert at their layer and place.
    pub detected: usize,
    /// Alerts away from every injected defect.
    pub false_alarms: u64,
    /// Wall time from the first message to the last commit, in seconds.
    pub seconds: f64,
    /// Batch latency through the pipeline, p50 and p99, in ms.
    pub latency_ms: (f64, f64),
    /// The build's voxel grid.
    pub voxels: ProcessorStatistics,
    /// Live feed counters.
    pub feed: FeedStatistics,
    /// Stopped by an interrupt before the build was done.
    pub interrupted: bool,
    /// Why the consumer stopped by itself, if it did.
    pub error: Option<String>,
}

impl DemoSummary {
    /// Processed samples per second of wall time.
    pub fn samples_per_second(&self) -> f64 {
        self.processed as f64 / self.seconds.max(1e-9)
    }
}

/// Four labelled defects, one of each kind, spread over the build at seeded places inside the part.
pub fn demo_defects(sim: &SimConfig) -> Vec<Defect> {
    let kinds = [DefectKind::HotSpot, DefectKind::ColdTrack, DefectKind::StuckSensor, DefectKind::Dropout];
    let quarter = sim.part_size_mm / 4.0;
    kinds
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            let turn = (sim.seed.wrapping_mul(2654435761).wrapping_add(i as u64 * 40503) % 360) as f64;
            let (s, c) = turn.to_radians().sin_cos();
            Defect {
                kind,
                layer: ((i as u32 + 1) * sim.layers / 5).min(sim.layers.saturating_sub(1)),
                center: [125.0 + quarter * c, 125.0 + quarter * s],
                radius_mm: (sim.part_size_mm / 20.0).clamp(0.2, 1.0),
            }
        })
        .collect()
}

/// Whether `alert` is at `defect`'s layer and within half a millimetre of its disc.
pub fn alert_matches(alert: &Alert, defect: &Defect) -> bool {
    alert.layer == Some(defect.layer)
        && alert.position.is_some_and(|p| {
            ((p.x - defect.center[0]).powi(2) + (p.y - defect.center[1]).powi(2)).sqrt() <= defect.radius_mm + 0.5
        })
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The client refused the configuration.
    #[error(transparent)]
    Client(#[from] crate::ClientError),
    /// The dashboard address could not be served.
    #[error("cannot serve the dashboard on {addr}: {source} (choose another address with --dashboard)")]
    Dashboard {
        /// The address asked for.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The history store could not be opened.
    #[error("history store: {0}")]
    Store(#[from] qadf_core_types::BackendError),
}

/// Runs the demo, telling `event` about progress.
pub fn run(
    config: StreamingConfig,
    options: DemoOptions,
    mut event: impl FnMut(DemoEvent<'_>),
) -> Result<DemoSummary, DemoError> {
    let sim = options.sim.clone();
    let client = Arc::new(StreamingClient::new(config)?);
    client.load_rules(options.rules.as_deref(), Some(sim.sample_rate_hz))?;

    let feed = Arc::new(LiveFeed::start(client.clone(), LiveOptions::for_config(client.config()))?);
    feed.set_layers_total(Some(sim.layers));
    let mut server = match &options.dashboard {
        Some(addr) => {
            let server = DashboardServer::start(addr.as_str(), feed.clone())
                .map_err(|source| DemoError::Dashboard { addr: addr.clone(), source })?;
            event(DemoEvent::Serving(server.url()));
            Some(server)
        }
        None => None,
    };

    let history: Option<Arc<dyn HistoryStore>> = match &options.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| {
                qadf_core_types::BackendError::new(
                    qadf_core_types::BackendErrorKind::Unavailable,
                    "embedded",
                    e.to_string(),
                )
            })?;
            Some(Arc::new(EmbeddedStore::open(&dir.join("history.redb"))?))
        }
        None => None,
    };
    if let Some(h) = &history {
        client.layer_maps().set_history(h.clone());
    }
    let offsets = Arc::new(MemoryOffsetStore::default());
    let (sink, source) = in_process::channel(256, GROUP, offsets.clone());
    let alerts: Arc<Mutex<Vec<Alert>>> = Arc::default();
    let ingest = {
        let (feed, alerts) = (feed.clone(), alerts.clone());
        Ingest::start(&client, Box::new(source), ConsumerSinks { history, ..ConsumerSinks::default() }, move |result| {
            feed.on_result(result);
            if !result.alerts.is_empty() {
                alerts.lock().extend(result.alerts.iter().cloned());
            }
        })
    };

    if options.wait_for_viewer && server.is_some() {
        event(DemoEvent::Waiting);
        while feed.statistics().subscribers == 0 && !options.interrupt.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let codec = Codec::new(client.config().message_encoding).with_max_message_bytes(client.config().max_message_bytes);
    let batch_size = client.config().processing_batch_size;
    let mut simulator = Simulator::new(sim.clone(), Timestamp::now());
    let mut summary = DemoSummary { defects: sim.defects.len(), ..DemoSummary::default() };
    let started = Instant::now();
    let mut paused = Duration::ZERO;
    let update = |summary: &mut DemoSummary| {
        let stats = client.get_stream_statistics();
        summary.processed = stats.messages_processed;
        summary.dead_letters = stats.dead_letters;
        summary.latency_ms = (stats.latency.p50_ms.unwrap_or(0.0), stats.latency.p99_ms.unwrap_or(0.0));
        summary.alerts = alerts.lock().len() as u64;
        summary.seconds = started.elapsed().as_secs_f64();
    };
    'layers: for layer in 0..sim.layers {
        let mut samples = simulator.layer(layer).into_iter().peekable();
        while samples.peek().is_some() {
            let chunk: Vec<_> = samples.by_ref().take(batch_size).collect();
            if options.interrupt.load(Ordering::SeqCst) {
                summary.interrupted = true;
                break 'layers;
            }
            let (n, batch) = (chunk.len() as u64, SampleBatch::new(chunk));
            let payload = match codec.encode(&batch) {
                Ok(p) => p,
                Err(e) => {
                    // The simulator only makes valid samples; say so loudly if that ever changes.
                    eprintln!("demo: could not encode {n} samples of layer {layer}: {e}");
                    summary.dead_letters += n;
                    continue;
                }
            };
            let message = OutgoingMessage {
                topic: TOPIC.to_owned(),
                partition: Some(0),
                key: None,
                payload,
                headers: Vec::new(),
            };
            if sink.send(vec![message]).is_err() {
                summary.error = Some("the consumer stopped taking messages".to_owned());
                break 'layers;
            }
            summary.messages += 1;
            summary.samples += n;
            if let Some(rate) = options.rate {
                let due = Duration::from_secs_f64(summary.samples as f64 / rate) + paused;
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
        }
        summary.layers_done = layer + 1;
        update(&mut summary);
        event(DemoEvent::Layer(layer, &summary));
        if let Some((after, pause)) = options.pause
            && after == layer
        {
            let until = Instant::now() + pause;
            while Instant::now() < until && !options.interrupt.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(20));
            }
            paused += pause;
        }
    }

    // Everything sent is processed once its offset is committed.
    while ingest.running() && committed(offsets.as_ref()) < summary.messages as i64 {
        std::thread::sleep(Duration::from_millis(1));
    }
    update(&mut summary);
    let report = ingest.stop()?;
    drop(sink);
    // The build is complete: its last layer is reported and the page reads finished.
    client.finish_layers();
    if !summary.interrupted && summary.error.is_none() && report.error.is_none() {
        client.builds().finish(&sim.build_id);
    }
    feed.on_result(&Default::default());
    if summary.error.is_none() {
        summary.error = report.error;
    }
    if let Some(grid) = client.voxels().grid(&sim.build_id) {
        summary.voxels = grid.get_statistics();
    }
    let alerts = alerts.lock().clone();
    summary.detected = sim.defects.iter().filter(|d| alerts.iter().any(|a| alert_matches(a, d))).count();
    summary.false_alarms = alerts.iter().filter(|a| !sim.defects.iter().any(|d| alert_matches(a, d))).count() as u64;

    if options.hold && server.is_some() && !options.interrupt.load(Ordering::SeqCst) {
        event(DemoEvent::Holding);
        while !options.interrupt.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    feed.shutdown();
    summary.feed = feed.statistics();
    if let Some(server) = server.as_mut() {
        server.shutdown();
    }
    Ok(summary)
}

fn committed(offsets: &dyn OffsetStore) -> i64 {
    offsets.load_offsets(GROUP, TOPIC).ok().and_then(|c| c.first().map(|c| c.next_offset)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_processes_every_sample_and_finds_its_defects() {
        let mut sim = SimConfig { layers: 5, part_size_mm: 4.0, ..SimConfig::default() };
        sim.defects = demo_defects(&sim);
        let options = DemoOptions::headless(sim);
        let config = StreamingConfig { alert_dedup_interval_ms: 0, ..StreamingConfig::default() };
        let mut layers = Vec::new();
        let summary = run(config, options, |e| {
            if let DemoEvent::Layer(l, _) = e {
                layers.push(l);
            }
        })
        .unwrap();
        assert_eq!(layers, [0, 1, 2, 3, 4]);
        assert_eq!(summary.error, None);
        assert!(summary.samples > 7_900 && summary.samples < 8_000, "{} (dropouts remove a few)", summary.samples);
        assert_eq!(summary.processed, summary.samples, "every sample sent is processed");
        assert_eq!(summary.dead_letters, 0);
        assert_eq!((summary.defects, summary.detected, summary.false_alarms), (4, 4, 0), "{summary:?}");
        assert_eq!(summary.voxels.totals.points_applied, summary.samples);
        assert_eq!(summary.feed.frames_sent, 0, "no viewer, no frame built");
        assert_eq!(summary.feed.alerts_total, summary.alerts, "the feed saw every alert");
    }

    #[test]
    fn defects_lie_inside_the_part_on_distinct_layers() {
        let sim = SimConfig { layers: 20, part_size_mm: 20.0, seed: 3, ..SimConfig::default() };
        let defects = demo_defects(&sim);
        let layers: Vec<u32> = defects.iter().map(|d| d.layer).collect();
        assert_eq!(layers, [4, 8, 12, 16]);
        for d in &defects {
            assert!(d.center.iter().all(|c| (115.0..135.0).contains(c)), "{d:?}");
        }
    }
}
