//! The live feed's wire format: one versioned JSON object per WebSocket text message.
//!
//! Every frame carries `v` ([`PROTOCOL_VERSION`]); a page that sees another version must stop
//! and say so. A `full` heatmap replaces everything the page holds; otherwise its tiles overwrite
//! only the voxels they cover (the blocks that changed since the previous frame).

use qadf_core_types::{Alert, StreamStatistics};
use serde::{Deserialize, Serialize};

/// Version of the frame format; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 2;

/// One message of the feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Always [`PROTOCOL_VERSION`].
    pub v: u32,
    /// Frame number of this feed (increases by one per published frame).
    pub seq: u64,
    /// The build shown (the one asked for with `/ws?build=ID`, else the newest), once one has been seen.
    pub build: Option<String>,
    /// Measurement time (ns since the epoch) of the newest sample reflected in this frame.
    pub newest_sample_ns: Option<i64>,
    /// The current layer's heatmap, or the tiles of it that changed.
    pub heatmap: Option<Heatmap>,
    /// Alerts raised since the previous frame (a full frame repeats the most recent ones).
    pub alerts: Vec<Alert>,
    /// Client statistics: throughput, latency, lag, errors, dead letters.
    pub stats: StreamStatistics,
    /// How far the build is.
    pub progress: Progress,
    /// Every build on the stream (version 2).
    #[serde(default)]
    pub builds: Vec<crate::builds::BuildState>,
}

/// Build progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Layer of the newest sample.
    pub layer: Option<u32>,
    /// Layers the build will have, when the source knows it.
    pub layers_total: Option<u32>,
    /// Alerts the build shown raised.
    pub alerts_total: u64,
    /// Frames that lagging subscribers' queues could not take, over all subscribers (each such
    /// subscriber then gets a full frame).
    pub frames_dropped: u64,
}

/// One signal's aggregate over the voxels of the current z level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Heatmap {
    /// Replace everything held (true) or overwrite the tiles' voxels only (false).
    pub full: bool,
    /// The signal shown.
    pub signal: String,
    /// The statistic shown per voxel, e.g. "mean".
    pub aggregation: String,
    /// Voxel index along z.
    pub z_index: u32,
    /// Voxel edge in mm.
    pub resolution: f64,
    /// World (x, y) in mm of voxel (0, 0)'s lower corner.
    pub world_origin: [f64; 2],
    /// Rectangles of voxels.
    pub tiles: Vec<Tile>,
}

/// A rectangle of voxel values at voxel index (x, y), `w` columns by `h` rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tile {
    /// First column (voxel index x).
    pub x: u32,
    /// First row (voxel index y).
    pub y: u32,
    /// Columns.
    pub w: u32,
    /// Rows.
    pub h: u32,
    /// Row-major values; `null` where nothing landed.
    pub values: Vec<Option<f32>>,
}
