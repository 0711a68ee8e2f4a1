//! A private Xvfb per test.

use std::process::{Child, Command, Stdio};

use crate::DEADLINE;
use crate::lines::read_lines;

/// A running Xvfb, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// ":N"
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one `width`×`height` 24-bit screen on a display number it picks itself,
    /// so tests side by side never collide. `None` (the test should return early; this prints
    /// that it skipped) when Xvfb is not installed, except under CI, where that is a failure.
    pub fn start(width: u32, height: u32) -> Option<Xvfb> {
        Xvfb::start_with(width, height, &[])
    }

    /// [`Xvfb::start`] with more arguments for the server (e.g. `-auth FILE`, which makes it
    /// admit only clients that show that file's cookie).
    pub fn start_with(width: u32, height: u32, extra: &[&str]) -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
            // -displayfd 1: once it accepts clients, Xvfb writes the display number it chose
            // to stdout (our pipe).
            // -noreset: otherwise the server resets (forgetting what was painted on the root)
            // whenever its last client disconnects.
            .args([
                "-displayfd",
                "1",
                "-nolisten",
                "tcp",
                "-noreset",
                "-screen",
                "0",
            ])
            .arg(format!("{width}x{height}x24"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && std::env::var_os("CI").is_none() =>
            {
                println!("skipped: Xvfb is not installed (apt-get install xvfb)");
                return None;
            }
            Err(e) => panic!("cannot start Xvfb: {e}"),
        };
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let number = lines.recv_timeout(DEADLINE);
        let mut xvfb = Xvfb {
            child,
            display: String::new(),
        };
        match number {
            Ok(number) if !number.trim().is_empty() => {
                xvfb.display = format!(":{}", number.trim());
            }
            _ => panic!("Xvfb did not name its display within {DEADLINE:?}"),
        }
        Some(xvfb)
    }

    /// Runs `setxkbmap -display :N <layout>` (the layout applies to the whole server).
    pub fn set_layout(&self, layout: &str) {
        let status = Command::new("setxkbmap")
            .args(["-display", &self.display, layout])
            .status()
            .expect("run setxkbmap (apt-get install x11-xkb-utils)");
        assert!(status.success(), "setxkbmap {layout} failed: {status}");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
