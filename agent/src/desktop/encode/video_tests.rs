use ffmpeg_next::codec::Id;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::software::scaling;
use ffmpeg_next::{Packet, decoder, frame};

use super::*;

/// Decodes `pictures` in order with FFmpeg's own decoder; the RGB colour at the centre of each
/// decoded frame.
pub fn decode_centre_colours(id: Id, pictures: &[Vec<u8>]) -> Vec<[u8; 3]> {
    init_ffmpeg();
    let codec = decoder::find(id).expect("decoder");
    let mut decoder = codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .expect("open decoder");
    let mut colours = Vec::new();
    let mut decoded = frame::Video::empty();
    for picture in pictures {
        decoder.send_packet(&Packet::copy(picture)).expect("decode");
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
    .unwrap();
    let mut rgb = frame::Video::empty();
    to_rgb.run(decoded, &mut rgb).unwrap();
    let at = (height / 2) as usize * rgb.stride(0) + (width / 2) as usize * 3;
    let data = rgb.data(0);
    [data[at], data[at + 1], data[at + 2]]
}

pub fn close_to(actual: [u8; 3], expected: [u8; 3], tolerance: u8) -> bool {
    actual
        .iter()
        .zip(expected)
        .all(|(a, e)| a.abs_diff(e) <= tolerance)
}

fn round_trip(codec: Codec, id: Id) {
    let colours = [[255, 0, 0], [0, 255, 0], [30, 60, 200]];
    let mut encoder = VideoEncoder::open(codec, (320, 240), (320, 240), 80, 30).unwrap();
    let mut pictures = Vec::new();
    for (index, colour) in colours.iter().enumerate() {
        let frame = Frame::filled(320, 240, *colour);
        let encoded = encoder
            .encode(&frame, false)
            .unwrap()
            .expect("a picture per frame");
        assert_eq!(encoded.key, index == 0, "only the first is a key frame");
        pictures.push(encoded.data);
    }
    // A requested key frame is one.
    let again = encoder
        .encode(&Frame::filled(320, 240, [0, 0, 255]), true)
        .unwrap()
        .unwrap();
    assert!(again.key);
    pictures.push(again.data.clone());
    let decoded = decode_centre_colours(id, &pictures);
    assert_eq!(decoded.len(), 4, "{codec:?}: every picture decodes");
    for (got, want) in decoded.iter().zip(colours.iter().chain([&[0, 0, 255]])) {
        assert!(close_to(*got, *want, 12), "{codec:?}: {got:?} for {want:?}");
    }
    // The key frame alone starts a stream (what a viewer joining late gets).
    let alone = decode_centre_colours(id, &[again.data]);
    assert_eq!(alone.len(), 1);
    assert!(close_to(alone[0], [0, 0, 255], 12), "{alone:?}");
}

#[test]
fn h264_pictures_decode_to_the_painted_colours() {
    round_trip(Codec::H264, Id::H264);
}

#[test]
fn vp8_pictures_decode_to_the_painted_colours() {
    round_trip(Codec::Vp8, Id::VP8);
}

#[test]
fn scaling_down_gives_the_asked_size() {
    let mut encoder = VideoEncoder::open(Codec::H264, (640, 480), (320, 240), 60, 30).unwrap();
    assert_eq!(encoder.source(), (640, 480));
    let encoded = encoder
        .encode(&Frame::filled(640, 480, [0, 255, 0]), false)
        .unwrap()
        .unwrap();
    init_ffmpeg();
    let codec = decoder::find(Id::H264).unwrap();
    let mut decoder = codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap();
    decoder.send_packet(&Packet::copy(&encoded.data)).unwrap();
    let mut decoded = frame::Video::empty();
    decoder.receive_frame(&mut decoded).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
}

#[test]
fn the_codec_string_comes_from_a_real_sps() {
    let mut encoder = VideoEncoder::open(Codec::H264, (1280, 720), (1280, 720), 60, 30).unwrap();
    assert_eq!(encoder.codec_string(), None, "unknown before the first SPS");
    let encoded = encoder
        .encode(&Frame::filled(1280, 720, [9, 9, 9]), false)
        .unwrap()
        .unwrap();
    let string = encoder.codec_string().unwrap().to_owned();
    assert_eq!(Some(string.clone()), h264_codec_string(&encoded.data));
    // Constrained baseline: profile 66 (0x42) with constraint_set1 (0x40) at least.
    assert!(string.starts_with("avc1.42"), "{string}");
    let constraints = u8::from_str_radix(&string[7..9], 16).unwrap();
    assert_ne!(constraints & 0x40, 0, "{string}");
    let level = u8::from_str_radix(&string[9..11], 16).unwrap();
    assert!((10..=52).contains(&level), "{string}");
    let vp8 = VideoEncoder::open(Codec::Vp8, (64, 64), (64, 64), 60, 30).unwrap();
    assert_eq!(vp8.codec_string(), Some("vp8"));
}

#[test]
fn nal_units_split_on_both_start_code_lengths() {
    let stream = [
        0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0, 0, 1, 0x68, 0xce, 0, 0, 0, 1, 0x65, 0x88,
    ];
    let units: Vec<&[u8]> = nal_units(&stream).collect();
    assert_eq!(
        units,
        vec![
            &[0x67, 0x42, 0xc0, 0x1f][..],
            &[0x68, 0xce][..],
            &[0x65, 0x88][..]
        ]
    );
    assert_eq!(h264_codec_string(&stream).as_deref(), Some("avc1.42c01f"));
    assert_eq!(h264_codec_string(&[0, 0, 1, 0x65, 1, 2, 3]), None);
}

#[test]
fn quality_maps_onto_crf_ranges() {
    assert_eq!(h264_crf(1), 45);
    assert_eq!(h264_crf(100), 18);
    assert!(h264_crf(60) < h264_crf(30));
    assert_eq!(vp8_crf(1), 50);
    assert_eq!(vp8_crf(100), 10);
}
