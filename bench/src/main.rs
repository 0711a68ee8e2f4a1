//! `tether-bench`: measures a Tether server and a real MeshCentral side by side and writes a
//! report (`report.md`, `raw.json`, PNG charts, server logs) into `--out`.
//!
//! Outside the namespace it builds the release binaries and installs MeshCentral from npm (the
//! only network use); then it re-executes itself in a private network namespace with only
//! loopback (`netns.rs`) where both servers and the load tool run, one at a time.

mod loadgen;
mod machine;
mod markdown;
mod measure;
mod meshcentral;
mod netns;
mod plot;
mod procs;
mod report;
mod server;
mod stats;
mod tether;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};

use report::{Raw, RunResult};
use server::{Kind, Web};
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
    /// RSA-2048 server keys instead of RSA-3072, on both servers (their --fastcert).
    #[arg(long)]
    fastcert: bool,
    /// RSA-2048 agent keys instead of RSA-3072 (quicker to generate the first time).
    #[arg(long)]
    small_keys: bool,
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
    let with_meshcentral = match cli.meshcentral {
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

/// The workspace this bench was built from (bench/ is one of its members).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
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
    tokio::select! {
        result = suite(cli, workspace, meshcentral, isolated) => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("tether-bench: interrupted; stopped every process it started");
            Ok(ExitCode::from(130))
        }
    }
}

async fn suite(
    cli: &Cli,
    workspace: &Path,
    meshcentral: Option<PathBuf>,
    isolated: bool,
) -> anyhow::Result<ExitCode> {
    if isolated {
        netns::bring_up_loopback().await?;
    }
    let logs = cli.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut machine = machine::Machine::now();
    machine.tether_commit = machine::git_commit(workspace).await;
    if let Some(cache) = &meshcentral {
        machine.node = meshcentral::node_version().await;
        machine.meshcentral = meshcentral::installed_version(cache);
    }
    let web = Web::new()?;
    let bins = Binaries::in_dir(&release_dir(workspace));
    let settings = measure::Settings {
        loadgen: bins.loadgen.clone(),
        logs: logs.clone(),
        settle: Duration::from_secs(cli.settle),
        web_samples: cli.web_samples,
        ramp_rate: cli.ramp_rate,
        storm_agents: cli.storm_agents(),
        small_keys: cli.small_keys,
    };
    let mut raw = Raw {
        machine,
        settings: settings_json(cli, isolated),
        runs: Vec::new(),
    };
    for repetition in 1..=cli.repeat {
        // Alternate who goes first, so a drift in machine load does not always favour one side.
        let order = if repetition % 2 == 1 {
            [Kind::Tether, Kind::MeshCentral]
        } else {
            [Kind::MeshCentral, Kind::Tether]
        };
        for kind in order {
            if kind == Kind::MeshCentral && meshcentral.is_none() {
                continue;
            }
            let ctx = RunContext {
                cli,
                bins: &bins,
                web: &web,
                settings: &settings,
                meshcentral: meshcentral.as_deref(),
                logs: &logs,
            };
            let run = one_run(&ctx, kind, repetition).await;
            raw.runs.push(run);
            // Written as we go: a long run interrupted late still leaves its figures.
            write_json(&cli.out.join("raw.json"), &raw)?;
        }
    }
    raw.machine.load_end = machine::load_average();
    write_json(&cli.out.join("raw.json"), &raw)?;
    let report = markdown::write(&cli.out, &raw, cli)?;
    println!("{report}");
    eprintln!(
        "tether-bench: wrote {}",
        cli.out.join("report.md").display()
    );
    let failed = raw.runs.iter().any(|r| !r.errors.is_empty());
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

struct RunContext<'a> {
    cli: &'a Cli,
    bins: &'a Binaries,
    web: &'a Web,
    settings: &'a measure::Settings,
    meshcentral: Option<&'a Path>,
    logs: &'a Path,
}

/// One repetition on one system, fresh data folder and all. Failures are recorded, not fatal:
/// the other measurements (and the other system) still run.
async fn one_run(ctx: &RunContext<'_>, kind: Kind, repetition: u32) -> RunResult {
    let name = kind.name();
    let mut result = RunResult {
        system: name.into(),
        repetition,
        cold_start_s: None,
        idle: None,
        agents: Vec::new(),
        storms: Vec::new(),
        errors: Vec::new(),
    };
    let say = |what: &str| eprintln!("tether-bench: [{name} #{repetition}] {what}");
    let dir = match tempfile::Builder::new().prefix("tether-bench-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            result.errors.push(format!("temp dir: {e}"));
            return result;
        }
    };
    let log = ctx
        .logs
        .join(format!("{}-{repetition}.log", name.to_lowercase()));
    say("preparing a fresh server (cold start)");
    let prepared = match (kind, ctx.meshcentral) {
        (Kind::Tether, _) => {
            tether::prepare(ctx.bins, dir.path(), ctx.cli.fastcert, ctx.web, log).await
        }
        (Kind::MeshCentral, Some(cache)) => {
            meshcentral::prepare(cache, dir.path(), ctx.cli.fastcert, ctx.web, log).await
        }
        (Kind::MeshCentral, None) => Err(anyhow::anyhow!("MeshCentral is not installed")),
    };
    let (spec, cold) = match prepared {
        Ok(prepared) => prepared,
        Err(e) => {
            result.errors.push(format!("preparing: {e:#}"));
            return result;
        }
    };
    result.cold_start_s = Some(cold.as_secs_f64());
    say(&format!(
        "cold start {:.2} s; idle memory and login",
        cold.as_secs_f64()
    ));
    match measure::idle_and_web(&spec, ctx.web, ctx.settings).await {
        Ok(idle) => result.idle = Some(idle),
        Err(e) => result.errors.push(format!("idle/login: {e:#}")),
    }
    for &agents in &ctx.cli.agents {
        say(&format!("{agents} idle agents"));
        match measure::agents_point(&spec, ctx.web, agents, ctx.settings).await {
            Ok(point) => result.agents.push(point),
            Err(e) => result.errors.push(format!("{agents} agents: {e:#}")),
        }
    }
    for &rate in &ctx.cli.storm_rates {
        say(&format!(
            "connect storm: {} agents at {rate}/s",
            ctx.settings.storm_agents
        ));
        match measure::storm_point(&spec, ctx.web, rate, ctx.settings).await {
            Ok(point) => result.storms.push(point),
            Err(e) => result.errors.push(format!("storm at {rate}/s: {e:#}")),
        }
    }
    for error in &result.errors {
        say(&format!("error: {error}"));
    }
    result
}

fn settings_json(cli: &Cli, isolated: bool) -> serde_json::Value {
    serde_json::json!({
        "agents": cli.agents,
        "repeat": cli.repeat,
        "storm_rates": cli.storm_rates,
        "storm_agents": cli.storm_agents(),
        "ramp_rate": cli.ramp_rate,
        "settle_s": cli.settle,
        "web_samples": cli.web_samples,
        "fastcert": cli.fastcert,
        "agent_key_bits": if cli.small_keys { 2048 } else { 3072 },
        "private_network_namespace": isolated,
    })
}

fn write_json(path: &Path, raw: &Raw) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(raw)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
