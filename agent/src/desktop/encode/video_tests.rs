use ffmpeg_next::codec::Id;
use ffmpeg_next::{Packet, decoder, frame};
use xprobe::{close_to, decode_centre_colours};

use super::*;

fn round_trip(codec: Codec, id: Id) {
    let colours = [[255, 0, 0], [0, 255, 0], [30, 60, 200]];
    let mut encoder = VideoEncoder::open(codec, (320, 240), (320, 240), 80, 30).unwrap();
    let mut pictures = Vec::new();
    for (index, colour) in colours.iter().enumerate() {
        let frame = Frame::filled(320, 240, *colour);
        let encoded = encoder
            .encode(&frame, None, false)
            .unwrap()
            .expect("a picture per frame");
        assert_eq!(encoded.key, index == 0, "only the first is a key frame");
        pictures.push(encoded.data);
    }
    // A requested key frame is one.
    let again = encoder
        .encode(&Frame::filled(320, 240, [0, 0, 255]), None, true)
        .unwrap()
        .unwrap();
    assert!(again.key);
    pictures.push(again.data.clone());
    let decoded = decode_centre_colours(id, &pictures);
    assert_eq!(decoded.len(), 4, "{codec:?}: every picture decodes");
    // Realtime encoders pick their quality by the CPU time they get, so the loss varies from run
    // to run (VP8 has given 14 off on a busy machine); 24 still tells the three colours far apart.
    for (got, want) in decoded.iter().zip(colours.iter().chain([&[0, 0, 255]])) {
        assert!(
            close_to(*got, *want, TOLERANCE),
            "{codec:?}: {got:?} for {want:?}"
        );
    }
    // The key frame alone starts a stream (what a viewer joining late gets).
    let alone = decode_centre_colours(id, &[again.data]);
    assert_eq!(alone.len(), 1);
    assert!(close_to(alone[0], [0, 0, 255], TOLERANCE), "{alone:?}");
}

/// Largest per-channel difference allowed after a lossy round trip.
const TOLERANCE: u8 = 24;

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
        .encode(&Frame::filled(640, 480, [0, 255, 0]), None, false)
        .unwrap()
        .unwrap();
    ffmpeg_next::init().unwrap();
    let codec = decoder::find(Id::H264).unwrap();
    let mut decoder = ffmpeg_next::codec::context::Context::new_with_codec(codec)
        .decoder()
        .video()
        .unwrap();
    decoder.send_packet(&Packet::copy(&encoded.data)).unwrap();
    let mut decoded = frame::Video::empty();
    decoder.receive_frame(&mut decoded).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (320, 240));
    // The resize treats the padding byte as padding: a solid colour stays that colour.
    let centre = decode_centre_colours(Id::H264, &[encoded.data]);
    assert!(close_to(centre[0], [0, 255, 0], 24), "{centre:?}");
}

#[test]
fn the_codec_string_comes_from_a_real_sps() {
    let mut encoder = VideoEncoder::open(Codec::H264, (1280, 720), (1280, 720), 60, 30).unwrap();
    assert_eq!(encoder.codec_string(), None, "unknown before the first SPS");
    let encoded = encoder
        .encode(&Frame::filled(1280, 720, [9, 9, 9]), None, false)
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

/// Incompressible pictures (xorshift noise), different each time.
fn noise(width: u32, height: u32, seed: &mut u64) -> Frame {
    let mut data = Vec::with_capacity(width as usize * height as usize * 4);
    while data.len() < width as usize * height as usize * 4 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        data.extend_from_slice(&seed.to_le_bytes());
    }
    data.truncate(width as usize * height as usize * 4);
    Frame {
        width,
        height,
        data: data.into(),
    }
}

/// Bytes of `count` noise pictures after the first (the key frame).
fn bytes_of_noise(encoder: &mut VideoEncoder, count: usize, seed: &mut u64) -> usize {
    (0..count)
        .map(|_| {
            let frame = noise(320, 240, seed);
            encoder
                .encode(&frame, None, false)
                .unwrap()
                .map_or(0, |p| p.data.len())
        })
        .sum()
}

#[test]
fn a_bandwidth_estimate_caps_the_h264_rate_while_the_stream_runs() {
    let mut encoder = VideoEncoder::open(Codec::H264, (320, 240), (320, 240), 90, 30).unwrap();
    let ceiling = encoder.max_rate();
    assert!(ceiling >= 1_000_000);
    let mut seed = 7;
    encoder
        .encode(&noise(320, 240, &mut seed), None, false)
        .unwrap()
        .expect("the key frame");
    let free = bytes_of_noise(&mut encoder, 30, &mut seed);
    // A 300 kbit/s path: the encoder keeps 80% of it.
    encoder.cap_rate(Some(300_000));
    assert_eq!(encoder.max_rate(), 240_000);
    // Small wobbles of the estimate do not reconfigure x264.
    encoder.cap_rate(Some(310_000));
    assert_eq!(encoder.max_rate(), 240_000);
    let capped = bytes_of_noise(&mut encoder, 30, &mut seed);
    // One second at 240 kbit/s is 30 KB, plus what the half-second buffer held.
    assert!(
        capped < free / 3 && capped < 60_000,
        "capped {capped} bytes vs {free} uncapped"
    );
    // The estimate gone (or generous): back to the ceiling.
    encoder.cap_rate(None);
    assert_eq!(encoder.max_rate(), ceiling);
    encoder.cap_rate(Some(u64::MAX / 2));
    assert_eq!(encoder.max_rate(), ceiling);
}

/// `frame` with the `rect` part painted `rgb`.
fn painted(mut frame: Frame, rect: Rect, [r, g, b]: [u8; 3]) -> Frame {
    let stride = frame.stride();
    for y in rect.y..rect.bottom() {
        for x in rect.x..rect.right() {
            let at = y as usize * stride + x as usize * 4;
            frame.data[at..at + 4].copy_from_slice(&[b, g, r, 0]);
        }
    }
    frame
}

#[test]
fn only_the_changed_rectangles_are_converted_after_the_first_picture() {
    let mut encoder = VideoEncoder::open(Codec::H264, (320, 240), (320, 240), 80, 30).unwrap();
    let centre = Rect::new(128, 96, 64, 48);
    let corner = Rect::new(0, 0, 64, 64);
    let red = Frame::filled(320, 240, [255, 0, 0]);
    // The first picture converts everything, whatever `changed` says.
    let first = encoder.encode(&red, Some(&[corner]), false).unwrap();
    // The centre turns green and is said to have changed: it shows.
    let green_centre = painted(red.clone(), centre, [0, 255, 0]);
    let second = encoder
        .encode(&green_centre, Some(&[centre]), false)
        .unwrap();
    // The centre turns blue, but only the corner is said to have changed: the encoder trusts
    // the damage and does not look at the centre again.
    let blue_centre = painted(red, centre, [0, 0, 255]);
    let third = encoder
        .encode(&blue_centre, Some(&[corner]), false)
        .unwrap();
    // Nothing listed at all (`None`): the whole frame is converted.
    let fourth = encoder.encode(&blue_centre, None, false).unwrap();
    let pictures: Vec<Vec<u8>> = [first, second, third, fourth]
        .into_iter()
        .map(|p| p.expect("a picture").data)
        .collect();
    let centres = decode_centre_colours(Id::H264, &pictures);
    let want = [[255, 0, 0], [0, 255, 0], [0, 255, 0], [0, 0, 255]];
    assert_eq!(centres.len(), 4);
    for (got, want) in centres.iter().zip(want) {
        assert!(close_to(*got, want, TOLERANCE), "{centres:?}");
    }
}
