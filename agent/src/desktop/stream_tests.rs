//! Capture, change detection and the hub against a real Xvfb (each test its own server).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ffmpeg_next::codec::Id;
use tether_common::relay::desktop::{
    BinaryKind, Codec, CursorHeader, DisplaySelection, EffectiveSettings, FRAME_WINDOW,
    PictureHeader, SNAPSHOT_HEADER_LEN, StreamSettings, TileHeader,
};
use tokio::time::timeout;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt as _, CreateGCAux, Gcontext, Rectangle};
use x11rb::rust_connection::RustConnection;
use xprobe::{DEADLINE, Xvfb, close_to, decode_centre_colours};

use super::capture::Capturer;
use super::displays::read_displays;
use super::frame::Rect;
use super::hub::{HubOutput, Hubs, StreamInfo, Viewer};
use super::xserver::{XEvent, XServer};

/// Paints rectangles straight onto the root window.
pub(super) struct Painter {
    conn: RustConnection,
    root: u32,
    gc: Gcontext,
}

impl Painter {
    pub(super) fn new(display: &str) -> Painter {
        let (conn, screen) = x11rb::connect(Some(display)).expect("connect the painter");
        let root = conn.setup().roots[screen].root;
        let gc = conn.generate_id().unwrap();
        conn.create_gc(
            gc,
            root,
            &CreateGCAux::new()
                .subwindow_mode(x11rb::protocol::xproto::SubwindowMode::INCLUDE_INFERIORS),
        )
        .unwrap();
        Painter { conn, root, gc }
    }

    /// Moves the pointer to (x, y) on the screen.
    pub(super) fn warp_pointer(&self, x: i16, y: i16) {
        self.conn
            .warp_pointer(x11rb::NONE, self.root, 0, 0, 0, 0, x, y)
            .unwrap();
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }

    /// Fills `rect` with `rgb` and waits until the server has done it.
    pub(super) fn fill(&self, rect: Rect, [r, g, b]: [u8; 3]) {
        let pixel = (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b);
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(pixel))
            .unwrap();
        let rectangle = Rectangle {
            x: rect.x as i16,
            y: rect.y as i16,
            width: rect.width as u16,
            height: rect.height as u16,
        };
        self.conn
            .poly_fill_rectangle(self.root, self.gc, &[rectangle])
            .unwrap();
        // A round trip: everything before it has been drawn.
        self.conn.get_input_focus().unwrap().reply().unwrap();
    }
}

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];

#[test]
fn capture_returns_the_painted_colour_and_only_changed_tiles() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill(Rect::new(0, 0, 320, 240), [200, 30, 60]);
    let x = XServer::connect(&xvfb.display).unwrap();
    assert!(x.has_shm, "Xvfb has MIT-SHM 1.2");
    assert!(x.tracks_damage(), "Xvfb has XDamage");
    assert_eq!(x.root_size().unwrap(), (320, 240));
    let mut capturer = Capturer::new(&x, Rect::new(0, 0, 320, 240));
    assert!(
        capturer.capture().unwrap().is_all(),
        "the first capture is all new"
    );
    assert_eq!(capturer.frame().rgb_at(10, 10), [200, 30, 60]);
    assert!(capturer.capture().unwrap().is_empty(), "nothing changed");
    painter.fill(Rect::new(100, 70, 10, 10), GREEN);
    let dirty = capturer.capture().unwrap();
    assert_eq!(dirty.rects(), vec![Rect::new(64, 64, 64, 64)]);
    assert_eq!(capturer.frame().rgb_at(105, 75), GREEN);
    assert_eq!(capturer.frame().rgb_at(99, 75), [200, 30, 60]);
    // The two segments take turns: each capture is compared with the one just before, though
    // the segment it goes into last held the one before that.
    assert!(capturer.capture().unwrap().is_empty(), "nothing changed");
    assert!(capturer.capture().unwrap().is_empty(), "still nothing");
    painter.fill(Rect::new(300, 200, 4, 4), BLUE);
    let dirty = capturer.capture().unwrap();
    assert_eq!(dirty.rects(), vec![Rect::new(256, 192, 64, 48)]);
    assert_eq!(capturer.frame().rgb_at(301, 201), BLUE);
    assert_eq!(
        capturer.frame().rgb_at(105, 75),
        GREEN,
        "earlier changes stay"
    );
    assert!(capturer.capture().unwrap().is_empty());

    // Plain GetImage, of a smaller rectangle.
    let mut plain = Capturer::new(&x, Rect::new(100, 70, 20, 20)).without_shm();
    assert!(plain.capture().unwrap().is_all());
    assert_eq!(plain.frame().rgb_at(0, 0), GREEN);
    assert_eq!(plain.frame().rgb_at(15, 15), [200, 30, 60]);
}

#[test]
fn damage_reports_drawing_and_nothing_when_idle() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    let x = XServer::connect(&xvfb.display).unwrap();
    let (sender, events) = std::sync::mpsc::channel();
    let thread = x
        .spawn_events(move |event| sender.send(event).is_ok())
        .unwrap();
    x.reset_damage().unwrap();
    // Drain whatever the start caused, then expect silence while nothing is drawn.
    while events.recv_timeout(Duration::from_millis(300)).is_ok() {}
    assert!(events.recv_timeout(Duration::from_millis(500)).is_err());
    painter.fill(Rect::new(0, 0, 5, 5), BLUE);
    assert_eq!(events.recv_timeout(DEADLINE).unwrap(), XEvent::Damage);
    x.stop_events();
    thread.join().unwrap();
}

fn settings(codec: Codec) -> EffectiveSettings {
    StreamSettings {
        codec: Some(codec),
        quality: Some(80),
        fps: Some(30),
        ..StreamSettings::default()
    }
    .apply_to(StreamSettings::DEFAULT)
}

async fn next_output(viewer: &mut Viewer) -> HubOutput {
    match timeout(DEADLINE, viewer.output.recv()).await {
        Ok(Some(output)) => output,
        Ok(None) => panic!("the hub ended"),
        Err(_) => panic!("nothing from the hub within {DEADLINE:?}"),
    }
}

/// A picture: its header and its (joined) payload.
fn join_picture(messages: &[Vec<u8>]) -> (PictureHeader, Vec<u8>) {
    let mut payload = Vec::new();
    let mut first = None;
    for (index, message) in messages.iter().enumerate() {
        let (header, part) = PictureHeader::read(message).expect("a picture header");
        assert_eq!(header.has_more(), index + 1 < messages.len());
        first.get_or_insert(header);
        payload.extend_from_slice(part);
    }
    (first.expect("a message"), payload)
}

/// The next picture (and the stream announced before it, if any), skipping other output.
async fn next_picture(viewer: &mut Viewer) -> (Option<StreamInfo>, PictureHeader, Vec<u8>) {
    let mut stream = None;
    loop {
        match next_output(viewer).await {
            HubOutput::Stream(info) => stream = Some(info),
            HubOutput::Picture { messages, timing } => {
                let (header, payload) = join_picture(&messages);
                // What the pong reports is what the picture's header says, plus the capture.
                assert_eq!(timing.encode_us, header.encode_us);
                assert!(timing.capture_us > 0, "a capture takes time");
                return (stream, header, payload);
            }
            HubOutput::Failed(why) => panic!("the hub failed: {why}"),
            _ => {}
        }
    }
}

/// Asserts that no picture arrives within `wait` (other output may).
async fn no_picture_within(viewer: &mut Viewer, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, viewer.output.recv()).await {
            Err(_) => return,
            Ok(Some(HubOutput::Picture { messages, .. })) => {
                panic!("a picture arrived: {:?}", join_picture(&messages).0)
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the hub ended"),
        }
    }
}

#[tokio::test]
async fn a_video_viewer_gets_displays_a_stream_key_frame_and_only_changes() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill(Rect::new(0, 0, 320, 240), RED);
    let hubs = Hubs::default();
    let mut viewer = hubs.join(&xvfb.display, DisplaySelection::All, settings(Codec::H264));
    match next_output(&mut viewer).await {
        HubOutput::Displays { displays, selected } => {
            assert_eq!(selected, DisplaySelection::All);
            assert_eq!((displays[0].width, displays[0].height), (320, 240));
        }
        other => panic!("displays first, not {other:?}"),
    }
    match next_output(&mut viewer).await {
        HubOutput::Cursor(frame) => {
            let (cursor, pixels) = CursorHeader::read(&frame).expect("a cursor frame");
            assert!(cursor.width > 0 && !pixels.is_empty(), "{cursor:?}");
        }
        other => panic!("then the cursor's shape, not {other:?}"),
    }
    let (stream, header, first) = next_picture(&mut viewer).await;
    let stream = stream.expect("a stream event before the first picture");
    assert_eq!((stream.width, stream.height), (320, 240));
    assert!(stream.codec_string.starts_with("avc1.42"), "{stream:?}");
    assert!(header.is_key() && header.kind == BinaryKind::Video);
    assert_eq!(header.seq, 1);
    assert!(close_to(
        decode_centre_colours(Id::H264, std::slice::from_ref(&first))[0],
        RED,
        12
    ));
    viewer.ack(1);

    painter.fill(Rect::new(0, 0, 320, 240), GREEN);
    let (stream, header, second) = next_picture(&mut viewer).await;
    assert!(stream.is_none(), "same stream");
    assert!(!header.is_key(), "a delta picture");
    let colours = decode_centre_colours(Id::H264, &[first, second]);
    assert!(close_to(colours[1], GREEN, 12), "{colours:?}");
    viewer.ack(header.seq);

    // An idle screen sends nothing.
    no_picture_within(&mut viewer, Duration::from_secs(1)).await;
    // The pointer moved (nothing was drawn): its position comes anyway.
    painter.warp_pointer(100, 50);
    loop {
        match next_output(&mut viewer).await {
            HubOutput::Pointer { x: 100, y: 50 } => break,
            HubOutput::Picture { .. } => panic!("moving the pointer draws nothing"),
            _ => {}
        }
    }
    // A key frame on request.
    viewer.keyframe();
    let (_, header, _) = next_picture(&mut viewer).await;
    assert!(header.is_key());
    viewer.ack(header.seq);

    // Unacknowledged pictures stop at the window while the screen keeps changing.
    let painting = paint_continuously(&xvfb.display);
    let mut unacked = Vec::new();
    for _ in 0..FRAME_WINDOW {
        unacked.push(next_picture(&mut viewer).await.1.seq);
    }
    no_picture_within(&mut viewer, Duration::from_secs(1)).await;
    // Nobody could take a picture meanwhile, so none was made: the stream resumes where it was.
    viewer.ack(*unacked.last().unwrap());
    let (_, header, _) = next_picture(&mut viewer).await;
    assert_eq!(header.seq, unacked.last().unwrap() + 1);
    painting.store(false, Ordering::Relaxed);

    drop(viewer);
    let deadline = Instant::now() + DEADLINE;
    while hubs.is_running(&xvfb.display, DisplaySelection::All) {
        assert!(
            Instant::now() < deadline,
            "the hub outlived its last viewer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Repaints the whole screen in changing colours until the flag is cleared.
fn paint_continuously(display: &str) -> Arc<AtomicBool> {
    let running = Arc::new(AtomicBool::new(true));
    let flag = running.clone();
    let display = display.to_owned();
    std::thread::spawn(move || {
        let painter = Painter::new(&display);
        let mut shade = 0u8;
        while flag.load(Ordering::Relaxed) {
            shade = shade.wrapping_add(37);
            painter.fill(Rect::new(0, 0, 320, 240), [shade, 255 - shade, 128]);
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    running
}

#[tokio::test]
async fn jpeg_viewers_get_the_changed_tiles_and_share_the_hub_with_vp8_viewers() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill(Rect::new(0, 0, 320, 240), BLUE);
    let hubs = Hubs::default();
    let mut jpeg = hubs.join(&xvfb.display, DisplaySelection::All, settings(Codec::Jpeg));
    let mut vp8 = hubs.join(&xvfb.display, DisplaySelection::All, settings(Codec::Vp8));

    let (stream, header, payload) = next_picture(&mut jpeg).await;
    assert_eq!(stream.unwrap().codec_string, "jpeg");
    assert!(header.is_key() && header.kind == BinaryKind::Tiles);
    let tiles = TileHeader::split(&payload).unwrap();
    let covered: u32 = tiles
        .iter()
        .map(|(t, _)| u32::from(t.width) * u32::from(t.height))
        .sum();
    assert_eq!(covered, 320 * 240, "a key picture covers everything");
    assert!(close_to(jpeg_centre(tiles[0].1), BLUE, 8));
    jpeg.ack(header.seq);

    let (stream, header, key) = next_picture(&mut vp8).await;
    assert_eq!(stream.unwrap().codec_string, "vp8");
    assert!(header.is_key());
    assert!(close_to(
        decode_centre_colours(Id::VP8, &[key])[0],
        BLUE,
        12
    ));
    vp8.ack(header.seq);

    painter.fill(Rect::new(70, 130, 20, 20), RED);
    let (_, header, payload) = next_picture(&mut jpeg).await;
    assert!(!header.is_key());
    let tiles = TileHeader::split(&payload).unwrap();
    assert_eq!(tiles.len(), 1);
    assert_eq!(
        (tiles[0].0.x, tiles[0].0.y, tiles[0].0.width),
        (64, 128, 64)
    );
    assert!(close_to(jpeg_pixel(tiles[0].1, 15, 10), RED, 12));

    // A snapshot: a PNG of the whole display.
    jpeg.snapshot();
    let png = loop {
        if let HubOutput::Snapshot(messages) = next_output(&mut jpeg).await {
            break messages
                .iter()
                .flat_map(|m| m[SNAPSHOT_HEADER_LEN..].to_vec())
                .collect::<Vec<u8>>();
        }
    };
    let mut reader = png::Decoder::new(std::io::Cursor::new(png))
        .read_info()
        .unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((info.width, info.height), (320, 240));
    let at = (140 * 320 + 80) * 3;
    assert_eq!(&pixels[at..at + 3], &RED);
    assert_eq!(&pixels[..3], &BLUE);

    // Both viewers share one hub; it stops with the last of them.
    drop(vp8);
    assert!(hubs.is_running(&xvfb.display, DisplaySelection::All));
    drop(jpeg);
    assert!(!hubs.is_running(&xvfb.display, DisplaySelection::All));
}

fn jpeg_pixel(jpeg: &[u8], x: usize, y: usize) -> [u8; 3] {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    let at = (y * info.width as usize + x) * 3;
    [pixels[at], pixels[at + 1], pixels[at + 2]]
}

fn jpeg_centre(jpeg: &[u8]) -> [u8; 3] {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    decoder.read_info().unwrap();
    let info = decoder.info().unwrap();
    jpeg_pixel(jpeg, info.width as usize / 2, info.height as usize / 2)
}

/// Xvfb has one RandR monitor ("screen") and ignores `xrandr --setmonitor`, so several
/// monitors cannot be made here; `displays::region_for` is unit-tested for that. This checks the
/// real monitor list and what an id that names no monitor does.
#[tokio::test]
async fn monitors_come_from_randr_and_an_unknown_one_shows_everything() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    // Kept to the end: when its last client leaves, Xvfb resets and the picture is gone.
    let painter = Painter::new(&xvfb.display);
    painter.fill(Rect::new(0, 0, 320, 240), GREEN);
    let x = XServer::connect(&xvfb.display).unwrap();
    assert!(x.has_monitors, "Xvfb has RandR 1.5");
    let displays = read_displays(&*x.conn, x.root, (320, 240), true).unwrap();
    assert_eq!(displays.len(), 1, "{displays:?}");
    assert_eq!(
        (displays[0].id, displays[0].width, displays[0].height),
        (0, 320, 240)
    );
    let hubs = Hubs::default();
    let mut viewer = hubs.join(
        &xvfb.display,
        DisplaySelection::One(7),
        settings(Codec::Jpeg),
    );
    let HubOutput::Displays { selected, .. } = next_output(&mut viewer).await else {
        panic!("displays first");
    };
    assert_eq!(selected, DisplaySelection::All);
    loop {
        match next_output(&mut viewer).await {
            HubOutput::Notice(message) => {
                assert!(message.contains("no display"), "{message}");
                break;
            }
            HubOutput::Picture { .. } => panic!("the notice comes before pictures"),
            _ => {}
        }
    }
    let (stream, _, payload) = next_picture(&mut viewer).await;
    assert_eq!(stream.unwrap().source, Rect::new(0, 0, 320, 240));
    let tiles = TileHeader::split(&payload).unwrap();
    let centre = jpeg_centre(tiles[0].1);
    assert!(close_to(centre, GREEN, 8), "{centre:?} {:?}", tiles[0].0);
    let mut first = hubs.join(
        &xvfb.display,
        DisplaySelection::One(0),
        settings(Codec::Jpeg),
    );
    let HubOutput::Displays { selected, .. } = next_output(&mut first).await else {
        panic!("displays first");
    };
    assert_eq!(selected, DisplaySelection::One(0));
}
