//! `tetherctl screenshot` end to end: the real server, the real `tether-agent` watching its own
//! Xvfb (`--x-display`), and the real `tetherctl`; the PNG is decoded and checked pixel by pixel.
//! Build every binary first (`cargo build --workspace --bins`). Skips, saying why, when Xvfb or
//! xsetroot is missing.

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::Fixture;
use xprobe::Xvfb;

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;
/// The root window's colour, as xsetroot takes it and as RGB bytes.
const COLOUR: (&str, [u8; 3]) = ("#3366cc", [0x33, 0x66, 0xcc]);

fn paint_root(display: &str, colour: &str) {
    let status = Command::new("xsetroot")
        .args(["-display", display, "-solid", colour])
        .status()
        .expect("run xsetroot");
    assert!(status.success(), "xsetroot failed");
}

/// `tetherctl screenshot --device DEVICE --out OUT EXTRA…`; (exit status, stdout, stderr).
async fn screenshot(
    fx: &Fixture,
    device: &str,
    out: &str,
    extra: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["screenshot", "--device", device, "--out", out];
    args.extend_from_slice(extra);
    fx.tetherctl(&args, None).await
}

/// (width, height, RGB pixels) of a PNG file.
fn decode_png(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let bytes = std::fs::read(path).unwrap();
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a sane size")];
    let info = reader.next_frame(&mut buffer).expect("PNG pixels");
    let channels = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("a screenshot in {other:?}"),
    };
    let pixels = buffer[..info.buffer_size()]
        .chunks_exact(channels)
        .map(|p| [p[0], p[1], p[2]])
        .collect();
    (info.width, info.height, pixels)
}

#[tokio::test]
async fn screenshot_writes_the_screen_as_a_png() {
    if Command::new("xsetroot").arg("-version").output().is_err() {
        println!("skipped: xsetroot is missing (apt-get install x11-xserver-utils)");
        return;
    }
    let Some(xvfb) = Xvfb::start(WIDTH, HEIGHT) else {
        println!("skipped: Xvfb is missing (apt-get install xvfb)");
        return;
    };
    paint_root(&xvfb.display, COLOUR.0);
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &["--x-display", &xvfb.display]).await;
    let id = agent.device_id.to_string();
    let out: PathBuf = fx.dir.path().join("screen.png");
    let out_arg = out.to_str().unwrap();

    let (status, stdout, stderr) = screenshot(&fx, &id, out_arg, &[]).await;
    assert_eq!(status, 0, "stdout {stdout:?}, stderr {stderr:?}");
    let (width, height, pixels) = decode_png(&out);
    assert_eq!((width, height), (WIDTH, HEIGHT));
    assert_eq!(pixels.len(), (WIDTH * HEIGHT) as usize);
    let off = pixels.iter().filter(|p| **p != COLOUR.1).count();
    assert_eq!(
        off, 0,
        "{off} pixels are not {}; the first is {:?}",
        COLOUR.0, pixels[0]
    );

    // One monitor, the whole screen here; a new colour shows the file was replaced; --json.
    paint_root(&xvfb.display, "#00ff00");
    let (status, stdout, stderr) =
        screenshot(&fx, &id, out_arg, &["--display", "0", "--json"]).await;
    assert_eq!(status, 0, "stdout {stdout:?}, stderr {stderr:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    let size = std::fs::metadata(&out).unwrap().len();
    assert_eq!(
        report,
        serde_json::json!({ "path": out_arg, "width": WIDTH, "height": HEIGHT, "bytes": size })
    );
    let (width, height, pixels) = decode_png(&out);
    assert_eq!((width, height), (WIDTH, HEIGHT));
    assert!(pixels.iter().all(|p| *p == [0, 0xff, 0]), "the new colour");
    // Only the PNG is in the folder: no temporary file was left behind.
    let strays: Vec<_> = std::fs::read_dir(fx.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("screen.png") && name != "screen.png")
        .collect();
    assert!(strays.is_empty(), "{strays:?}");

    // A display the device does not have: a clear error, and the old file stays.
    let (status, _, stderr) = screenshot(&fx, &id, out_arg, &["--display", "7"]).await;
    assert_eq!(status, 1);
    assert!(stderr.contains("display 7"), "{stderr}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    drop(agent);
    drop(xvfb);
}

#[tokio::test]
async fn screenshot_reports_why_the_device_cannot_show_its_screen() {
    let mut fx = Fixture::start().await;
    // No X server answers on this display: the agent's `error` event becomes tetherctl's error.
    // (Not above :59535: x11rb 0.14 overflows computing the TCP port 6000 + N and panics.)
    let agent = fx.online_agent("a", &["--x-display", ":5999"]).await;
    let id = agent.device_id.to_string();
    let out = fx.dir.path().join("none.png");
    let (status, stdout, stderr) = screenshot(&fx, &id, out.to_str().unwrap(), &[]).await;
    assert_eq!(status, 1, "stdout {stdout:?}");
    assert!(
        stderr.starts_with("tetherctl: the device refused: "),
        "{stderr}; agent log:\n{}",
        agent.log()
    );
    assert!(!out.exists());
}
