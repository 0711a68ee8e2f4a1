//! `tether-loadgen`: many simulated agents from one process, each with its own key, doing the real
//! `/agent.ashx` handshake against a Tether server (or a MeshCentral one: the bytes are the same).
//! Agents start on a fixed schedule (`--rate` per second, not a burst) and the run reports connect
//! times, failures by cause and, with `--server-pid`, the server's memory and CPU over time.
//!
//! Progress goes to stderr; stdout carries only the summary (with `--json`, exactly one object).
//! The exit status is non-zero if any agent failed.

// Kept here, not in the workspace [lints], because they must not reach the integration tests
// (see CONTRIBUTING.md, "Lints").
#![warn(unreachable_pub)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod keys;
mod procstat;
mod report;
mod sim;
mod stats;
mod target;
mod tls;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use tether_common::msh::Msh;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use keys::KeyBits;
use report::RunInfo;
use sim::{Cause, Counters, Failure, Report, Shared};

/// How often a progress line goes to stderr during long runs.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// File descriptors beyond one per agent (stdio, the runtime, key files, /proc reads).
const SPARE_FILES: u64 = 64;

/// Opens N simulated agents against the server a .msh names, and reports how it copes.
#[derive(Debug, Parser)]
#[command(name = "tether-loadgen", version)]
struct Cli {
    /// The install policy naming the server (MeshServer), its identity (ServerID) and the group (MeshID).
    #[arg(long, value_name = "FILE")]
    msh: PathBuf,
    /// How many agents to run.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    agents: u32,
    /// New connections per second, on a fixed schedule.
    #[arg(long, value_name = "PER_SEC", default_value_t = 100.0)]
    rate: f64,
    /// Seconds each agent stays connected once online; 0 disconnects at once. Default: until Ctrl-C.
    #[arg(long, value_name = "SECONDS")]
    hold: Option<u64>,
    /// Print one JSON object instead of the human summary.
    #[arg(long)]
    json: bool,
    /// Where the agents' keys are cached [default: ~/.cache/tether-loadgen/keys-<bits>].
    #[arg(long, value_name = "DIR")]
    keys: Option<PathBuf>,
    /// Sample this process's RSS and CPU every second (the server under test).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,
    /// RSA-2048 keys instead of RSA-3072 (what real agents make): faster to generate and sign.
    #[arg(long)]
    small_keys: bool,
    /// Local addresses to connect from, in turn (comma-separated, e.g. 127.0.0.2,127.0.0.3): each
    /// gives another ~28,000 ephemeral ports towards one server port, for runs beyond that.
    #[arg(long, value_name = "IP,IP", value_delimiter = ',')]
    source_addrs: Vec<std::net::IpAddr>,
    /// Take agent update offers: report this platform and version 0.0.0-loadgen, fetch and check
    /// an offered binary (nothing runs, nothing is written), then reconnect on the new version.
    #[arg(long)]
    accept_updates: bool,
    /// Agents whose connection drops (a server restarted) or cannot be made come back, waiting
    /// as the real agent does (1 s doubling to 60 s, jittered); the summary gives how long each
    /// took to be back (`reconnect_ms_*`).
    #[arg(long)]
    reconnect: bool,
    /// Use the cached keys from this index on, so that several load tools run side by side as
    /// different agents (e.g. 0 and 5000 for two of 5,000 each).
    #[arg(long, value_name = "N", default_value_t = 0)]
    key_offset: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if !(cli.rate.is_finite() && cli.rate > 0.0) {
        bail!("--rate must be a positive number");
    }
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let agents = cli.agents as usize;
    let text = std::fs::read_to_string(&cli.msh)
        .with_context(|| format!("reading {}", cli.msh.display()))?;
    let msh =
        Msh::parse(&text).with_context(|| format!("{} is not a valid .msh", cli.msh.display()))?;
    let target = target::resolve(&msh).await?;
    raise_open_file_limit(agents as u64 + SPARE_FILES)?;

    let bits = if cli.small_keys {
        KeyBits::Rsa2048
    } else {
        KeyBits::Rsa3072
    };
    let key_dir = match cli.keys {
        Some(dir) => dir,
        None => keys::default_dir(bits)?,
    };
    let mut identities = load_keys(key_dir, bits, cli.key_offset + agents).await?;
    identities.drain(..cli.key_offset);

    let stop = CancellationToken::new();
    let url = target.url.clone();
    let shared = Arc::new(Shared {
        target,
        tls: TlsConnector::from(tls::client_config()?),
        hold: cli.hold.map(Duration::from_secs),
        stop: stop.clone(),
        counters: Counters::default(),
        source_addrs: cli.source_addrs.clone(),
        accept_updates: cli.accept_updates,
        reconnect: cli.reconnect,
    });
    tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("tether-loadgen: stopping");
                stop.cancel();
            }
        }
    });
    let sampler = cli.server_pid.and_then(|pid| {
        let sampler = procstat::spawn_sampler(pid, stop.child_token());
        if sampler.is_none() {
            eprintln!("tether-loadgen: cannot read /proc/{pid}; not sampling the server");
        }
        sampler
    });

    let started = Instant::now();
    let done = CancellationToken::new();
    let progress = tokio::spawn(print_progress(
        shared.clone(),
        agents,
        started,
        done.clone(),
    ));
    // Agent i starts at i/rate seconds: a slow server delays nobody's start, so the offered load
    // stays what was asked for.
    let tasks: Vec<_> = identities
        .into_iter()
        .enumerate()
        .map(|(i, identity)| {
            let start_at = started + Duration::from_secs_f64(i as f64 / cli.rate);
            tokio::spawn(sim::run(shared.clone(), i, identity, start_at))
        })
        .collect();
    let mut reports = Vec::with_capacity(agents);
    for task in tasks {
        reports.push(task.await.unwrap_or_else(|e| Report {
            connect: None,
            result: Err(Failure {
                cause: Cause::Internal,
                detail: e.to_string(),
            }),
            reconnects: Vec::new(),
        }));
    }
    let duration = started.elapsed();
    done.cancel();
    let _ = progress.await;
    stop.cancel();
    let samples = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };

    let run = RunInfo {
        url,
        agents,
        rate: cli.rate,
        hold: cli.hold.map(Duration::from_secs),
        key_bits: bits.bits(),
        server_pid: cli.server_pid,
        duration,
    };
    let summary = report::summarize(run, &reports, &samples);
    if cli.json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.human());
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// 10,000 connections need 10,000 descriptors; the usual soft limit is 1,024. The soft limit goes
/// up to the hard one, which an unprivileged process may do.
fn raise_open_file_limit(needed: u64) -> anyhow::Result<()> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("reading RLIMIT_NOFILE")?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard).context("raising RLIMIT_NOFILE")?;
    }
    if hard < needed {
        eprintln!(
            "tether-loadgen: warning: at most {hard} open files (RLIMIT_NOFILE hard limit) for {needed} needed; \
             agents beyond that will fail with `tcp` (raise it with `ulimit -Hn` as root)"
        );
    }
    Ok(())
}

async fn load_keys(
    dir: PathBuf,
    bits: KeyBits,
    count: usize,
) -> anyhow::Result<Vec<keys::Identity>> {
    let started = std::time::Instant::now();
    let loaded = tokio::task::spawn_blocking(move || {
        let progress = |done: usize, total: usize| {
            if done == 1 {
                eprintln!(
                    "tether-loadgen: generating {total} RSA-{} keys into {}",
                    bits.bits(),
                    dir.display()
                );
            }
            // About every 5%, and not for every key of a small batch.
            if done.is_multiple_of((total / 20).max(25)) || done == total {
                eprintln!("tether-loadgen: {done}/{total} keys made");
            }
        };
        keys::load_or_create(&dir, bits, count, &progress)
    })
    .await
    .context("the key loading task failed")??;
    eprintln!(
        "tether-loadgen: {count} identities ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(loaded)
}

async fn print_progress(
    shared: Arc<Shared>,
    agents: usize,
    started: Instant,
    done: CancellationToken,
) {
    let mut ticks = interval(PROGRESS_EVERY);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks.tick().await;
    let mut last_bytes = 0;
    loop {
        tokio::select! {
            _ = done.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let counters = &shared.counters;
        let updates = if shared.accept_updates {
            let bytes = counters.update_bytes.load(Ordering::Relaxed);
            let rate = (bytes - last_bytes) as f64 / PROGRESS_EVERY.as_secs_f64() / 1e6;
            last_bytes = bytes;
            format!(
                "  updated {}  update download {rate:.1} MB/s",
                counters.updated.load(Ordering::Relaxed)
            )
        } else {
            String::new()
        };
        eprintln!(
            "tether-loadgen: {:>6.1} s  online {} / {agents}  authenticated {}  failed {}{updates}",
            started.elapsed().as_secs_f64(),
            counters.online_now.load(Ordering::Relaxed),
            counters.authenticated.load(Ordering::Relaxed),
            counters.failed.load(Ordering::Relaxed),
        );
    }
}
