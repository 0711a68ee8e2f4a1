//! Desktop figures, side by side: each system's real agent shows the same private 1920×1080 Xvfb,
//! and each system's *own web viewer* (Tether's console, MeshCentral's Desktop tab) watches it in
//! headless Chromium with its default settings, while the same scenes are drawn on the screen:
//!
//! - **idle** (a still window), **typing** (ten characters a second, glyph then caret),
//!   **scrolling** text (30 lines a second), full-screen **motion**, and a real-world **mix** (a
//!   long article in a real, headed Chromium window on the X display, scrolled as a reader
//!   does and dragged now and then);
//! - for each: KiB/s the viewer page received, screen updates per second (animation frames in
//!   which the viewer drew), the agent's CPU (its whole process tree: MeshAgent draws in a child)
//!   and peak RSS, the server's CPU, and the picture's quality once the scene holds still (SSIM
//!   and PSNR of the viewer's canvas against the X server's own pixels);
//! - click to pixel, p50 and p99 (a click in the viewer until the viewer draws the changed colour);
//! - the agent's RSS online with no session, and again after the viewer left.
//!
//! Default settings mean MeshCentral's session stays on its relay (its WebRTC switch is off by
//! default) while Tether's moves to a direct WebRTC path when it can (Chromium reaches the agent's
//! loopback candidate here), so the bytes counted are the page's WebSocket frames plus what its
//! WebRTC transports received, and the route each session ended on is reported.

mod quality;
mod screen;
pub(crate) mod table;
mod viewer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::procs::{tree_cpu_s, tree_rss_kb};
use crate::relay::{start_agent, wait_device};
use crate::server::{Kind, ServerSpec, Web};
use crate::stats::{median, percentile};
use quality::Gray;
use screen::{Scene, Screen};
pub(crate) use viewer::BrowserParts;
use viewer::{Target, Viewer};

/// Time for a scene to reach its steady state before it is measured.
const WARM_UP: Duration = Duration::from_secs(2);
/// The agent's memory is read this often while a scene runs (its peak is reported).
const RSS_EVERY: Duration = Duration::from_millis(250);
/// The canvas counts as still once the viewer has not drawn for this long.
const QUIET_MS: u64 = 1000;
/// Quiet time for a freshly connected agent before its idle memory is read.
const SETTLE: Duration = Duration::from_secs(5);
/// After the viewer leaves: time for the agent to let go of its session's memory (Tether's
/// direct path waits up to 10 s for a vanished peer's last messages, then 5 s for the close).
const AFTER_SESSION: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SceneKind {
    Idle,
    Typing,
    Scrolling,
    Motion,
    Mix,
}

impl SceneKind {
    pub(crate) const ALL: [SceneKind; 5] = [
        SceneKind::Idle,
        SceneKind::Typing,
        SceneKind::Scrolling,
        SceneKind::Motion,
        SceneKind::Mix,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            SceneKind::Idle => "idle",
            SceneKind::Typing => "typing",
            SceneKind::Scrolling => "scrolling text",
            SceneKind::Motion => "full-screen motion",
            SceneKind::Mix => "mix (a web page read, scrolled, its window dragged)",
        }
    }

    /// The xprobe mode that draws it (the mix is a real browser instead).
    fn xprobe_mode(self) -> Option<&'static str> {
        match self {
            SceneKind::Idle => Some("colour"),
            SceneKind::Typing => Some("typing"),
            SceneKind::Scrolling => Some("scroll"),
            SceneKind::Motion => Some("motion"),
            SceneKind::Mix => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenePoint {
    pub scene: SceneKind,
    pub seconds: f64,
    pub kib_s: f64,
    pub updates_s: f64,
    /// Percent of one core.
    pub agent_cpu_pct: Option<f64>,
    pub agent_peak_rss_mib: Option<f64>,
    pub server_cpu_pct: Option<f64>,
    pub ssim: Option<f64>,
    pub psnr_db: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct DesktopPoint {
    /// The viewer's canvas, and how its session travelled at the end (Tether's status line:
    /// "Direct" when it left the relay for a WebRTC path).
    pub canvas: [u32; 2],
    pub route: String,
    pub agent_idle_rss_mib: Option<f64>,
    pub agent_after_rss_mib: Option<f64>,
    pub click_ms_p50: Option<f64>,
    pub click_ms_p99: Option<f64>,
    pub clicks: usize,
    pub scenes: Vec<ScenePoint>,
}

pub(crate) struct DesktopSettings {
    pub seconds: u64,
    pub clicks: u32,
    pub work: PathBuf,
    pub logs: PathBuf,
    pub xprobe: PathBuf,
    pub browser: BrowserParts,
    /// Where each scene's still pictures are left (the viewer's canvas and the X screen, as PNG).
    pub pictures: PathBuf,
}

pub(crate) async fn desktop_point(
    spec: &ServerSpec,
    web: &Web,
    settings: &DesktopSettings,
) -> anyhow::Result<DesktopPoint> {
    if let Some(missing) = settings.browser.missing() {
        bail!("{missing}");
    }
    std::fs::create_dir_all(&settings.work)?;
    std::fs::create_dir_all(&settings.pictures)?;
    let name = spec.kind.name().to_lowercase();
    let log = |what: &str| settings.logs.join(format!("{name}-desktop-{what}.log"));
    let screen = Screen::start(&log("xvfb")).await?;
    let mut running = spec.start(web).await?;
    let server = running.guard.pid();
    let mut agent = start_agent(spec, &settings.work, &log("agent"), Some(&screen.display))?;
    let result = async {
        let device = wait_device(spec).await?;
        tokio::time::sleep(SETTLE).await;
        let agent_idle_rss_mib = tree_rss_kb(agent.pid()).map(kib_to_mib);
        let target = Target {
            system: match spec.kind {
                Kind::Tether => "tether",
                Kind::MeshCentral => "meshcentral",
            },
            url: &spec.base_url,
            user: &spec.user,
            password: &spec.password,
            device: &device,
            display: &screen.display,
        };
        let session = Session {
            screen: &screen,
            settings,
            agent: agent.pid(),
            server,
            log: log("scenes"),
            name: name.clone(),
        };
        let mut viewer = Viewer::start(&settings.browser, &target, &log("viewer"))?;
        let measured = session.measure(&mut viewer).await;
        viewer.close().await;
        let mut point = measured?;
        point.agent_idle_rss_mib = agent_idle_rss_mib;
        tokio::time::sleep(AFTER_SESSION).await;
        point.agent_after_rss_mib = tree_rss_kb(agent.pid()).map(kib_to_mib);
        Ok(point)
    }
    .await;
    agent.stop().await;
    running.guard.stop().await;
    screen.stop().await;
    result
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Session<'a> {
    screen: &'a Screen,
    settings: &'a DesktopSettings,
    agent: u32,
    server: u32,
    log: PathBuf,
    /// The system's name in file names.
    name: String,
}

impl Session<'_> {
    async fn measure(&self, viewer: &mut Viewer) -> anyhow::Result<DesktopPoint> {
        // A still xprobe window first: the viewer opens on it, and its clicks change its colour.
        let still = self.scene(SceneKind::Idle)?;
        let opened = viewer.call(json!({"cmd": "open"})).await?;
        let canvas: [u32; 2] =
            serde_json::from_value(opened["canvas"].clone()).context("the viewer's canvas size")?;

        let clicks = viewer
            .call(json!({"cmd": "clicks", "count": self.settings.clicks}))
            .await
            .context("click to pixel")?;
        let samples: Vec<f64> = serde_json::from_value(clicks["samples"].clone())?;
        let idle = self.one_scene(viewer, SceneKind::Idle, Some(&still)).await;
        still.stop().await;
        let mut scenes = vec![idle.context("the idle scene")?];
        // The rest in order (idle, first, was measured on the still window above).
        for kind in &SceneKind::ALL[1..] {
            scenes.push(self.run_scene(viewer, *kind).await?);
        }
        let route = viewer.call(json!({"cmd": "route"})).await?["route"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        Ok(DesktopPoint {
            canvas,
            route,
            agent_idle_rss_mib: None,
            agent_after_rss_mib: None,
            click_ms_p50: median(&samples),
            click_ms_p99: percentile(&samples, 99.0),
            clicks: samples.len(),
            scenes,
        })
    }

    /// Starts the scene's drawing (xprobe, or the viewer's real browser for the mix), measures
    /// it and stops it.
    async fn run_scene(&self, viewer: &mut Viewer, kind: SceneKind) -> anyhow::Result<ScenePoint> {
        let point = match kind.xprobe_mode() {
            Some(_) => {
                let scene = self.scene(kind)?;
                let point = self.one_scene(viewer, kind, Some(&scene)).await;
                scene.stop().await;
                point
            }
            None => {
                viewer.call(json!({"cmd": "mix", "state": "on"})).await?;
                let point = self.one_scene(viewer, kind, None).await;
                viewer.call(json!({"cmd": "mix", "state": "off"})).await?;
                point
            }
        };
        point.with_context(|| format!("the {} scene", kind.label()))
    }

    fn scene(&self, kind: SceneKind) -> anyhow::Result<Scene> {
        let mode = kind.xprobe_mode().context("not an xprobe scene")?;
        Scene::start(&self.settings.xprobe, &self.screen.display, mode, &self.log)
    }

    /// Measures one running scene, then freezes it and compares the still picture.
    async fn one_scene(
        &self,
        viewer: &mut Viewer,
        kind: SceneKind,
        scene: Option<&Scene>,
    ) -> anyhow::Result<ScenePoint> {
        tokio::time::sleep(WARM_UP).await;
        let agent_cpu = tree_cpu_s(self.agent);
        let server_cpu = tree_cpu_s(self.server);
        let sampler = RssSampler::start(self.agent);
        let window = viewer
            .call(json!({"cmd": "window", "seconds": self.settings.seconds}))
            .await?;
        let (agent_cpu_after, server_cpu_after) = (tree_cpu_s(self.agent), tree_cpu_s(self.server));
        let peak_kib = sampler.stop().await;
        let seconds = window["secs"].as_f64().unwrap_or(0.0).max(1e-3);
        let percent =
            |before: Option<f64>, after: Option<f64>| Some((after? - before?) / seconds * 100.0);

        match scene {
            Some(scene) => scene.pause(),
            None => {
                viewer.call(json!({"cmd": "mix", "state": "pause"})).await?;
            }
        }
        let (ssim, psnr_db) = self.still_quality(viewer, kind).await?;
        Ok(ScenePoint {
            scene: kind,
            seconds,
            kib_s: window["bytes"].as_f64().unwrap_or(0.0) / 1024.0 / seconds,
            updates_s: window["updates"].as_f64().unwrap_or(0.0) / seconds,
            agent_cpu_pct: percent(agent_cpu, agent_cpu_after),
            agent_peak_rss_mib: peak_kib.map(kib_to_mib),
            server_cpu_pct: percent(server_cpu, server_cpu_after),
            ssim,
            psnr_db,
        })
    }

    /// Waits for the viewer to stop drawing, then compares its canvas with the X screen.
    async fn still_quality(
        &self,
        viewer: &mut Viewer,
        kind: SceneKind,
    ) -> anyhow::Result<(Option<f64>, Option<f64>)> {
        let quiet = viewer
            .call(json!({"cmd": "quiet", "ms": QUIET_MS, "max": 15_000}))
            .await?;
        if quiet["quiet"] != true {
            eprintln!(
                "tether-bench: the viewer kept drawing after the {} scene stopped",
                kind.label()
            );
        }
        let picture = |what: &str| {
            let scene = format!("{kind:?}").to_lowercase();
            self.settings
                .pictures
                .join(format!("{}-{scene}-{what}.png", self.name))
        };
        let path = picture("viewer");
        viewer.call(json!({"cmd": "capture", "path": path})).await?;
        let canvas = read_png_gray(&path)?;
        let screen = self.screen.grab(&picture("screen"))?;
        Ok((
            quality::ssim(&canvas, &screen),
            quality::psnr(&canvas, &screen),
        ))
    }
}

/// Samples a process tree's RSS in the background and keeps the highest reading.
struct RssSampler {
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let shared = peak.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(kib) = tree_rss_kb(pid) {
                    shared.fetch_max(kib, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(RSS_EVERY).await;
            }
        });
        RssSampler { peak, task }
    }

    /// Stops sampling; the peak in KiB (`None` if the process was never seen).
    async fn stop(self) -> Option<u64> {
        self.task.abort();
        let _ = self.task.await;
        let peak = self.peak.load(std::sync::atomic::Ordering::Relaxed);
        (peak > 0).then_some(peak)
    }
}

fn read_png_gray(path: &Path) -> anyhow::Result<Gray> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buffer = vec![0; reader.output_buffer_size().context("PNG too large")?];
    let info = reader.next_frame(&mut buffer)?;
    let stride = match info.color_type {
        png::ColorType::Rgba => 4,
        png::ColorType::Rgb => 3,
        other => bail!("the canvas PNG is {other:?}, not RGB(A)"),
    };
    Gray::from_interleaved(
        info.width as usize,
        info.height as usize,
        &buffer[..info.buffer_size()],
        stride,
        [0, 1, 2],
    )
    .context("a short canvas PNG")
}
