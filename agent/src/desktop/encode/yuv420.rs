//! BGRX → YUV 4:2:0 for the video encoders, done only where the screen changed.
//!
//! The encoder keeps its YUV picture from one frame to the next, so a typed character costs the
//! conversion of one 64×64 tile instead of the whole 1920×1080 screen (which took longer than
//! x264's own work on such a frame). Each changed rectangle is converted, at most [`BAND`] rows
//! at a time, into a small scratch picture whose rows are then copied into the picture's planes:
//! the converter's SIMD paths may write past a row's last pixel (into what it takes for row
//! padding), so it is never handed the picture itself (a test below would see the overrun); the
//! scratch never grows past one band of the screen.
//!
//! Colours: BT.601 matrix, limited range, what VP8 decoders assume; the H.264 stream says so in
//! its VUI, so that browsers do not guess BT.709 and shift saturated colours (a pure green came
//! back as 0/216/2 before).

use yuv::{
    BufferStoreMut, YuvConversionMode, YuvError, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
    bgra_to_yuv420,
};

use crate::desktop::frame::{BYTES_PER_PIXEL, Frame, Rect};

/// A planar YUV 4:2:0 picture (I420): the luma plane, then the two chroma planes at half the
/// width and height, in one buffer and without row padding, as both libx264 and libvpx take it.
pub(crate) struct Picture {
    width: u32,
    height: u32,
    data: Vec<u8>,
}

impl Picture {
    /// A black picture; `width` and `height` must be even.
    pub(crate) fn new(width: u32, height: u32) -> Picture {
        debug_assert!(
            width.is_multiple_of(2) && height.is_multiple_of(2),
            "4:2:0 needs even sizes"
        );
        let luma = width as usize * height as usize;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        Picture {
            width,
            height,
            data,
        }
    }

    pub(crate) fn width(&self) -> u32 {
        self.width
    }

    pub(crate) fn height(&self) -> u32 {
        self.height
    }

    /// Bytes per row of plane 0 (luma), 1 and 2 (chroma).
    pub(crate) fn stride(&self, plane: usize) -> usize {
        if plane == 0 {
            self.width as usize
        } else {
            self.width as usize / 2
        }
    }

    /// Plane 0 (luma), 1 (Cb) or 2 (Cr).
    pub(crate) fn plane(&self, plane: usize) -> &[u8] {
        let luma = self.width as usize * self.height as usize;
        match plane {
            0 => &self.data[..luma],
            1 => &self.data[luma..luma + luma / 4],
            _ => &self.data[luma + luma / 4..],
        }
    }

    fn plane_mut(&mut self, plane: usize) -> &mut [u8] {
        let luma = self.width as usize * self.height as usize;
        match plane {
            0 => &mut self.data[..luma],
            1 => &mut self.data[luma..luma + luma / 4],
            _ => &mut self.data[luma + luma / 4..],
        }
    }
}

/// Rows converted at a time (even, as 4:2:0 needs).
const BAND: u32 = 64;

#[derive(Default)]
pub(super) struct Converter {
    y: Vec<u8>,
    u: Vec<u8>,
    v: Vec<u8>,
}

impl Converter {
    /// Converts `rect` of `frame` into the same place of `picture` (of the same size). `rect` is clipped to the frame and widened to even coordinates, as 4:2:0 needs.
    pub(super) fn convert(
        &mut self,
        frame: &Frame,
        rect: Rect,
        picture: &mut Picture,
    ) -> Result<(), YuvError> {
        let Some(rect) = even_rect(rect, frame) else {
            return Ok(());
        };
        let mut top = rect.y;
        while top < rect.bottom() {
            let rows = BAND.min((rect.bottom() - top) as u32);
            self.convert_band(frame, Rect::new(rect.x, top, rect.width, rows), picture)?;
            top += rows as i32;
        }
        Ok(())
    }

    /// One even-edged rectangle of at most [`BAND`] rows.
    fn convert_band(
        &mut self,
        frame: &Frame,
        rect: Rect,
        picture: &mut Picture,
    ) -> Result<(), YuvError> {
        let (width, height) = (rect.width as usize, rect.height as usize);
        let (chroma_width, chroma_height) = (width / 2, height / 2);
        self.y.resize(width * height, 0);
        self.u.resize(chroma_width * chroma_height, 0);
        self.v.resize(chroma_width * chroma_height, 0);
        let mut scratch = YuvPlanarImageMut {
            y_plane: BufferStoreMut::Borrowed(&mut self.y),
            y_stride: rect.width,
            u_plane: BufferStoreMut::Borrowed(&mut self.u),
            u_stride: rect.width / 2,
            v_plane: BufferStoreMut::Borrowed(&mut self.v),
            v_stride: rect.width / 2,
            width: rect.width,
            height: rect.height,
        };
        let start = rect.y as usize * frame.stride() + rect.x as usize * BYTES_PER_PIXEL;
        bgra_to_yuv420(
            &mut scratch,
            &frame.data[start..],
            frame.stride() as u32,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
            YuvConversionMode::Balanced,
        )?;
        let (x, y) = (rect.x as usize, rect.y as usize);
        copy_rows(&self.y, width, picture, 0, (x, y));
        copy_rows(&self.u, chroma_width, picture, 1, (x / 2, y / 2));
        copy_rows(&self.v, chroma_width, picture, 2, (x / 2, y / 2));
        Ok(())
    }
}

/// `rect` within `frame`, its edges moved outwards to even coordinates (`None` if empty).
fn even_rect(rect: Rect, frame: &Frame) -> Option<Rect> {
    let rect = rect.clipped_to(frame.bounds());
    if rect.is_empty() {
        return None;
    }
    let left = rect.x & !1;
    let top = rect.y & !1;
    let right = (rect.right() + 1).min(frame.width as i32) & !1;
    let bottom = (rect.bottom() + 1).min(frame.height as i32) & !1;
    (right > left && bottom > top)
        .then(|| Rect::new(left, top, (right - left) as u32, (bottom - top) as u32))
}

/// Copies a packed `width`-wide block into plane `plane` of `picture` at `(x, y)`.
fn copy_rows(
    block: &[u8],
    width: usize,
    picture: &mut Picture,
    plane: usize,
    (x, y): (usize, usize),
) {
    let stride = picture.stride(plane);
    let target = picture.plane_mut(plane);
    for (row, source) in block.chunks_exact(width).enumerate() {
        let at = (y + row) * stride + x;
        target[at..at + width].copy_from_slice(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(width: u32, height: u32) -> Picture {
        Picture::new(width, height)
    }

    fn luma(picture: &Picture, x: usize, y: usize) -> u8 {
        picture.plane(0)[y * picture.stride(0) + x]
    }

    #[test]
    fn converts_only_the_rectangle_asked_for() {
        let mut converter = Converter::default();
        let mut out = picture(64, 32);
        let black = Frame::new(64, 32);
        converter.convert(&black, black.bounds(), &mut out).unwrap();
        assert_eq!(luma(&out, 40, 20), 16, "limited-range black");
        let white = Frame::filled(64, 32, [255, 255, 255]);
        converter
            .convert(&white, Rect::new(8, 4, 16, 8), &mut out)
            .unwrap();
        assert_eq!(luma(&out, 8, 4), 235, "limited-range white inside");
        assert_eq!(luma(&out, 23, 11), 235);
        assert_eq!(luma(&out, 24, 11), 16, "untouched outside");
        assert_eq!(luma(&out, 8, 12), 16);
        let chroma = out.plane(1)[2 * out.stride(1) + 4];
        assert!(
            chroma.abs_diff(128) <= 1,
            "grey has neutral chroma: {chroma}"
        );
    }

    #[test]
    fn the_last_rows_and_columns_convert_and_nothing_else_moves() {
        // A rectangle in the bottom-right corner, taller than a band.
        let mut converter = Converter::default();
        let mut out = picture(64, 200);
        let white = Frame::filled(64, 200, [255, 255, 255]);
        converter
            .convert(&white, Rect::new(32, 100, 32, 100), &mut out)
            .unwrap();
        assert!(
            (100..200).all(|y| luma(&out, 63, y) == 235 && luma(&out, 32, y) == 235),
            "every row of the rectangle converted"
        );
        assert!(
            (0..200).all(|y| luma(&out, 31, y) == 16),
            "left of it untouched"
        );
        assert!(
            (32..64).all(|x| luma(&out, x, 99) == 16),
            "above it untouched"
        );
        assert!(
            converter.y.len() <= 32 * BAND as usize,
            "the scratch holds one band"
        );
    }

    #[test]
    fn odd_rectangles_grow_to_even_edges_within_the_frame() {
        let frame = Frame::new(64, 32);
        assert_eq!(
            even_rect(Rect::new(3, 5, 4, 4), &frame),
            Some(Rect::new(2, 4, 6, 6))
        );
        assert_eq!(
            even_rect(Rect::new(60, 30, 10, 10), &frame),
            Some(Rect::new(60, 30, 4, 2))
        );
        assert_eq!(even_rect(Rect::new(70, 0, 4, 4), &frame), None);
    }

    #[test]
    fn saturated_colours_use_the_bt601_matrix() {
        let mut converter = Converter::default();
        let mut out = picture(16, 16);
        let green = Frame::filled(16, 16, [0, 255, 0]);
        converter.convert(&green, green.bounds(), &mut out).unwrap();
        // BT.601 limited: Y = 16 + 219 × 0.587 ≈ 145 (BT.709 would give 173).
        assert!(luma(&out, 8, 8).abs_diff(145) <= 1, "{}", luma(&out, 8, 8));
    }
}
