//! Remote-desktop streaming end to end: the real server, the real `tether-agent` on its own Xvfb
//! (`--x-display`), and a viewer speaking the desktop protocol through the relay. The test paints
//! the screen with x11rb and checks what the viewer decodes. Build every binary first
//! (`cargo build --workspace --bins`). Skips, saying why, when Xvfb is missing (not under CI).
//!
//! Figures (run alone, on a quiet machine):
//! `cargo test -p tether-server --test desktop figures -- --ignored --nocapture`

mod common;
#[path = "desktop/figures.rs"]
mod figures;
#[allow(dead_code)]
#[path = "desktop/paint.rs"]
mod paint;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "desktop/viewer.rs"]
mod viewer;

use std::sync::atomic::Ordering;
use std::time::Duration;

use ffmpeg_next::codec::Id;
use serde_json::json;
use tether_common::control::{AddUser, SetGroupRights};
use tether_common::ids::UserId;
use tether_common::relay::desktop::{
    BinaryKind, Codec, DesktopEvent, DesktopRequest, DisplaySelection, FRAME_WINDOW,
};
use tether_common::rights::Rights;

use paint::{BLUE, GREEN, Painter, RED, paint_in_background};
use support::Fixture;
use viewer::{Received, Viewer, decode_png, decode_tiles};
use xprobe::{Xvfb, close_to, decode_centre_colours};

/// The stream event and the first picture after it (it must be a key picture).
async fn stream_and_key(viewer: &mut Viewer) -> (DesktopEvent, Vec<u8>) {
    let stream = viewer
        .event("stream", |e| matches!(e, DesktopEvent::Stream { .. }))
        .await;
    let (header, payload) = viewer.picture().await;
    assert!(
        header.is_key(),
        "the first picture after a stream event is a key picture"
    );
    viewer.ack(header.seq).await;
    (stream, payload)
}

#[tokio::test]
async fn a_desktop_session_streams_the_screen_and_only_its_changes() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill_screen(RED);
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("desktop", &["--x-display", &xvfb.display])
        .await;
    let device = agent.device_id.clone();
    let mut viewer = Viewer::open(&fx.server, &fx.cookie, &device, json!({})).await;

    let displays = viewer
        .event("displays", |e| matches!(e, DesktopEvent::Displays { .. }))
        .await;
    let DesktopEvent::Displays { displays, selected } = displays else {
        unreachable!()
    };
    assert_eq!(selected, DisplaySelection::All);
    assert_eq!((displays[0].width, displays[0].height), (640, 480));
    let (stream, key) = stream_and_key(&mut viewer).await;
    let DesktopEvent::Stream {
        codec,
        codec_string,
        width,
        height,
        view_only,
        ..
    } = stream
    else {
        unreachable!()
    };
    assert_eq!(
        (codec, width, height, view_only),
        (Codec::H264, 640, 480, false)
    );
    assert!(codec_string.starts_with("avc1.42"), "{codec_string}");
    assert!(close_to(
        decode_centre_colours(Id::H264, std::slice::from_ref(&key))[0],
        RED,
        12
    ));

    // A change: the next picture shows it.
    painter.fill_screen(GREEN);
    let (header, delta) = viewer.picture().await;
    assert!(!header.is_key());
    viewer.ack(header.seq).await;
    let colours = decode_centre_colours(Id::H264, &[key, delta]);
    assert!(close_to(colours[1], GREEN, 12), "{colours:?}");

    // Nothing changes: nothing is sent.
    viewer.no_picture_for(Duration::from_secs(5)).await;

    // Round trip.
    viewer.send(&DesktopRequest::Ping { t: 42 }).await;
    viewer
        .event("pong", |e| {
            // After pictures, the pong says what the latest one cost the agent.
            matches!(e, DesktopEvent::Pong { t: 42, capture_us: Some(c), encode_us: Some(_) } if *c > 0)
        })
        .await;

    // Unacknowledged pictures stop at the window while the screen keeps changing, and resume on
    // an ack.
    let painting = paint_in_background(
        &xvfb.display,
        Duration::from_millis(15),
        Painter::motion_step,
    );
    let mut last = 0;
    for _ in 0..FRAME_WINDOW {
        last = viewer.picture().await.0.seq;
    }
    viewer.no_picture_for(Duration::from_secs(2)).await;
    viewer.ack(last).await;
    let (header, _) = viewer.picture().await;
    assert!(header.seq > last);
    painting.store(false, Ordering::Relaxed);
}

#[tokio::test]
async fn jpeg_tiles_and_snapshots_work_end_to_end() {
    let Some(xvfb) = Xvfb::start(640, 480) else {
        return;
    };
    let painter = Painter::new(&xvfb.display);
    painter.fill_screen(BLUE);
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("desktop", &["--x-display", &xvfb.display])
        .await;
    let device = agent.device_id.clone();
    let start = json!({ "codec": "jpeg", "quality": 90, "fps": 10 });
    let mut viewer = Viewer::open(&fx.server, &fx.cookie, &device, start).await;
    let (stream, key) = stream_and_key(&mut viewer).await;
    assert!(
        matches!(
            stream,
            DesktopEvent::Stream {
                codec: Codec::Jpeg,
                ..
            }
        ),
        "{stream:?}"
    );
    let tiles = decode_tiles(&key);
    let area: u32 = tiles
        .iter()
        .map(|(t, _)| u32::from(t.width) * u32::from(t.height))
        .sum();
    assert_eq!(area, 640 * 480, "the key picture covers the screen");
    let first = &tiles[0].1;
    assert!(close_to([first[0], first[1], first[2]], BLUE, 8));

    // A small change: one tile, in the right place and colour.
    painter.fill(300, 200, 10, 10, RED);
    let (header, payload) = viewer.picture().await;
    viewer.ack(header.seq).await;
    assert_eq!(header.kind, BinaryKind::Tiles);
    let tiles = decode_tiles(&payload);
    assert_eq!(tiles.len(), 1, "only the changed tile");
    let (tile, pixels) = &tiles[0];
    assert_eq!(
        (tile.x, tile.y, tile.width, tile.height),
        (256, 192, 64, 64)
    );
    let at = ((205 - 192) * 64 + (305 - 256)) * 3;
    assert!(close_to(
        [pixels[at], pixels[at + 1], pixels[at + 2]],
        RED,
        16
    ));

    viewer.send(&DesktopRequest::Snapshot).await;
    let png = loop {
        if let Received::Snapshot(png) = viewer.next().await {
            break png;
        }
    };
    let (width, height, pixels) = decode_png(&png);
    assert_eq!((width, height), (640, 480));
    assert_eq!(&pixels[..3], &BLUE);
    let at = (205 * 640 + 305) * 3;
    assert_eq!(&pixels[at..at + 3], &RED);
}

#[tokio::test]
async fn view_only_users_get_pictures_and_a_notice_for_input() {
    let Some(xvfb) = Xvfb::start(320, 240) else {
        return;
    };
    // Kept to the end: when its last client leaves, Xvfb resets and the picture is gone.
    let painter = Painter::new(&xvfb.display);
    painter.fill_screen(GREEN);
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("desktop", &["--x-display", &xvfb.display])
        .await;
    fx.control
        .ok(AddUser {
            name: "bob".into(),
            password: "bob's long passphrase".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let rights = Rights::VIEW.union(Rights::DESKTOP_VIEW_ONLY);
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId("bob".to_owned()),
            rights,
        })
        .await;
    let bob = fx.server.login("bob", "bob's long passphrase").await;
    let device = agent.device_id.clone();
    let mut viewer = Viewer::open(&fx.server, &bob, &device, json!({ "codec": "vp8" })).await;
    let (stream, key) = stream_and_key(&mut viewer).await;
    assert!(
        matches!(
            stream,
            DesktopEvent::Stream {
                view_only: true,
                codec: Codec::Vp8,
                ..
            }
        ),
        "{stream:?}"
    );
    assert!(close_to(
        decode_centre_colours(Id::VP8, &[key])[0],
        GREEN,
        12
    ));
    viewer
        .send(&DesktopRequest::MouseMove { x: 10, y: 10 })
        .await;
    let notice = viewer
        .event("notice", |e| matches!(e, DesktopEvent::Notice { .. }))
        .await;
    assert!(format!("{notice:?}").contains("view-only"), "{notice:?}");
    // The admin (full rights) on the same display shares the hub and is not view-only.
    let mut admin = Viewer::open(&fx.server, &fx.cookie, &device, json!({})).await;
    let (stream, _) = stream_and_key(&mut admin).await;
    assert!(matches!(
        stream,
        DesktopEvent::Stream {
            view_only: false,
            ..
        }
    ));
}

#[tokio::test]
async fn an_agent_without_a_display_says_so() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("no-display", &["--x-display", ""]).await;
    let device = &agent.device_id;
    let mut viewer = Viewer::open(&fx.server, &fx.cookie, device, json!({})).await;
    let error = viewer
        .event("error", |e| matches!(e, DesktopEvent::Error { .. }))
        .await;
    let DesktopEvent::Error { message } = error else {
        unreachable!()
    };
    assert!(message.contains("no X display"), "{message}");
}
