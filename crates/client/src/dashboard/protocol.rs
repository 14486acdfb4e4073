//! The live feed's wire format: one versioned JSON object per WebSocket text message, and the
//! JSON of `GET /api/layer` (docs/OPERATIONS.md, "The live page").
//!
//! Every frame carries `v` ([`PROTOCOL_VERSION`]); a page that sees another version must stop
//! and say so. A `full` frame replaces everything the page holds of the build; otherwise its map
//! tiles overwrite only the cells they cover, its layer summaries replace those layers' rows, and
//! its alerts are new ones. Map values are integers `q` in steps: the value is `base + q × step`,
//! sent as little-endian `i16` in base64 (`b`, `-32768` where nothing landed), or as a JSON array
//! (`q`, `null` where nothing landed) for a tile holding a value too far from `base`.

use qadf_core_types::Alert;
use serde::{Deserialize, Serialize};

use crate::builds::BuildStatus;
use crate::layer_maps::{Geometry, LayerSummary, Scale, Stat};

/// Version of the frame format; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 3;

/// One message of the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// Frame number of this feed (increases by one per published frame).
    pub seq: u64,
    /// Whether this frame replaces everything the page holds.
    pub full: bool,
    /// The server's clock when the frame was made, ns since the epoch (ages are measured on it).
    pub now_ns: i64,
    /// The build shown (the one asked for with `/ws?build=ID`, else the newest), once one has been seen.
    pub build: Option<String>,
    /// Running, stalled or finished (the page adds "disconnected" itself).
    pub status: Option<BuildStatus>,
    /// When the build's last batch was processed (server clock), ns since the epoch.
    pub last_update_ns: Option<i64>,
    /// Measurement time (ns since the epoch) of the newest sample of the build.
    pub newest_sample_ns: Option<i64>,
    /// Layer of the newest sample (counted from 0 at the plate, as in the data).
    pub layer: Option<u32>,
    /// Layers the build will have, when the source knows it.
    pub layers_total: Option<u32>,
    /// Samples and alerts of the build so far.
    pub samples: u64,
    /// See `samples`.
    pub alerts_total: u64,
    /// The current layer's map, or the tiles of it that changed.
    pub map: Option<MapFrame>,
    /// Alerts raised since the previous frame (a full frame repeats the most recent ones).
    pub alerts: Vec<Alert>,
    /// Layer summaries that changed (a full frame: every layer of the build).
    pub layers: Vec<LayerSummary>,
    /// Colour scales of the build's signals (full frames, and when one is added or fixed).
    pub scales: Vec<Scale>,
    /// Every build on the stream (full frames, and about once a second).
    pub builds: Option<Vec<BuildRow>>,
    /// The stream's health (full frames, and about once a second).
    pub health: Option<Health>,
}

/// One build in the list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BuildRow {
    /// The build id.
    pub build: String,
    /// Running, stalled or finished.
    pub status: BuildStatus,
    /// Layer of the newest sample.
    pub layer: Option<u32>,
    /// Samples processed.
    pub samples: u64,
    /// Alerts raised.
    pub alerts: u64,
    /// When its last batch was processed (server clock), ns since the epoch.
    pub last_update_ns: i64,
}

/// The map of one layer for one signal and statistic, or the tiles of it that changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapFrame {
    /// The layer.
    pub layer: u32,
    /// Replace the whole map (true) or overwrite the tiles' cells only (false).
    pub full: bool,
    /// The signal shown.
    pub signal: String,
    /// The statistic shown per cell.
    pub stat: Stat,
    /// Where the cells lie (the whole plate).
    pub geometry: Geometry,
    /// Values are `base + q × step`.
    pub step: f64,
    /// See `step`: the middle of the signal's scale.
    pub base: f64,
    /// Rectangles of cells.
    pub tiles: Vec<MapTile>,
}

/// A rectangle of cells at cell (x, y), `w` columns by `h` rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapTile {
    /// First column.
    pub x: u32,
    /// First row.
    pub y: u32,
    /// Columns.
    pub w: u32,
    /// Rows.
    pub h: u32,
    /// Row-major steps as little-endian `i16` in base64, [`NO_DATA`] where nothing landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub b: Option<String>,
    /// Row-major steps (when one does not fit an `i16`); `null` where nothing landed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<Vec<Option<i64>>>,
}

/// The `i16` of a cell where nothing landed.
pub const NO_DATA: i16 = i16::MIN;

impl MapTile {
    /// A tile of `values` in steps of `step` from `base`: binary when every step fits an `i16`.
    pub fn encode(x: u32, y: u32, w: u32, h: u32, values: &[Option<f64>], base: f64, step: f64) -> MapTile {
        use base64::Engine;
        let steps: Vec<Option<i64>> = values.iter().map(|v| v.map(|v| ((v - base) / step).round() as i64)).collect();
        let fits = |q: &Option<i64>| q.is_none_or(|q| (NO_DATA as i64 + 1..=i16::MAX as i64).contains(&q));
        if steps.iter().all(fits) {
            let bytes: Vec<u8> = steps.iter().flat_map(|q| q.map_or(NO_DATA, |q| q as i16).to_le_bytes()).collect();
            let b = base64::engine::general_purpose::STANDARD.encode(bytes);
            MapTile { x, y, w, h, b: Some(b), q: None }
        } else {
            MapTile { x, y, w, h, b: None, q: Some(steps) }
        }
    }

    /// Its values, row-major (`None` where nothing landed, or for a tile that does not decode).
    pub fn values(&self, base: f64, step: f64) -> Vec<Option<f64>> {
        use base64::Engine;
        let value = |q: i64| base + q as f64 * step;
        if let Some(q) = &self.q {
            return q.iter().map(|q| q.map(value)).collect();
        }
        let bytes = self.b.as_deref().and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
        let Some(bytes) = bytes else { return vec![None; (self.w * self.h) as usize] };
        bytes
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .map(|q| (q != NO_DATA).then(|| value(q as i64)))
            .collect()
    }
}

/// The stream's health, for the secondary panel.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Seconds since the first batch.
    pub uptime_seconds: f64,
    /// Samples processed.
    pub samples_processed: u64,
    /// Samples stored in the history (0 when none is kept).
    pub samples_stored: u64,
    /// Samples per second over the last 10 s.
    pub samples_per_second: f64,
    /// Batch latency percentiles, ms.
    pub batch_p50_ms: Option<f64>,
    /// See `batch_p50_ms`.
    pub batch_p99_ms: Option<f64>,
    /// Messages behind the log end over all partitions (`None`: the source does not say).
    pub consumer_lag: Option<u64>,
    /// Dead letters and failed batches.
    pub dead_letters: u64,
    /// See `dead_letters`.
    pub errors: u64,
    /// Frames that lagging viewers could not take.
    pub frames_dropped: u64,
}

/// `GET /api/layer?build=B&layer=N[&signal=S][&stat=max|min|mean|count]`: one layer's whole map
/// and its alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerAnswer {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// The build.
    pub build: String,
    /// The map (`full`).
    pub map: MapFrame,
    /// Whether the map was rebuilt from the history (it was no longer in memory).
    pub from_history: bool,
    /// The layer's alerts (the first ones).
    pub alerts: Vec<Alert>,
    /// The layer's summary.
    pub summary: Option<LayerSummary>,
}
