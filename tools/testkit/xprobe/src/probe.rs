//! The xprobe client on a test's display, and the lines it prints.
//!
//! Only xprobe's own crate gets `CARGO_BIN_EXE_xprobe`, so the binary is built here once per test
//! binary (`cargo build -p xprobe`, a no-op when it is up to date) and found in
//! `target/<profile>/`, beside the test binary's `deps/` folder.
//!
//! Waiting for a line blocks the calling thread. In an async test that is fine as long as nothing
//! the test itself runs must make progress meanwhile (the agent and the server are other
//! processes).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use crate::DEADLINE;
use crate::lines::read_lines;

/// The xprobe binary, built on first use.
pub fn xprobe_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // target/<profile>/deps/<test binary>
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
        probe.expect_line("ready");
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
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "xprobe ended before printing {what:?}; it printed {:?}",
                    self.seen
                ),
                Err(RecvTimeoutError::Timeout) => panic!(
                    "xprobe printed no {what:?} line within {DEADLINE:?}; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    /// The next line that is exactly `line`.
    pub fn expect_line(&mut self, line: &str) {
        self.expect(|seen| seen == line, line);
    }

    /// The next `click …` line.
    pub fn next_click(&mut self) -> String {
        self.expect(|line| line.starts_with("click "), "click")
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
