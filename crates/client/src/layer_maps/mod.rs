//! The live page's per-layer maps: a 2-D [`Raster`] of every signal for each layer of each
//! build (cells of `layer_map_resolution_mm`, default the voxel edge), layer summaries for the
//! strip and the trends, and the colour [`Scale`]s the rules imply. The 3-D voxel grid stays for
//! part-level views; a layer's map is never a slab of several layers.

mod maps;
mod raster;
mod scales;

pub use maps::{ALERTS_PER_LAYER, LayerMaps, LayerSummary, MapError, MapView};
pub use raster::{Geometry, MAX_SIGNALS, Raster, Stat, TILE, TileValues};
pub use scales::{Scale, scale, step_for};

#[cfg(test)]
mod tests;
