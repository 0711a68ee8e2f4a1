//! Issue 6's figures at 1920×1080: for each codec and scene, pictures per second, bytes per
//! second, encode time per picture (p50/p99, from the pictures' headers), and the agent's CPU
//! and peak RSS. The viewer acknowledges every picture at once (a fast viewer on loopback), so the
//! agent runs as fast as it can up to the 30 fps asked for. Only run alone on a quiet machine:
//! `cargo test -p tether-server --test desktop figures -- --ignored --nocapture`
//! (TETHER_AGENT_BIN=target/release/tether-agent for a release agent).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tether_common::ids::DeviceId;

use xprobe::Xvfb;

use crate::paint::{Painter, paint_in_background};
use crate::support::{AgentProcess, Fixture, cpu_seconds};
use crate::viewer::{Received, Viewer};

const MEASURE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
enum Scene {
    Idle,
    /// About 10 characters a second, each a glyph and then the caret, 1 ms apart.
    Typing,
    /// 30 lines a second.
    Scrolling,
    /// Every pixel changes, as fast as the X server draws.
    Motion,
}

impl Scene {
    /// Pause between drawing steps.
    fn pace(self) -> Option<Duration> {
        match self {
            Scene::Idle => None,
            Scene::Typing => Some(Duration::from_millis(100)),
            Scene::Scrolling => Some(Duration::from_millis(33)),
            Scene::Motion => Some(Duration::ZERO),
        }
    }
}

fn draw(display: &str, scene: Scene) -> Arc<AtomicBool> {
    let Some(pace) = scene.pace() else {
        return Arc::new(AtomicBool::new(true));
    };
    paint_in_background(display, pace, move |painter, step| match scene {
        Scene::Typing => {
            painter.typing_step(step);
        }
        Scene::Scrolling => painter.scroll_step(step),
        _ => painter.motion_step(step),
    })
}

/// A 1920×1080 Xvfb painted light grey, a server, and an agent (state folder `name`) online and
/// showing that display; `None` where Xvfb is missing (outside CI).
async fn light_screen_with_agent(name: &str) -> Option<(Xvfb, Fixture, AgentProcess)> {
    let xvfb = Xvfb::start(1920, 1080)?;
    Painter::new(&xvfb.display).fill_screen([250, 250, 250]);
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent(name, &["--x-display", &xvfb.display]).await;
    Some((xvfb, fx, agent))
}

/// (VmRSS, VmHWM) in MiB.
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).unwrap();
        line.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<f64>()
            .unwrap()
            / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[u32], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]) / 1000.0
}

/// What a viewer received while `scene` was drawn for [`MEASURE`], acknowledging every picture
/// at once, and the CPU process `pid` used meanwhile.
struct Watched {
    viewer: Viewer,
    secs: f64,
    pictures: u32,
    bytes: usize,
    /// Sorted.
    encode_us: Vec<u32>,
    /// Percent of one core.
    cpu: f64,
}

async fn watch(
    fx: &Fixture,
    device: &DeviceId,
    display: &str,
    codec: &str,
    scene: Scene,
    pid: u32,
) -> Watched {
    let start = json!({ "codec": codec, "fps": 30, "quality": 60 });
    let mut viewer = Viewer::open(&fx.server, &fx.cookie, device, start).await;
    // The first (key) picture is not part of the figures.
    let (header, _) = viewer.picture().await;
    viewer.ack(header.seq).await;
    let drawing = draw(display, scene);
    let cpu_before = cpu_seconds(pid);
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + MEASURE;
    let (mut pictures, mut bytes, mut encode_us) = (0u32, 0usize, Vec::new());
    while let Some(received) = viewer.next_until(deadline).await {
        if let Received::Picture {
            header, wire_bytes, ..
        } = received
        {
            viewer.ack(header.seq).await;
            pictures += 1;
            bytes += wire_bytes;
            encode_us.push(header.encode_us);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid) - cpu_before) / secs * 100.0;
    drawing.store(false, Ordering::Relaxed);
    encode_us.sort_unstable();
    Watched {
        viewer,
        secs,
        pictures,
        bytes,
        encode_us,
        cpu,
    }
}

async fn measure(fx: &Fixture, agent: &AgentProcess, display: &str, codec: &str, scene: Scene) {
    let pid = agent.pid();
    let Watched {
        secs: elapsed,
        pictures,
        bytes,
        encode_us,
        cpu,
        ..
    } = watch(fx, &agent.device_id, display, codec, scene, pid).await;
    let (rss, peak) = rss_mib(pid);
    println!(
        "| {codec:4} | {scene:9?} | {:5.1} | {:8.0} | {:6.2} | {:6.2} | {cpu:5.0}% | {rss:5.1} / {peak:5.1} |",
        f64::from(pictures) / elapsed,
        bytes as f64 / 1024.0 / elapsed,
        percentile(&encode_us, 50),
        percentile(&encode_us, 99),
    );
}

#[tokio::test]
#[ignore = "figures: run alone on a quiet machine"]
async fn figures() {
    let Some((xvfb, fx, agent)) = light_screen_with_agent("desktop").await else {
        return;
    };
    println!("\n1920×1080 on Xvfb, 30 fps asked, quality 60, every picture acknowledged at once");
    println!(
        "| codec | scene | pictures/s | KiB/s | encode p50 ms | p99 ms | agent CPU | RSS / peak MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for codec in ["h264", "vp8", "jpeg"] {
        for scene in [Scene::Idle, Scene::Typing, Scene::Scrolling, Scene::Motion] {
            measure(&fx, &agent, &xvfb.display, codec, scene).await;
        }
    }
}

/// Issue 19's figures: what recording a 1080p H.264 desktop costs. For each scene, once with the
/// group not recording and once recording: pictures and KiB a second through the relay, the
/// server's CPU, and the recording's size per minute. Only run alone on a quiet machine:
/// `cargo test -p tether-server --test desktop recording_overhead -- --ignored --nocapture`
#[tokio::test]
#[ignore = "figures: run alone on a quiet machine"]
async fn recording_overhead() {
    use tether_common::control::{EditGroup, Event};
    let Some((xvfb, mut fx, agent)) = light_screen_with_agent("recorded").await else {
        return;
    };
    let server_pid = fx.server.pid().expect("the server's pid");
    println!("\n1920×1080 H.264 on Xvfb, 30 fps asked, every picture acknowledged at once");
    println!("| scene | recorded | pictures/s | KiB/s | server CPU | recording MB/min |");
    println!("|---|---|---|---|---|---|");
    for record in [false, true] {
        let group = fx.group.clone();
        fx.control
            .ok(EditGroup {
                direct_connections: Some(false),
                record_sessions: Some(record),
                ..EditGroup::of(group)
            })
            .await;
        for scene in [Scene::Typing, Scene::Scrolling, Scene::Motion] {
            let Watched {
                viewer,
                secs: elapsed,
                pictures,
                bytes,
                cpu,
                ..
            } = watch(
                &fx,
                &agent.device_id,
                &xvfb.display,
                "h264",
                scene,
                server_pid,
            )
            .await;
            viewer.close().await;
            let ended = fx
                .wait_event(
                    "the session's end",
                    |e| matches!(e, Event::Logged { record } if record.kind == "session_ended"),
                )
                .await;
            let recorded = match (&ended, record) {
                (Event::Logged { record }, true) => {
                    let id = record
                        .message
                        .rsplit_once("recorded (")
                        .map(|(_, id)| id.trim_end_matches(')'));
                    let path = fx
                        .server
                        .file("recordings")
                        .join(format!("{}.tether-rec", id.unwrap_or_default()));
                    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                    format!("{:.1}", size as f64 / elapsed * 60.0 / 1e6)
                }
                _ => "–".to_owned(),
            };
            println!(
                "| {scene:9?} | {} | {:5.1} | {:8.0} | {cpu:5.1}% | {recorded} |",
                if record { "yes" } else { "no" },
                f64::from(pictures) / elapsed,
                bytes as f64 / 1024.0 / elapsed,
            );
        }
    }
}

/// Issue 20's typing figures: a terminal-like typist (a glyph, then the caret 1 ms later, ten
/// characters a second) for 10 s, per codec: pictures per typed character; from each glyph's
/// draw to the first picture after it, and to the last one before the next keystroke (the one
/// that shows the whole change, caret included), p50/p99. Both include the hub's settle wait
/// (`agent/src/desktop/settle.rs`). Run alone:
/// `cargo test -p tether-server --test desktop typing_figures -- --ignored --nocapture`
#[tokio::test]
#[ignore = "figures: run alone on a quiet machine"]
async fn typing_figures() {
    let Some((xvfb, fx, agent)) = light_screen_with_agent("desktop").await else {
        return;
    };
    println!("\n1920×1080, 10 characters a second (glyph, then caret 1 ms later)");
    println!(
        "| codec | pictures per character | to first picture p50 / p99 ms | to whole change p50 / p99 ms | KiB per character |"
    );
    println!("|---|---|---|---|---|");
    for codec in ["h264", "jpeg"] {
        let start = json!({ "codec": codec, "fps": 30, "quality": 60 });
        let mut viewer = Viewer::open(&fx.server, &fx.cookie, &agent.device_id, start).await;
        let (header, _) = viewer.picture().await;
        viewer.ack(header.seq).await;
        let drawn = Arc::new(std::sync::Mutex::new(Vec::new()));
        let running = Arc::new(AtomicBool::new(true));
        let typist = {
            let (drawn, running, display) = (drawn.clone(), running.clone(), xvfb.display.clone());
            std::thread::spawn(move || {
                let painter = Painter::new(&display);
                let mut step = 0;
                while running.load(Ordering::Relaxed) {
                    let at = painter.typing_step(step);
                    drawn.lock().unwrap().push(at);
                    step += 1;
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
        };
        let deadline = tokio::time::Instant::now() + MEASURE;
        let (mut arrivals, mut bytes) = (Vec::new(), 0usize);
        while let Some(received) = viewer.next_until(deadline).await {
            if let Received::Picture {
                header, wire_bytes, ..
            } = received
            {
                arrivals.push(Instant::now());
                viewer.ack(header.seq).await;
                bytes += wire_bytes;
            }
        }
        running.store(false, Ordering::Relaxed);
        typist.join().unwrap();
        let drawn = drawn.lock().unwrap().clone();
        // Characters whose picture had time to arrive before the end.
        let typed: Vec<Instant> = drawn
            .iter()
            .copied()
            .filter(|at| arrivals.iter().any(|a| a >= at))
            .collect();
        let mut latency_us: Vec<u32> = typed
            .iter()
            .map(|at| {
                let first = arrivals.iter().find(|a| *a >= at).unwrap();
                (*first - *at).as_micros() as u32
            })
            .collect();
        latency_us.sort_unstable();
        // The last picture before the next keystroke (at 100 ms a keystroke, 90 ms is "before").
        let mut whole_us: Vec<u32> = typed
            .iter()
            .filter_map(|at| {
                let last = arrivals
                    .iter()
                    .rev()
                    .find(|a| **a >= *at && **a < *at + Duration::from_millis(90))?;
                Some((*last - *at).as_micros() as u32)
            })
            .collect();
        whole_us.sort_unstable();
        let chars = typed.len().max(1) as f64;
        println!(
            "| {codec:4} | {:4.2} | {:5.1} / {:5.1} | {:5.1} / {:5.1} | {:5.1} |",
            arrivals.len() as f64 / chars,
            percentile(&latency_us, 50),
            percentile(&latency_us, 99),
            percentile(&whole_us, 50),
            percentile(&whole_us, 99),
            bytes as f64 / 1024.0 / chars,
        );
    }
}

/// Issue 20's memory figures: the agent's RSS with no session, at the end of 5 s of full-screen
/// motion watched with each codec, and once that viewer left (the hub stopped; read when RSS has
/// not moved for a second, at most 10 s). Run alone:
/// `cargo test -p tether-server --test desktop session_memory_figures -- --ignored --nocapture`
#[tokio::test]
#[ignore = "figures: run alone on a quiet machine"]
async fn session_memory_figures() {
    let Some((xvfb, fx, agent)) = light_screen_with_agent("desktop").await else {
        return;
    };
    let pid = agent.pid();
    println!("\nagent RSS (MiB), 1920×1080");
    println!("| codec | before | watching motion | after the viewer left |");
    println!("|---|---|---|---|");
    for codec in ["h264", "vp8", "jpeg"] {
        let before = settled_rss(pid).await;
        let start = json!({ "codec": codec, "fps": 30, "quality": 60 });
        let mut viewer = Viewer::open(&fx.server, &fx.cookie, &agent.device_id, start).await;
        let drawing = draw(&xvfb.display, Scene::Motion);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while let Some(received) = viewer.next_until(deadline).await {
            if let Received::Picture { header, .. } = received {
                viewer.ack(header.seq).await;
            }
        }
        let watching = rss_mib(pid).0;
        drawing.store(false, Ordering::Relaxed);
        drop(viewer);
        let after = settled_rss(pid).await;
        println!("| {codec:4} | {before:5.1} | {watching:5.1} | {after:5.1} |");
    }
}

/// The RSS once it held still for a second (at most 10 s of waiting).
async fn settled_rss(pid: u32) -> f64 {
    let mut last = rss_mib(pid).0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = rss_mib(pid).0;
        if (now - last).abs() < 0.5 {
            return now;
        }
        last = now;
    }
    last
}
