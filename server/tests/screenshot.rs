//! `tetherctl screenshot` end to end: the real server, the real `tether-agent` watching its own
//! Xvfb (`--x-display`), and the real `tetherctl`; the PNG is decoded and checked pixel by pixel.
//! Build every binary first (`cargo build --workspace --bins`). Skips, saying why, when Xvfb or
//! xsetroot is missing.

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::xprobe::Xvfb;
use support::{ADMIN, AgentProcess, DEADLINE, Fixture};

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

/// Runs `tetherctl ARGS` as the admin; (exit status, stdout, stderr).
async fn tetherctl(fx: &Fixture, args: &[&str]) -> (i32, String, String) {
    let binary = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl");
    let child = tokio::process::Command::new(binary)
        .env("TETHER_URL", format!("wss://127.0.0.1:{}", fx.server.port))
        .env("TETHER_USER", ADMIN.0)
        .env("TETHER_PASS", ADMIN.1)
        .env("TETHER_KNOWN_SERVERS", fx.dir.path().join("known_servers"))
        .arg("--trust-root")
        .arg(fx.server.file("root-cert-public.crt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run tetherctl (build it first: cargo build --workspace --bins)");
    // tetherctl waits up to 30 s for the picture itself; this is a backstop.
    let output = tokio::time::timeout(DEADLINE * 2, child.wait_with_output())
        .await
        .expect("tetherctl timed out")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

async fn agent_on(fx: &mut Fixture, display: &str) -> AgentProcess {
    let mut agent = fx
        .spawn_agent(
            &fx.msh.clone(),
            &fx.state_dir("a"),
            &["--x-display", display],
        )
        .await;
    agent.wait_line("tether-agent connected ").await;
    let device = agent.device_id.clone();
    fx.wait_device(&device, "online", |d| d.online).await;
    agent
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
    let agent = agent_on(&mut fx, &xvfb.display).await;
    let id = agent.device_id.to_string();
    let out: PathBuf = fx.dir.path().join("screen.png");
    let out_arg = out.to_str().unwrap();

    let (status, stdout, stderr) =
        tetherctl(&fx, &["screenshot", "--device", &id, "--out", out_arg]).await;
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
    let (status, stdout, stderr) = tetherctl(
        &fx,
        &[
            "screenshot",
            "--device",
            &id,
            "--out",
            out_arg,
            "--display",
            "0",
            "--json",
        ],
    )
    .await;
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
    let (status, _, stderr) = tetherctl(
        &fx,
        &[
            "screenshot",
            "--device",
            &id,
            "--out",
            out_arg,
            "--display",
            "7",
        ],
    )
    .await;
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
    let agent = agent_on(&mut fx, ":5999").await;
    let id = agent.device_id.to_string();
    let out = fx.dir.path().join("none.png");
    let (status, stdout, stderr) = tetherctl(
        &fx,
        &[
            "screenshot",
            "--device",
            &id,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(status, 1, "stdout {stdout:?}");
    assert!(
        stderr.starts_with("tetherctl: the device refused: "),
        "{stderr}; agent log:\n{}",
        agent.log()
    );
    assert!(!out.exists());
}
