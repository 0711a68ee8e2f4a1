//! Opus through FFmpeg's libopus encoder: libavcodec is linked already for the desktop's video
//! (and Debian's is built with libopus), so sound adds no library to the agent. 48 kHz stereo,
//! 20 ms packets, the "audio" application (music and system sounds, not only speech), and a
//! constrained variable bit rate around [`BIT_RATE`] (unconstrained VBR spends ~100 kbit/s on a
//! pure tone, measured).

use ffmpeg_next::format::Sample;
use ffmpeg_next::format::sample::Type;
use ffmpeg_next::util::channel_layout::ChannelLayout;
use ffmpeg_next::{Dictionary, Packet, Rational, codec, encoder, frame};

use crate::desktop::encode::{EncodeError, init_ffmpeg};

pub(crate) const RATE: u32 = 48_000;
pub(crate) const CHANNELS: usize = 2;
/// Samples per channel in one 20 ms packet.
pub(crate) const FRAME_SAMPLES: usize = 960;
/// Bytes of 16-bit interleaved PCM in one packet's worth of sound.
pub(crate) const FRAME_BYTES: usize = FRAME_SAMPLES * CHANNELS * 2;
/// Bits per second the encoder aims at: desktop sound (notifications, a video's track) sounds
/// right at this rate, and it is a few KiB/s beside the pictures.
pub(crate) const BIT_RATE: usize = 64_000;

pub(crate) struct OpusEncoder {
    encoder: encoder::Audio,
    input: frame::Audio,
    packet: Packet,
    pts: i64,
}

impl OpusEncoder {
    pub(crate) fn new() -> Result<OpusEncoder, EncodeError> {
        init_ffmpeg();
        let found = encoder::find_by_name("libopus").ok_or(EncodeError::Missing("libopus"))?;
        let mut audio = codec::context::Context::new_with_codec(found)
            .encoder()
            .audio()?;
        audio.set_rate(RATE as i32);
        audio.set_channel_layout(ChannelLayout::STEREO);
        audio.set_channels(CHANNELS as i32);
        audio.set_format(Sample::I16(Type::Packed));
        audio.set_bit_rate(BIT_RATE);
        audio.set_time_base(Rational::new(1, RATE as i32));
        let mut options = Dictionary::new();
        options.set("application", "audio");
        options.set("frame_duration", "20");
        options.set("vbr", "constrained");
        options.set("b", &BIT_RATE.to_string());
        let encoder = audio.open_with(options)?;
        let mut input = frame::Audio::new(
            Sample::I16(Type::Packed),
            FRAME_SAMPLES,
            ChannelLayout::STEREO,
        );
        input.set_rate(RATE);
        Ok(OpusEncoder {
            encoder,
            input,
            packet: Packet::empty(),
            pts: 0,
        })
    }

    /// Encodes 20 ms of 16-bit little-endian interleaved stereo ([`FRAME_BYTES`]); the packets
    /// that came out (one, once the encoder has started).
    pub(crate) fn encode(&mut self, pcm: &[u8]) -> Result<Vec<Vec<u8>>, EncodeError> {
        let plane = self.input.data_mut(0);
        let n = pcm.len().min(plane.len());
        plane[..n].copy_from_slice(&pcm[..n]);
        plane[n..].fill(0);
        self.input.set_pts(Some(self.pts));
        self.pts += FRAME_SAMPLES as i64;
        self.encoder.send_frame(&self.input)?;
        let mut packets = Vec::new();
        while self.encoder.receive_packet(&mut self.packet).is_ok() {
            if let Some(data) = self.packet.data() {
                packets.push(data.to_vec());
            }
        }
        Ok(packets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of a 1 kHz tone encodes to packets of a sensible size, and FFmpeg's own Opus
    /// decoder gives the tone back (the test kit's Goertzel filter, 1 kHz against 3 kHz).
    #[test]
    fn a_tone_survives_the_encoder() {
        let mut encoder = OpusEncoder::new().expect("libopus");
        let mut packets = Vec::new();
        let mut pcm = vec![0u8; FRAME_BYTES];
        for frame in 0..50 {
            for i in 0..FRAME_SAMPLES {
                let t = (frame * FRAME_SAMPLES + i) as f64 / f64::from(RATE);
                let v = ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 12_000.0) as i16;
                for c in 0..CHANNELS {
                    let at = (i * CHANNELS + c) * 2;
                    pcm[at..at + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            packets.extend(encoder.encode(&pcm).unwrap());
        }
        assert!(packets.len() >= 45, "{}", packets.len());
        let bytes: usize = packets.iter().map(Vec::len).sum();
        // 64 kbit/s is 8 KB a second; VBR on a pure tone uses less.
        assert!((1_000..=9_000).contains(&bytes), "{bytes} bytes");

        let decoded = xprobe::decode_opus(&packets);
        let steady = &decoded[RATE as usize / 4..];
        let tone = xprobe::tone_power(steady, f64::from(RATE), 1000.0);
        let other = xprobe::tone_power(steady, f64::from(RATE), 3000.0);
        assert!(tone > other * 100.0, "tone {tone} vs {other}");
    }
}
