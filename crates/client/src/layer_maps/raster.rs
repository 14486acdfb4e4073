//! `Raster`: one layer of one build as a 2-D map — per cell and signal the count, minimum,
//! maximum and sum of the values that landed there. Sparse: tiles of [`TILE`]×[`TILE`] cells are
//! allocated where samples land, each stamped with the round that last changed it, so a reader
//! can take only the tiles changed since it last looked.

use std::collections::HashMap;

use qadf_core_types::Sample;
use serde::{Deserialize, Serialize};

/// Cells along each side of a tile.
pub const TILE: u32 = 16;
/// Cells of one tile.
const TILE_CELLS: usize = (TILE * TILE) as usize;
/// Most signals one raster holds (values of further signals are not mapped).
pub const MAX_SIGNALS: usize = 16;

/// Where the cells lie: the lower corner of cell (0, 0), the cell edge and the cell counts.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// World (x, y) in mm of cell (0, 0)'s lower corner.
    pub origin: [f64; 2],
    /// Cell edge in mm.
    pub resolution: f64,
    /// Cells along x and y.
    pub cells: [u32; 2],
}

impl Geometry {
    /// Cells of `resolution` mm covering the rectangle from `min` to `max` (mm).
    pub fn covering(min: [f64; 2], max: [f64; 2], resolution: f64) -> Geometry {
        let count = |lo: f64, hi: f64| (((hi - lo) / resolution).ceil().max(1.0) as u64).min(u32::MAX as u64) as u32;
        Geometry { origin: min, resolution, cells: [count(min[0], max[0]), count(min[1], max[1])] }
    }

    /// The cell holding (x, y), if it is on the map.
    pub fn cell(&self, x: f64, y: f64) -> Option<[u32; 2]> {
        let index = |v: f64, o: f64, n: u32| {
            let i = ((v - o) / self.resolution).floor();
            (i >= 0.0 && i < n as f64).then_some(i as u32)
        };
        Some([index(x, self.origin[0], self.cells[0])?, index(y, self.origin[1], self.cells[1])?])
    }
}

/// The statistic a map shows per cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// The largest value (the default: a hot spot shows at its peak).
    #[default]
    Max,
    /// The smallest value.
    Min,
    /// The mean value.
    Mean,
    /// How many values landed.
    Count,
}

impl Stat {
    /// The statistic named `name` (`max`, `min`, `mean`, `count`).
    pub fn parse(name: &str) -> Option<Stat> {
        Some(match name {
            "max" => Stat::Max,
            "min" => Stat::Min,
            "mean" => Stat::Mean,
            "count" => Stat::Count,
            _ => return None,
        })
    }
}

/// One cell's values of one signal.
#[derive(Clone, Copy, Debug)]
struct Cell {
    count: u32,
    min: f32,
    max: f32,
    sum: f64,
}

impl Cell {
    const EMPTY: Cell = Cell { count: 0, min: f32::INFINITY, max: f32::NEG_INFINITY, sum: 0.0 };

    fn push(&mut self, v: f64) {
        self.count += 1;
        self.min = self.min.min(v as f32);
        self.max = self.max.max(v as f32);
        self.sum += v;
    }

    fn value(&self, stat: Stat) -> Option<f64> {
        (self.count > 0).then(|| match stat {
            Stat::Max => self.max as f64,
            Stat::Min => self.min as f64,
            Stat::Mean => self.sum / self.count as f64,
            Stat::Count => self.count as f64,
        })
    }
}

/// A tile: per signal held, its cells (row-major), and the round that last changed it, each of
/// its rows and each of its columns (a reader takes only the rectangle that changed).
struct Tile {
    round: u64,
    rows: [u64; TILE as usize],
    cols: [u64; TILE as usize],
    signals: Vec<Box<[Cell; TILE_CELLS]>>,
}

impl Tile {
    /// The rows (or columns) changed after round `since`, as a range.
    fn changed(rounds: &[u64; TILE as usize], since: u64) -> Option<(u32, u32)> {
        let first = rounds.iter().position(|&r| r > since)?;
        let last = rounds.iter().rposition(|&r| r > since)?;
        Some((first as u32, last as u32 + 1))
    }
}

/// A rectangle of cell values at cell (x, y), `w` by `h`, row-major, `None` where nothing landed.
#[derive(Clone, Debug, PartialEq)]
pub struct TileValues {
    /// First column.
    pub x: u32,
    /// First row.
    pub y: u32,
    /// Columns.
    pub w: u32,
    /// Rows.
    pub h: u32,
    /// The values.
    pub values: Vec<Option<f64>>,
}

/// One layer's map.
pub struct Raster {
    geometry: Geometry,
    signals: Vec<String>,
    tiles: HashMap<[u32; 2], Tile>,
    round: u64,
    samples: u64,
    unmapped: u64,
}

impl Raster {
    /// An empty map over `geometry`.
    pub fn new(geometry: Geometry) -> Raster {
        Raster { geometry, signals: Vec::new(), tiles: HashMap::new(), round: 0, samples: 0, unmapped: 0 }
    }

    /// Where its cells lie.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The round of the latest change (0: nothing yet); tiles changed after round `r` are
    /// those [`Raster::tiles_since`]`(r)` returns.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Samples mapped, and samples without a position on the map.
    pub fn samples(&self) -> (u64, u64) {
        (self.samples, self.unmapped)
    }

    /// The signals held, in the order first seen.
    pub fn signals(&self) -> impl Iterator<Item = &str> {
        self.signals.iter().map(String::as_str)
    }

    /// Adds samples (of this map's build and layer) as one round.
    pub fn add(&mut self, samples: &[Sample]) {
        self.round += 1;
        for s in samples {
            let Some(cell) = s.position.and_then(|p| self.geometry.cell(p.x, p.y)) else {
                self.unmapped += 1;
                continue;
            };
            self.samples += 1;
            let key = [cell[0] / TILE, cell[1] / TILE];
            let at = ((cell[1] % TILE) * TILE + cell[0] % TILE) as usize;
            for (name, value) in s.signals.iter() {
                if !value.is_finite() {
                    continue;
                }
                let Some(index) = self.signal_index(name) else { continue };
                let tile = self.tiles.entry(key).or_insert_with(|| Tile {
                    round: 0,
                    rows: [0; TILE as usize],
                    cols: [0; TILE as usize],
                    signals: Vec::new(),
                });
                while tile.signals.len() <= index {
                    tile.signals.push(Box::new([Cell::EMPTY; TILE_CELLS]));
                }
                tile.signals[index][at].push(value);
                tile.round = self.round;
                tile.rows[(cell[1] % TILE) as usize] = self.round;
                tile.cols[(cell[0] % TILE) as usize] = self.round;
            }
        }
    }

    fn signal_index(&mut self, name: &str) -> Option<usize> {
        if let Some(i) = self.signals.iter().position(|s| s == name) {
            return Some(i);
        }
        (self.signals.len() < MAX_SIGNALS).then(|| {
            self.signals.push(name.to_owned());
            self.signals.len() - 1
        })
    }

    /// `signal`'s `stat` in the tiles changed after round `since` (0: every tile), ordered by
    /// position; of each tile the rectangle of its rows and columns that changed, cropped to the map.
    pub fn tiles_since(&self, signal: &str, stat: Stat, since: u64) -> Vec<TileValues> {
        let Some(index) = self.signals.iter().position(|s| s == signal) else { return Vec::new() };
        let mut keys: Vec<&[u32; 2]> =
            self.tiles.iter().filter(|(_, t)| t.round > since && t.signals.len() > index).map(|(k, _)| k).collect();
        keys.sort_unstable_by_key(|k| (k[1], k[0]));
        keys.into_iter()
            .filter_map(|key| {
                let tile = &self.tiles[key];
                let (r0, r1) = Tile::changed(&tile.rows, since)?;
                let (c0, c1) = Tile::changed(&tile.cols, since)?;
                let (x, y) = (key[0] * TILE + c0, key[1] * TILE + r0);
                let w = (c1 - c0).min(self.geometry.cells[0] - x);
                let h = (r1 - r0).min(self.geometry.cells[1] - y);
                let mut values = Vec::with_capacity((w * h) as usize);
                for r in r0..r0 + h {
                    for c in c0..c0 + w {
                        values.push(tile.signals[index][(r * TILE + c) as usize].value(stat));
                    }
                }
                Some(TileValues { x, y, w, h, values })
            })
            .collect()
    }

    /// The smallest and largest value of `signal` on the map.
    pub fn range(&self, signal: &str) -> Option<(f64, f64)> {
        let index = self.signals.iter().position(|s| s == signal)?;
        let cells = self.tiles.values().filter_map(|t| t.signals.get(index)).flat_map(|c| c.iter());
        let (lo, hi) = cells
            .filter(|c| c.count > 0)
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), c| (lo.min(c.min), hi.max(c.max)));
        (lo <= hi).then_some((lo as f64, hi as f64))
    }

    /// Bytes held by the tiles (for the memory bound).
    pub fn bytes(&self) -> usize {
        self.tiles.values().map(|t| t.signals.len() * std::mem::size_of::<[Cell; TILE_CELLS]>() + 64).sum()
    }
}

#[cfg(test)]
mod tests {
    use qadf_core_types::{Point3, Sample, Signals, Timestamp};

    use super::*;

    fn sample(x: f64, y: f64, t: f64) -> Sample {
        let mut signals = Signals::new();
        signals.push("temperature", t);
        Sample::new(Timestamp::from_nanos(1), Point3::new(x, y, 0.0), signals)
    }

    fn geometry() -> Geometry {
        Geometry::covering([0.0, 0.0], [5.0, 3.0], 0.1)
    }

    #[test]
    fn cells_cover_the_rectangle_and_refuse_what_is_off_it() {
        let g = geometry();
        assert_eq!(g.cells, [50, 30]);
        assert_eq!(g.cell(0.0, 0.0), Some([0, 0]));
        assert_eq!(g.cell(0.1999, 0.25), Some([1, 2]));
        assert_eq!(g.cell(4.9999, 2.9999), Some([49, 29]));
        assert_eq!(g.cell(5.0, 1.0), None);
        assert_eq!(g.cell(-0.0001, 1.0), None);
        assert_eq!(g.cell(f64::NAN, 1.0), None);
    }

    #[test]
    fn each_statistic_is_kept_per_cell_and_tiles_are_cropped_to_the_map() {
        let mut r = Raster::new(geometry());
        r.add(&[sample(4.95, 2.95, 1900.0), sample(4.91, 2.91, 2349.5), sample(0.05, 0.05, 1000.0)]);
        let at = |stat| {
            let tiles = r.tiles_since("temperature", stat, 0);
            let last = tiles.iter().find(|t| t.x == 49 && t.y == 29).expect("the corner tile").clone();
            assert_eq!((last.w, last.h), (1, 1), "only the rectangle that changed: one cell");
            last.values[0]
        };
        assert_eq!(at(Stat::Max), Some(2349.5));
        assert_eq!(at(Stat::Min), Some(1900.0));
        assert_eq!(at(Stat::Mean), Some((1900.0 + 2349.5) / 2.0));
        assert_eq!(at(Stat::Count), Some(2.0));
        assert_eq!(r.samples(), (3, 0));
        let first = &r.tiles_since("temperature", Stat::Max, 0)[0];
        assert_eq!((first.x, first.y, first.values.as_slice()), (0, 0, [Some(1000.0)].as_slice()));
        assert!(r.tiles_since("area", Stat::Max, 0).is_empty(), "a signal never seen has no tiles");
        assert_eq!(r.range("temperature"), Some((1000.0, 2349.5)));
        assert_eq!(r.range("area"), None);
    }

    #[test]
    fn only_tiles_changed_after_a_round_are_returned() {
        let mut r = Raster::new(geometry());
        r.add(&[sample(0.05, 0.05, 1.0), sample(3.0, 2.0, 1.0)]);
        let seen = r.round();
        r.add(&[sample(3.01, 2.01, 2.0)]);
        let changed = r.tiles_since("temperature", Stat::Max, seen);
        assert_eq!(changed.len(), 1);
        assert_eq!((changed[0].x, changed[0].y, changed[0].w, changed[0].h), (30, 20, 1, 1));
        r.add(&[sample(3.15, 2.05, 3.0), sample(3.05, 2.35, 3.0)]);
        let rect = r.tiles_since("temperature", Stat::Max, seen);
        assert_eq!((rect[0].x, rect[0].y, rect[0].w, rect[0].h), (30, 20, 2, 4), "rows 20-23 by columns 30-31");
        assert_eq!(rect[0].values.iter().flatten().count(), 3, "cells in the rectangle that hold nothing are None");
        assert!(r.tiles_since("temperature", Stat::Max, r.round()).is_empty());
        let mut off = sample(9.0, 9.0, 1.0);
        r.add(std::slice::from_ref(&off));
        off.position = None;
        r.add(&[off]);
        assert_eq!(r.samples(), (5, 2), "off the map or without a position: counted, not mapped");
    }
}
