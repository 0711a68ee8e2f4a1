//! Turning captured frames into what viewers decode: H.264 or VP8 video (`video.rs`, over
//! libx264 in `x264.rs` and libvpx in `vpx.rs`), JPEG tiles of the changed regions
//! (`jpeg.rs`), and the sizes and quality mappings they share. Everything here runs on the
//! hub's own thread, never on the async runtime.

pub(super) mod jpeg;
pub(super) mod video;
mod vpx;
mod x264;
mod yuv420;

use fast_image_resize::Resizer;

use super::frame::Frame;

#[derive(Debug, thiserror::Error)]
pub(super) enum EncodeError {
    #[error("{library}: {message}")]
    Library {
        library: &'static str,
        message: String,
    },
    #[error("JPEG is not a video codec")]
    NotVideo,
    #[error("JPEG: {0}")]
    Jpeg(#[from] jpeg_encoder::EncodingError),
    #[error("PNG: {0}")]
    Png(#[from] png::EncodingError),
    #[error("colour conversion: {0}")]
    Yuv(#[from] yuv::YuvError),
    #[error("scaling: {0}")]
    Resize(#[from] fast_image_resize::ResizeError),
    #[error("scaling: {0}")]
    ResizeBuffer(#[from] fast_image_resize::ImageBufferError),
    #[error("Opus: {0}")]
    Opus(#[from] opus::Error),
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
    resizer: Resizer,
    source: (u32, u32),
    target: (u32, u32),
}

impl Scaler {
    pub(super) fn new(source: (u32, u32), target: (u32, u32)) -> Scaler {
        Scaler {
            resizer: Resizer::new(),
            source,
            target,
        }
    }

    pub(super) fn source(&self) -> (u32, u32) {
        self.source
    }

    pub(super) fn scale(&mut self, frame: &Frame) -> Result<Frame, EncodeError> {
        let (width, height) = self.target;
        let mut scaled = Frame::new(width, height);
        video::resize(&mut self.resizer, frame, &mut scaled)?;
        Ok(scaled)
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
        let mut scaler = Scaler::new((320, 200), (160, 100));
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
