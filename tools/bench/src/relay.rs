//! Relay figures, with each system's *real* agent (the load tool serves no relay sessions) and
//! its own administration tool: `tether-agent` + `tetherctl`, MeshCentral's `meshagent` +
//! `meshctrl.js`. Both run on this machine, so "remote" files and shells are local ones.
//!
//! Throughput: a file download through the relay (MeshCentral's files protocol; Tether's files
//! session), timed as whole tool runs; the fixed cost (tool start, login, session set-up) is
//! taken out by subtracting the time for a one-byte file. Echo: see `echo.rs`.
//!
//! Tether's sessions can also leave the relay for a direct WebRTC path (`tetherctl --direct`), so
//! for Tether the same figures are taken twice in one run, `--direct never` and `--direct always`,
//! together with the server's CPU time per GiB downloaded: what the direct path saves the server.
//! (MeshCentral's direct path exists in its browser console only.)

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::process::Command;

use crate::echo;
use crate::procs::{Guard, tree_cpu_s};
use crate::server::{ServerSpec, Tools, Web};
use crate::stats::{median, percentile};

/// How long a new agent may take to be reachable through the relay (MeshCentral's must first
/// receive and start its JavaScript core).
const AGENT_READY: Duration = Duration::from_secs(120);
const DOWNLOAD_RUNS: usize = 3;
/// Pause between tool runs: MeshCentral's agent drops a tunnel requested while the previous one
/// is still closing (the tool exits as soon as its file is written).
const BETWEEN_RUNS: Duration = Duration::from_secs(1);
/// Attempts per timed download; failed attempts are counted in the result.
const ATTEMPTS: usize = 3;
const TOOL_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct RelayPoint {
    pub file_bytes: u64,
    /// Through the server's relay (for Tether: `--direct never`). Flattened, so `raw.json` keeps
    /// the field names it had before the direct path was measured.
    #[serde(flatten)]
    pub relayed: PathPoint,
    /// Tether only: the same figures with every session on the direct path.
    pub direct: Option<PathPoint>,
}

/// Download and echo figures for one way of carrying the sessions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PathPoint {
    /// Median wall time of a whole tool run downloading one byte, and the big file.
    pub small_s: Option<f64>,
    pub big_s: Option<f64>,
    /// Big file ÷ (big time − small time), in MB (10⁶ bytes) per second.
    pub download_mb_s: Option<f64>,
    /// The server's CPU seconds (its whole process tree) per GiB downloaded.
    pub server_cpu_s_per_gib: Option<f64>,
    pub echo_ms_p50: Option<f64>,
    pub echo_ms_p99: Option<f64>,
    pub echo_samples: usize,
    /// Timed downloads that failed and were tried again.
    pub download_retries: usize,
}

/// How a Tether session travels (`tetherctl --direct`); MeshCentral's tool has the relay only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Relay,
    Direct,
}

impl Route {
    fn flag(self) -> &'static str {
        match self {
            Route::Relay => "never",
            Route::Direct => "always",
        }
    }
}

pub(crate) struct RelaySettings {
    pub file_mib: u32,
    pub echo_samples: u32,
    /// Where the agent, its files and the downloads live for this run.
    pub work: PathBuf,
    pub logs: PathBuf,
}

pub(crate) async fn relay_point(
    spec: &ServerSpec,
    web: &Web,
    settings: &RelaySettings,
) -> anyhow::Result<RelayPoint> {
    let mut running = spec.start(web).await?;
    let result = relay_on(spec, settings, running.guard.pid()).await;
    running.guard.stop().await;
    result
}

/// [`relay_point`] on a server already running (process `server`, whose CPU is counted).
pub(crate) async fn relay_on(
    spec: &ServerSpec,
    settings: &RelaySettings,
    server: u32,
) -> anyhow::Result<RelayPoint> {
    let work = &settings.work;
    std::fs::create_dir_all(work)?;
    let small = work.join("small.bin");
    let big = work.join("big.bin");
    std::fs::write(&small, b"x")?;
    let file_bytes = u64::from(settings.file_mib) << 20;
    write_noise(&big, file_bytes)?;
    let files = Files {
        small: small.clone(),
        big: big.clone(),
        target: work.join("downloaded.bin"),
        big_bytes: file_bytes,
    };

    let log = settings
        .logs
        .join(format!("{}-agent.log", spec.kind.name().to_lowercase()));
    let mut agent = start_agent(spec, work, &log, None)?;
    let result = async {
        let device = wait_device(spec).await?;
        let started = Instant::now();
        while download(spec, &device, &small, &files.target, 1, Route::Relay)
            .await
            .is_err()
        {
            if started.elapsed() > AGENT_READY {
                bail!("the agent was not reachable through the relay within {AGENT_READY:?}");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let relayed = path_point(spec, &device, &files, settings, server, Route::Relay).await?;
        let direct = match spec.tools {
            Tools::Tether { .. } => Some(
                path_point(spec, &device, &files, settings, server, Route::Direct)
                    .await
                    .context("the direct path")?,
            ),
            Tools::MeshCentral { .. } => None,
        };
        Ok(RelayPoint {
            file_bytes,
            relayed,
            direct,
        })
    }
    .await;
    agent.stop().await;
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(&files.target);
    result
}

struct Files {
    small: PathBuf,
    big: PathBuf,
    target: PathBuf,
    big_bytes: u64,
}

/// Downloads (one byte and the big file, alternately, `DOWNLOAD_RUNS` times) and the echo, with
/// every session on `route`; the server's CPU time is read around each big download.
async fn path_point(
    spec: &ServerSpec,
    device: &str,
    files: &Files,
    settings: &RelaySettings,
    server: u32,
    route: Route,
) -> anyhow::Result<PathPoint> {
    let mut small_s = Vec::new();
    let mut big_s = Vec::new();
    let mut cpu_s = Some(0.0);
    let mut retries = 0;
    for _ in 0..DOWNLOAD_RUNS {
        for (file, bytes) in [(&files.small, 1), (&files.big, files.big_bytes)] {
            tokio::time::sleep(BETWEEN_RUNS).await;
            let mut attempt = 1;
            let cpu_before = tree_cpu_s(server);
            let seconds = loop {
                match download(spec, device, file, &files.target, bytes, route).await {
                    Ok(seconds) => break seconds,
                    Err(e) if attempt >= ATTEMPTS => return Err(e),
                    Err(_) => {
                        attempt += 1;
                        retries += 1;
                        tokio::time::sleep(BETWEEN_RUNS).await;
                    }
                }
            };
            if bytes == 1 {
                small_s.push(seconds);
            } else {
                // A retried download's CPU counts too: the server did that work.
                cpu_s = match (cpu_s, cpu_before, tree_cpu_s(server)) {
                    (Some(sum), Some(before), Some(after)) => Some(sum + (after - before)),
                    _ => None,
                };
                big_s.push(seconds);
            }
        }
    }
    let (small_s, big_s) = (median(&small_s), median(&big_s));
    let download_mb_s = match (small_s, big_s) {
        (Some(s), Some(b)) if b > s => Some(files.big_bytes as f64 / 1e6 / (b - s)),
        _ => None,
    };
    let gib = (files.big_bytes as f64 * DOWNLOAD_RUNS as f64) / f64::from(1u32 << 30);
    tokio::time::sleep(BETWEEN_RUNS).await;
    let echo_ms = echo::latencies(
        &shell_command_line(spec, device, route),
        settings.echo_samples,
    )
    .await
    .context("terminal echo")?;
    Ok(PathPoint {
        small_s,
        big_s,
        download_mb_s,
        server_cpu_s_per_gib: cpu_s.map(|s| s / gib),
        echo_ms_p50: median(&echo_ms),
        echo_ms_p99: percentile(&echo_ms, 99.0),
        echo_samples: echo_ms.len(),
        download_retries: retries,
    })
}

/// Pseudo-random bytes (xorshift): incompressible, so neither side gains from compression.
fn write_noise(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut data = Vec::with_capacity(bytes as usize);
    while (data.len() as u64) < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data.extend_from_slice(&state.to_le_bytes());
    }
    data.truncate(bytes as usize);
    std::fs::write(path, data).with_context(|| format!("writing {}", path.display()))
}

fn wss_url(spec: &ServerSpec) -> String {
    spec.base_url.replacen("https://", "wss://", 1)
}

/// The admin tool, logged in: `tetherctl --url … --user …` or `node meshctrl.js --url … --login…`.
fn tool(spec: &ServerSpec) -> Command {
    match &spec.tools {
        Tools::Tether { ctl, root_cert, .. } => {
            let mut command = Command::new(ctl);
            command
                .args(["--url", &wss_url(spec), "--user", &spec.user])
                .arg("--trust-root")
                .arg(root_cert)
                .env("TETHER_PASS", &spec.password);
            command
        }
        Tools::MeshCentral { install } => {
            let mut command = Command::new("node");
            command.arg(install.join("meshctrl.js")).args([
                "--url",
                &wss_url(spec),
                "--loginuser",
                &spec.user,
                "--loginpass",
                &spec.password,
            ]);
            command
        }
    }
}

/// Starts the system's real agent with its group's policy; with `display`, showing that X
/// display in desktop sessions.
pub(crate) fn start_agent(
    spec: &ServerSpec,
    work: &Path,
    log: &Path,
    display: Option<&str>,
) -> anyhow::Result<Guard> {
    let text = std::fs::read_to_string(&spec.msh)?;
    // Only the keys an agent needs (MeshCentral's download also carries UI translations).
    let msh: String = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            [
                "MeshName=",
                "MeshType=",
                "MeshID=",
                "ServerID=",
                "MeshServer=",
            ]
            .iter()
            .any(|key| l.starts_with(key))
        })
        .map(|l| format!("{l}\r\n"))
        .collect();
    match &spec.tools {
        Tools::Tether { agent, .. } => {
            let config = work.join("agent.msh");
            std::fs::write(&config, msh)?;
            let mut command = Command::new(agent);
            command
                .arg("run")
                .arg("--config")
                .arg(&config)
                .arg("--state")
                .arg(work.join("agent-state"));
            if let Some(display) = display {
                command.args(["--x-display", display]);
            }
            Guard::spawn("tether-agent", command, log)
        }
        Tools::MeshCentral { install } => {
            if std::env::consts::ARCH != "x86_64" {
                bail!("the bench runs MeshCentral's x86-64 agent only");
            }
            let dir = work.join("meshagent");
            std::fs::create_dir_all(&dir)?;
            let binary = dir.join("meshagent");
            std::fs::copy(install.join("agents/meshagent_x86-64"), &binary)
                .context("copying MeshCentral's meshagent_x86-64")?;
            set_executable(&binary)?;
            // The agent reads the policy next to itself, named after itself.
            std::fs::write(dir.join("meshagent.msh"), msh)?;
            let mut command = Command::new(&binary);
            command.arg("connect").current_dir(&dir);
            if let Some(display) = display {
                // Its desktop (KVM) child shows the display in DISPLAY.
                command.env("DISPLAY", display);
            }
            Guard::spawn("meshagent", command, log)
        }
    }
}

fn set_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The id of the one device that is online (the load tool's devices are offline by now).
pub(crate) async fn wait_device(spec: &ServerSpec) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let output = tool(spec)
            .args(["listdevices", "--json"])
            .output()
            .await
            .context("listing devices")?;
        if output.status.success()
            && let Ok(list) = serde_json::from_slice::<serde_json::Value>(&output.stdout)
            && let Some(id) = online_device(&list)
        {
            return Ok(id);
        }
        if started.elapsed() > AGENT_READY {
            bail!("the agent did not come online within {AGENT_READY:?}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Tether: `[{id, online, …}]`. MeshCentral: `[{_id: "node//ID", conn: 1, …}]` → `ID`
/// (meshctrl wants the id without its `node//` prefix).
pub(crate) fn online_device(list: &serde_json::Value) -> Option<String> {
    list.as_array()?.iter().find_map(|device| {
        if device["online"] == true {
            return device["id"].as_str().map(str::to_owned);
        }
        let connected = device["conn"].as_u64().is_some_and(|c| c & 1 != 0);
        let id = device["_id"].as_str()?;
        connected.then(|| id.rsplit('/').next().unwrap_or(id).to_owned())
    })
}

/// One download through the relay by the admin tool; its wall time in seconds, after checking
/// the file arrived whole.
async fn download(
    spec: &ServerSpec,
    device: &str,
    remote: &Path,
    local: &Path,
    expected: u64,
    route: Route,
) -> anyhow::Result<f64> {
    let _ = std::fs::remove_file(local);
    let mut command = tool(spec);
    match &spec.tools {
        Tools::Tether { .. } => {
            command
                .args(["download", "--direct", route.flag(), "--device", device])
                .arg(remote)
                .arg(local);
        }
        Tools::MeshCentral { .. } => {
            command
                .args(["download", "--id", device, "--file"])
                .arg(remote)
                .arg("--target")
                .arg(local);
        }
    }
    command
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(TOOL_TIMEOUT, command.output())
        .await
        .context("the download did not finish")??;
    let elapsed = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(local).map(|m| m.len()).unwrap_or(0);
    if !output.status.success() || size != expected {
        bail!(
            "download of {} got {size} of {expected} bytes: {}",
            remote.display(),
            String::from_utf8_lossy(&output.stdout)
                .trim()
                .replace(['\r', '\n'], " ")
        );
    }
    Ok(elapsed)
}

/// The admin tool's interactive shell as one `sh -c` line, for `script` to run in a terminal.
fn shell_command_line(spec: &ServerSpec, device: &str, route: Route) -> String {
    let command = tool(spec);
    let std = command.as_std();
    let mut words = vec![quote(&std.get_program().to_string_lossy())];
    words.extend(std.get_args().map(|a| quote(&a.to_string_lossy())));
    match &spec.tools {
        Tools::Tether { .. } => words.extend([
            "shell".into(),
            "--direct".into(),
            route.flag().into(),
            "--device".into(),
            quote(device),
        ]),
        Tools::MeshCentral { .. } => words.extend(["shell".into(), "--id".into(), quote(device)]),
    }
    // The password reaches tetherctl through the environment `script` passes on.
    if let Tools::Tether { .. } = &spec.tools {
        return format!("TETHER_PASS={} {}", quote(&spec.password), words.join(" "));
    }
    words.join(" ")
}

/// Single-quoted for `sh`.
pub(crate) fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_online_device_in_either_listing() {
        let tether = json!([{"id": "a", "online": false}, {"id": "b", "online": true}]);
        assert_eq!(online_device(&tether).as_deref(), Some("b"));
        let meshcentral = json!([{"_id": "node//old$x", "name": "loadgen-1"}, {"_id": "node//Ab$c@d", "conn": 1}]);
        assert_eq!(online_device(&meshcentral).as_deref(), Some("Ab$c@d"));
        assert_eq!(online_device(&json!([{"_id": "node//x", "conn": 0}])), None);
    }

    #[test]
    fn quotes_for_sh() {
        assert_eq!(quote("Ab$c@d"), "'Ab$c@d'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
