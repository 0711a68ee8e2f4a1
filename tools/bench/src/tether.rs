//! The Tether side: release binaries, a fresh data folder, an administrator, a device group and
//! its `.msh`, prepared the way an administrator would (server flag, `tetherctl`, the console's
//! download link).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::server::{Kind, ServerSpec, Tools, Web};

/// Inside the private namespace nothing else listens: fixed ports are free.
pub(crate) const PORT: u16 = 20443;
pub(crate) const USER: &str = "bench";
pub(crate) const PASSWORD: &str = "Bench-pass-2024!x";

/// The binaries the bench runs, built in release.
pub(crate) struct Binaries {
    pub server: PathBuf,
    pub ctl: PathBuf,
    pub loadgen: PathBuf,
    pub agent: PathBuf,
    /// The test kit's X client, which draws the desktop scenes.
    pub xprobe: PathBuf,
}

impl Binaries {
    pub(crate) fn in_dir(dir: &Path) -> Binaries {
        Binaries {
            server: dir.join("tether-server"),
            ctl: dir.join("tetherctl"),
            loadgen: dir.join("tether-loadgen"),
            agent: dir.join("tether-agent"),
            xprobe: dir.join("xprobe"),
        }
    }

    pub(crate) fn missing(&self) -> Vec<&Path> {
        [
            &self.server,
            &self.ctl,
            &self.loadgen,
            &self.agent,
            &self.xprobe,
        ]
        .into_iter()
        .map(PathBuf::as_path)
        .filter(|p| !p.is_file())
        .collect()
    }
}

/// `cargo build --release` of what the bench runs (a no-op when they are current).
pub(crate) async fn build(workspace: &Path) -> anyhow::Result<()> {
    eprintln!(
        "tether-bench: building release binaries (tether-server, tetherctl, tether-loadgen, tether-agent, xprobe)"
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args([
            "build",
            "--release",
            "-p",
            "tether-server",
            "-p",
            "tetherctl",
            "-p",
            "tether-loadgen",
            "-p",
            "tether-agent",
            "-p",
            "xprobe",
        ])
        .current_dir(workspace)
        .status()
        .await
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

/// A fresh Tether in `dir`: account created offline, first (cold) start timed, group and `.msh`
/// made through the running server, then stopped. Returns the spec and the cold start time.
pub(crate) async fn prepare(
    bins: &Binaries,
    dir: &Path,
    fastcert: bool,
    web: &Web,
    log: PathBuf,
) -> anyhow::Result<(ServerSpec, Duration)> {
    prepare_on(bins, dir, PORT, &[], fastcert, web, log).await
}

/// [`prepare`] on `port`, with `extra` flags on every run of the server (a database, say).
pub(crate) async fn prepare_on(
    bins: &Binaries,
    dir: &Path,
    port: u16,
    extra: &[std::ffi::OsString],
    fastcert: bool,
    web: &Web,
    log: PathBuf,
) -> anyhow::Result<(ServerSpec, Duration)> {
    let datapath = dir.join("tether-data");
    let output = Command::new(&bins.server)
        .arg("--datapath")
        .arg(&datapath)
        .args(extra)
        .args(["--createaccount", USER, "--pass", PASSWORD])
        .output()
        .await
        .context("running tether-server --createaccount")?;
    if !output.status.success() {
        bail!(
            "tether-server --createaccount failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    let args = server_args(&datapath, port, extra, fastcert);
    let spec = ServerSpec {
        kind: Kind::Tether,
        program: bins.server.clone(),
        args,
        cwd: dir.to_path_buf(),
        base_url: format!("https://127.0.0.1:{port}"),
        user: USER.into(),
        password: PASSWORD.into(),
        msh: dir.join("tether.msh"),
        log,
        tools: Tools::Tether {
            ctl: bins.ctl.clone(),
            agent: bins.agent.clone(),
            root_cert: datapath.join("root-cert-public.crt"),
        },
    };

    let mut running = spec.start(web).await?;
    let made = make_group_msh(bins, &spec, &datapath, web).await;
    running.guard.stop().await;
    made?;
    Ok((spec, running.ready_after))
}

/// The flags a bench server runs with: data folder, `extra`, port, loopback only, no caps.
pub(crate) fn server_args(
    datapath: &Path,
    port: u16,
    extra: &[std::ffi::OsString],
    fastcert: bool,
) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["--datapath".into(), datapath.into()];
    args.extend(extra.iter().cloned());
    for arg in [
        "--port",
        &port.to_string(),
        "--redirport",
        "0",
        // No Intel AMT here; MeshCentral runs its MPS on 4433 in the same namespace.
        "--mpsport",
        "0",
        "--bind",
        "127.0.0.1",
        "--cert",
        "127.0.0.1",
        // The load tool connects thousands of agents from one loopback address, and the point is
        // the server's capacity (MeshCentral has no such caps): lift the connection caps.
        "--max-connections",
        "0",
        "--max-connections-per-ip",
        "0",
    ] {
        args.push(arg.into());
    }
    if fastcert {
        args.push("--fastcert".into());
    }
    args
}

async fn make_group_msh(
    bins: &Binaries,
    spec: &ServerSpec,
    datapath: &Path,
    web: &Web,
) -> anyhow::Result<()> {
    let output = Command::new(&bins.ctl)
        .args(["--url", &spec.base_url.replace("https://", "wss://")])
        .args(["--user", USER])
        .env("TETHER_PASS", PASSWORD)
        .arg("--trust-root")
        .arg(datapath.join("root-cert-public.crt"))
        .args(["addgroup", "bench", "--json"])
        .output()
        .await
        .context("running tetherctl addgroup")?;
    if !output.status.success() {
        bail!(
            "tetherctl addgroup failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let group: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("tetherctl addgroup --json printed no JSON")?;
    let id = group["id"]
        .as_str()
        .context("tetherctl addgroup --json gave no id")?;
    let cookie = spec.session(web).await?;
    let msh = web
        .get_text(
            &format!("{}/api/groups/{id}/agent.msh", spec.base_url),
            Some(&cookie),
        )
        .await?;
    std::fs::write(&spec.msh, msh).with_context(|| format!("writing {}", spec.msh.display()))
}
