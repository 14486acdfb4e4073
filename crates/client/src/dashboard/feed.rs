//! `LiveFeed`: turns the client's state into frames for every subscriber of the live page.
//!
//! Each subscriber watches one build (or follows the build of the newest batch), one signal and
//! one statistic: a [`View`]. The client's [`LayerMaps`](crate::layer_maps::LayerMaps) hold each
//! layer's map, stamped per tile with the round that changed it; [`LiveFeed::on_result`] adds
//! each batch's alerts and wakes the publisher thread. The publisher coalesces wake-ups to at
//! most one round per `min_interval`; per view watched it sends the map tiles of the current
//! layer changed since its previous frame (the whole map when the layer changed), the layer
//! summaries that changed and the new alerts — or, to a viewer that is new, lagging or switched,
//! a full frame. A frame goes out at least every `heartbeat` (the status and age stay true when
//! nothing comes); the build list and the stream's health ride along about once a second. Each
//! frame is serialized once per view and shared by its watchers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use parking_lot::Mutex;
use qadf_core_types::{Alert, StreamingResult, Timestamp};
use tungstenite::Utf8Bytes;

use crate::StreamingClient;
use crate::builds::{BuildState, BuildStatus};
use crate::dashboard::protocol::{BuildRow, Frame, Health, LayerAnswer, MapFrame, MapTile, PROTOCOL_VERSION};
use crate::layer_maps::{LayerSummary, MapError, Raster, Scale, Stat, TileValues, scale};

/// How the feed publishes.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Signal a map shows when the viewer names none (or one the layer lacks).
    pub signal: String,
    /// Statistic a map shows per cell when the viewer names none.
    pub stat: Stat,
    /// Shortest time between two frames (wake-ups in between are coalesced).
    pub min_interval: Duration,
    /// A frame goes out at least this often, even when nothing changed.
    pub heartbeat: Duration,
    /// The build list and the stream's health are sent about this often.
    pub health_interval: Duration,
    /// Frames queued per subscriber before it is considered lagging.
    pub queue_frames: usize,
    /// Alerts repeated in a full frame.
    pub recent_alerts: usize,
    /// A build with no batch for this long is `stalled`.
    pub stall: Duration,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            signal: qadf_core_types::signal::TEMPERATURE.to_owned(),
            stat: Stat::Max,
            min_interval: Duration::from_millis(50),
            heartbeat: Duration::from_millis(500),
            health_interval: Duration::from_secs(1),
            queue_frames: 64,
            recent_alerts: 50,
            stall: Duration::from_secs(10),
        }
    }
}

impl LiveOptions {
    /// The defaults, with the stall bound of `config` (`stall_seconds`).
    pub fn for_config(config: &qadf_core_types::StreamingConfig) -> LiveOptions {
        LiveOptions { stall: Duration::from_secs_f64(config.stall_seconds), ..LiveOptions::default() }
    }
}

/// What one subscriber watches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct View {
    /// The build (`None`: whichever build sent the newest batch).
    pub build: Option<String>,
    /// The signal mapped (`None`: the feed's default).
    pub signal: Option<String>,
    /// The statistic mapped (`None`: the feed's default).
    pub stat: Option<Stat>,
}

/// What a view resolves to this round: a build, a signal and a statistic.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Target {
    build: Option<String>,
    signal: Option<String>,
    stat: Stat,
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
    view: View,
    /// What it is sent this round.
    target: Option<Target>,
    /// What its last frame showed.
    shown: Option<Target>,
    /// Set when its receiver is gone (it is removed after the round).
    gone: bool,
}

/// Counters of the feed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedStatistics {
    /// Frames published (each view's frame counted once, whatever the number of its subscribers).
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
    client: Arc<StreamingClient>,
    options: LiveOptions,
    scales: Arc<Mutex<Scales>>,
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
        let scales = Arc::new(Mutex::new(Scales::default()));
        let publisher = Publisher {
            hub: hub.clone(),
            client: client.clone(),
            options: options.clone(),
            scales: scales.clone(),
            seq: 0,
            last_frame: Instant::now(),
            last_health: None,
            sent: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name("qadf-live-feed".to_owned())
            .spawn(move || publisher.run(&woken))
            .expect("spawning the live feed thread");
        Ok(LiveFeed { hub, client, options, scales, thread: Mutex::new(Some(thread)) })
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

    /// A new subscriber to `view`: its first frame is full, then changes follow.
    pub fn subscribe(&self, queue_frames: usize, view: View) -> Receiver<Utf8Bytes> {
        let (tx, rx) = bounded(queue_frames.max(1));
        self.hub.subscribers.lock().push(Subscriber {
            tx,
            needs_full: true,
            view,
            target: None,
            shown: None,
            gone: false,
        });
        self.hub.wake();
        rx
    }

    /// The JSON answer to `GET /api/layer`: one layer's whole map and its alerts, or why not
    /// (HTTP status and message).
    pub fn layer_answer(
        &self,
        build: &str,
        layer: u32,
        signal: Option<&str>,
        stat: Option<Stat>,
    ) -> Result<String, (u16, String)> {
        let maps = self.client.layer_maps();
        let stat = stat.unwrap_or(self.options.stat);
        let (rules, first) = (self.client.rules(), maps.first_reported(build));
        let (map, from_history) = maps
            .with_map(build, layer, |view| {
                let signal = pick_signal(view.raster, signal.unwrap_or(&self.options.signal));
                let mut scales = self.scales.lock();
                scales.ensure(build, std::iter::once(signal.as_str()), &rules, first.as_ref(), Some(view.raster));
                let steps = steps_of(scales.of(build, &signal), stat);
                drop(scales);
                (map_frame(view.raster, layer, &signal, stat, steps, true, 0), view.from_history)
            })
            .map_err(|e| match e {
                MapError::Unknown => (404, format!("build `{build}` has no layer {layer}")),
                MapError::NotKept => (410, e.to_string()),
                MapError::History(_) => (503, e.to_string()),
            })?;
        let summary = maps.summaries(build, 0).into_iter().find(|s| s.layer == layer);
        let answer = LayerAnswer {
            v: PROTOCOL_VERSION,
            build: build.to_owned(),
            map,
            from_history,
            alerts: maps.alerts(build, layer),
            summary,
        };
        Ok(serde_json::to_string(&answer).expect("an answer always serializes"))
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

/// Each build's colour scales: fixed once the build's first layer is reported (or a rule sets
/// them), provisional before.
#[derive(Default)]
struct Scales {
    by_build: HashMap<String, BTreeMap<String, (Scale, bool)>>,
    /// Bumped whenever a scale is added or changed.
    version: u64,
}

impl Scales {
    /// Makes sure each of `signals` has a scale for `build`.
    fn ensure<'a>(
        &mut self,
        build: &str,
        signals: impl Iterator<Item = &'a str>,
        rules: &[qadf_core_types::rules::Rule],
        first_report: Option<&LayerSummary>,
        raster: Option<&Raster>,
    ) {
        for signal in signals {
            let known = self.by_build.get(build).and_then(|m| m.get(signal));
            if known.is_some_and(|(_, fixed)| *fixed) {
                continue;
            }
            let from_report = first_report.and_then(|r| r.signals.get(signal)).map(|s| (s.min, s.max));
            let observed = from_report.or_else(|| raster.and_then(|r| r.range(signal)));
            let fresh = scale(signal, build, rules, observed);
            let fixed = fresh.rule.is_some() || from_report.is_some();
            if known.is_none_or(|(s, _)| *s != fresh) {
                self.version += 1;
                if self.by_build.len() >= crate::builds::MAX_BUILDS && !self.by_build.contains_key(build) {
                    self.by_build.clear();
                }
                self.by_build.entry(build.to_owned()).or_default().insert(signal.to_owned(), (fresh, fixed));
            } else if let Some(entry) = self.by_build.get_mut(build).and_then(|m| m.get_mut(signal)) {
                entry.1 = fixed;
            }
        }
    }

    fn of(&self, build: &str, signal: &str) -> Option<&Scale> {
        self.by_build.get(build).and_then(|m| m.get(signal)).map(|(s, _)| s)
    }

    fn all(&self, build: &str) -> Vec<Scale> {
        self.by_build.get(build).map(|m| m.values().map(|(s, _)| s.clone()).collect()).unwrap_or_default()
    }
}

/// What a view was last sent: the layer and round of its map, the summaries' version, the
/// scales' version.
#[derive(Clone, Copy, Default)]
struct Sent {
    layer: Option<u32>,
    round: u64,
    summaries: u64,
    scales: u64,
}

struct Publisher {
    hub: Arc<Hub>,
    client: Arc<StreamingClient>,
    options: LiveOptions,
    scales: Arc<Mutex<Scales>>,
    seq: u64,
    last_frame: Instant,
    last_health: Option<Instant>,
    sent: HashMap<Target, Sent>,
}

/// One view's frames: the delta everyone watching it gets and, for whoever needs it, the full one.
struct Texts {
    delta: Utf8Bytes,
    full: Option<Utf8Bytes>,
}

/// What every view's frame of one round shares.
struct Round {
    now_ns: i64,
    builds: Vec<BuildState>,
    new_alerts: Vec<Alert>,
    rows: Vec<BuildRow>,
    health: Health,
    /// Send the list and the health in every frame of this round.
    with_health: bool,
    /// Send a frame even if nothing changed.
    force: bool,
}

impl Publisher {
    fn run(mut self, woken: &Receiver<()>) {
        loop {
            let timeout = self.options.heartbeat.saturating_sub(self.last_frame.elapsed());
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

    fn round(&mut self) -> Round {
        let now_ns = Timestamp::now().as_nanos();
        let builds = self.client.builds().list();
        let stall = self.options.stall.as_nanos() as i64;
        let rows = builds
            .iter()
            .map(|b| BuildRow {
                build: b.build.clone(),
                status: b.status(now_ns, stall),
                layer: b.layer,
                samples: b.samples,
                alerts: b.alerts,
                last_update_ns: b.last_update_ns,
            })
            .collect();
        let with_health = self.last_health.is_none_or(|t| t.elapsed() >= self.options.health_interval);
        if with_health {
            self.last_health = Some(Instant::now());
        }
        let s = self.client.get_stream_statistics();
        let health = Health {
            uptime_seconds: s.uptime_seconds,
            samples_processed: s.messages_processed,
            samples_stored: s.samples_stored,
            samples_per_second: s.throughput_window,
            batch_p50_ms: s.latency.p50_ms,
            batch_p99_ms: s.latency.p99_ms,
            consumer_lag: (!s.consumer_lag_by_partition.is_empty()).then_some(s.consumer_lag),
            dead_letters: s.dead_letters,
            errors: s.errors,
            frames_dropped: self.hub.frames_dropped.load(Ordering::Relaxed),
        };
        Round {
            now_ns,
            builds,
            new_alerts: std::mem::take(&mut *self.hub.pending_alerts.lock()),
            rows,
            health,
            with_health,
            force: self.last_frame.elapsed() >= self.options.heartbeat || self.hub.stop.load(Ordering::SeqCst),
        }
    }

    /// Builds and sends one round of frames: per view watched, its delta and (for whoever needs
    /// it) its full frame.
    fn publish(&mut self) {
        let round = self.round();
        let newest = round.builds.iter().max_by_key(|b| b.last_update_ns).map(|b| b.build.clone());
        let stall = self.options.stall.as_nanos() as i64;
        let running = |build: &str| {
            round.builds.iter().any(|b| b.build == build && b.status(round.now_ns, stall) == BuildStatus::Running)
        };
        let hub = self.hub.clone();
        let mut subscribers = hub.subscribers.lock();
        for s in subscribers.iter_mut() {
            // Following the newest: stay on the build followed while it runs (builds interleaving
            // on one topic would otherwise swap the page every round).
            let followed = s.target.as_ref().and_then(|t| t.build.clone()).filter(|b| running(b));
            let target = Target {
                build: s.view.build.clone().or(followed).or_else(|| newest.clone()),
                signal: s.view.signal.clone(),
                stat: s.view.stat.unwrap_or(self.options.stat),
            };
            if s.shown.as_ref() != Some(&target) {
                s.needs_full = true;
            }
            s.target = Some(target);
        }
        let mut targets: Vec<Target> = subscribers.iter().filter_map(|s| s.target.clone()).collect();
        targets.sort();
        targets.dedup();
        self.sent.retain(|t, _| targets.contains(t));
        let mut sent_any = false;
        for target in targets {
            let any_full = subscribers.iter().any(|s| s.target.as_ref() == Some(&target) && s.needs_full);
            let Some(texts) = self.frames(&target, &round, any_full) else { continue };
            sent_any = true;
            self.hub.frames_sent.fetch_add(1, Ordering::Relaxed);
            for s in subscribers.iter_mut().filter(|s| s.target.as_ref() == Some(&target)) {
                let text = match (&texts.full, s.needs_full) {
                    (Some(full), true) => full.clone(),
                    _ => texts.delta.clone(),
                };
                match s.tx.try_send(text) {
                    Ok(()) => {
                        s.needs_full = false;
                        s.shown = Some(target.clone());
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
        // With nobody watching, the heartbeat waits a full period too (no spinning).
        if sent_any || subscribers.is_empty() {
            self.last_frame = Instant::now();
        }
    }

    /// The frames of `target`, or `None` when nothing changed for its watchers (and no frame is due).
    fn frames(&mut self, target: &Target, round: &Round, any_full: bool) -> Option<Texts> {
        let build = target.build.as_deref();
        let state = build.and_then(|b| round.builds.iter().find(|s| s.build == b));
        let maps = self.client.layer_maps().clone();
        let before = self.sent.get(target).copied().unwrap_or_default();
        let mut after = before;
        let current = build.and_then(|b| maps.newest(b));
        let rules = self.client.rules();
        let first = build.and_then(|b| maps.first_reported(b));

        // The current layer's map: changed tiles, or all of it when the layer changed.
        let (mut map, mut full_map) = (None, None);
        if let (Some(b), Some((layer, _))) = (build, current) {
            let _ = maps.with_map(b, layer, |view| {
                let raster = view.raster;
                let signal = pick_signal(raster, target.signal.as_deref().unwrap_or(&self.options.signal));
                let mut scales = self.scales.lock();
                scales.ensure(b, raster.signals(), &rules, first.as_ref(), Some(raster));
                let steps = steps_of(scales.of(b, &signal), target.stat);
                drop(scales);
                let moved = before.layer != Some(layer);
                let since = if moved { 0 } else { before.round };
                let delta = map_frame(raster, layer, &signal, target.stat, steps, moved, since);
                if moved || !delta.tiles.is_empty() {
                    map = Some(delta);
                }
                if any_full {
                    full_map = Some(map_frame(raster, layer, &signal, target.stat, steps, true, 0));
                }
                after.layer = Some(layer);
                after.round = raster.round();
            });
        }
        let summaries = build.map(|b| maps.summaries(b, before.summaries)).unwrap_or_default();
        after.summaries = summaries.iter().map(|s| s.version).max().unwrap_or(before.summaries).max(before.summaries);
        let (scales_version, scales) = {
            let scales = self.scales.lock();
            (scales.version, build.map(|b| scales.all(b)).unwrap_or_default())
        };
        after.scales = scales_version;
        let alerts: Vec<Alert> =
            round.new_alerts.iter().filter(|a| Some(a.build_id.as_str()) == build).cloned().collect();
        let changed = map.is_some() || !summaries.is_empty() || !alerts.is_empty() || scales_version != before.scales;
        self.sent.insert(target.clone(), after);
        if !changed && !round.force && !round.with_health && !any_full {
            return None;
        }
        self.seq += 1;
        let stall = self.options.stall.as_nanos() as i64;
        let base = Frame {
            v: PROTOCOL_VERSION,
            seq: self.seq,
            full: false,
            now_ns: round.now_ns,
            build: build.map(str::to_owned),
            status: state.map(|s| s.status(round.now_ns, stall)),
            last_update_ns: state.map(|s| s.last_update_ns),
            newest_sample_ns: state.and_then(|s| s.newest_sample_ns),
            layer: state.and_then(|s| s.layer),
            layers_total: *self.hub.layers_total.lock(),
            samples: state.map_or(0, |s| s.samples),
            alerts_total: state.map_or(0, |s| s.alerts),
            map,
            alerts,
            layers: summaries,
            scales: if scales_version != before.scales { scales.clone() } else { Vec::new() },
            builds: round.with_health.then(|| round.rows.clone()),
            health: round.with_health.then(|| round.health.clone()),
        };
        let delta = encode(&base);
        let full = any_full.then(|| {
            let mut frame = base;
            frame.full = true;
            frame.map = full_map;
            frame.alerts = build.map(|b| self.client.builds().recent_alerts(b)).unwrap_or_default();
            frame.alerts.truncate(self.options.recent_alerts);
            frame.layers = build.map(|b| maps.summaries(b, 0)).unwrap_or_default();
            frame.scales = scales;
            frame.builds = Some(round.rows.clone());
            frame.health = Some(round.health.clone());
            encode(&frame)
        });
        Some(Texts { delta, full })
    }
}

/// `wanted` if the map holds it, else its first signal (or `wanted` when it holds none).
fn pick_signal(raster: &Raster, wanted: &str) -> String {
    if raster.signals().any(|s| s == wanted) {
        return wanted.to_owned();
    }
    raster.signals().next().unwrap_or(wanted).to_owned()
}

/// The base and step of `stat`'s values on `scale`: the middle of the scale in its rounding
/// (counts are whole, from 0).
fn steps_of(scale: Option<&Scale>, stat: Stat) -> (f64, f64) {
    match scale {
        Some(s) if stat != Stat::Count => (((s.lo + s.hi) / 2.0 / s.step).round() * s.step, s.step),
        _ => (0.0, 1.0),
    }
}

/// `signal`'s `stat` over the tiles of `raster` changed after round `since`, in steps of `step`
/// from `base`.
fn map_frame(
    raster: &Raster,
    layer: u32,
    signal: &str,
    stat: Stat,
    (base, step): (f64, f64),
    full: bool,
    since: u64,
) -> MapFrame {
    let encode = |t: TileValues| MapTile::encode(t.x, t.y, t.w, t.h, &t.values, base, step);
    MapFrame {
        layer,
        full,
        signal: signal.to_owned(),
        stat,
        geometry: *raster.geometry(),
        step,
        base,
        tiles: raster.tiles_since(signal, stat, since).into_iter().map(encode).collect(),
    }
}

fn encode(frame: &Frame) -> Utf8Bytes {
    // Frames hold only finite numbers and strings, so serializing cannot fail.
    Utf8Bytes::from(serde_json::to_string(frame).expect("a frame always serializes"))
}
