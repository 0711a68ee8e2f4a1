//! H.264 (libx264, `x264.rs`) and VP8 (libvpx, `vpx.rs`), tuned for a live screen: no B-frames
//! and no look-ahead (each frame comes out as soon as it goes in), one long group of pictures
//! with key frames only when asked for. BGRX → YUV 4:2:0 happens only where the screen changed
//! (`yuv420.rs`); a down-scaled picture is resized whole (`fast_image_resize`) and converted.
//!
//! - **H.264**: preset ultrafast, tune zerolatency, baseline profile (x264 makes it constrained
//!   baseline: what every WebCodecs and hardware decoder takes), CRF from the viewer's quality,
//!   Annex B output with SPS/PPS repeated in front of every IDR, so any key frame starts a
//!   stream on its own; the VUI says which colours the stream uses.
//! - **VP8**: realtime deadline, a high `cpu-used`, no alternate reference or lag, error resilient,
//!   constant-quality mode with a generous bit-rate ceiling.
//!
//! Quality changes reopen the encoder (the next frame is a key frame anyway); the hub does that
//! only when it needs a key frame or after a back-pressure step, never per picture.

use std::time::Instant;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use tether_common::relay::desktop::{Codec, MAX_QUALITY, MIN_QUALITY};

use super::yuv420::{Converter, Picture};
use super::{EncodeError, vpx, x264};
use crate::desktop::frame::{BYTES_PER_PIXEL, Frame, Rect};

/// Frames between automatic key frames: about an hour at 30 fps, i.e. key frames on request only.
const GOP: u32 = 100_000;
/// The least rate a bandwidth estimate can hold the H.264 encoder to: below it a desktop is mush.
const MIN_RATE: u64 = 200_000;

/// One encoded picture.
#[derive(Debug)]
pub(crate) struct EncodedVideo {
    /// An H.264 access unit (Annex B) or a VP8 frame.
    pub data: Vec<u8>,
    pub key: bool,
    pub encode_us: u32,
}

pub(crate) struct VideoEncoder {
    codec: Codec,
    backend: Backend,
    source: (u32, u32),
    to_yuv: ToYuv,
    /// The picture the encoder is given; between frames it holds the last one, so that only
    /// what changed needs converting again.
    picture: Picture,
    /// Nothing converted into `picture` yet.
    fresh: bool,
    quality: u8,
    /// H.264: the VBV's rate ceiling now (bits per second), and the one it opened with.
    max_rate: u64,
    ceiling: u64,
    opened_at: Instant,
    last_pts: i64,
    frames: u64,
    codec_string: Option<String>,
}

enum Backend {
    H264(x264::X264),
    Vp8(vpx::Vp8),
}

impl VideoEncoder {
    /// An encoder for `source`-sized frames, encoding `size` pictures (even width and height).
    pub(crate) fn open(
        codec: Codec,
        source: (u32, u32),
        size: (u32, u32),
        quality: u8,
        fps: u8,
    ) -> Result<VideoEncoder, EncodeError> {
        // The ceiling constant-quality mode needs: ~0.25 bit per pixel per frame.
        let ceiling =
            (u64::from(size.0) * u64::from(size.1) * u64::from(fps.max(1)) / 4).max(1_000_000);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let backend = match codec {
            // A VBV from the start (x264 cannot turn one on later), so that the direct path's
            // bandwidth estimate can lower the ceiling while the stream runs (`cap_rate`). Half
            // a second of buffer: a key frame fits, and a picture waits at most that long.
            Codec::H264 => Backend::H264(x264::X264::open(&x264::Settings {
                width: size.0,
                height: size.1,
                fps,
                threads,
                crf: h264_crf(quality),
                max_rate: ceiling,
                buffer: ceiling / 2,
                keyint: GOP,
            })?),
            Codec::Vp8 => Backend::Vp8(vpx::Vp8::open(&vpx::Settings {
                width: size.0,
                height: size.1,
                threads,
                cq_level: vp8_crf(quality),
                min_quantizer: 4,
                max_quantizer: 56,
                ceiling,
                keyint: GOP,
                cpu_used: 8,
            })?),
            Codec::Jpeg => return Err(EncodeError::NotVideo),
        };
        let to_yuv = if source == size {
            ToYuv::Changed(Converter::default())
        } else {
            ToYuv::Scaled {
                resizer: Box::new(Resizer::new()),
                scaled: Frame::new(size.0, size.1),
                converter: Converter::default(),
            }
        };
        Ok(VideoEncoder {
            codec,
            backend,
            source,
            to_yuv,
            picture: Picture::new(size.0, size.1),
            fresh: true,
            quality,
            max_rate: ceiling,
            ceiling,
            opened_at: Instant::now(),
            last_pts: -1,
            frames: 0,
            codec_string: (codec == Codec::Vp8).then(|| "vp8".to_owned()),
        })
    }

    pub(crate) fn quality(&self) -> u8 {
        self.quality
    }

    /// H.264: keeps the encoder's rate under `bps` (the direct path's estimate, with headroom
    /// for RTP and retransmissions), or back at its ceiling with `None`. Takes effect with the
    /// next frame; small changes are ignored so that x264 is not reconfigured every picture.
    pub(crate) fn cap_rate(&mut self, bps: Option<u64>) {
        let Backend::H264(x264) = &mut self.backend else {
            return;
        };
        let wanted = match bps {
            Some(bps) => (bps / 10 * 8).clamp(MIN_RATE, self.ceiling),
            None => self.ceiling,
        };
        if wanted.abs_diff(self.max_rate) * 10 < self.max_rate {
            return;
        }
        tracing::debug!(
            from = self.max_rate,
            to = wanted,
            "desktop: H.264 rate ceiling"
        );
        match x264.set_max_rate(wanted) {
            Ok(()) => self.max_rate = wanted,
            Err(e) => tracing::warn!("desktop: {e}"),
        }
    }

    /// The H.264 rate ceiling now, bits per second.
    #[cfg(test)]
    pub(crate) fn max_rate(&self) -> u64 {
        self.max_rate
    }

    pub(crate) fn source(&self) -> (u32, u32) {
        self.source
    }

    /// The WebCodecs codec string; for H.264 known once the first key frame's SPS was seen.
    pub(crate) fn codec_string(&self) -> Option<&str> {
        self.codec_string.as_deref()
    }

    /// Encodes one frame (a key frame when `key`, and always the first). `changed` lists where
    /// `frame` differs from the frame encoded before (`None`: anywhere). `None` if the encoder
    /// produced nothing for it.
    pub(crate) fn encode(
        &mut self,
        frame: &Frame,
        changed: Option<&[Rect]>,
        key: bool,
    ) -> Result<Option<EncodedVideo>, EncodeError> {
        let started = Instant::now();
        match &mut self.to_yuv {
            ToYuv::Changed(converter) => {
                let whole = [frame.bounds()];
                let rects = match changed {
                    Some(rects) if !self.fresh => rects,
                    _ => &whole[..],
                };
                for rect in rects {
                    converter.convert(frame, *rect, &mut self.picture)?;
                }
            }
            ToYuv::Scaled {
                resizer,
                scaled,
                converter,
            } => {
                resize(resizer, frame, scaled)?;
                converter.convert(scaled, scaled.bounds(), &mut self.picture)?;
            }
        }
        self.fresh = false;
        let pts = (self.opened_at.elapsed().as_millis() as i64).max(self.last_pts + 1);
        self.last_pts = pts;
        let key = key || self.frames == 0;
        self.frames += 1;
        let mut data = Vec::new();
        let produced = match &mut self.backend {
            Backend::H264(x264) => x264.encode(&self.picture, pts, key, &mut data)?,
            Backend::Vp8(vp8) => vp8.encode(&self.picture, pts, key, &mut data)?,
        };
        let Some(is_key) = produced.filter(|_| !data.is_empty()) else {
            return Ok(None);
        };
        if is_key
            && self.codec == Codec::H264
            && let Some(string) = h264_codec_string(&data)
        {
            self.codec_string = Some(string);
        }
        Ok(Some(EncodedVideo {
            data,
            key: is_key,
            encode_us: started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32,
        }))
    }
}

/// How captured frames become the encoder's YUV picture.
enum ToYuv {
    /// Same size: only the changed rectangles are converted.
    Changed(Converter),
    /// Down-scaled: the whole frame is resized, then converted.
    Scaled {
        resizer: Box<Resizer>,
        scaled: Frame,
        converter: Converter,
    },
}

/// Resizes a BGRX `frame` into `target` (of another size): a convolution with a bilinear
/// kernel widened to the scale, so that a down-scaled desktop's text stays legible rather than
/// aliased. The fourth byte is padding, not alpha: it must not weigh the colours.
pub(super) fn resize(
    resizer: &mut Resizer,
    frame: &Frame,
    target: &mut Frame,
) -> Result<(), EncodeError> {
    let source = ImageRef::new(frame.width, frame.height, &frame.data, PixelType::U8x4)?;
    let mut output = Image::from_slice_u8(
        target.width,
        target.height,
        &mut target.data,
        PixelType::U8x4,
    )?;
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .use_alpha(false);
    resizer.resize(&source, &mut output, &options)?;
    debug_assert_eq!(
        target.data.len(),
        target.width as usize * target.height as usize * BYTES_PER_PIXEL
    );
    Ok(())
}

/// Viewer quality 1..=100 → x264 CRF 45..=18 (lower CRF is better).
pub(crate) fn h264_crf(quality: u8) -> u8 {
    crf_between(quality, 45, 18)
}

/// Viewer quality 1..=100 → libvpx CQ level 50..=10.
pub(crate) fn vp8_crf(quality: u8) -> u8 {
    crf_between(quality, 50, 10)
}

fn crf_between(quality: u8, worst: u8, best: u8) -> u8 {
    let quality = u32::from(quality.clamp(MIN_QUALITY, MAX_QUALITY) - MIN_QUALITY);
    let span = u32::from(worst - best);
    let range = u32::from(MAX_QUALITY - MIN_QUALITY);
    worst - ((quality * span + range / 2) / range) as u8
}

/// The WebCodecs codec string (`avc1.PPCCLL`: profile_idc, constraint flags, level_idc in hex)
/// from the first SPS in an Annex B stream.
pub(crate) fn h264_codec_string(annex_b: &[u8]) -> Option<String> {
    let sps = nal_units(annex_b).find(|nal| nal.first().is_some_and(|h| h & 0x1f == 7))?;
    // The three bytes after the NAL header; emulation prevention (00 00 03) cannot occur in
    // them unless profile and constraints were both zero, which no encoder writes.
    let [profile, constraints, level]: [u8; 3] = sps.get(1..4)?.try_into().ok()?;
    Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
}

/// The NAL units of an Annex B byte stream (start codes 00 00 01 or 00 00 00 01 removed).
fn nal_units(stream: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|&next| {
            // The next unit's start code (3 bytes, or 4 with a leading zero) ends this one.
            let mut end = next - 3;
            while end > 0 && stream[end - 1] == 0 {
                end -= 1;
            }
            end
        })
        .chain(std::iter::once(stream.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(start, end)| &stream[start..end.max(start)])
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
