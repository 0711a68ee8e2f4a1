//! A private Xvfb per test and the xprobe test client on it (added by helper "desktop-input").
//!
//! xprobe is the `testkit/xprobe` crate's binary. Only its own crate gets
//! `CARGO_BIN_EXE_xprobe`, so it is built here once per test binary (`cargo build -p xprobe`, a
//! no-op when up to date) and found beside `tether-server` in `target/<profile>/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;
use tokio::time::{Instant, timeout_at};

/// How long xprobe may take to show an effect; the machine may be busy.
pub const XPROBE_DEADLINE: Duration = Duration::from_secs(30);

/// A running Xvfb, killed when dropped.
pub struct Xvfb {
    child: Child,
    /// ":N"
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb with one `width`×`height` 24-bit screen on a display number it picks itself
    /// (`-displayfd`), so tests side by side never collide. `None` when Xvfb is not installed
    /// (the test should say it skipped), except under CI, where that fails.
    pub fn start(width: u32, height: u32) -> Option<Xvfb> {
        let spawned = Command::new("Xvfb")
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
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let mut xvfb = Xvfb {
            child,
            display: String::new(),
        };
        match receiver.recv_timeout(XPROBE_DEADLINE) {
            Ok(number) if !number.trim().is_empty() => {
                xvfb.display = format!(":{}", number.trim());
            }
            _ => panic!("Xvfb did not name its display within {XPROBE_DEADLINE:?}"),
        }
        Some(xvfb)
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
        let server = Path::new(env!("CARGO_BIN_EXE_tether-server"));
        let profile_dir = server.parent().expect("target/<profile>").to_path_buf();
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

/// A running xprobe (killed when dropped) and the lines it prints.
pub struct XProbe {
    _child: tokio::process::Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every line read so far, for failure messages.
    pub seen: Vec<String>,
}

impl XProbe {
    /// Starts `xprobe --display <display> --mode <mode>` and waits for its `ready`.
    pub async fn start(display: &str, mode: &str) -> XProbe {
        let mut child = tokio::process::Command::new(xprobe_path())
            .args(["--display", display, "--mode", mode])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start xprobe");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut probe = XProbe {
            _child: child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        };
        probe.expect(|line| line == "ready", "ready").await;
        probe
    }

    /// The next line matching `wanted` (lines before it are skipped); panics naming `what`.
    pub async fn expect(&mut self, wanted: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + XPROBE_DEADLINE;
        loop {
            match timeout_at(deadline, self.lines.next_line()).await {
                Ok(Ok(Some(line))) => {
                    self.seen.push(line.clone());
                    if wanted(&line) {
                        return line;
                    }
                }
                Ok(_) => panic!(
                    "xprobe ended before printing {what:?}; it printed {:?}",
                    self.seen
                ),
                Err(_) => panic!("xprobe printed no {what:?}; it printed {:?}", self.seen),
            }
        }
    }

    /// The next `click …` line.
    pub async fn next_click(&mut self) -> String {
        self.expect(|line| line.starts_with("click "), "click")
            .await
    }

    /// The characters of the next `count` keys that type one (modifier keys are skipped).
    pub async fn typed(&mut self, count: usize) -> String {
        let mut typed = String::new();
        for _ in 0..count {
            let line = self
                .expect(
                    |line| {
                        line.strip_prefix("key ")
                            .is_some_and(|c| c.chars().count() == 1)
                    },
                    "key <character>",
                )
                .await;
            typed.push_str(&line["key ".len()..]);
        }
        typed
    }
}
