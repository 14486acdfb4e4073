//! `LiveFeed`: turns the client's state into frames for every subscriber of the live view.
//!
//! Each subscriber watches one build (or follows the build of the newest batch). The client's
//! [`Builds`](crate::builds::Builds) table says where each build's newest batch landed (height,
//! layer, sample time); [`LiveFeed::on_result`] adds each batch's alerts and wakes the publisher
//! thread. The publisher coalesces wake-ups to at most one round per `min_interval`; per watched
//! build it takes the changed blocks from that build's voxel grid (the feed owns the grids'
//! dirty sets) and sends its watchers either the changed tiles of the current z level or, when a
//! watcher is new, lagging, switched or the level changed, the whole level. Each frame carries
//! the list of builds, is serialized once per build and shared by its watchers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use parking_lot::Mutex;
use qadf_core_types::{Alert, Point3, StreamingResult};
use qadf_voxel::{Aggregation, BLOCK_EDGE, IncrementalProcessor, LayerSlice};
use tungstenite::Utf8Bytes;

use crate::StreamingClient;
use crate::builds::BuildState;
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

/// State shared by the feed's handle and the publisher thread.
struct Hub {
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
    /// The build asked for (`None`: whichever build sent the newest batch).
    build: Option<String>,
    /// The build it is sent this round (`build`, or the newest).
    target: Option<String>,
    /// What its last heatmap showed.
    shown: Option<Shown>,
    /// Set when its receiver is gone (it is removed after the round).
    gone: bool,
}

/// Counters of the feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStatistics {
    /// Frames published (each build's frame counted once, whatever the number of its subscribers).
    pub frames_sent: u64,
    /// Frames a lagging subscriber could not take (it was given a full frame later).
    pub frames_dropped: u64,
    /// Subscribers connected now.
    pub subscribers: usize,
    /// Alerts received.
    pub alerts_total: u64,
}

/// Publishes the live view of a [`StreamingClient`] to any number of subscribers, each watching
/// one build of the stream (or following the newest).
pub struct LiveFeed {
    hub: Arc<Hub>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl LiveFeed {
    /// Starts the publisher for `client` (call [`LiveFeed::on_result`] after each batch).
    pub fn start(client: Arc<StreamingClient>, options: LiveOptions) -> Result<LiveFeed, crate::ClientError> {
        let (wake, woken) = bounded(1);
        let hub = Arc::new(Hub {
            pending_alerts: Mutex::default(),
            subscribers: Mutex::default(),
            wake,
            layers_total: Mutex::default(),
            alerts_total: AtomicU64::new(0),
            frames_sent: AtomicU64::new(0),
            frames_dropped: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let publisher = Publisher { hub: hub.clone(), client, options, seq: 0, last_frame: Instant::now() };
        let thread = std::thread::Builder::new()
            .name("qadf-live-feed".to_owned())
            .spawn(move || publisher.run(&woken))
            .expect("spawning the live feed thread");
        Ok(LiveFeed { hub, thread: Mutex::new(Some(thread)) })
    }

    /// Notes a processed batch: its alerts join the next frame (call it from the consumer callback).
    pub fn on_result(&self, result: &StreamingResult) {
        if !result.alerts.is_empty() {
            self.hub.alerts_total.fetch_add(result.alerts.len() as u64, Ordering::Relaxed);
            self.hub.pending_alerts.lock().extend(result.alerts.iter().cloned());
        }
        self.hub.wake();
    }

    /// Tells the page how many layers the build will have.
    pub fn set_layers_total(&self, layers: Option<u32>) {
        *self.hub.layers_total.lock() = layers;
    }

    /// A new subscriber to `build` (`None`: follow the build of the newest batch): its first
    /// frame is full, then changed tiles follow.
    pub fn subscribe(&self, queue_frames: usize, build: Option<String>) -> Receiver<Utf8Bytes> {
        let (tx, rx) = bounded(queue_frames.max(1));
        self.hub.subscribers.lock().push(Subscriber {
            tx,
            needs_full: true,
            build,
            target: None,
            shown: None,
            gone: false,
        });
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

/// What a heatmap showed.
#[derive(Clone, PartialEq)]
struct Shown {
    build: String,
    z_index: u32,
}

struct Publisher {
    hub: Arc<Hub>,
    client: Arc<StreamingClient>,
    options: LiveOptions,
    seq: u64,
    last_frame: Instant,
}

/// One build's frames: the delta everyone watching it gets and, for whoever needs it, the full one.
struct Texts {
    delta: Utf8Bytes,
    full: Option<Utf8Bytes>,
    shown: Option<Shown>,
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

    /// Builds and sends one round of frames: per watched build, its delta and (for whoever needs
    /// it) its full frame.
    fn publish(&mut self) {
        let new_alerts = std::mem::take(&mut *self.hub.pending_alerts.lock());
        let builds = self.client.builds().list();
        let newest = self.client.builds().newest().map(|b| b.build);
        let stale = self.last_frame.elapsed() >= self.options.stats_interval;
        let stopping = self.hub.stop.load(Ordering::SeqCst);
        let stats = self.client.get_stream_statistics();
        let hub = self.hub.clone();
        let mut subscribers = hub.subscribers.lock();
        for s in subscribers.iter_mut() {
            s.target = s.build.clone().or_else(|| newest.clone());
        }
        let mut targets: Vec<Option<String>> = subscribers.iter().map(|s| s.target.clone()).collect();
        targets.sort();
        targets.dedup();
        let mut sent_any = false;
        for target in targets {
            let Some(texts) =
                self.frames(target.as_deref(), &new_alerts, &builds, &stats, &mut subscribers, stale || stopping)
            else {
                continue;
            };
            sent_any = true;
            self.hub.frames_sent.fetch_add(1, Ordering::Relaxed);
            let shown = texts.shown.clone();
            for s in subscribers.iter_mut().filter(|s| s.target == target) {
                let text = match (&texts.full, s.needs_full) {
                    (Some(full), true) => full.clone(),
                    _ => texts.delta.clone(),
                };
                match s.tx.try_send(text) {
                    Ok(()) => {
                        s.needs_full = false;
                        s.shown = shown.clone();
                    }
                    Err(TrySendError::Full(_)) => {
                        s.needs_full = true;
                        hub.frames_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(TrySendError::Disconnected(_)) => s.gone = true,
                }
            }
        }
        subscribers.retain(|s| !s.gone);
        if sent_any {
            self.last_frame = Instant::now();
        }
    }

    /// The frames of `build` for the subscribers watching it, or `None` when nothing changed
    /// for them (and `force` does not ask for fresh statistics).
    fn frames(
        &mut self,
        build: Option<&str>,
        new_alerts: &[Alert],
        builds: &[BuildState],
        stats: &qadf_core_types::StreamStatistics,
        subscribers: &mut [Subscriber],
        force: bool,
    ) -> Option<Texts> {
        let state = build.and_then(|b| builds.iter().find(|s| s.build == b));
        let watching = |s: &Subscriber| s.target.as_deref() == build;
        let grid = build.and_then(|b| self.client.voxels().grid(b));
        let (mut delta, full, shown) = match (build, state, grid) {
            (Some(b), Some(state), Some(grid)) => self.heatmaps(b, state, &grid, subscribers, &watching),
            _ => (None, None, None),
        };
        if delta.as_ref().is_some_and(|h| h.tiles.is_empty()) {
            delta = None;
        }
        let alerts: Vec<Alert> = new_alerts.iter().filter(|a| Some(a.build_id.as_str()) == build).cloned().collect();
        let any_full = subscribers.iter().any(|s| watching(s) && s.needs_full);
        if delta.is_none() && alerts.is_empty() && !force && !any_full {
            return None;
        }
        self.seq += 1;
        let base = Frame {
            v: PROTOCOL_VERSION,
            seq: self.seq,
            build: build.map(str::to_owned),
            newest_sample_ns: state.and_then(|s| s.newest_sample_ns),
            heatmap: delta,
            alerts,
            stats: stats.clone(),
            progress: Progress {
                layer: state.and_then(|s| s.layer),
                layers_total: *self.hub.layers_total.lock(),
                alerts_total: state.map_or(0, |s| s.alerts),
                frames_dropped: self.hub.frames_dropped.load(Ordering::Relaxed),
            },
            builds: builds.to_vec(),
        };
        let delta = encode(&base);
        let full = any_full.then(|| {
            let mut frame = base;
            frame.heatmap = full;
            frame.alerts = build.map(|b| self.client.builds().recent_alerts(b)).unwrap_or_default();
            encode(&frame)
        });
        Some(Texts { delta, full, shown })
    }

    /// The changed tiles of `build`'s current level and, if a watcher needs it, the whole level.
    fn heatmaps(
        &self,
        build: &str,
        state: &BuildState,
        grid: &IncrementalProcessor,
        subscribers: &mut [Subscriber],
        watching: &dyn Fn(&Subscriber) -> bool,
    ) -> (Option<Heatmap>, Option<Heatmap>, Option<Shown>) {
        // Take the changed blocks before reading values: a batch applied in between is marked again.
        let regions = grid.get_updated_regions(true);
        let signal = self.options.signal.as_str();
        let aggregation = self.options.aggregation;
        let Some(z_mm) = state.z_mm else { return (None, None, None) };
        grid.read(|g| {
            let probe = Point3::new(g.bbox_min().x, g.bbox_min().y, z_mm);
            let Some(z_index) = g.voxel_index(&probe).map(|i| i[2]) else { return (None, None, None) };
            let shown = Shown { build: build.to_owned(), z_index };
            for s in subscribers.iter_mut().filter(|s| watching(s)) {
                if s.shown.as_ref() != Some(&shown) {
                    s.needs_full = true;
                }
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
            let full = subscribers.iter().any(|s| watching(s) && s.needs_full).then(|| {
                let mut full = empty(true);
                full.tiles = g.layer_slice(signal, z_mm, aggregation).ok().map(slice_tile).into_iter().collect();
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
