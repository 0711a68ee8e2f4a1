//! `tether-bench`: measures a Tether server and a real MeshCentral side by side and writes a
//! report (`report.md`, `raw.json`, PNG charts, server logs) into `--out`.
//!
//! Outside the namespace it builds the release binaries and installs MeshCentral from npm (the
//! only network use); then it re-executes itself in a private network namespace with only
//! loopback (`netns.rs`) where both servers and the load tool run, one at a time.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod cluster;
mod desktop;
mod echo;
mod loadgen;
mod machine;
mod markdown;
mod measure;
mod meshcentral;
mod netns;
mod plot;
mod procs;
mod relay;
mod report;
mod server;
mod stats;
mod suite;
mod tether;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use tether::Binaries;

/// Passes the MeshCentral install to the re-executed bench; unset means "without MeshCentral".
const MESHCENTRAL_ENV: &str = "TETHER_BENCH_MESHCENTRAL";

/// Measures Tether against MeshCentral: start time, memory per agent, connect storms, login.
#[derive(Debug, Clone, Parser)]
#[command(name = "tether-bench", version)]
pub struct Cli {
    /// Where report.md, raw.json, the charts and the logs go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// Agent counts at which to measure memory (comma-separated).
    #[arg(
        long,
        value_name = "N,N",
        value_delimiter = ',',
        default_value = "1000,10000"
    )]
    agents: Vec<u32>,
    /// Runs of everything per system; the report shows medians.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Connect-storm rates, agents per second (comma-separated).
    #[arg(
        long,
        value_name = "R,R",
        value_delimiter = ',',
        default_value = "100,300,1000"
    )]
    storm_rates: Vec<f64>,
    /// Agents per connect storm [default: 1000, or the largest --agents if smaller].
    #[arg(long, value_name = "N")]
    storm_agents: Option<u32>,
    /// Agents joining per second while the server is filled for the memory points.
    #[arg(long, value_name = "R", default_value_t = 200.0)]
    ramp_rate: f64,
    /// Seconds of quiet after a start and after the agents are online, before sampling.
    #[arg(long, value_name = "S", default_value_t = 5)]
    settle: u64,
    /// Requests timed for the login page and for the login round trip.
    #[arg(long, value_name = "N", default_value_t = 20)]
    web_samples: u32,
    /// Size of the file downloaded through the relay with each system's real agent; 0 skips the
    /// relay measurements.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    relay_mib: u32,
    /// Only the relay figures (download, CPU per GiB, echo; Tether's direct path too): skips the
    /// idle-agent counts and the connect storms.
    #[arg(long)]
    relay_only: bool,
    /// Seconds each desktop scene is measured; 0 skips the desktop figures.
    #[arg(long, value_name = "S", default_value_t = 10)]
    desktop_seconds: u64,
    /// Clicks timed for the desktop's click-to-pixel figure.
    #[arg(long, value_name = "N", default_value_t = 20)]
    desktop_clicks: u32,
    /// Only the desktop figures: skips the relay, the idle-agent counts and the connect storms.
    #[arg(long)]
    desktop_only: bool,
    /// Only the several-servers figures (`cluster.md`): login and /control on PostgreSQL vs
    /// redb, three servers behind HAProxy holding the largest --agents count, restarted at once,
    /// and MeshCentral restarted with as many. Needs PostgreSQL running, nats-server and HAProxy.
    #[arg(long)]
    cluster_only: bool,
    /// Keys typed for the terminal echo figure.
    #[arg(long, value_name = "N", default_value_t = 50)]
    echo_samples: u32,
    /// RSA-2048 server keys instead of RSA-3072, on both servers (their --fastcert).
    #[arg(long)]
    fastcert: bool,
    /// RSA-2048 agent keys instead of RSA-3072 (quicker to generate the first time).
    #[arg(long)]
    small_keys: bool,
    /// Which systems to measure (comma-separated).
    #[arg(
        long,
        value_name = "LIST",
        value_enum,
        value_delimiter = ',',
        default_value = "tether,meshcentral"
    )]
    systems: Vec<System>,
    /// Measure a real MeshCentral too (auto: when node and npm are installed).
    #[arg(long, value_enum, default_value = "auto")]
    meshcentral: Toggle,
    /// The MeshCentral release to install from npm.
    #[arg(long, value_name = "VERSION", default_value = "1.1.55")]
    meshcentral_version: String,
    /// Use the release binaries as they are (default: `cargo build --release` them first).
    #[arg(long)]
    no_build: bool,
    /// Run on the host's loopback instead of a private namespace (Tether only).
    #[arg(long)]
    no_netns: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum System {
    Tether,
    Meshcentral,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Toggle {
    Auto,
    Yes,
    No,
}

impl Cli {
    fn storm_agents(&self) -> u32 {
        self.storm_agents.unwrap_or_else(|| {
            let largest = self.agents.iter().copied().max().unwrap_or(1000);
            largest.min(1000)
        })
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.agents.is_empty() || self.agents.contains(&0) {
            bail!("--agents needs counts above zero");
        }
        let rates = self.storm_rates.iter().chain([&self.ramp_rate]);
        if rates.into_iter().any(|r| !(r.is_finite() && *r > 0.0)) {
            bail!("rates must be positive numbers");
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let mut cli = Cli::parse();
    cli.check()?;
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let workspace = workspace_root();
    cli.out = std::path::absolute(&cli.out).context("resolving --out")?;
    if netns::inside() {
        let meshcentral = std::env::var_os(MESHCENTRAL_ENV).map(PathBuf::from);
        return guarded_suite(&cli, &workspace, meshcentral, true).await;
    }

    if !cli.no_build {
        tether::build(&workspace).await?;
    }
    let bins = Binaries::in_dir(&release_dir(&workspace));
    let missing = bins.missing();
    if !missing.is_empty() {
        bail!("missing release binaries {missing:?}; run without --no-build");
    }
    let with_meshcentral = cli.systems.contains(&System::Meshcentral)
        && match cli.meshcentral {
            Toggle::Yes => true,
            Toggle::No => false,
            Toggle::Auto => netns::which("npm").is_some() && netns::which("node").is_some(),
        };
    let mut env = Vec::new();
    if with_meshcentral {
        let cache = meshcentral::cache_dir()?;
        meshcentral::install(&cache, &cli.meshcentral_version).await?;
        env.push((MESHCENTRAL_ENV, cache.into_os_string()));
    } else {
        eprintln!("tether-bench: measuring Tether only (no MeshCentral)");
    }
    if cli.no_netns {
        if with_meshcentral {
            bail!(
                "MeshCentral runs only inside the private network namespace: drop --no-netns, or add --meshcentral no"
            );
        }
        return guarded_suite(&cli, &workspace, None, false).await;
    }
    netns::check_tools()?;
    netns::reexec(&env).await
}

/// The workspace this bench was built from (tools/bench is one of its members).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn release_dir(workspace: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("release"),
        None => workspace.join("target/release"),
    }
}

/// The suite, stopped cleanly by Ctrl-C: dropping it drops every process guard, which kills
/// each started process tree by PID.
async fn guarded_suite(
    cli: &Cli,
    workspace: &Path,
    meshcentral: Option<PathBuf>,
    isolated: bool,
) -> anyhow::Result<ExitCode> {
    if cli.cluster_only {
        if isolated {
            netns::bring_up_loopback().await?;
        }
        let bins = Binaries::in_dir(&release_dir(workspace));
        return tokio::select! {
            result = cluster::run(cli, &bins, meshcentral.as_deref()) => result.map(|()| ExitCode::SUCCESS),
            _ = tokio::signal::ctrl_c() => Ok(ExitCode::from(130)),
        };
    }
    tokio::select! {
        result = suite::run(cli, workspace, meshcentral, isolated) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("tether-bench: interrupted; stopped every process it started");
            Ok(ExitCode::from(130))
        }
    }
}
