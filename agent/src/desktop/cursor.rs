//! The pointer's shape as a [`BinaryKind::Cursor`](tether_common::relay::desktop::BinaryKind)
//! frame. XFixes gives the image as premultiplied ARGB words; the viewer wants straight RGBA
//! bytes.

use tether_common::relay::desktop::CursorHeader;

/// Cursors larger than this (in either direction) are cut: no real cursor is, and the frame
/// stays small.
const MAX_EDGE: u16 = 256;

/// A cursor image from XFixes GetCursorImage.
pub(super) struct CursorImage<'a> {
    pub width: u16,
    pub height: u16,
    pub hot_x: u16,
    pub hot_y: u16,
    /// `width * height` premultiplied ARGB pixels, row by row.
    pub argb: &'a [u32],
}

/// The binary frame for `image`, or `None` if the image is inconsistent.
pub(super) fn cursor_frame(image: &CursorImage<'_>) -> Option<Vec<u8>> {
    let (width, height) = (image.width as usize, image.height as usize);
    if image.argb.len() < width * height {
        return None;
    }
    let cut_width = image.width.min(MAX_EDGE);
    let cut_height = image.height.min(MAX_EDGE);
    let header = CursorHeader {
        width: cut_width,
        height: cut_height,
        hot_x: image.hot_x.min(cut_width.saturating_sub(1)),
        hot_y: image.hot_y.min(cut_height.saturating_sub(1)),
    };
    let mut frame =
        Vec::with_capacity(CursorHeader::LEN + cut_width as usize * cut_height as usize * 4);
    header.write(&mut frame);
    if width == 0 {
        // A hidden pointer: a header with no pixels.
        return Some(frame);
    }
    for row in image.argb.chunks_exact(width).take(cut_height as usize) {
        for &pixel in &row[..cut_width as usize] {
            frame.extend_from_slice(&unpremultiply(pixel));
        }
    }
    Some(frame)
}

fn unpremultiply(argb: u32) -> [u8; 4] {
    let [a, r, g, b] = argb.to_be_bytes();
    if a == 0 {
        return [0, 0, 0, 0];
    }
    let straight = |c: u8| ((u32::from(c) * 255 + u32::from(a) / 2) / u32::from(a)).min(255) as u8;
    [straight(r), straight(g), straight(b), a]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_become_straight_rgba_behind_a_header() {
        // Opaque red, half-transparent white (premultiplied: 0x80 each), fully transparent.
        let argb = [0xffff0000, 0x80808080, 0x00000000, 0xff00ff00];
        let image = CursorImage {
            width: 2,
            height: 2,
            hot_x: 1,
            hot_y: 0,
            argb: &argb,
        };
        let frame = cursor_frame(&image).unwrap();
        let (header, pixels) = CursorHeader::read(&frame).unwrap();
        assert_eq!(
            (header.width, header.height, header.hot_x, header.hot_y),
            (2, 2, 1, 0)
        );
        assert_eq!(&pixels[0..4], &[255, 0, 0, 255]);
        assert_eq!(&pixels[4..8], &[255, 255, 255, 0x80]);
        assert_eq!(&pixels[8..12], &[0, 0, 0, 0]);
        assert_eq!(&pixels[12..16], &[0, 255, 0, 255]);
    }

    #[test]
    fn short_images_are_refused_and_huge_ones_cut() {
        let image = CursorImage {
            width: 2,
            height: 2,
            hot_x: 0,
            hot_y: 0,
            argb: &[0; 3],
        };
        assert!(cursor_frame(&image).is_none());
        let big = vec![0xff000000u32; 300 * 2];
        let image = CursorImage {
            width: 300,
            height: 2,
            hot_x: 299,
            hot_y: 1,
            argb: &big,
        };
        let frame = cursor_frame(&image).unwrap();
        let (header, pixels) = CursorHeader::read(&frame).unwrap();
        assert_eq!((header.width, header.hot_x), (MAX_EDGE, MAX_EDGE - 1));
        assert_eq!(pixels.len(), MAX_EDGE as usize * 2 * 4);
    }
}
