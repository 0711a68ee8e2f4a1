//! H.264 (libx264) and VP8 (libvpx) through ffmpeg-next, tuned for a live screen: no B-frames
//! and no look-ahead (each frame comes out as soon as it goes in), one long group of pictures
//! with key frames only when asked for. BGRX → YUV 4:2:0 happens only where the screen changed
//! (`yuv420.rs`); a down-scaled picture goes through swscale, whole, in one pass.
//!
//! - **H.264**: preset ultrafast, tune zerolatency, baseline profile (x264 makes it constrained
//!   baseline: what every WebCodecs and hardware decoder takes), CRF from the viewer's quality,
//!   Annex B output with SPS/PPS repeated in front of every IDR (x264's default without a
//!   global header), so any key frame starts a stream on its own.
//! - **VP8**: realtime deadline, a high `cpu-used`, no alternate reference or lag, error resilient,
//!   constant-quality mode with a generous bit-rate ceiling.
//!
//! Quality changes reopen the encoder (the next frame is a key frame anyway); the hub does that
//! only when it needs a key frame or after a back-pressure step, never per picture.

use std::time::Instant;

use ffmpeg_next::error::EAGAIN;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Dictionary, Packet, Rational, codec, color, encoder, frame, picture};
use tether_common::relay::desktop::{Codec, MAX_QUALITY, MIN_QUALITY};

use super::yuv420::Converter;
use super::{EncodeError, copy_into, init_ffmpeg};
use crate::desktop::frame::{Frame, Rect};

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
    encoder: encoder::Video,
    source: (u32, u32),
    to_yuv: ToYuv,
    /// The picture the encoder is given; between frames it holds the last one, so that only
    /// what changed needs converting again.
    output: frame::Video,
    /// Nothing converted into `output` yet.
    fresh: bool,
    packet: Packet,
    quality: u8,
    /// H.264: the VBV's rate ceiling now (bits per second), and the one it opened with.
    max_rate: u64,
    ceiling: u64,
    opened_at: Instant,
    last_pts: i64,
    frames: u64,
    codec_string: Option<String>,
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
        init_ffmpeg();
        let name = match codec {
            Codec::H264 => "libx264",
            Codec::Vp8 => "libvpx",
            Codec::Jpeg => return Err(EncodeError::Missing("JPEG video")),
        };
        let found = encoder::find_by_name(name).ok_or(EncodeError::Missing(name))?;
        // The ceiling constant-quality mode needs: ~0.25 bit per pixel per frame.
        let ceiling =
            (u64::from(size.0) * u64::from(size.1) * u64::from(fps.max(1)) / 4).max(1_000_000);
        let mut video = codec::context::Context::new_with_codec(found)
            .encoder()
            .video()?;
        video.set_width(size.0);
        video.set_height(size.1);
        video.set_format(Pixel::YUV420P);
        video.set_time_base(Rational::new(1, 1000));
        video.set_frame_rate(Some(Rational::new(fps.max(1).into(), 1)));
        video.set_gop(GOP);
        video.set_max_b_frames(0);
        // What the conversion makes (`yuv420.rs`, swscale's default likewise), said in the
        // stream so that decoders do not guess; sRGB screens have BT.709 primaries.
        video.set_colorspace(color::Space::SMPTE170M);
        video.set_color_range(color::Range::MPEG);
        video.set_color_primaries(color::Primaries::BT709);
        video.set_color_transfer_characteristic(color::TransferCharacteristic::IEC61966_2_1);
        let mut options = Dictionary::new();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        options.set("threads", &threads.to_string());
        match codec {
            Codec::H264 => {
                options.set("preset", "ultrafast");
                options.set("tune", "zerolatency");
                options.set("profile", "baseline");
                options.set("crf", &h264_crf(quality).to_string());
                // A VBV from the start (x264 cannot turn one on later), so that the direct
                // path's bandwidth estimate can lower the ceiling while the stream runs
                // (`cap_rate`: libavcodec reconfigures x264 when `rc_max_rate` changes). Half a
                // second of buffer: a key frame fits, and a picture waits at most that long.
                video.set_max_bit_rate(ceiling as usize);
                options.set("bufsize", &(ceiling / 2).to_string());
                // A requested key frame is an IDR (a decoder can start there), not an open I-frame.
                options.set("forced-idr", "1");
            }
            Codec::Vp8 | Codec::Jpeg => {
                video.set_bit_rate(ceiling as usize);
                video.set_qmin(4);
                video.set_qmax(56);
                options.set("deadline", "realtime");
                options.set("cpu-used", "8");
                options.set("lag-in-frames", "0");
                options.set("auto-alt-ref", "0");
                options.set("error-resilient", "default");
                options.set("crf", &vp8_crf(quality).to_string());
            }
        }
        let encoder = video.open_with(options)?;
        let to_yuv = if source == size {
            ToYuv::Changed(Converter::default())
        } else {
            ToYuv::Scaled {
                scaler: scaling::Context::get(
                    Pixel::BGRZ,
                    source.0,
                    source.1,
                    Pixel::YUV420P,
                    size.0,
                    size.1,
                    scaling::Flags::BILINEAR,
                )?,
                input: frame::Video::new(Pixel::BGRZ, source.0, source.1),
            }
        };
        Ok(VideoEncoder {
            codec,
            encoder,
            source,
            to_yuv,
            output: frame::Video::new(Pixel::YUV420P, size.0, size.1),
            fresh: true,
            packet: Packet::empty(),
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
        if self.codec != Codec::H264 {
            return;
        }
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
        self.max_rate = wanted;
        self.encoder.set_max_bit_rate(wanted as usize);
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
                    converter.convert(frame, *rect, &mut self.output)?;
                }
            }
            ToYuv::Scaled { scaler, input } => {
                copy_into(frame, input);
                scaler.run(input, &mut self.output)?;
            }
        }
        self.fresh = false;
        let pts = (self.opened_at.elapsed().as_millis() as i64).max(self.last_pts + 1);
        self.last_pts = pts;
        self.output.set_pts(Some(pts));
        let key = key || self.frames == 0;
        self.output.set_kind(if key {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.encoder.send_frame(&self.output)?;
        self.frames += 1;
        let mut data = Vec::new();
        let mut is_key = false;
        loop {
            match self.encoder.receive_packet(&mut self.packet) {
                Ok(()) => {
                    if let Some(bytes) = self.packet.data() {
                        data.extend_from_slice(bytes);
                    }
                    is_key |= self.packet.is_key();
                }
                Err(ffmpeg_next::Error::Other { errno: EAGAIN } | ffmpeg_next::Error::Eof) => {
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
        if data.is_empty() {
            return Ok(None);
        }
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
    /// Down-scaled: the whole frame through swscale.
    Scaled {
        scaler: scaling::Context,
        input: frame::Video,
    },
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
