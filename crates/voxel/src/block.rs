//! Block addressing: 8³-voxel blocks, found through a two-level table.
//!
//! Like OpenVDB's internal nodes: a hash map from tile (16³ blocks = 128³ voxels) to a dense table
//! of the tile's 4096 block slots. Consecutive points almost always share a tile, so a one-entry
//! tile cache turns most lookups into one array index; memory is 16 KiB per touched tile.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// Voxels along one edge of a block.
pub const BLOCK_EDGE: u32 = 8;
/// Voxels in a block.
pub const BLOCK_VOXELS: usize = 512;

/// Tile coordinates packed 21 bits each (the hash key of a tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockKey(u64);

impl BlockKey {
    /// The key of block coordinates `block`.
    #[inline]
    pub fn from_coords(block: [u32; 3]) -> BlockKey {
        BlockKey(block[0] as u64 | (block[1] as u64) << 21 | (block[2] as u64) << 42)
    }
}

/// Position of voxel `index` inside its block, x fastest: `x + 8 y + 64 z`.
#[inline]
pub fn local_index(index: [u32; 3]) -> u32 {
    (index[0] & 7) | (index[1] & 7) << 3 | (index[2] & 7) << 6
}

/// A fast hasher for block keys: SplitMix64's finalizer (Steele et al.), which mixes every bit.
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockHasher;

/// The hasher state produced by [`BlockHasher`].
#[derive(Default)]
pub struct BlockKeyHasher(u64);

impl Hasher for BlockKeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        let mut z = self.0 ^ n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        self.0 = z ^ (z >> 31);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for BlockHasher {
    type Hasher = BlockKeyHasher;
    fn build_hasher(&self) -> BlockKeyHasher {
        BlockKeyHasher(0)
    }
}

/// Hints the CPU to start loading the cache line at `p` (no effect on program semantics).
///
/// Random points hit cells spread over tens of MB; issuing the load a few points ahead hides the
/// cache-miss latency that otherwise dominates an update.
#[inline(always)]
pub fn prefetch<T>(p: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` only hints the cache; it never faults and reads no value. SSE is part of
    // the x86_64 baseline, so the target feature is always present.
    #[allow(unsafe_code)]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((p as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Blocks along one edge of a tile.
const TILE_EDGE_BLOCKS: u32 = 16;
/// Block slots in a tile.
const TILE_BLOCKS: usize = 4096;
/// Marks an absent block.
const ABSENT: u32 = u32::MAX;

/// Maps block coordinates to block slots.
#[derive(Clone, Debug, Default)]
pub struct BlockTable {
    tile_index: HashMap<BlockKey, u32, BlockHasher>,
    tiles: Vec<Box<[u32]>>,
    cached: Option<(BlockKey, u32)>,
}

impl BlockTable {
    #[inline]
    fn tile_of(block: [u32; 3]) -> (BlockKey, usize) {
        let e = TILE_EDGE_BLOCKS;
        let tile = BlockKey::from_coords([block[0] / e, block[1] / e, block[2] / e]);
        let local = (block[0] % e) + (block[1] % e) * e + (block[2] % e) * e * e;
        (tile, local as usize)
    }

    /// The slot of `block`, if allocated.
    #[inline]
    pub fn get(&self, block: [u32; 3]) -> Option<u32> {
        let (tile, local) = BlockTable::tile_of(block);
        let t = match self.cached {
            Some((k, t)) if k == tile => t,
            _ => *self.tile_index.get(&tile)?,
        };
        let slot = self.tiles[t as usize][local];
        (slot != ABSENT).then_some(slot)
    }

    /// The slot of `block`, calling `allocate` for a new one.
    #[inline(always)]
    pub fn get_or_insert(&mut self, block: [u32; 3], allocate: impl FnOnce() -> u32) -> u32 {
        let (tile, local) = BlockTable::tile_of(block);
        if let Some((k, t)) = self.cached
            && k == tile
        {
            let slot = self.tiles[t as usize][local];
            if slot != ABSENT {
                return slot;
            }
        }
        self.get_or_insert_slow(tile, local, allocate)
    }

    #[cold]
    #[inline(never)]
    fn get_or_insert_slow(&mut self, tile: BlockKey, local: usize, allocate: impl FnOnce() -> u32) -> u32 {
        let next = self.tiles.len() as u32;
        let t = *self.tile_index.entry(tile).or_insert(next);
        if t == next {
            self.tiles.push(vec![ABSENT; TILE_BLOCKS].into_boxed_slice());
        }
        self.cached = Some((tile, t));
        let entry = &mut self.tiles[t as usize][local];
        if *entry == ABSENT {
            *entry = allocate();
        }
        *entry
    }

    /// Bytes held.
    pub fn bytes_used(&self) -> usize {
        self.tile_index.capacity() * (size_of::<BlockKey>() + size_of::<u32>() + 1) + self.tiles.len() * TILE_BLOCKS * 4
    }

    /// Forgets every block.
    pub fn clear(&mut self) {
        *self = BlockTable::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_indices_cover_a_block() {
        let mut seen: Vec<u32> =
            (0..8).flat_map(|z| (0..8).flat_map(move |y| (0..8).map(move |x| local_index([x, y, z])))).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..512).collect::<Vec<_>>());
    }

    #[test]
    fn block_table_allocates_once_per_block() {
        let mut table = BlockTable::default();
        let mut next = 0;
        let blocks = [[0, 0, 0], [15, 15, 15], [16, 0, 0], [0, 0, 0], [300, 7, 200], [16, 0, 0]];
        let slots: Vec<u32> = blocks
            .iter()
            .map(|&b| {
                table.get_or_insert(b, || {
                    next += 1;
                    next - 1
                })
            })
            .collect();
        assert_eq!(slots, [0, 1, 2, 0, 3, 2]);
        assert_eq!(table.get([300, 7, 200]), Some(3));
        assert_eq!(table.get([300, 7, 201]), None);
        assert_eq!(table.get([1000, 0, 0]), None);
    }
}
