//! Turning captured frames into what viewers decode: H.264 or VP8 video (`video.rs`, FFmpeg's
//! libx264 and libvpx), JPEG tiles of the changed regions (`jpeg.rs`), and the sizes and quality
//! mappings they share. Everything here runs on the hub's own thread, never on the async
//! runtime.

pub(super) mod jpeg;
pub(super) mod video;
mod yuv420;

use std::sync::Once;

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;
use ffmpeg_next::software::scaling;

use super::frame::{BYTES_PER_PIXEL, Frame};

#[derive(Debug, thiserror::Error)]
pub(super) enum EncodeError {
    #[error("FFmpeg: {0}")]
    Ffmpeg(#[from] ffmpeg_next::Error),
    #[error("this FFmpeg has no {0} encoder")]
    Missing(&'static str),
    #[error("JPEG: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("colour conversion: {0}")]
    Yuv(#[from] yuv::YuvError),
}

/// FFmpeg's one-time set-up: error strings, and quiet logs (libx264 prints its CPU features at
/// every open otherwise).
pub(super) fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        if let Err(e) = ffmpeg_next::init() {
            tracing::warn!("desktop: FFmpeg initialisation: {e}");
        }
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}

/// The picture size for a `source`-sized capture shown at most `max_width` wide (aspect kept).
/// Video needs even sizes (4:2:0 chroma), so `even` rounds both down to even numbers.
pub(super) fn output_size(source: (u32, u32), max_width: Option<u32>, even: bool) -> (u32, u32) {
    let (width, height) = source;
    let (mut out_w, mut out_h) = match max_width {
        Some(max) if max < width => {
            let scaled =
                (u64::from(height) * u64::from(max) + u64::from(width) / 2) / u64::from(width);
            (max, scaled.max(1) as u32)
        }
        _ => (width, height),
    };
    if even {
        out_w = (out_w & !1).max(2);
        out_h = (out_h & !1).max(2);
    }
    (out_w, out_h)
}

/// Scales BGRX frames to another size (for viewers that asked for a `maxWidth`).
pub(super) struct Scaler {
    context: scaling::Context,
    input: frame::Video,
    output: frame::Video,
}

impl Scaler {
    pub(super) fn new(source: (u32, u32), target: (u32, u32)) -> Result<Scaler, EncodeError> {
        init_ffmpeg();
        let context = scaling::Context::get(
            Pixel::BGRZ,
            source.0,
            source.1,
            Pixel::BGRZ,
            target.0,
            target.1,
            scaling::Flags::AREA,
        )?;
        Ok(Scaler {
            context,
            input: frame::Video::new(Pixel::BGRZ, source.0, source.1),
            output: frame::Video::new(Pixel::BGRZ, target.0, target.1),
        })
    }

    pub(super) fn source(&self) -> (u32, u32) {
        (self.input.width(), self.input.height())
    }

    pub(super) fn target(&self) -> (u32, u32) {
        (self.output.width(), self.output.height())
    }

    pub(super) fn scale(&mut self, frame: &Frame) -> Result<Frame, EncodeError> {
        copy_into(frame, &mut self.input);
        self.context.run(&self.input, &mut self.output)?;
        let (width, height) = self.target();
        let row = width as usize * BYTES_PER_PIXEL;
        let stride = self.output.stride(0);
        let plane = self.output.data(0);
        let mut data = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
        Ok(Frame {
            width,
            height,
            data,
        })
    }
}

/// Copies a packed BGRX frame into an FFmpeg frame of the same size (whose rows may be padded).
pub(super) fn copy_into(frame: &Frame, target: &mut frame::Video) {
    let row = frame.stride();
    let stride = target.stride(0);
    let plane = target.data_mut(0);
    for (y, source) in frame.data.chunks_exact(row).enumerate() {
        plane[y * stride..y * stride + row].copy_from_slice(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_keep_the_aspect_and_video_sizes_are_even() {
        assert_eq!(output_size((1920, 1080), None, true), (1920, 1080));
        assert_eq!(output_size((1920, 1080), Some(1280), false), (1280, 720));
        assert_eq!(output_size((1920, 1080), Some(4000), false), (1920, 1080));
        assert_eq!(output_size((1025, 769), None, true), (1024, 768));
        assert_eq!(output_size((1025, 769), None, false), (1025, 769));
        assert_eq!(output_size((1000, 333), Some(501), true), (500, 166));
    }

    #[test]
    fn scaling_keeps_a_solid_colour() {
        let frame = Frame::filled(320, 200, [10, 200, 30]);
        let mut scaler = Scaler::new((320, 200), (160, 100)).unwrap();
        let small = scaler.scale(&frame).unwrap();
        assert_eq!((small.width, small.height), (160, 100));
        assert_eq!(small.data.len(), 160 * 100 * 4);
        let rgb = small.rgb_at(80, 50);
        let expected = [10u8, 200, 30];
        assert!(
            rgb.iter().zip(expected).all(|(a, b)| a.abs_diff(b) <= 2),
            "{rgb:?}"
        );
    }
}
