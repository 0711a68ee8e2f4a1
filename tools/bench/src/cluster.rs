//! Several servers (`--cluster-only`), inside the private namespace:
//! - login and `/control` round trips on one server, with redb and with PostgreSQL;
//! - three servers sharing PostgreSQL and NATS behind HAProxy: idle agents through HAProxy
//!   (RSS per agent over the three), then every server restarted at once and the time until each
//!   agent is back (the load tool's `--reconnect`, which waits as the real agent does);
//! - the same restart of a single MeshCentral holding the same agents.
//!
//! PostgreSQL is the host's (its Unix socket works across network namespaces; `createdb` as the
//! current user); nats-server and HAProxy are Debian's, started here on loopback.
//! Writes `cluster.md` and `cluster.json` into `--out`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::loadgen::{self, Options};
use crate::procs::{self, Guard};
use crate::server::{ServerSpec, Web};
use crate::stats::percentile;
use crate::tether::{self, Binaries};
use crate::{Cli, meshcentral};

const NATS_PORT: u16 = 24222;
/// Two HAProxies, each in front of all three servers and carrying half the agents: one HAProxy
/// needs two descriptors per agent, and this machine caps a process at 20,000.
const HAPROXY_PORTS: [u16; 2] = [24443, 24447];
const SERVER_PORTS: [u16; 3] = [24444, 24445, 24446];
const SINGLE_PORT: u16 = 24440;
const DATABASE: &str = "tether_bench_cluster";
/// Agents join at this rate for the reconnect figure.
const JOIN_RATE: f64 = 500.0;
/// Longest wait for every agent to be back after a restart.
const BACK_WITHIN: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Serialize)]
struct Figures {
    login_ms_p50: Vec<(String, f64)>,
    control_ms_p50: Vec<(String, f64)>,
    agents: u32,
    /// Per server, after all agents are online.
    cluster_rss_kb: Vec<u64>,
    cluster_idle_rss_kb: Vec<u64>,
    storms: Vec<Storm>,
    /// A download through the relay with the real agent and tetherctl, MB/s: both on the first
    /// server, and the agent on the second (its relay end passed on to the first).
    relay_same_server_mb_s: Option<f64>,
    relay_cross_server_mb_s: Option<f64>,
    relay_file_mib: u32,
    errors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Storm {
    system: String,
    /// From the restart until every server served again.
    servers_back_s: f64,
    /// From the restart until every agent was authenticated again.
    all_back_s: Option<f64>,
    reconnect_ms_p50: Option<f64>,
    reconnect_ms_p99: Option<f64>,
    reconnects: usize,
    failed: usize,
}

pub(crate) async fn run(
    cli: &Cli,
    bins: &Binaries,
    meshcentral: Option<&Path>,
) -> anyhow::Result<()> {
    let logs = cli.out.join("logs");
    std::fs::create_dir_all(&logs)?;
    let web = Web::new()?;
    let work = tempfile::tempdir()?;
    let mut figures = Figures {
        agents: cli.agents.iter().copied().max().unwrap_or(1000),
        ..Figures::default()
    };

    say("login and /control round trips: redb");
    match round_trips(
        bins,
        &web,
        cli,
        &work.path().join("redb"),
        &[],
        &logs,
        "redb",
    )
    .await
    {
        Ok((login, control)) => {
            figures.login_ms_p50.push(("redb".into(), login));
            figures.control_ms_p50.push(("redb".into(), control));
        }
        Err(e) => figures.errors.push(format!("redb round trips: {e:#}")),
    }
    recreate_database().await?;
    let key_file = work.path().join("identity.key");
    std::fs::write(&key_file, "7e".repeat(32))?;
    let shared: Vec<OsString> = vec![
        "--db".into(),
        database_url().into(),
        "--identity-key-file".into(),
        key_file.clone().into(),
    ];
    say("login and /control round trips: PostgreSQL");
    match round_trips(
        bins,
        &web,
        cli,
        &work.path().join("pg"),
        &shared,
        &logs,
        "postgres",
    )
    .await
    {
        Ok((login, control)) => {
            figures.login_ms_p50.push(("PostgreSQL".into(), login));
            figures.control_ms_p50.push(("PostgreSQL".into(), control));
        }
        Err(e) => figures
            .errors
            .push(format!("PostgreSQL round trips: {e:#}")),
    }

    say(&format!(
        "three servers behind HAProxy: {} agents, then all restarted",
        figures.agents
    ));
    recreate_database().await?;
    if let Err(e) = cluster_storm(cli, bins, &web, work.path(), &shared, &logs, &mut figures).await
    {
        figures.errors.push(format!("cluster: {e:#}"));
    }
    if let Some(cache) = meshcentral {
        say(&format!(
            "MeshCentral: {} agents, then restarted",
            figures.agents
        ));
        match meshcentral_storm(cli, bins, &web, cache, work.path(), &logs, figures.agents).await {
            Ok(storm) => figures.storms.push(storm),
            Err(e) => figures.errors.push(format!("MeshCentral: {e:#}")),
        }
    }
    let _ = Command::new("dropdb")
        .args(["--if-exists", DATABASE])
        .status()
        .await;
    std::fs::write(
        cli.out.join("cluster.json"),
        serde_json::to_string_pretty(&figures)?,
    )?;
    std::fs::write(cli.out.join("cluster.md"), markdown(&figures))?;
    say(&format!("wrote {}", cli.out.join("cluster.md").display()));
    Ok(())
}

fn say(what: &str) {
    eprintln!("tether-bench: {what}");
}

fn database_url() -> String {
    format!("postgres:///{DATABASE}?host=/var/run/postgresql")
}

async fn recreate_database() -> anyhow::Result<()> {
    let _ = Command::new("dropdb")
        .args(["--if-exists", DATABASE])
        .status()
        .await;
    let status = Command::new("createdb")
        .arg(DATABASE)
        .status()
        .await
        .context("running createdb (is PostgreSQL installed and running?)")?;
    if !status.success() {
        bail!("createdb {DATABASE} failed");
    }
    Ok(())
}

/// One server on `extra` (a database, or none): login p50 and `/control` listGroups p50.
async fn round_trips(
    bins: &Binaries,
    web: &Web,
    cli: &Cli,
    dir: &Path,
    extra: &[OsString],
    logs: &Path,
    name: &str,
) -> anyhow::Result<(f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let log = logs.join(format!("cluster-{name}.log"));
    let (spec, _) =
        tether::prepare_on(bins, dir, SINGLE_PORT, extra, cli.fastcert, web, log).await?;
    let mut running = spec.start(web).await?;
    let result = async {
        let mut logins = Vec::new();
        for _ in 0..cli.web_samples.max(20) {
            let started = Instant::now();
            if !spec.login(web).await? {
                bail!("login refused");
            }
            logins.push(millis(started.elapsed()));
        }
        let cookie = spec.session(web).await?;
        let control = control_round_trips(&spec, &cookie, 200).await?;
        Ok((median(&logins), median(&control)))
    }
    .await;
    running.guard.stop().await;
    result
}

/// `n` listGroups requests on one `/control` connection, each awaited: their round trips (ms).
async fn control_round_trips(spec: &ServerSpec, cookie: &str, n: u32) -> anyhow::Result<Vec<f64>> {
    let mut request =
        format!("{}/control", spec.base_url.replace("https://", "wss://")).into_client_request()?;
    request.headers_mut().insert("cookie", cookie.parse()?);
    let tls = tether_net::tls::leaf_checked_config(Arc::new(tether_net::tls::AcceptAny))?;
    let (mut socket, _) = tokio_tungstenite::connect_async_tls_with_config(
        request,
        None,
        true,
        Some(tokio_tungstenite::Connector::Rustls(Arc::new(tls))),
    )
    .await
    .context("opening /control")?;
    let mut times = Vec::new();
    for id in 1..=n {
        let started = Instant::now();
        let text = format!(r#"{{"action":"listGroups","id":{id}}}"#);
        socket.send(Message::text(text)).await?;
        let wanted = format!(r#""id":{id}"#);
        loop {
            match tokio::time::timeout(Duration::from_secs(30), socket.next()).await {
                Ok(Some(Ok(Message::Text(reply)))) if reply.contains(&wanted) => break,
                Ok(Some(Ok(_))) => continue,
                other => bail!("/control: no reply to request {id}: {other:?}"),
            }
        }
        times.push(millis(started.elapsed()));
    }
    Ok(times)
}

/// A program of the namespace's own (nats-server, HAProxy), logged to `logs`.
fn spawn(name: &str, program: &str, args: &[&str], logs: &Path) -> anyhow::Result<Guard> {
    let mut command = Command::new(program);
    command.args(args);
    Guard::spawn(name, command, &logs.join(format!("cluster-{name}.log")))
}

async fn cluster_storm(
    cli: &Cli,
    bins: &Binaries,
    web: &Web,
    work: &Path,
    shared: &[OsString],
    logs: &Path,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let mut nats = spawn(
        "nats",
        "/usr/sbin/nats-server",
        &["-a", "127.0.0.1", "-p", &NATS_PORT.to_string()],
        logs,
    )?;
    let mut extra = shared.to_vec();
    extra.extend([
        "--nats".into(),
        format!("nats://127.0.0.1:{NATS_PORT}").into(),
    ]);
    // The first server makes the account, the group and the shared identity; the others reuse
    // its database and differ in port and data folder.
    let first_dir = work.join("cluster-1");
    std::fs::create_dir_all(&first_dir)?;
    let (first, _) = tether::prepare_on(
        bins,
        &first_dir,
        SERVER_PORTS[0],
        &extra,
        cli.fastcert,
        web,
        logs.join("cluster-server-1.log"),
    )
    .await?;
    let mut specs = vec![first];
    for (i, port) in SERVER_PORTS.iter().enumerate().skip(1) {
        let dir = work.join(format!("cluster-{}", i + 1));
        std::fs::create_dir_all(&dir)?;
        let args = tether::server_args(&dir.join("tether-data"), *port, &extra, cli.fastcert);
        specs.push(ServerSpec {
            args,
            cwd: dir.clone(),
            base_url: format!("https://127.0.0.1:{port}"),
            log: logs.join(format!("cluster-server-{}.log", i + 1)),
            ..clone_spec(&specs[0])
        });
    }
    let mut running = Vec::new();
    for spec in &specs {
        running.push(spec.start(web).await?);
    }
    let per_proxy = figures.agents.div_ceil(HAPROXY_PORTS.len() as u32);
    let mut proxies = Vec::new();
    let mut groups = Vec::new();
    let text = std::fs::read_to_string(&specs[0].msh)?;
    for (i, port) in HAPROXY_PORTS.iter().enumerate() {
        let config = work.join(format!("haproxy-{i}.cfg"));
        std::fs::write(&config, haproxy_config_text(*port, per_proxy))?;
        proxies.push(spawn(
            &format!("haproxy-{i}"),
            "/usr/sbin/haproxy",
            &["-db", "-f", config.to_str().unwrap_or_default()],
            logs,
        )?);
        let msh = work.join(format!("cluster-{i}.msh"));
        let pointed = text
            .lines()
            .map(|line| {
                if line.starts_with("MeshServer=") {
                    format!("MeshServer=wss://127.0.0.1:{port}/agent.ashx")
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&msh, pointed)?;
        let agents = per_proxy.min(figures.agents - per_proxy * i as u32);
        groups.push(Group {
            msh,
            agents,
            key_offset: (per_proxy * i as u32) as usize,
        });
    }
    if cli.relay_mib > 0 {
        say(&format!(
            "relay across servers: {} MiB with the real agent, same server and across",
            cli.relay_mib
        ));
        relay_across(cli, &specs[0], running[0].guard.pid(), work, logs, figures).await;
    }
    tokio::time::sleep(Duration::from_secs(cli.settle)).await;
    figures.cluster_idle_rss_kb = running
        .iter()
        .map(|r| procs::tree_rss_kb(r.guard.pid()).unwrap_or(0))
        .collect();

    let storm = restart_storm(
        &bins.loadgen,
        &groups,
        cli,
        logs,
        "Tether, three servers",
        async {
            figures.cluster_rss_kb = running
                .iter()
                .map(|r| procs::tree_rss_kb(r.guard.pid()).unwrap_or(0))
                .collect();
            // All at once, as an upgrade or a power cut would: stopped together, started together.
            futures_util::future::join_all(running.iter_mut().map(|r| r.guard.stop())).await;
            running = futures_util::future::try_join_all(specs.iter().map(|spec| spec.start(web)))
                .await?;
            Ok(())
        },
    )
    .await;
    for server in &mut running {
        server.guard.stop().await;
    }
    for proxy in &mut proxies {
        proxy.stop().await;
    }
    nats.stop().await;
    figures.storms.push(storm?);
    Ok(())
}

/// Downloads with the agent on the first server and on the second, tetherctl on the first.
async fn relay_across(
    cli: &Cli,
    first: &ServerSpec,
    first_pid: u32,
    work: &Path,
    logs: &Path,
    figures: &mut Figures,
) {
    figures.relay_file_mib = cli.relay_mib;
    let settings = |name: &str| crate::relay::RelaySettings {
        file_mib: cli.relay_mib,
        echo_samples: cli.echo_samples,
        work: work.join(name),
        logs: logs.to_path_buf(),
    };
    match crate::relay::relay_on(first, &settings("relay-same"), first_pid).await {
        Ok(point) => figures.relay_same_server_mb_s = point.relayed.download_mb_s,
        Err(e) => figures.errors.push(format!("relay, same server: {e:#}")),
    }
    let msh = work.join("relay-cross.msh");
    let pointed = std::fs::read_to_string(&first.msh).map(|text| {
        text.replace(
            &format!("127.0.0.1:{}/", SERVER_PORTS[0]),
            &format!("127.0.0.1:{}/", SERVER_PORTS[1]),
        )
    });
    let written = pointed.and_then(|text| std::fs::write(&msh, text));
    if let Err(e) = written {
        figures.errors.push(format!("relay, across servers: {e}"));
        return;
    }
    let across = ServerSpec {
        msh,
        ..clone_spec(first)
    };
    match crate::relay::relay_on(&across, &settings("relay-cross"), first_pid).await {
        Ok(point) => figures.relay_cross_server_mb_s = point.relayed.download_mb_s,
        Err(e) => figures.errors.push(format!("relay, across servers: {e:#}")),
    }
}

async fn meshcentral_storm(
    cli: &Cli,
    bins: &Binaries,
    web: &Web,
    cache: &Path,
    work: &Path,
    logs: &Path,
    agents: u32,
) -> anyhow::Result<Storm> {
    let dir = work.join("meshcentral");
    std::fs::create_dir_all(&dir)?;
    let (spec, _) = meshcentral::prepare(
        cache,
        &dir,
        cli.fastcert,
        web,
        logs.join("cluster-meshcentral.log"),
    )
    .await?;
    let mut running = spec.start(web).await?;
    let group = Group {
        msh: spec.msh.clone(),
        agents,
        key_offset: 0,
    };
    let storm = restart_storm(
        &bins.loadgen,
        std::slice::from_ref(&group),
        cli,
        logs,
        "MeshCentral, one server",
        async {
            running.guard.stop().await;
            running = spec.start(web).await?;
            Ok(())
        },
    )
    .await;
    running.guard.stop().await;
    storm
}

/// Agents of one load tool.
struct Group {
    msh: std::path::PathBuf,
    agents: u32,
    key_offset: usize,
}

/// Each group's agents join with `--reconnect` (one load tool per group); once all are online,
/// `restart` runs; then the wait until all are back, and each agent's way back.
async fn restart_storm(
    loadgen_binary: &Path,
    groups: &[Group],
    cli: &Cli,
    logs: &Path,
    system: &str,
    restart: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<Storm> {
    let mut tools = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let options = Options {
            binary: loadgen_binary,
            msh: &group.msh,
            agents: group.agents,
            rate: JOIN_RATE / groups.len() as f64,
            hold: None,
            small_keys: cli.small_keys,
            log: logs.join(format!(
                "loadgen-{}-{i}-reconnect.log",
                system.split(',').next().unwrap_or(system).to_lowercase()
            )),
            reconnect: true,
            key_offset: group.key_offset,
        };
        tools.push(loadgen::start(&options)?);
    }
    for (tool, group) in tools.iter_mut().zip(groups) {
        let settled = tool
            .wait_settled(group.agents, JOIN_RATE / groups.len() as f64)
            .await?;
        if settled.online < group.agents {
            bail!(
                "only {} of {} agents came online",
                settled.online,
                group.agents
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(cli.settle)).await;
    let restarted = Instant::now();
    restart.await?;
    let servers_back_s = restarted.elapsed().as_secs_f64();
    // Progress lines come every 5 s: wait for one that shows every agent back.
    let deadline = restarted + BACK_WITHIN;
    for (tool, group) in tools.iter_mut().zip(groups) {
        loop {
            let progress = tool.next_progress().await;
            if progress.online >= group.agents && restarted.elapsed() > Duration::from_secs(6) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "agents not back within {BACK_WITHIN:?}: {} online",
                    progress.online
                );
            }
        }
    }
    let mut back = Vec::new();
    let mut failed = 0;
    for tool in tools {
        let summary = tool.finish().await?;
        back.extend(summary.reconnect_ms);
        failed += summary.failed;
    }
    let max = back
        .iter()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    Ok(Storm {
        system: system.to_owned(),
        servers_back_s,
        // Every agent lost its connection within the restart's first moments, so the longest
        // way back is when the last one was online again.
        all_back_s: max.map(|ms| ms / 1000.0),
        reconnect_ms_p50: percentile(&back, 50.0),
        reconnect_ms_p99: percentile(&back, 99.0),
        reconnects: back.len(),
        failed,
    })
}

fn clone_spec(spec: &ServerSpec) -> ServerSpec {
    ServerSpec {
        kind: spec.kind,
        program: spec.program.clone(),
        args: spec.args.clone(),
        cwd: spec.cwd.clone(),
        base_url: spec.base_url.clone(),
        user: spec.user.clone(),
        password: spec.password.clone(),
        msh: spec.msh.clone(),
        log: spec.log.clone(),
        tools: match &spec.tools {
            crate::server::Tools::Tether {
                ctl,
                agent,
                root_cert,
            } => crate::server::Tools::Tether {
                ctl: ctl.clone(),
                agent: agent.clone(),
                root_cert: root_cert.clone(),
            },
            crate::server::Tools::MeshCentral { install } => crate::server::Tools::MeshCentral {
                install: install.clone(),
            },
        },
    }
}

fn haproxy_config_text(port: u16, agents: u32) -> String {
    let servers: String = SERVER_PORTS
        .iter()
        .enumerate()
        .map(|(i, port)| format!("    server s{i} 127.0.0.1:{port} check inter 1s fall 2 rise 2\n"))
        .collect();
    format!(
        "global\n    maxconn {}\n\
         defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n    retries 3\n    option redispatch\n\
         frontend tether\n    bind 127.0.0.1:{port}\n    default_backend servers\n\
         backend servers\n    balance leastconn\n{servers}",
        agents + 200
    )
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &[f64]) -> f64 {
    percentile(values, 50.0).unwrap_or(f64::NAN)
}

fn markdown(f: &Figures) -> String {
    let mut out = String::from("# Several servers\n\n");
    let _ = writeln!(
        out,
        "| backend | login p50 (ms) | /control listGroups p50 (ms) |"
    );
    let _ = writeln!(out, "|---|---|---|");
    for ((name, login), (_, control)) in f.login_ms_p50.iter().zip(&f.control_ms_p50) {
        let _ = writeln!(out, "| {name} | {login:.2} | {control:.3} |");
    }
    if !f.cluster_rss_kb.is_empty() {
        let total: u64 = f.cluster_rss_kb.iter().sum();
        let idle: u64 = f.cluster_idle_rss_kb.iter().sum();
        let per_agent = (total.saturating_sub(idle)) as f64 / f64::from(f.agents.max(1));
        let _ = writeln!(
            out,
            "\nThree servers holding {} agents through HAProxy: RSS per server {:?} kB (idle {:?} kB), {per_agent:.1} kB per agent.\n",
            f.agents, f.cluster_rss_kb, f.cluster_idle_rss_kb
        );
    }
    let _ = writeln!(
        out,
        "| restart of | servers serving again after (s) | every agent back after (s) | reconnect p50 (ms) | p99 (ms) | reconnects | failed |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for s in &f.storms {
        let show = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {} | {} | {} | {} |",
            s.system,
            s.servers_back_s,
            s.all_back_s.map_or("–".to_owned(), |v| format!("{v:.1}")),
            show(s.reconnect_ms_p50),
            show(s.reconnect_ms_p99),
            s.reconnects,
            s.failed
        );
    }
    if f.relay_same_server_mb_s.is_some() || f.relay_cross_server_mb_s.is_some() {
        let show = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "\n{} MiB download through the relay (real agent, tetherctl on the first server): agent on the same server {} MB/s, agent on another server {} MB/s.",
            f.relay_file_mib,
            show(f.relay_same_server_mb_s),
            show(f.relay_cross_server_mb_s)
        );
    }
    for e in &f.errors {
        let _ = writeln!(out, "\nerror: {e}");
    }
    out
}
