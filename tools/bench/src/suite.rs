//! One whole run: every repetition of every system, then the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::report::{Raw, RunResult};
use crate::server::{Kind, Web};
use crate::tether::{self, Binaries};
use crate::{
    Cli, System, desktop, machine, markdown, measure, meshcentral, netns, relay, release_dir,
};

pub(crate) async fn run(
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
            let wanted = match kind {
                Kind::Tether => cli.systems.contains(&System::Tether),
                Kind::MeshCentral => meshcentral.is_some(),
            };
            if !wanted {
                continue;
            }
            let ctx = RunContext {
                cli,
                bins: &bins,
                web: &web,
                settings: &settings,
                meshcentral: meshcentral.as_deref(),
                logs: &logs,
                workspace,
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
    workspace: &'a Path,
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
        relay: None,
        desktop: None,
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
    // The relay goes first, while the server holds only the real agent: with thousands of
    // (now offline) load-tool devices in its list, MeshCentral's meshctrl could not pick out the
    // real agent within two minutes.
    if ctx.cli.relay_mib > 0 && !ctx.cli.desktop_only {
        say(&format!(
            "relay: {} MiB download and terminal echo with the real agent",
            ctx.cli.relay_mib
        ));
        let settings = relay::RelaySettings {
            file_mib: ctx.cli.relay_mib,
            echo_samples: ctx.cli.echo_samples,
            work: dir.path().join("relay"),
            logs: ctx.logs.to_path_buf(),
        };
        match relay::relay_point(&spec, ctx.web, &settings).await {
            Ok(point) => result.relay = Some(point),
            Err(e) => result.errors.push(format!("relay: {e:#}")),
        }
    }
    if ctx.cli.desktop_seconds > 0 && !ctx.cli.relay_only {
        say(&format!(
            "desktop: five scenes of {} s each in the system's own web viewer",
            ctx.cli.desktop_seconds
        ));
        let settings = desktop::DesktopSettings {
            seconds: ctx.cli.desktop_seconds,
            clicks: ctx.cli.desktop_clicks,
            work: dir.path().join("desktop"),
            logs: ctx.logs.to_path_buf(),
            xprobe: ctx.bins.xprobe.clone(),
            browser: desktop::BrowserParts::in_workspace(ctx.workspace),
            pictures: ctx.cli.out.join("desktop"),
        };
        match desktop::desktop_point(&spec, ctx.web, &settings).await {
            Ok(point) => result.desktop = Some(point),
            Err(e) => result.errors.push(format!("desktop: {e:#}")),
        }
    }
    let (agent_counts, storm_rates): (&[u32], &[f64]) =
        if ctx.cli.relay_only || ctx.cli.desktop_only {
            (&[], &[])
        } else {
            (&ctx.cli.agents, &ctx.cli.storm_rates)
        };
    for &agents in agent_counts {
        say(&format!("{agents} idle agents"));
        match measure::agents_point(&spec, ctx.web, agents, ctx.settings).await {
            Ok(point) => result.agents.push(point),
            Err(e) => result.errors.push(format!("{agents} agents: {e:#}")),
        }
    }
    for &rate in storm_rates {
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
        "systems": cli.systems.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>(),
        "agents": cli.agents,
        "repeat": cli.repeat,
        "storm_rates": cli.storm_rates,
        "storm_agents": cli.storm_agents(),
        "ramp_rate": cli.ramp_rate,
        "settle_s": cli.settle,
        "web_samples": cli.web_samples,
        "relay_mib": cli.relay_mib,
        "relay_only": cli.relay_only,
        "desktop_seconds": cli.desktop_seconds,
        "desktop_clicks": cli.desktop_clicks,
        "desktop_only": cli.desktop_only,
        "echo_samples": cli.echo_samples,
        "fastcert": cli.fastcert,
        "agent_key_bits": if cli.small_keys { 2048 } else { 3072 },
        "private_network_namespace": isolated,
    })
}

fn write_json(path: &Path, raw: &Raw) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(raw)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
