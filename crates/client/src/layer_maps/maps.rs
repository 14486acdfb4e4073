//! `LayerMaps`: every layer of every build the stream carried — its summary (verdict, samples,
//! alerts, per-signal statistics once the layer is reported) and, for the newest
//! `layer_maps_in_memory` layers of each build, its [`Raster`]. Older layers' maps are dropped
//! and rebuilt from the history store when asked for (the history holds every stored sample).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use qadf_core_types::{Alert, HistoryQuery, HistoryStore, LayerReport, LayerSignal, Sample, Verdict};
use serde::{Deserialize, Serialize};

use super::raster::{Geometry, Raster};
use crate::builds::MAX_BUILDS;

/// Layers remembered per build (summaries; the oldest is forgotten first).
pub const MAX_LAYERS_PER_BUILD: usize = 20_000;
/// Alerts kept per layer (the first ones), for the page's table and the map's markers.
pub const ALERTS_PER_LAYER: usize = 100;
/// Maps rebuilt from the history kept at once.
const PAGED_IN: usize = 4;
/// Most samples read back from the history to rebuild one layer's map.
const MAX_PAGE_SAMPLES: usize = 5_000_000;

/// What the strip and the trends show of one layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// The layer (counted from 0 at the plate, as in the data).
    pub layer: u32,
    /// The worst severity of its alerts so far (the report's verdict once reported).
    pub verdict: Verdict,
    /// Whether its report is made (the build moved on to a later layer, or the stream ended).
    pub closed: bool,
    /// Samples of the layer processed.
    pub samples: u64,
    /// Alerts raised in the layer.
    pub alerts: u64,
    /// Measurement time of its first and last sample, ns since the epoch.
    pub first_sample_ns: i64,
    /// See `first_sample_ns`.
    pub last_sample_ns: i64,
    /// Per signal: count, mean, min, max, std (from the layer's report).
    pub signals: BTreeMap<String, LayerSignal>,
    /// Voxels holding a value outside a range rule's band (from the report).
    pub voxels_out_of_limits: u64,
    /// Bumped on every change (the feed sends changed summaries only).
    pub version: u64,
}

/// One layer: its summary, its first alerts, its map while in memory.
struct Layer {
    summary: LayerSummary,
    alerts: Vec<Alert>,
    raster: Option<Raster>,
}

/// One build's layers, by number.
#[derive(Default)]
struct BuildLayers {
    layers: BTreeMap<u32, Layer>,
    touched: u64,
}

/// A layer's map as read for a page: the map itself and what it covers.
pub struct MapView<'a> {
    /// The map.
    pub raster: &'a Raster,
    /// Whether it was rebuilt from the history (not held in memory).
    pub from_history: bool,
}

/// Why a layer's map cannot be shown.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// The build or layer was never seen (or is forgotten).
    #[error("no such layer")]
    Unknown,
    /// The map is no longer in memory and there is no history to rebuild it from.
    #[error("the layer's map is no longer in memory and no history is kept")]
    NotKept,
    /// Reading the history failed.
    #[error("reading the history: {0}")]
    History(String),
}

/// A build and one of its layers.
type LayerKey = (String, u32);

/// Every build's layers; filled after each processed batch, read by the live page.
pub struct LayerMaps {
    geometry: Geometry,
    keep: usize,
    builds: Mutex<HashMap<String, BuildLayers>>,
    history: RwLock<Option<Arc<dyn HistoryStore>>>,
    paged: Mutex<VecDeque<(LayerKey, Arc<Raster>)>>,
    ticket: std::sync::atomic::AtomicU64,
}

impl LayerMaps {
    /// Maps of `geometry`, the newest `keep` layers of each build in memory.
    pub fn new(geometry: Geometry, keep: usize) -> LayerMaps {
        LayerMaps {
            geometry,
            keep: keep.max(1),
            builds: Mutex::default(),
            history: RwLock::default(),
            paged: Mutex::default(),
            ticket: Default::default(),
        }
    }

    /// Where the cells lie.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Rebuilds maps no longer in memory from `history`.
    pub fn set_history(&self, history: Arc<dyn HistoryStore>) {
        *self.history.write() = Some(history);
    }

    fn next_ticket(&self) -> u64 {
        self.ticket.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// Folds in one processed batch: its samples (kept by the pipeline), its alerts, and the
    /// reports of the layers it closed.
    pub fn observe(&self, samples: &[Sample], alerts: &[Alert], reports: &[LayerReport]) {
        let mut builds = self.builds.lock();
        let mut start = 0;
        while start < samples.len() {
            let (build, layer) = (&samples[start].build_id, samples[start].layer);
            let end = samples[start..]
                .iter()
                .position(|s| s.build_id != *build || s.layer != layer)
                .map_or(samples.len(), |n| start + n);
            let run = &samples[start..end];
            let (version, geometry, keep) = (self.next_ticket(), self.geometry, self.keep);
            self.with_layer(&mut builds, build, layer, |entry| {
                let s = &mut entry.summary;
                if s.samples == 0 {
                    s.first_sample_ns = i64::MAX;
                }
                s.samples += run.len() as u64;
                for t in run.iter().map(|s| s.timestamp.as_nanos()) {
                    s.first_sample_ns = s.first_sample_ns.min(t);
                    s.last_sample_ns = s.last_sample_ns.max(t);
                }
                s.version = version;
                entry.raster.get_or_insert_with(|| Raster::new(geometry)).add(run);
            });
            Self::drop_old_maps(builds.get_mut(build.as_str()), keep);
            start = end;
        }
        for a in alerts {
            let Some(layer) = a.layer else { continue };
            let version = self.next_ticket();
            self.with_layer(&mut builds, &a.build_id, layer, |entry| {
                entry.summary.alerts += 1;
                entry.summary.verdict = entry.summary.verdict.max(Verdict::of(a.severity));
                entry.summary.version = version;
                if entry.alerts.len() < ALERTS_PER_LAYER {
                    entry.alerts.push(a.clone());
                }
            });
        }
        for r in reports {
            let version = self.next_ticket();
            self.with_layer(&mut builds, &r.build_id, r.layer, |entry| {
                let s = &mut entry.summary;
                s.closed = true;
                s.verdict = s.verdict.max(r.verdict);
                s.signals = r.signals.clone();
                s.voxels_out_of_limits = r.voxels_out_of_limits;
                s.version = version;
            });
        }
    }

    fn with_layer(
        &self,
        builds: &mut HashMap<String, BuildLayers>,
        build: &str,
        layer: u32,
        f: impl FnOnce(&mut Layer),
    ) {
        if !builds.contains_key(build) && builds.len() >= MAX_BUILDS {
            let oldest = builds.iter().min_by_key(|(_, b)| b.touched).map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                builds.remove(&oldest);
            }
        }
        let entry = builds.entry(build.to_owned()).or_default();
        entry.touched = self.next_ticket();
        if !entry.layers.contains_key(&layer) && entry.layers.len() >= MAX_LAYERS_PER_BUILD {
            entry.layers.pop_first();
        }
        let layer = entry.layers.entry(layer).or_insert_with(|| Layer {
            summary: LayerSummary { layer, ..LayerSummary::default() },
            alerts: Vec::new(),
            raster: None,
        });
        f(layer);
    }

    /// Keeps the maps of the newest `keep` layers of a build.
    fn drop_old_maps(build: Option<&mut BuildLayers>, keep: usize) {
        let Some(build) = build else { return };
        let mapped = build.layers.values().filter(|l| l.raster.is_some()).count();
        if mapped > keep {
            for l in build.layers.values_mut().filter(|l| l.raster.is_some()).take(mapped - keep) {
                l.raster = None;
            }
        }
    }

    /// The summaries of `build`'s layers changed after `since` (0: all), by layer.
    pub fn summaries(&self, build: &str, since: u64) -> Vec<LayerSummary> {
        let builds = self.builds.lock();
        let Some(b) = builds.get(build) else { return Vec::new() };
        b.layers.values().filter(|l| l.summary.version > since).map(|l| l.summary.clone()).collect()
    }

    /// The first reported layer of `build` with signal statistics (the basis of fixed scales).
    pub fn first_reported(&self, build: &str) -> Option<LayerSummary> {
        let builds = self.builds.lock();
        builds
            .get(build)?
            .layers
            .values()
            .find(|l| l.summary.closed && !l.summary.signals.is_empty())
            .map(|l| l.summary.clone())
    }

    /// The first alerts of one layer.
    pub fn alerts(&self, build: &str, layer: u32) -> Vec<Alert> {
        let builds = self.builds.lock();
        builds.get(build).and_then(|b| b.layers.get(&layer)).map(|l| l.alerts.clone()).unwrap_or_default()
    }

    /// The newest layer of `build` with a map, and that map's round.
    pub fn newest(&self, build: &str) -> Option<(u32, u64)> {
        let builds = self.builds.lock();
        let b = builds.get(build)?;
        b.layers.iter().rev().find_map(|(n, l)| l.raster.as_ref().map(|r| (*n, r.round())))
    }

    /// Reads one layer's map: in memory, else rebuilt from the history.
    pub fn with_map<T>(&self, build: &str, layer: u32, f: impl FnOnce(MapView<'_>) -> T) -> Result<T, MapError> {
        {
            let builds = self.builds.lock();
            let entry = builds.get(build).and_then(|b| b.layers.get(&layer)).ok_or(MapError::Unknown)?;
            if let Some(raster) = &entry.raster {
                return Ok(f(MapView { raster, from_history: false }));
            }
        }
        let key = (build.to_owned(), layer);
        let cached = self.paged.lock().iter().find(|(k, _)| *k == key).map(|(_, r)| r.clone());
        let raster = match cached {
            Some(r) => r,
            None => {
                let history = self.history.read().clone().ok_or(MapError::NotKept)?;
                let query = HistoryQuery {
                    build_id: Some(build.to_owned()),
                    layer: Some(layer),
                    limit: MAX_PAGE_SAMPLES,
                    ..HistoryQuery::all()
                };
                let samples = history.query_stream_history(&query).map_err(|e| MapError::History(e.to_string()))?;
                let mut raster = Raster::new(self.geometry);
                raster.add(&samples);
                let raster = Arc::new(raster);
                let mut paged = self.paged.lock();
                if paged.len() >= PAGED_IN {
                    paged.pop_front();
                }
                paged.push_back((key, raster.clone()));
                raster
            }
        };
        Ok(f(MapView { raster: &raster, from_history: true }))
    }

    /// Bytes held by the maps in memory.
    pub fn bytes(&self) -> usize {
        let builds = self.builds.lock();
        builds.values().flat_map(|b| b.layers.values()).filter_map(|l| l.raster.as_ref()).map(Raster::bytes).sum()
    }
}
