//! The incremental Merkle tree as [`crate::SledLog`] stores it: tiles.
//!
//! Owns: the in-memory right edge of the tree (the partial tile of every
//! tile level) and the rule for what an append writes: each leaf hash goes
//! into the level-0 tile; when a tile fills up (256 hashes) its root goes
//! into the tile one level up. An append therefore writes each tile it
//! touched once (a handful of keys per batch, O(log n) hashing per event
//! amortised to about one node hash), and a tile never changes once full.
//!
//! Must not: touch sled. The caller reads and writes the tile values.

use crate::layout::{self, TILE_HEIGHT, TILE_WIDTH};
use crate::merkle;
use crate::{Error, Hash};

/// The partial tiles at the right edge of the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TileFrontier {
    /// `partial[t]`: the hashes of the last, not yet full tile at tile level `t`.
    partial: Vec<Vec<Hash>>,
    /// `counts[t]`: hashes at tile level `t` so far (full tiles and partial).
    counts: Vec<u64>,
}

/// A tile value to write: `(tile level, tile index, hashes)`.
pub(crate) type TileWrite = (u8, u64, Vec<Hash>);

/// First ledger sequence covered by tile `index` at tile level `level`.
pub(crate) fn first_sequence(level: u8, index: u64) -> u64 {
    let shift = TILE_HEIGHT * (u32::from(level) + 1);
    index
        .checked_shl(shift)
        .filter(|v| v >> shift == index)
        .map_or(u64::MAX, |v| v.saturating_add(1))
}

impl TileFrontier {
    /// The frontier of a tree of `size` leaves, reading the partial tiles
    /// through `read` (tile level, tile index) → stored hashes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if a partial tile is missing or has the wrong length.
    pub(crate) fn load(
        size: u64,
        mut read: impl FnMut(u8, u64) -> Result<Option<Vec<Hash>>, Error>,
    ) -> Result<TileFrontier, Error> {
        let mut frontier = TileFrontier::default();
        let mut count = size;
        let mut level: u8 = 0;
        while count > 0 {
            let in_partial = usize::try_from(count % TILE_WIDTH as u64).unwrap_or(0);
            let index = count / TILE_WIDTH as u64;
            let partial = if in_partial == 0 {
                Vec::new()
            } else {
                let first = first_sequence(level, index);
                let hashes = read(level, index)?
                    .ok_or_else(|| Error::corrupt(first, "Merkle tile missing"))?;
                if hashes.len() != in_partial {
                    return Err(Error::corrupt(
                        first,
                        format!(
                            "Merkle tile ({level}, {index}) holds {} hashes, the head needs {in_partial}",
                            hashes.len()
                        ),
                    ));
                }
                hashes
            };
            frontier.partial.push(partial);
            frontier.counts.push(count);
            count >>= TILE_HEIGHT;
            level = level.saturating_add(1);
        }
        Ok(frontier)
    }

    /// Add one leaf; full tiles completed on the way are appended to `full`,
    /// and the tile levels touched are marked in `touched`.
    pub(crate) fn push(&mut self, leaf: Hash, full: &mut Vec<TileWrite>, touched: &mut Vec<bool>) {
        let mut hash = leaf;
        let mut level = 0usize;
        loop {
            if self.partial.len() <= level {
                self.partial.push(Vec::new());
                self.counts.push(0);
            }
            if touched.len() <= level {
                touched.resize(level + 1, false);
            }
            touched[level] = true;
            self.partial[level].push(hash);
            self.counts[level] += 1;
            if self.partial[level].len() < TILE_WIDTH {
                return;
            }
            let hashes = std::mem::take(&mut self.partial[level]);
            hash = merkle::fold_power_of_two(&hashes);
            let index = (self.counts[level] - 1) / TILE_WIDTH as u64;
            full.push((u8::try_from(level).unwrap_or(u8::MAX), index, hashes));
            level += 1;
        }
    }

    /// The partial tiles of the levels marked in `touched` (non-empty ones).
    pub(crate) fn partial_writes(&self, touched: &[bool]) -> Vec<TileWrite> {
        let mut out = Vec::new();
        for (level, hashes) in self.partial.iter().enumerate() {
            if touched.get(level).copied().unwrap_or(false) && !hashes.is_empty() {
                let index = self.counts[level] / TILE_WIDTH as u64;
                out.push((
                    u8::try_from(level).unwrap_or(u8::MAX),
                    index,
                    hashes.clone(),
                ));
            }
        }
        out
    }
}

/// Encode a tile write as its sled key and value.
pub(crate) fn encode(write: &TileWrite) -> ([u8; 10], Vec<u8>) {
    (
        layout::tile_key(write.0, write.1),
        layout::encode_tile(&write.2),
    )
}
