//! Captured pictures and rectangles, in the one pixel layout the capture produces: 32 bits per
//! pixel, bytes B, G, R, X (X11's ZPixmap on a little-endian, depth-24 TrueColor screen), rows
//! packed (stride = width × 4).

use std::ops::{Deref, DerefMut};

use super::shm::SharedSegment;

/// A rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(crate) struct Rect {
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub(crate) fn new(x: i32, y: i32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    pub(crate) fn right(&self) -> i32 {
        self.x + self.width as i32
    }

    pub(crate) fn bottom(&self) -> i32 {
        self.y + self.height as i32
    }

    /// The part of `self` inside `bounds` (empty when they do not overlap).
    pub(crate) fn clipped_to(&self, bounds: Rect) -> Rect {
        let x = self.x.max(bounds.x);
        let y = self.y.max(bounds.y);
        let right = self.right().min(bounds.right());
        let bottom = self.bottom().min(bounds.bottom());
        if right <= x || bottom <= y {
            return Rect::new(x, y, 0, 0);
        }
        Rect::new(x, y, (right - x) as u32, (bottom - y) as u32)
    }
}

pub(super) const BYTES_PER_PIXEL: usize = 4;

/// One picture of the captured region.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Frame {
    pub width: u32,
    pub height: u32,
    /// BGRX, `width * 4` bytes per row.
    pub data: Pixels,
}

/// Where a frame's pixels are: on the heap, or in the X server's shared-memory segment that a
/// capture went into (the capturer alternates between two, so that a capture is compared with
/// the one before without copying either: `capture.rs`).
pub(super) enum Pixels {
    Heap(Vec<u8>),
    Shared(SharedSegment),
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Pixels::Heap(bytes) => bytes,
            Pixels::Shared(segment) => segment.bytes(),
        }
    }
}

impl DerefMut for Pixels {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            Pixels::Heap(bytes) => bytes,
            Pixels::Shared(segment) => segment.bytes_mut(),
        }
    }
}

/// A copy is always on the heap.
impl Clone for Pixels {
    fn clone(&self) -> Pixels {
        Pixels::Heap(self.to_vec())
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Pixels) -> bool {
        **self == **other
    }
}

impl Eq for Pixels {}

impl From<Vec<u8>> for Pixels {
    fn from(bytes: Vec<u8>) -> Pixels {
        Pixels::Heap(bytes)
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Frame({}×{})", self.width, self.height)
    }
}

impl Frame {
    /// A black frame.
    pub(super) fn new(width: u32, height: u32) -> Frame {
        Frame {
            width,
            height,
            data: Pixels::Heap(vec![0; width as usize * height as usize * BYTES_PER_PIXEL]),
        }
    }

    /// A frame of one colour (for tests and benchmarks).
    #[cfg(test)]
    pub(super) fn filled(width: u32, height: u32, [r, g, b]: [u8; 3]) -> Frame {
        let data = [b, g, r, 0].repeat(width as usize * height as usize);
        Frame {
            width,
            height,
            data: Pixels::Heap(data),
        }
    }

    pub(super) fn stride(&self) -> usize {
        self.width as usize * BYTES_PER_PIXEL
    }

    pub(super) fn bounds(&self) -> Rect {
        Rect::new(0, 0, self.width, self.height)
    }

    /// The colour at (x, y) as RGB.
    #[cfg(test)]
    pub(super) fn rgb_at(&self, x: u32, y: u32) -> [u8; 3] {
        let at = y as usize * self.stride() + x as usize * BYTES_PER_PIXEL;
        [self.data[at + 2], self.data[at + 1], self.data[at]]
    }

    /// The pixels of `rect` (which must lie inside the frame), rows packed.
    pub(super) fn crop(&self, rect: Rect) -> Vec<u8> {
        let row_bytes = rect.width as usize * BYTES_PER_PIXEL;
        let mut out = Vec::with_capacity(row_bytes * rect.height as usize);
        for y in rect.y..rect.bottom() {
            let start = y as usize * self.stride() + rect.x as usize * BYTES_PER_PIXEL;
            out.extend_from_slice(&self.data[start..start + row_bytes]);
        }
        out
    }

    /// RGB, 3 bytes per pixel (for PNG).
    pub(super) fn to_rgb(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.width as usize * self.height as usize * 3);
        for pixel in self.data.chunks_exact(BYTES_PER_PIXEL) {
            out.extend_from_slice(&[pixel[2], pixel[1], pixel[0]]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rectangles_clip_to_bounds() {
        let bounds = Rect::new(0, 0, 100, 50);
        assert_eq!(
            Rect::new(-10, 40, 30, 30).clipped_to(bounds),
            Rect::new(0, 40, 20, 10)
        );
        assert!(Rect::new(100, 0, 5, 5).clipped_to(bounds).is_empty());
        assert_eq!(
            Rect::new(5, 5, 10, 10).clipped_to(bounds),
            Rect::new(5, 5, 10, 10)
        );
    }

    #[test]
    fn crops_and_converts() {
        let mut frame = Frame::filled(4, 3, [1, 2, 3]);
        let at = frame.stride() + 2 * BYTES_PER_PIXEL;
        frame.data[at..at + 4].copy_from_slice(&[30, 20, 10, 0]);
        assert_eq!(frame.rgb_at(2, 1), [10, 20, 30]);
        assert_eq!(frame.crop(Rect::new(2, 1, 1, 1)), vec![30, 20, 10, 0]);
        assert_eq!(frame.crop(Rect::new(0, 0, 2, 2)).len(), 16);
        assert_eq!(&frame.to_rgb()[..3], &[1, 2, 3]);
    }
}
