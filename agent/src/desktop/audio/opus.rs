//! Opus through libopus (the `opus` crate): 48 kHz stereo, 20 ms packets, the "audio"
//! application (music and system sounds, not only speech), and a constrained variable bit rate
//! around [`BIT_RATE`] (unconstrained VBR spends ~100 kbit/s on a pure tone, measured).

use opus::{Application, Bitrate, Channels, Encoder};

use crate::desktop::encode::EncodeError;

pub(crate) const RATE: u32 = 48_000;
pub(crate) const CHANNELS: usize = 2;
/// Samples per channel in one 20 ms packet.
pub(crate) const FRAME_SAMPLES: usize = 960;
/// Bytes of 16-bit interleaved PCM in one packet's worth of sound.
pub(crate) const FRAME_BYTES: usize = FRAME_SAMPLES * CHANNELS * 2;
/// Bits per second the encoder aims at: desktop sound (notifications, a video's track) sounds
/// right at this rate, and it is a few KiB/s beside the pictures.
pub(crate) const BIT_RATE: i32 = 64_000;
/// The largest packet libopus can make (its documented bound for one frame).
const MAX_PACKET: usize = 1275;

pub(crate) struct OpusEncoder {
    encoder: Encoder,
    samples: Vec<i16>,
}

impl OpusEncoder {
    pub(crate) fn new() -> Result<OpusEncoder, EncodeError> {
        let mut encoder = Encoder::new(RATE, Channels::Stereo, Application::Audio)?;
        encoder.set_bitrate(Bitrate::Bits(BIT_RATE))?;
        encoder.set_vbr(true)?;
        encoder.set_vbr_constraint(true)?;
        Ok(OpusEncoder {
            encoder,
            samples: vec![0; FRAME_SAMPLES * CHANNELS],
        })
    }

    /// Encodes 20 ms of 16-bit little-endian interleaved stereo ([`FRAME_BYTES`]; less is
    /// padded with silence); the packets that came out (always one).
    pub(crate) fn encode(&mut self, pcm: &[u8]) -> Result<Vec<Vec<u8>>, EncodeError> {
        self.samples.fill(0);
        for (sample, bytes) in self.samples.iter_mut().zip(pcm.chunks_exact(2)) {
            *sample = i16::from_le_bytes([bytes[0], bytes[1]]);
        }
        let packet = self.encoder.encode_vec(&self.samples, MAX_PACKET)?;
        Ok(vec![packet])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second of a 1 kHz tone encodes to packets of a sensible size, and FFmpeg's Opus
    /// decoder (another implementation than the encoder's library) gives the tone back (the test kit's Goertzel filter, 1 kHz against 3 kHz).
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
