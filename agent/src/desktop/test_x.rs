//! For tests: a private Xvfb per test and the xprobe test client on it.
//!
//! Each test starts its own Xvfb with `-displayfd`, so tests running side by side never fight
//! over a display number. xprobe is another crate's binary, so it is built here once per test
//! run (`cargo build -p xprobe`, a no-op when it is up to date) and found beside this test binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

/// How long anything in these tests may take: generous, the machine is shared.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A running Xvfb, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// ":N"
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one `width`×`height` 24-bit screen. `None` (the test should return early,
    /// saying so) when Xvfb is not installed, except under CI, where that is a failure.
    pub fn start(width: u32, height: u32) -> Option<Xvfb> {
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
            Ok(number) => xvfb.display = format!(":{}", number.trim()),
            Err(_) => panic!("Xvfb did not name its display within {DEADLINE:?}"),
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

/// The xprobe binary, built on first use.
pub fn xprobe_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // target/<profile>/deps/<this test binary>
        let exe = std::env::current_exe().expect("test binary path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>")
            .to_path_buf();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "-p", "xprobe"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir
            .file_name()
            .is_some_and(|name| name == "release")
        {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p xprobe");
        assert!(status.success(), "cargo build -p xprobe failed: {status}");
        let path = profile_dir.join("xprobe");
        assert!(path.exists(), "no xprobe at {}", path.display());
        path
    })
}

/// A running xprobe, killed when dropped; its stdout lines arrive on a channel.
pub struct XProbe {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl XProbe {
    /// Starts `xprobe --display <display> --mode <mode>` and waits for its `ready`.
    pub fn start(display: &str, mode: &str) -> XProbe {
        let mut child = Command::new(xprobe_path())
            .args(["--display", display, "--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start xprobe");
        let lines = read_lines(child.stdout.take().expect("piped stdout"));
        let mut probe = XProbe {
            child,
            lines,
            seen: Vec::new(),
        };
        probe.expect(|line| line == "ready", "ready");
        probe
    }

    /// The next line matching `wanted` (lines before it are skipped), or a panic naming `what`.
    pub fn expect(&mut self, wanted: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "xprobe printed no {what:?} line; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The next line that is exactly `line`.
    pub fn expect_line(&mut self, line: &str) {
        self.expect(|seen| seen == line, line);
    }

    /// The characters of the next `count` keys that type one (modifier keys are skipped).
    pub fn typed(&mut self, count: usize) -> String {
        let mut typed = String::new();
        for _ in 0..count {
            let line = self.expect(
                |line| {
                    line.strip_prefix("key ")
                        .is_some_and(|c| c.chars().count() == 1)
                },
                "key <character>",
            );
            typed.push_str(&line["key ".len()..]);
        }
        typed
    }
}

impl Drop for XProbe {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    receiver
}
