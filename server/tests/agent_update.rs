//! Agent self-update with real agents at two versions: the one `cargo build` makes, and one
//! built with `TETHER_AGENT_VERSION=0.0.1-old` and copied to `tether-agent-old` next to it
//! (`scripts/test.sh` does both). Each agent is installed the way `install.sh` installs it: binary
//! and `.msh` in one folder.
//!
//! - a campaign over 50 agents in four waves reaches every one (each downloads, tries, swaps and
//!   `exec`s the new version in the same process), then one is rolled back by hand;
//! - a shipped binary that fails its trial run pauses the campaign after the first wave, and
//!   that agent stays on its version, online;
//! - a binary changed on the server's disk after it was signed is refused by the agent.

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::future::join_all;
use tether_common::agent_update::{AgentUpdates, CampaignInfo, CampaignState};
use tether_common::control::{
    Event, GetAgentUpdates, ListDevices, RollbackAgent, StartAgentUpdate,
};
use tether_common::ids::DeviceId;
use tokio::time::{Instant, sleep};

use support::{AgentProcess, Fixture};

const OLD: &str = "0.0.1-old";
/// Where the server looks first for the agent it ships (`install/binary.rs`).
const SHIPPED: &str = "agents/tether-agent-linux-x86_64";

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tether-server"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The old-version agent, or `None` (and a note) outside CI when it was not built.
fn old_agent() -> Option<PathBuf> {
    let path = std::env::var_os("TETHER_AGENT_OLD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir().join("tether-agent-old"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: scripts/test.sh builds it (TETHER_AGENT_VERSION={OLD} cargo build -p tether-agent)",
        path.display()
    );
    eprintln!("skipping: no {} (see scripts/test.sh)", path.display());
    None
}

/// A copy of `binary` without debug information (a debug agent is ~300 MB, stripped ~25 MB).
fn stripped(binary: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    let status = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(to)
        .arg(binary)
        .status()
        .expect("strip (binutils)");
    assert!(status.success());
}

/// Makes the server ship `binary` (stripped).
fn ship(fx: &Fixture, binary: &Path) {
    stripped(binary, &fx.server.file(SHIPPED));
}

/// A stripped copy of the old agent in the test's folder, for [`install`] to link from.
fn install_source(fx: &Fixture, old: &Path) -> PathBuf {
    let copy = fx.dir.path().join("tether-agent-old");
    stripped(old, &copy);
    copy
}

/// An agent installed as `install.sh` installs one: `folder/tether-agent` (a hard link to
/// `binary`, so fifty installs cost no disk), `folder/agent.msh`, `folder/state`.
async fn install(fx: &Fixture, binary: &Path, name: String) -> (PathBuf, AgentProcess) {
    let folder = fx.dir.path().join(&name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::hard_link(binary, folder.join("tether-agent")).unwrap();
    std::fs::write(folder.join("agent.msh"), &fx.msh).unwrap();
    let agent = start(&folder).await;
    (folder, agent)
}

async fn start(folder: &Path) -> AgentProcess {
    AgentProcess::spawn_binary(
        &folder.join("tether-agent"),
        &folder.join("agent.msh"),
        &folder.join("state"),
        &[],
    )
    .await
}

/// Waits until every device in `devices` is online and reports `version`.
async fn wait_versions(fx: &mut Fixture, devices: &[DeviceId], version: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let listed = fx.control.ok(ListDevices { group: None }).await;
        let ready = devices.iter().all(|id| {
            listed.iter().any(|d| {
                &d.id == id
                    && d.online
                    && d.agent.as_ref().is_some_and(|a| a.agent_version == version)
            })
        });
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not every device came online on {version}\n{}",
            fx.server.stderr()
        );
        sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `agentUpdates` until the campaign is no longer running.
async fn wait_settled(fx: &mut Fixture) -> CampaignInfo {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let status: AgentUpdates = fx.control.ok(GetAgentUpdates {}).await;
        let campaign = status.campaign.expect("a campaign");
        if campaign.state != CampaignState::Running {
            return campaign;
        }
        assert!(
            Instant::now() < deadline,
            "the campaign is still running: {campaign:?}\n{}",
            fx.server.stderr()
        );
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn fifty_agents_update_in_four_waves_and_one_rolls_back() {
    let Some(old) = old_agent() else { return };
    let mut fx = Fixture::start().await;
    let new = bin_dir().join("tether-agent");
    ship(&fx, &new);
    let old_copy = install_source(&fx, &old);

    let installs = join_all((0..50).map(|i| install(&fx, &old_copy, format!("pc{i:02}")))).await;
    let devices: Vec<DeviceId> = installs.iter().map(|(_, a)| a.device_id.clone()).collect();
    wait_versions(&mut fx, &devices, OLD).await;

    let started = fx
        .control
        .ok(StartAgentUpdate {
            group: None,
            waves: vec![1, 10, 50, 100],
            wave_timeout_secs: 120,
            max_failures: 0,
        })
        .await;
    let new_version = started.version.clone();
    assert_ne!(new_version, OLD);
    assert_eq!(started.total, 50);
    // The first wave is one device (1 % of 50, at least one).
    assert_eq!(started.counts.offered, 1, "{started:?}");
    assert_eq!(started.counts.waiting, 49);

    let done = wait_settled(&mut fx).await;
    assert_eq!(done.state, CampaignState::Done, "{done:?}");
    assert_eq!(done.counts.updated, 50, "{done:?}");
    assert!(done.problems.is_empty());
    wait_versions(&mut fx, &devices, &new_version).await;
    fx.wait_event("the campaign's end in the audit log", |e| {
        matches!(e, Event::Logged { record } if record.kind == "agent_update" && record.message.ends_with("done"))
    })
    .await;

    // Each agent became the new version in its own process (exec), and kept the old binary.
    let mut installs = installs;
    let new_bytes = std::fs::read(fx.server.file(SHIPPED)).unwrap();
    for (folder, agent) in &mut installs {
        agent.wait_line("tether-agent restarting as ").await;
        agent.wait_line("tether-agent connected ").await;
        assert!(std::fs::read(folder.join("tether-agent")).unwrap() == new_bytes);
        assert!(folder.join("tether-agent.old").exists());
        assert!(!folder.join("tether-agent.new").exists());
    }

    // One device back to its previous version, by hand.
    let (folder, agent) = &mut installs[7];
    fx.control
        .ok(RollbackAgent {
            device: agent.device_id.clone(),
        })
        .await;
    agent.wait_line("tether-agent rolling back").await;
    agent.wait_line("tether-agent connected ").await;
    wait_versions(&mut fx, std::slice::from_ref(&agent.device_id), OLD).await;
    assert!(!folder.join("tether-agent.old").exists());
}

#[tokio::test]
async fn a_binary_that_fails_its_trial_pauses_the_campaign_after_the_first_wave() {
    let Some(old) = old_agent() else { return };
    let mut fx = Fixture::start().await;
    // Carries a version marker, so the server ships it; cannot start as an agent.
    let broken =
        "#!/bin/sh\n# tether-agent-version:9.9.9-broken;\necho 'cannot start' >&2\nexit 3\n";
    let shipped = fx.server.file(SHIPPED);
    std::fs::create_dir_all(shipped.parent().unwrap()).unwrap();
    std::fs::write(&shipped, broken).unwrap();
    let old_copy = install_source(&fx, &old);
    let mut installs = join_all((0..3).map(|i| install(&fx, &old_copy, format!("pc{i}")))).await;
    let devices: Vec<DeviceId> = installs.iter().map(|(_, a)| a.device_id.clone()).collect();
    wait_versions(&mut fx, &devices, OLD).await;

    fx.control
        .ok(StartAgentUpdate {
            group: Some(fx.group.clone()),
            waves: vec![1, 100],
            wave_timeout_secs: 120,
            max_failures: 0,
        })
        .await;
    let paused = wait_settled(&mut fx).await;
    assert_eq!(paused.state, CampaignState::Paused, "{paused:?}");
    assert_eq!(paused.wave, 1);
    assert_eq!(paused.counts.rolled_back, 1, "{paused:?}");
    assert_eq!(paused.counts.waiting, 2, "the second wave never started");
    let problem = &paused.problems[0];
    assert!(
        problem.why.contains("trial run failed") && problem.why.contains("cannot start"),
        "{problem:?}"
    );

    // The agent that tried is on its old binary, online; the others were never offered.
    let tried = installs
        .iter()
        .position(|(_, a)| a.device_id == problem.device)
        .unwrap();
    let (folder, agent) = &mut installs[tried];
    agent.wait_line("tether-agent update failed: ").await;
    assert!(
        std::fs::read(folder.join("tether-agent")).unwrap() == std::fs::read(&old_copy).unwrap()
    );
    assert!(!folder.join("tether-agent.new").exists());
    wait_versions(&mut fx, &devices, OLD).await;
    for (_, agent) in installs
        .iter_mut()
        .filter(|(_, a)| a.device_id != problem.device)
    {
        agent.wait_line("tether-agent connected ").await;
        agent.drain();
        let offered = agent
            .seen
            .iter()
            .any(|l| l.starts_with("tether-agent trying version"));
        assert!(!offered, "a device was tried: {:?}", agent.seen);
    }
}

#[tokio::test]
async fn a_binary_changed_after_signing_is_refused() {
    let Some(old) = old_agent() else { return };
    let mut fx = Fixture::start().await;
    ship(&fx, &bin_dir().join("tether-agent"));
    let old_copy = install_source(&fx, &old);
    let (folder, agent) = install(&fx, &old_copy, "pc".into()).await;
    let device = agent.device_id.clone();
    wait_versions(&mut fx, std::slice::from_ref(&device), OLD).await;
    // Offline while the campaign starts: it is offered the update when it comes back.
    drop(agent);
    fx.wait_device(&device, "offline", |d| !d.online).await;

    fx.control
        .ok(StartAgentUpdate {
            group: None,
            waves: vec![100],
            wave_timeout_secs: 120,
            max_failures: 0,
        })
        .await;
    // Someone with the server's disk swaps one byte of the frozen, signed copy.
    let releases = fx.server.file("agents/releases");
    let frozen = std::fs::read_dir(&releases)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| !p.to_string_lossy().ends_with(".partial"))
        .expect("the frozen release");
    let mut bytes = std::fs::read(&frozen).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&frozen, bytes).unwrap();

    let mut agent = start(&folder).await;
    let refused = agent.wait_line("tether-agent update failed: ").await;
    assert!(
        refused.contains("does not match the signed SHA-384"),
        "{refused}"
    );
    let paused = wait_settled(&mut fx).await;
    assert_eq!(paused.state, CampaignState::Paused, "{paused:?}");
    assert!(paused.problems[0].why.contains("signed SHA-384"));
    assert!(!folder.join("tether-agent.new").exists());
    wait_versions(&mut fx, &[device], OLD).await;
}

#[tokio::test]
async fn a_server_started_with_auto_update_updates_its_agents() {
    let Some(old) = old_agent() else { return };
    let mut fx = Fixture::start().await;
    ship(&fx, &bin_dir().join("tether-agent"));
    let old_copy = install_source(&fx, &old);
    let (folder, mut agent) = install(&fx, &old_copy, "pc".into()).await;
    let device = agent.device_id.clone();
    wait_versions(&mut fx, std::slice::from_ref(&device), OLD).await;

    // An operator upgrades the server: it stops, starts again with auto-update on.
    fx.server.stop().await;
    std::fs::write(fx.server.file("config.toml"), "agent_auto_update = true\n").unwrap();
    fx.server.restart().await;
    fx.reconnect_control().await;

    agent.wait_line("tether-agent restarting as ").await;
    let done = wait_settled(&mut fx).await;
    assert_eq!(done.state, CampaignState::Done, "{done:?}");
    assert_eq!((done.total, done.started_by.0.as_str()), (1, "server"));
    wait_versions(&mut fx, &[device], &done.version).await;
    assert!(folder.join("tether-agent.old").exists());
}

/// Figure, not a check: how long one agent's update takes, from the campaign's start (the offer)
/// to the console's event that the device reports the new version: download, trial run, swap,
/// restart and reconnect. Then it is rolled back by hand (also timed), five times; medians.
/// Run alone, with release builds:
/// `TETHER_SERVER_BIN=… TETHER_AGENT_NEW_BIN=… TETHER_AGENT_OLD_BIN=… cargo test -p tether-server
/// --test agent_update one_agent_update_figure -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a figure: run alone, with release builds"]
async fn one_agent_update_figure() {
    let Some(old) = old_agent() else { return };
    let new = std::env::var_os("TETHER_AGENT_NEW_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| bin_dir().join("tether-agent"));
    // Each round admits the device three times (trial, new version, old version again): more
    // than the default ten a minute allow for a reconnect loop.
    let mut fx = Fixture::start_with_config("agent_admissions_per_minute = 1000\n").await;
    ship(&fx, &new);
    let old_copy = install_source(&fx, &old);
    let (_folder, mut agent) = install(&fx, &old_copy, "pc".into()).await;
    let device = agent.device_id.clone();
    wait_versions(&mut fx, std::slice::from_ref(&device), OLD).await;
    let size = std::fs::metadata(fx.server.file(SHIPPED)).unwrap().len();

    let reports = |fx_version: &str, e: &Event| {
        matches!(e, Event::DeviceChanged { device: d } if d.id == device
            && d.agent.as_ref().is_some_and(|a| a.agent_version == fx_version))
    };
    let (mut updates, mut rollbacks) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        let campaign = fx
            .control
            .ok(StartAgentUpdate {
                group: None,
                waves: vec![100],
                wave_timeout_secs: 120,
                max_failures: 0,
            })
            .await;
        let version = campaign.version.clone();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match fx.control.try_next_event(left).await {
                Some(e) if reports(&version, &e) => break,
                Some(_) => {}
                None => {
                    agent.drain();
                    panic!("no new version: {:?}\n{}", agent.seen, agent.log())
                }
            }
        }
        updates.push(started.elapsed());
        agent.wait_line("tether-agent connected ").await;

        let started = Instant::now();
        fx.control
            .ok(RollbackAgent {
                device: device.clone(),
            })
            .await;
        fx.wait_event("the old version", |e| reports(OLD, e)).await;
        rollbacks.push(started.elapsed());
        agent.wait_line("tether-agent connected ").await;
        // The campaign is done: the next one may start.
        assert_eq!(wait_settled(&mut fx).await.state, CampaignState::Done);
    }
    updates.sort();
    rollbacks.sort();
    println!(
        "FIGURE agent update, offer to online on the new version ({:.1} MB binary): median {:?} (runs {updates:?}); rollback to online: median {:?}",
        size as f64 / 1e6,
        updates[2],
        rollbacks[2]
    );
}
