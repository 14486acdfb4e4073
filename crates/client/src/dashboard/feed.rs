//! `LiveFeed`: turns the client's state into frames for every subscriber of the live view.
//!
//! A [`LiveStage`] registered in the client notes where the newest batch landed (build, height,
//! layer) and wakes the publisher thread; [`LiveFeed::on_result`] adds each batch's alerts. The
//! publisher coalesces wake-ups to at most one frame per `min_interval`, takes the changed blocks
//! from the build's voxel grid (the feed owns that grid's dirty set) and sends each subscriber
//! either the changed tiles of the current z level or, when it is new, lagging or the level
//! changed, the whole level. Each frame is serialized once and shared by all subscribers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use parking_lot::Mutex;
use qadf_core_types::{Alert, Point3, SampleBatch, Stage, StageError, StreamingResult};
use qadf_voxel::{Aggregation, BLOCK_EDGE, IncrementalProcessor, LayerSlice};
use tungstenite::Utf8Bytes;

use crate::StreamingClient;
use crate::dashboard::protocol::{Frame, Heatmap, PROTOCOL_VERSION, Progress, Tile};

/// How the feed publishes.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Signal shown in the heatmap.
    pub signal: String,
    /// Statistic shown per voxel.
    pub aggregation: Aggregation,
    /// Shortest time between two frames (wake-ups in between are coalesced).
    pub min_interval: Duration,
    /// A frame with fresh statistics is sent at least this often, even when nothing changed.
    pub stats_interval: Duration,
    /// Frames queued per subscriber before it is considered lagging.
    pub queue_frames: usize,
    /// Alerts repeated in a full frame.
    pub recent_alerts: usize,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            signal: qadf_core_types::signal::TEMPERATURE.to_owned(),
            aggregation: Aggregation::Mean,
            min_interval: Duration::from_millis(2),
            stats_interval: Duration::from_millis(250),
            queue_frames: 64,
            recent_alerts: 50,
        }
    }
}

/// Where the newest batch landed.
#[derive(Clone, Debug, Default)]
struct Cursor {
    build: Option<String>,
    z_mm: f64,
    layer: Option<u32>,
    newest_ns: Option<i64>,
}

/// State shared by the stage, the feed's handle and the publisher thread.
struct Hub {
    cursor: Mutex<Cursor>,
    pending_alerts: Mutex<Vec<Alert>>,
    subscribers: Mutex<Vec<Subscriber>>,
    wake: Sender<()>,
    layers_total: Mutex<Option<u32>>,
    alerts_total: AtomicU64,
    frames_sent: AtomicU64,
    frames_dropped: AtomicU64,
    stop: AtomicBool,
}

impl Hub {
    fn wake(&self) {
        // A full wake-up channel already guarantees a publish: nothing is lost by dropping this one.
        let _ = self.wake.try_send(());
    }
}

struct Subscriber {
    tx: Sender<Utf8Bytes>,
    needs_full: bool,
}

/// The pipeline stage that tells the feed where each batch landed; register it in the client.
pub struct LiveStage {
    hub: Arc<Hub>,
}

impl Stage for LiveStage {
    fn name(&self) -> &str {
        "live_view"
    }

    fn process(&self, batch: &mut SampleBatch, _result: &mut StreamingResult) -> Result<(), StageError> {
        let Some(last) = batch.samples.iter().rev().find(|s| s.position.is_some()) else { return Ok(()) };
        {
            let mut c = self.hub.cursor.lock();
            if c.build.as_deref() != Some(last.build_id.as_str()) {
                c.build = Some(last.build_id.to_string());
            }
            c.z_mm = last.position.map_or(c.z_mm, |p| p.z);
            c.layer = Some(last.layer);
            let newest = batch.samples.iter().map(|s| s.timestamp.as_nanos()).max();
            c.newest_ns = c.newest_ns.max(newest);
        }
        self.hub.wake();
        Ok(())
    }
}

/// Counters of the feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStatistics {
    /// Frames published (each counted once, whatever the number of subscribers).
    pub frames_sent: u64,
    /// Frames a lagging subscriber could not take (it was given a full frame later).
    pub frames_dropped: u64,
    /// Subscribers connected now.
    pub subscribers: usize,
    /// Alerts received.
    pub alerts_total: u64,
}

/// Publishes the live view of a [`StreamingClient`] to any number of subscribers.
pub struct LiveFeed {
    hub: Arc<Hub>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LiveFeed {
    /// Starts the publisher for `client` and registers its [`LiveStage`] as processor `live_view`.
    pub fn start(client: Arc<StreamingClient>, options: LiveOptions) -> Result<LiveFeed, crate::ClientError> {
        let (wake, woken) = bounded(1);
        let hub = Arc::new(Hub {
            cursor: Mutex::default(),
            pending_alerts: Mutex::default(),
            subscribers: Mutex::default(),
            wake,
            layers_total: Mutex::default(),
            alerts_total: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        client.register_processor("live_view", Arc::new(LiveStage { hub: hub.clone() }))?;
        let publisher = Publisher {
            hub: hub.clone(),
            client,
            options,
            seq: 0,
            shown: None,
            recent: VecDeque::new(),
            last_frame: Instant::now(),
        };
        let thread = std::thread::Builder::new()
            .name("qadf-live-feed".to_owned())
            .spawn(move || publisher.run(&woken))
            .expect("spawning the live feed thread");
        Ok(LiveFeed { hub, thread: Mutex::new(Some(thread)) })
    }

    /// Adds a batch's alerts to the next frame (call it from the consumer callback).
    pub fn on_result(&self, result: &StreamingResult) {
        if !result.alerts.is_empty() {
            self.hub.alerts_total.fetch_add(result.alerts.len() as u64, Ordering::Relaxed);
            self.hub.pending_alerts.lock().extend(result.alerts.iter().cloned());
            self.hub.wake();
        }
    }

    /// Tells the page how many layers the build will have.
    pub fn set_layers_total(&self, layers: Option<u32>) {
        *self.hub.layers_total.lock() = layers;
    }

    /// A new subscriber: its first frame is full, then changed tiles follow.
    pub fn subscribe(&self, queue_frames: usize) -> Receiver<Utf8Bytes> {
        let (tx, rx) = bounded(queue_frames.max(1));
        self.hub.subscribers.lock().push(Subscriber { tx, needs_full: true });
        self.hub.wake();
        rx
    }

    /// Current counters.
    pub fn statistics(&self) -> FeedStatistics {
        FeedStatistics {
            frames_sent: self.hub.frames_sent.load(Ordering::Relaxed),
            frames_dropped: self.hub.frames_dropped.load(Ordering::Relaxed),
            subscribers: self.hub.subscribers.lock().len(),
            alerts_total: self.hub.alerts_total.load(Ordering::Relaxed),
        }
    }

    /// Publishes a last frame, disconnects subscribers and joins the publisher thread.
    pub fn shutdown(&self) {
        self.hub.stop.store(true, Ordering::SeqCst);
        self.hub.wake();
        if let Some(thread) = self.thread.lock().take()
            && thread.join().is_err()
        {
            eprintln!("live feed: the publisher thread panicked");
        }
    }
}

impl Drop for LiveFeed {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the last frame showed.
#[derive(PartialEq)]
struct Shown {
    build: String,
    z_index: u32,
}

struct Publisher {
    hub: Arc<Hub>,
    client: Arc<StreamingClient>,
    options: LiveOptions,
    seq: u64,
    shown: Option<Shown>,
    recent: VecDeque<Alert>,
    last_frame: Instant,
}

impl Publisher {
    fn run(mut self, woken: &Receiver<()>) {
        loop {
            let timeout = self.options.stats_interval.saturating_sub(self.last_frame.elapsed());
            match woken.recv_timeout(timeout) {
                Ok(()) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            let wait = self.options.min_interval.saturating_sub(self.last_frame.elapsed());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
            while woken.try_recv().is_ok() {}
            let stopping = self.hub.stop.load(Ordering::SeqCst);
            self.publish();
            if stopping {
                break;
            }
        }
        self.hub.subscribers.lock().clear();
    }

    /// Builds and sends one frame (delta and, for whoever needs it, full).
    fn publish(&mut self) {
        let cursor = self.hub.cursor.lock().clone();
        let new_alerts = std::mem::take(&mut *self.hub.pending_alerts.lock());
        for a in &new_alerts {
            if self.recent.len() == self.options.recent_alerts.max(1) {
                self.recent.pop_front();
            }
            self.recent.push_back(a.clone());
        }
        let grid = cursor.build.as_deref().and_then(|b| self.client.voxels().grid(b));
        let mut subscribers = self.hub.subscribers.lock();
        let (mut delta, full) = match (&cursor.build, grid) {
            (Some(build), Some(grid)) => {
                let (delta, full, shown) = self.heatmaps(build, &cursor, &grid, &mut subscribers);
                self.shown = shown;
                (delta, full)
            }
            _ => (None, None),
        };
        let any_full = subscribers.iter().any(|s| s.needs_full);
        let stale = self.last_frame.elapsed() >= self.options.stats_interval;
        if delta.as_ref().is_some_and(|h| h.tiles.is_empty()) {
            delta = None;
        }
        if delta.is_none() && new_alerts.is_empty() && !stale && !any_full && !self.hub.stop.load(Ordering::SeqCst) {
            return;
        }
        self.seq += 1;
        let base = Frame {
            v: PROTOCOL_VERSION,
            seq: self.seq,
            build: cursor.build.clone(),
            newest_sample_ns: cursor.newest_ns,
            heatmap: delta,
            alerts: new_alerts,
            stats: self.client.get_stream_statistics(),
            progress: Progress {
                layer: cursor.layer,
                layers_total: *self.hub.layers_total.lock(),
                alerts_total: self.hub.alerts_total.load(Ordering::Relaxed),
                frames_dropped: self.hub.frames_dropped.load(Ordering::Relaxed),
            },
        };
        let delta_text = encode(&base);
        let full_text = any_full.then(|| {
            let mut frame = base.clone();
            frame.heatmap = full;
            frame.alerts = self.recent.iter().cloned().collect();
            encode(&frame)
        });
        subscribers.retain_mut(|s| {
            let text = match (&full_text, s.needs_full) {
                (Some(full), true) => full.clone(),
                _ => delta_text.clone(),
            };
            match s.tx.try_send(text) {
                Ok(()) => {
                    s.needs_full = false;
                    true
                }
                Err(TrySendError::Full(_)) => {
                    s.needs_full = true;
                    self.hub.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        self.hub.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.last_frame = Instant::now();
    }

    /// The changed tiles of the current level and, if anyone needs it, the whole level.
    fn heatmaps(
        &self,
        build: &str,
        cursor: &Cursor,
        grid: &IncrementalProcessor,
        subscribers: &mut [Subscriber],
    ) -> (Option<Heatmap>, Option<Heatmap>, Option<Shown>) {
        // Take the changed blocks before reading values: a batch applied in between is marked again.
        let regions = grid.get_updated_regions(true);
        let signal = self.options.signal.as_str();
        let aggregation = self.options.aggregation;
        grid.read(|g| {
            let probe = Point3::new(g.bbox_min().x, g.bbox_min().y, cursor.z_mm);
            let Some(z_index) = g.voxel_index(&probe).map(|i| i[2]) else { return (None, None, None) };
            let shown = Shown { build: build.to_owned(), z_index };
            if self.shown.as_ref() != Some(&shown) {
                subscribers.iter_mut().for_each(|s| s.needs_full = true);
            }
            let empty = |full| Heatmap {
                full,
                signal: signal.to_owned(),
                aggregation: format!("{aggregation:?}").to_lowercase(),
                z_index,
                resolution: g.resolution(),
                world_origin: [g.bbox_min().x, g.bbox_min().y],
                tiles: Vec::new(),
            };
            let mut delta = empty(false);
            let level: Vec<_> = regions.into_iter().filter(|r| r.block[2] == z_index / BLOCK_EDGE).collect();
            if let Ok(contents) = g.block_contents(signal, aggregation, &level) {
                delta.tiles = contents.iter().map(|c| block_tile(c, z_index)).collect();
            }
            let full = subscribers.iter().any(|s| s.needs_full).then(|| {
                let mut full = empty(true);
                full.tiles = g.layer_slice(signal, cursor.z_mm, aggregation).ok().map(slice_tile).into_iter().collect();
                full
            });
            (Some(delta), full, Some(shown))
        })
    }
}

fn encode(frame: &Frame) -> Utf8Bytes {
    // Frames hold only finite numbers and strings, so serializing cannot fail.
    Utf8Bytes::from(serde_json::to_string(frame).expect("a frame always serializes"))
}

/// The values of one changed block at voxel level `z_index` (one block face, cropped to the grid).
fn block_tile(content: &qadf_voxel::BlockContent, z_index: u32) -> Tile {
    let r = &content.region.region;
    let (w, h) = (r.index_max[0] - r.index_min[0], r.index_max[1] - r.index_min[1]);
    let edge = BLOCK_EDGE as usize;
    let base = (z_index % BLOCK_EDGE) as usize * edge * edge;
    let mut values = Vec::with_capacity((w * h) as usize);
    for y in 0..h as usize {
        for x in 0..w as usize {
            values.push(content.values[base + y * edge + x].map(|v| v as f32));
        }
    }
    Tile { x: r.index_min[0], y: r.index_min[1], w, h, values }
}

fn slice_tile(slice: LayerSlice) -> Tile {
    Tile {
        x: slice.index_origin[0],
        y: slice.index_origin[1],
        w: slice.width,
        h: slice.height,
        values: slice.values.into_iter().map(|v| v.map(|v| v as f32)).collect(),
    }
}
