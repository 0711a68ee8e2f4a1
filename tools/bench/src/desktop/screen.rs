//! The screen both systems show: a private 1920×1080 Xvfb, the scenes drawn on it (the test kit's
//! `xprobe` in one of its modes), and what the X server holds right now, for the quality figure.
//!
//! The test kit's own `Xvfb` and `XProbe` starters are not used here: they panic on failure and
//! own their children directly, while the bench records a failed measurement and goes on, and
//! stops every process it started through its [`Guard`]s (process groups, Ctrl-C included).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};

use super::quality::Gray;
use crate::procs::Guard;

pub(crate) const WIDTH: u16 = 1920;
pub(crate) const HEIGHT: u16 = 1080;
const START_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct Screen {
    pub display: String,
    guard: Guard,
}

impl Screen {
    /// Xvfb on the first free display number from 90, black root (`-br`), no TCP.
    pub(crate) async fn start(log: &Path) -> anyhow::Result<Screen> {
        let number = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X{n}-lock")).exists())
            .context("no free X display number")?;
        let display = format!(":{number}");
        let mut command = Command::new("Xvfb");
        command.args([
            &display,
            "-screen",
            "0",
            &format!("{WIDTH}x{HEIGHT}x24"),
            "-nolisten",
            "tcp",
            "-br",
            "-noreset",
        ]);
        let guard = Guard::spawn("Xvfb", command, log)?;
        let started = Instant::now();
        while x11rb::connect(Some(&display)).is_err() {
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "Xvfb {display} did not accept connections; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Screen { display, guard })
    }

    /// The whole screen as the X server has it now: its luma, and the picture saved as a PNG
    /// at `save` for a reader to look at.
    pub(crate) fn grab(&self, save: &Path) -> anyhow::Result<Gray> {
        let (conn, number) = x11rb::connect(Some(&self.display))?;
        let root = conn.setup().roots[number].root;
        let image = conn
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, WIDTH, HEIGHT, u32::MAX)?
            .reply()?;
        // A depth-24 TrueColor screen in 32-bit pixels, little-endian: B, G, R, X.
        save_png(save, &image.data)?;
        Gray::from_interleaved(
            usize::from(WIDTH),
            usize::from(HEIGHT),
            &image.data,
            4,
            [2, 1, 0],
        )
        .context("the X server's image is smaller than its screen")
    }

    pub(crate) async fn stop(mut self) {
        self.guard.stop().await;
    }
}

fn save_png(path: &Path, bgrx: &[u8]) -> anyhow::Result<()> {
    let rgb: Vec<u8> = bgrx
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut encoder = png::Encoder::new(
        std::io::BufWriter::new(file),
        u32::from(WIDTH),
        u32::from(HEIGHT),
    );
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(())
}

/// One `xprobe --mode MODE` drawing on the screen until stopped.
pub(crate) struct Scene {
    guard: Guard,
}

impl Scene {
    pub(crate) fn start(
        xprobe: &Path,
        display: &str,
        mode: &str,
        log: &Path,
    ) -> anyhow::Result<Scene> {
        let mut command = Command::new(xprobe);
        command.args(["--display", display, "--mode", mode]);
        Ok(Scene {
            guard: Guard::spawn("xprobe", command, log)?,
        })
    }

    /// Freezes the drawing (SIGSTOP): the window stays as last drawn, for the quality figure.
    pub(crate) fn pause(&self) {
        let _ = kill(Pid::from_raw(self.guard.pid() as i32), Signal::SIGSTOP);
    }

    pub(crate) async fn stop(mut self) {
        let _ = kill(Pid::from_raw(self.guard.pid() as i32), Signal::SIGCONT);
        self.guard.stop().await;
    }
}
