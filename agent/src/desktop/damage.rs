//! Which parts of the screen changed, to the tile.
//!
//! XDamage says *that* something was drawn (and lets an idle screen cost nothing: no damage, no
//! capture); it does not say that the pixels differ (a window redrawn with the same content still
//! damages). So each capture is compared with the previous one in [`TILE`]×[`TILE`] tiles: only
//! tiles whose bytes differ count, and only they are copied into the kept frame. Nothing differs →
//! nothing is encoded or sent.

use super::frame::{BYTES_PER_PIXEL, Frame, Rect};

/// Tile edge in pixels: small enough that typing dirties little, big enough that a full-screen
/// change is only ~500 tiles at 1920×1080.
pub(super) const TILE: u32 = 64;

/// A set of tiles of a `width`×`height` picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DirtyTiles {
    width: u32,
    height: u32,
    cols: u32,
    rows: u32,
    dirty: Vec<bool>,
}

impl DirtyTiles {
    /// No tile dirty.
    pub(super) fn none(width: u32, height: u32) -> DirtyTiles {
        let cols = width.div_ceil(TILE);
        let rows = height.div_ceil(TILE);
        DirtyTiles {
            width,
            height,
            cols,
            rows,
            dirty: vec![false; (cols * rows) as usize],
        }
    }

    /// Every tile dirty.
    pub(super) fn all(width: u32, height: u32) -> DirtyTiles {
        let mut tiles = DirtyTiles::none(width, height);
        tiles.dirty.fill(true);
        tiles
    }

    pub(super) fn is_empty(&self) -> bool {
        !self.dirty.contains(&true)
    }

    pub(super) fn is_all(&self) -> bool {
        !self.dirty.contains(&false)
    }

    pub(super) fn count(&self) -> usize {
        self.dirty.iter().filter(|d| **d).count()
    }

    pub(super) fn mark(&mut self, col: u32, row: u32) {
        self.dirty[(row * self.cols + col) as usize] = true;
    }

    pub(super) fn is_dirty(&self, col: u32, row: u32) -> bool {
        self.dirty[(row * self.cols + col) as usize]
    }

    /// Adds `other`'s tiles; a set for another picture size makes everything dirty.
    pub(super) fn add(&mut self, other: &DirtyTiles) {
        if (other.width, other.height) != (self.width, self.height) {
            *self = DirtyTiles::all(other.width, other.height);
            return;
        }
        for (mine, theirs) in self.dirty.iter_mut().zip(&other.dirty) {
            *mine |= *theirs;
        }
    }

    /// Marks every tile clean.
    pub(super) fn clear(&mut self) {
        self.dirty.fill(false);
    }

    /// Marks every tile dirty.
    pub(super) fn fill(&mut self) {
        self.dirty.fill(true);
    }

    /// The dirty tiles as few rectangles, in pixels: runs of dirty tiles along a row, joined with
    /// the same run in the rows below. Typing gives one small rectangle, a scrolled text area one
    /// big one.
    pub(super) fn rects(&self) -> Vec<Rect> {
        // (first col, end col, first row, end row) in tiles
        let mut open: Vec<(u32, u32, u32, u32)> = Vec::new();
        let mut done = Vec::new();
        for row in 0..self.rows {
            let mut still_open = Vec::new();
            let mut col = 0;
            while col < self.cols {
                if !self.is_dirty(col, row) {
                    col += 1;
                    continue;
                }
                let start = col;
                while col < self.cols && self.is_dirty(col, row) {
                    col += 1;
                }
                match open.iter().position(|o| o.0 == start && o.1 == col) {
                    Some(index) => {
                        let mut run = open.swap_remove(index);
                        run.3 = row + 1;
                        still_open.push(run);
                    }
                    None => still_open.push((start, col, row, row + 1)),
                }
            }
            done.append(&mut open);
            open = still_open;
        }
        done.append(&mut open);
        let bounds = Rect::new(0, 0, self.width, self.height);
        let mut rects: Vec<Rect> = done
            .into_iter()
            .map(|(c0, c1, r0, r1)| {
                Rect::new(
                    (c0 * TILE) as i32,
                    (r0 * TILE) as i32,
                    (c1 - c0) * TILE,
                    (r1 - r0) * TILE,
                )
                .clipped_to(bounds)
            })
            .collect();
        rects.sort_by_key(|r| (r.y, r.x));
        rects
    }
}

/// The tiles in which two captures of the same size differ.
pub(super) fn diff(before: &Frame, after: &Frame) -> DirtyTiles {
    assert_eq!(
        (before.width, before.height),
        (after.width, after.height),
        "capture size"
    );
    compare(
        &before.data,
        &after.data,
        before.width,
        before.height,
        |_| {},
    )
}

/// Compares `fresh` (a new capture, same size as `kept`, rows packed) with `kept` tile by tile,
/// copies the tiles that differ into `kept`, and returns them.
pub(super) fn diff_and_update(kept: &mut Frame, fresh: &[u8]) -> DirtyTiles {
    let (width, height) = (kept.width, kept.height);
    let stride = kept.stride();
    assert_eq!(fresh.len(), stride * height as usize, "capture size");
    let mut copies = Vec::new();
    let tiles = compare(&kept.data, fresh, width, height, |rows| copies.push(rows));
    for (rows, bytes) in copies {
        for y in rows {
            let at = y * stride;
            kept.data[at + bytes.start..at + bytes.end]
                .copy_from_slice(&fresh[at + bytes.start..at + bytes.end]);
        }
    }
    tiles
}

/// Compares two packed `width`×`height` pictures tile by tile; calls `differing` with the rows
/// and the byte range within a row of each tile that differs.
fn compare(
    before: &[u8],
    after: &[u8],
    width: u32,
    height: u32,
    mut differing: impl FnMut((std::ops::Range<usize>, std::ops::Range<usize>)),
) -> DirtyTiles {
    let stride = width as usize * BYTES_PER_PIXEL;
    let mut tiles = DirtyTiles::none(width, height);
    for row in 0..tiles.rows {
        let y0 = (row * TILE) as usize;
        let y1 = ((row + 1) * TILE).min(height) as usize;
        for col in 0..tiles.cols {
            let x0 = (col * TILE) as usize * BYTES_PER_PIXEL;
            let x1 = ((col + 1) * TILE).min(width) as usize * BYTES_PER_PIXEL;
            let differs = (y0..y1).any(|y| {
                let at = y * stride;
                before[at + x0..at + x1] != after[at + x0..at + x1]
            });
            if differs {
                tiles.mark(col, row);
                differing((y0..y1, x0..x1));
            }
        }
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paint(frame: &mut Frame, rect: Rect, value: u8) {
        for y in rect.y..rect.bottom() {
            for x in rect.x..rect.right() {
                let at = y as usize * frame.stride() + x as usize * BYTES_PER_PIXEL;
                frame.data[at..at + 4].fill(value);
            }
        }
    }

    #[test]
    fn the_diff_finds_exactly_the_changed_tiles_and_copies_them() {
        // 200×130: the last column and row of tiles are partial.
        let mut kept = Frame::new(200, 130);
        let mut fresh = kept.clone();
        // One pixel in tile (1, 0), a block across tiles (2..=3, 1), a pixel in the partial corner.
        paint(&mut fresh, Rect::new(70, 3, 1, 1), 9);
        let block = Rect::new(150, 100, 60, 10).clipped_to(fresh.bounds());
        paint(&mut fresh, block, 7);
        paint(&mut fresh, Rect::new(199, 129, 1, 1), 5);
        let tiles = diff_and_update(&mut kept, &fresh.data);
        let dirty: Vec<(u32, u32)> = (0..3)
            .flat_map(|row| (0..4).map(move |col| (col, row)))
            .filter(|&(col, row)| tiles.is_dirty(col, row))
            .collect();
        assert_eq!(dirty, vec![(1, 0), (2, 1), (3, 1), (3, 2)]);
        assert_eq!(kept, fresh, "the changed tiles were copied");
        // The same picture again: nothing changed.
        assert!(diff_and_update(&mut kept, &fresh.data).is_empty());
        assert!(diff(&kept, &fresh).is_empty());
        paint(&mut fresh, Rect::new(0, 128, 1, 1), 3);
        let tiles = diff(&kept, &fresh);
        assert_eq!(tiles.rects(), vec![Rect::new(0, 128, 64, 2)]);
        assert_ne!(kept, fresh, "diff alone copies nothing");
    }

    #[test]
    fn dirty_tiles_merge_into_rectangles() {
        let mut tiles = DirtyTiles::none(300, 200);
        // A 2×2 block of tiles, and a single tile on its own.
        for (col, row) in [(0, 0), (1, 0), (0, 1), (1, 1), (4, 2)] {
            tiles.mark(col, row);
        }
        assert_eq!(
            tiles.rects(),
            vec![Rect::new(0, 0, 128, 128), Rect::new(256, 128, 44, 64)]
        );
        assert!(DirtyTiles::none(10, 10).rects().is_empty());
        assert_eq!(
            DirtyTiles::all(100, 70).rects(),
            vec![Rect::new(0, 0, 100, 70)]
        );
    }

    #[test]
    fn sets_add_up_and_a_new_size_means_everything() {
        let mut a = DirtyTiles::none(128, 128);
        let mut b = DirtyTiles::none(128, 128);
        a.mark(0, 0);
        b.mark(1, 1);
        a.add(&b);
        assert_eq!(a.count(), 2);
        a.add(&DirtyTiles::none(64, 64));
        assert!(a.is_all());
        assert_eq!(a.rects(), vec![Rect::new(0, 0, 64, 64)]);
        a.clear();
        assert!(a.is_empty());
    }
}
