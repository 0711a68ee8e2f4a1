//! Decoding the agent's video pictures back with FFmpeg's own decoders (feature `decode`).

use ffmpeg_next::codec::{self, Id};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Packet, decoder, frame};

/// Decodes `pictures` (H.264 access units or VP8 frames) in order; the RGB colour at the centre
/// of each decoded frame.
pub fn decode_centre_colours(id: Id, pictures: &[Vec<u8>]) -> Vec<[u8; 3]> {
    ffmpeg_next::init().expect("FFmpeg initialisation");
    let found = decoder::find(id).expect("an FFmpeg decoder");
    let mut decoder = codec::context::Context::new_with_codec(found)
        .decoder()
        .video()
        .expect("open the decoder");
    let mut colours = Vec::new();
    let mut decoded = frame::Video::empty();
    for picture in pictures {
        decoder
            .send_packet(&Packet::copy(picture))
            .expect("decodable");
        while decoder.receive_frame(&mut decoded).is_ok() {
            colours.push(centre_rgb(&decoded));
        }
    }
    colours
}

fn centre_rgb(decoded: &frame::Video) -> [u8; 3] {
    let (width, height) = (decoded.width(), decoded.height());
    let mut to_rgb = scaling::Context::get(
        decoded.format(),
        width,
        height,
        Pixel::RGB24,
        width,
        height,
        scaling::Flags::POINT,
    )
    .expect("swscale converts every format the decoder outputs to RGB24");
    let mut rgb = frame::Video::empty();
    to_rgb
        .run(decoded, &mut rgb)
        .expect("a converter made for this frame's size and format converts it");
    let at = (height / 2) as usize * rgb.stride(0) + (width / 2) as usize * 3;
    let data = rgb.data(0);
    [data[at], data[at + 1], data[at + 2]]
}

/// Decodes Opus packets with FFmpeg's own decoder; the first channel's samples.
pub fn decode_opus(packets: &[Vec<u8>]) -> Vec<f32> {
    ffmpeg_next::init().expect("FFmpeg initialisation");
    let found = decoder::find(Id::OPUS).expect("FFmpeg's Opus decoder");
    let mut decoder = codec::context::Context::new_with_codec(found)
        .decoder()
        .audio()
        .expect("open the decoder");
    let mut samples = Vec::new();
    let mut decoded = frame::Audio::empty();
    for packet in packets {
        decoder
            .send_packet(&Packet::copy(packet))
            .expect("decodable");
        while decoder.receive_frame(&mut decoded).is_ok() {
            // FFmpeg's Opus decoder gives planar floats.
            samples.extend_from_slice(decoded.plane::<f32>(0));
        }
    }
    samples
}

/// The power of `samples` (at `rate` Hz) at frequency `hz` (the Goertzel filter).
pub fn tone_power(samples: &[f32], rate: f64, hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s = f64::from(x) + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2
}
