//! Starts the desktop console under Xvfb against a real tether-server, pre-accepting the server's
//! certificate, waits until the server's page has loaded, and checks a screenshot is not blank.
//! Needs Xvfb and ImageMagick (`import`, `identify`) and a built `target/debug/tether-server`
//! (`cargo build -p tether-server`). Set TETHER_CONSOLE_SHOT to keep the screenshot elsewhere.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};

const START_DEADLINE: Duration = Duration::from_secs(60);
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
const PAINT_DEADLINE: Duration = Duration::from_secs(60);
/// A rendered login/setup page has text, an input and anti-aliasing: far more than a few colours.
/// A blank (or uniformly filled) window has one or two.
const MIN_COLOURS: u32 = 30;

/// Kills the child when the test ends, however it ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lines_of(reader: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

/// Waits for a line matching `wanted`, returning it, or fails with everything seen.
fn wait_for_line(
    lines: &Receiver<String>,
    deadline: Duration,
    wanted: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let end = Instant::now() + deadline;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if wanted(&line) => return Ok(line),
            Ok(line) => seen.push(line),
            Err(error) => return Err(format!("{error:?}; lines so far: {seen:#?}")),
        }
    }
}

fn target_debug_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tether-console"))
        .parent()
        .expect("the binary is in a directory")
        .to_path_buf()
}

fn start_xvfb() -> (Reaped, String) {
    // `-displayfd 1`: Xvfb picks a free display itself and writes its number to stdout once it
    // accepts connections, so parallel tests never race for a display.
    let mut child = Command::new("Xvfb")
        .args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb starts (apt-get install xvfb)");
    let stdout = lines_of(child.stdout.take().expect("piped"));
    let xvfb = Reaped(child);
    let number = wait_for_line(&stdout, START_DEADLINE, |l| l.trim().parse::<u32>().is_ok())
        .expect("Xvfb reports its display");
    (xvfb, format!(":{}", number.trim()))
}

fn start_server(datapath: &Path) -> (Reaped, String) {
    let binary = target_debug_dir().join("tether-server");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo build -p tether-server` first",
        binary.display()
    );
    let mut child = Command::new(binary)
        .args([
            "--port",
            "0",
            "--redirport",
            "0",
            "--mpsport",
            "0",
            "--bind",
            "127.0.0.1",
            "--cert",
            "localhost",
            "--fastcert",
            "--datapath",
        ])
        .arg(datapath)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tether-server starts");
    let stdout = lines_of(child.stdout.take().expect("piped"));
    let server = Reaped(child);
    let line = wait_for_line(&stdout, START_DEADLINE, |l| {
        l.starts_with("tether-server listening on ")
    })
    .expect("tether-server listens");
    let url = line
        .trim_start_matches("tether-server listening on ")
        .to_owned();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || while stdout.recv().is_ok() {});
    (server, url)
}

/// SHA-256 of the web certificate's DER, computed from the file rather than with the console's
/// own probe, so the test does not check the probe against itself.
fn web_cert_fingerprint(datapath: &Path) -> String {
    let pem = std::fs::read_to_string(datapath.join("webserver-cert-public.crt"))
        .expect("web certificate");
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body");
    hex::encode(Sha256::digest(der))
}

fn distinct_colours(shot: &Path) -> u32 {
    let output = Command::new("identify")
        .args(["-format", "%k"])
        .arg(shot)
        .output()
        .expect("identify runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Resident memory of `pid` and all its descendants (the WebKit web and network processes), KiB.
fn tree_rss_kib(pid: u32) -> (u64, Vec<(String, u64)>) {
    let mut parts = Vec::new();
    let mut pending = vec![pid];
    while let Some(pid) = pending.pop() {
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
        };
        let rss = field("VmRSS:")
            .and_then(|v| v.trim_end_matches(" kB").trim().parse().ok())
            .unwrap_or(0);
        parts.push((field("Name:").unwrap_or_default(), rss));
        if let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) {
            pending.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
    }
    (parts.iter().map(|(_, rss)| rss).sum(), parts)
}

fn console_command(display: &str, temp: &Path, url: &str, fingerprint: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether-console"));
    command
        .args(["--server", url, "--accept-fingerprint", fingerprint])
        .env("DISPLAY", display)
        .env("XDG_CONFIG_HOME", temp.join("config"))
        .env("XDG_DATA_HOME", temp.join("data"))
        .env("XDG_CACHE_HOME", temp.join("cache"))
        // No GPU under Xvfb.
        .env("WEBKIT_DISABLE_COMPOSITING_MODE", "1")
        .env("LIBGL_ALWAYS_SOFTWARE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

#[test]
fn a_certificate_other_than_the_accepted_one_is_refused() {
    let temp = tempfile::tempdir().expect("temp dir");
    let datapath = temp.path().join("server");
    let (_xvfb, display) = start_xvfb();
    let (_server, url) = start_server(&datapath);
    let wrong = "00".repeat(32);

    let mut child = console_command(&display, temp.path(), &url, &wrong)
        .spawn()
        .expect("tether-console starts");
    let stdout = lines_of(child.stdout.take().expect("piped"));
    let mut console = Reaped(child);
    let end = Instant::now() + LOAD_DEADLINE;
    let status = loop {
        if let Some(status) = console.0.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < end, "tether-console did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status.code(),
        Some(3),
        "exit status for a mismatched certificate"
    );
    let pages: Vec<String> = stdout.try_iter().collect();
    assert!(
        !pages.iter().any(|l| l.contains(&url)),
        "it opened the server anyway: {pages:?}"
    );
}

#[test]
fn console_opens_a_real_server_under_xvfb() {
    let temp = tempfile::tempdir().expect("temp dir");
    let datapath = temp.path().join("server");
    let (xvfb, display) = start_xvfb();
    let (_server, url) = start_server(&datapath);
    let fingerprint = web_cert_fingerprint(&datapath);

    let mut child = console_command(&display, temp.path(), &url, &fingerprint)
        .spawn()
        .expect("tether-console starts");
    let stdout = lines_of(child.stdout.take().expect("piped"));
    let stderr = lines_of(child.stderr.take().expect("piped"));
    let console = Reaped(child);

    let loaded = wait_for_line(&stdout, LOAD_DEADLINE, |l| {
        l.starts_with("tether-console loaded https://")
    });
    let errors: Vec<String> = stderr.try_iter().collect();
    let loaded =
        loaded.unwrap_or_else(|e| panic!("the server page never loaded: {e}\nstderr: {errors:#?}"));
    assert!(
        loaded.contains(url.trim_end_matches('/')),
        "loaded another page: {loaded}"
    );
    assert!(
        !errors
            .iter()
            .any(|l| l.contains("refused") || l.contains("failed to load")),
        "WebKit refused the page: {errors:#?}"
    );

    // The page has loaded; the app paints it shortly after. Poll screenshots until it has.
    let shot = std::env::var_os("TETHER_CONSOLE_SHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_debug_dir().join("tether-console-xvfb.png"));
    let end = Instant::now() + PAINT_DEADLINE;
    let colours = loop {
        let status = Command::new("import")
            .args(["-display", &display, "-window", "root"])
            .arg(&shot)
            .status()
            .expect("ImageMagick import runs");
        let colours = if status.success() {
            distinct_colours(&shot)
        } else {
            0
        };
        if colours > MIN_COLOURS || Instant::now() > end {
            break colours;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(
        colours > MIN_COLOURS,
        "screenshot {} has only {colours} colours",
        shot.display()
    );

    let (total, parts) = tree_rss_kib(console.0.id());
    eprintln!("screenshot: {} ({colours} colours)", shot.display());
    eprintln!(
        "tether-console RSS after load: {} MiB in all: {parts:?}",
        total / 1024
    );
    drop(console);
    drop(xvfb);
}
