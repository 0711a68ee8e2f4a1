//! JPEG tiles: the still-image fallback for viewers without a video decoder. Each changed
//! rectangle (tiles merged by [`DirtyTiles::rects`](crate::desktop::damage::DirtyTiles::rects))
//! becomes one JPEG behind a [`TileHeader`], all of them one picture's payload.

use jpeg_encoder::{ColorType, Encoder};
use tether_common::relay::desktop::TileHeader;

use super::EncodeError;
use crate::desktop::frame::{Frame, Rect};

/// JPEG's limit per image edge is 65535; the protocol's tile coordinates are u16 too.
const MAX_EDGE: u32 = u16::MAX as u32;

/// The tiles payload for `rects` (inside `frame`), at `quality` (1..=100).
pub(crate) fn encode_tiles(
    frame: &Frame,
    rects: &[Rect],
    quality: u8,
) -> Result<Vec<u8>, EncodeError> {
    let mut payload = Vec::new();
    for rect in rects {
        let rect = rect.clipped_to(frame.bounds());
        if rect.is_empty() || rect.right() as u32 > MAX_EDGE || rect.bottom() as u32 > MAX_EDGE {
            continue;
        }
        let pixels = frame.crop(rect);
        let mut jpeg = Vec::with_capacity(pixels.len() / 8);
        Encoder::new(&mut jpeg, quality.clamp(1, 100)).encode(
            &pixels,
            rect.width as u16,
            rect.height as u16,
            ColorType::Bgra,
        )?;
        TileHeader {
            x: rect.x as u16,
            y: rect.y as u16,
            width: rect.width as u16,
            height: rect.height as u16,
            len: jpeg.len() as u32,
        }
        .write(&mut payload);
        payload.extend_from_slice(&jpeg);
    }
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_decode_to_the_right_colours_and_places() {
        let mut frame = Frame::filled(200, 100, [0, 0, 255]);
        // The right half red.
        for y in 0..100usize {
            for x in 100..200usize {
                let at = y * frame.stride() + x * 4;
                frame.data[at..at + 4].copy_from_slice(&[0, 0, 255, 0]);
            }
        }
        let rects = [Rect::new(0, 0, 100, 100), Rect::new(100, 0, 100, 100)];
        let payload = encode_tiles(&frame, &rects, 90).unwrap();
        let tiles = TileHeader::split(&payload).unwrap();
        assert_eq!(tiles.len(), 2);
        for ((header, jpeg), expected) in tiles.iter().zip([[0u8, 0, 255], [255, 0, 0]]) {
            let mut decoder = jpeg_decoder::Decoder::new(*jpeg);
            let pixels = decoder.decode().unwrap();
            let info = decoder.info().unwrap();
            assert_eq!((info.width, info.height), (header.width, header.height));
            assert_eq!(info.pixel_format, jpeg_decoder::PixelFormat::RGB24);
            let centre =
                ((info.height / 2) as usize * info.width as usize + (info.width / 2) as usize) * 3;
            let rgb = &pixels[centre..centre + 3];
            assert!(
                rgb.iter().zip(expected).all(|(a, e)| a.abs_diff(e) <= 8),
                "tile at {} is {rgb:?}, expected {expected:?}",
                header.x
            );
        }
        assert_eq!((tiles[1].0.x, tiles[1].0.y), (100, 0));
    }

    #[test]
    fn rects_outside_the_frame_are_clipped_or_dropped() {
        let frame = Frame::filled(50, 50, [1, 2, 3]);
        let payload = encode_tiles(
            &frame,
            &[Rect::new(40, 40, 64, 64), Rect::new(60, 0, 5, 5)],
            50,
        )
        .unwrap();
        let tiles = TileHeader::split(&payload).unwrap();
        assert_eq!(tiles.len(), 1);
        assert_eq!((tiles[0].0.width, tiles[0].0.height), (10, 10));
    }
}
