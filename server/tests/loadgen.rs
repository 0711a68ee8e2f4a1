//! The agent load tool (`tether-loadgen`) against the real server: a small run where every agent
//! must get online and be listed, and runs that must fail, by the right cause.
//! Build every binary first (`cargo build --workspace --bins`), as `scripts/test.sh` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use tether_common::agent_update::{CampaignInfo, CampaignState};
use tether_common::control::{CreateGroup, GetAgentUpdates, ListDevices, StartAgentUpdate};
use tether_common::ids::GroupId;
use tether_common::msh::Msh;
use tokio::process::Command;
use tokio::time::timeout;

use common::TestServer;

/// Covers making a handful of RSA-2048 keys and the run itself on a busy machine.
const RUN_DEADLINE: Duration = Duration::from_secs(300);
const ADMIN: (&str, &str) = ("admin", "correct horse battery staple");

fn loadgen_binary() -> PathBuf {
    // TETHER_LOADGEN_BIN swaps in another build (release, for figures).
    let path = std::env::var_os("TETHER_LOADGEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tether-loadgen")
        });
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs the tool with `--json --small-keys --keys DIR` plus `args`; (exit status, summary).
async fn run_loadgen(msh: &Path, keys: &Path, args: &[&str]) -> (Output, Value) {
    let mut command = Command::new(loadgen_binary());
    command
        .arg("--msh")
        .arg(msh)
        .arg("--keys")
        .arg(keys)
        .args(["--json", "--small-keys"])
        .args(args);
    command.kill_on_drop(true);
    let output = timeout(RUN_DEADLINE, command.output())
        .await
        .expect("tether-loadgen did not finish in time")
        .expect("tether-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}):\n{stdout}\nstderr:\n{stderr}")
    });
    (output, summary)
}

/// A server with an admin and one device group; its `.msh` written to `dir`.
async fn server_with_group(dir: &Path) -> (TestServer, common::ControlClient, GroupId, PathBuf) {
    let server = TestServer::start().await;
    server.create_admin(ADMIN.0, ADMIN.1).await;
    let cookie = server.login(ADMIN.0, ADMIN.1).await;
    let mut control = server.control(&cookie).await;
    let group = control
        .ok(CreateGroup {
            name: "Load".into(),
            description: String::new(),
        })
        .await
        .id;
    let response = server
        .http_client()
        .get(format!("{}/api/groups/{group}/agent.msh", server.url))
        .header("cookie", format!("__Host-tether_session={cookie}"))
        .send()
        .await
        .expect("GET agent.msh");
    assert_eq!(response.status(), 200);
    let msh_path = dir.join("group.msh");
    std::fs::write(&msh_path, response.text().await.unwrap()).unwrap();
    (server, control, group, msh_path)
}

#[tokio::test]
async fn twenty_agents_come_online_and_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut control, group, msh) = server_with_group(dir.path()).await;
    let keys = dir.path().join("keys");

    let (output, summary) = run_loadgen(
        &msh,
        &keys,
        &["--agents", "20", "--rate", "50", "--hold", "0"],
    )
    .await;
    let context = format!(
        "{summary}\n{}\nserver:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.stderr()
    );
    assert!(output.status.success(), "{context}");
    assert_eq!(summary["agents"], 20, "{context}");
    assert_eq!(summary["online"], 20, "{context}");
    assert_eq!(summary["failed"], 0, "{context}");
    assert_eq!(summary["failures"], json!({}), "{context}");
    let (p50, p99) = (
        summary["connect_ms_p50"].as_f64().unwrap(),
        summary["connect_ms_p99"].as_f64().unwrap(),
    );
    assert!(0.0 < p50 && p50 <= p99, "{context}");
    assert_eq!(
        std::fs::read_dir(&keys).unwrap().count(),
        40,
        "20 keys and 20 certificates cached"
    );

    // The server made one device per identity, in the group, named after the agents' hostnames.
    let devices = control.ok(ListDevices { group: None }).await;
    assert_eq!(devices.len(), 20, "{devices:?}");
    let mut hostnames: Vec<&str> = devices.iter().map(|d| d.hostname.as_str()).collect();
    hostnames.sort_unstable();
    let expected: Vec<String> = (0..20).map(|i| format!("loadgen-{i:05}")).collect();
    assert_eq!(hostnames, expected);
    assert!(devices.iter().all(|d| d.group == group), "{devices:?}");
}

#[tokio::test]
async fn a_wrong_server_identity_fails_every_agent_in_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _control, _group, msh_path) = server_with_group(dir.path()).await;
    let mut msh = Msh::parse(&std::fs::read_to_string(&msh_path).unwrap()).unwrap();
    msh.server_id[0] ^= 0xFF;
    let impostor = dir.path().join("wrong-server-id.msh");
    std::fs::write(&impostor, msh.to_string()).unwrap();
    let pid = server.pid().unwrap().to_string();

    // Slow enough (three agents over four seconds) for the server to be sampled a few times.
    let args = [
        "--agents",
        "3",
        "--rate",
        "0.5",
        "--hold",
        "0",
        "--server-pid",
        pid.as_str(),
    ];
    let (output, summary) = run_loadgen(&impostor, &dir.path().join("keys"), &args).await;
    assert!(!output.status.success(), "{summary}");
    assert_eq!(summary["online"], 0, "{summary}");
    assert_eq!(summary["failed"], 3, "{summary}");
    assert_eq!(
        summary["failures"],
        json!({ "handshake:server-id-mismatch": 3 }),
        "{summary}"
    );
    assert!(summary["connect_ms_p50"].is_null(), "{summary}");
    let rss = summary["server_rss_kb"].as_array().unwrap();
    assert!(
        !rss.is_empty() && rss.iter().all(|kb| kb.as_u64().unwrap() > 0),
        "{summary}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_tcp_failure() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let msh = Msh {
        mesh_name: "Nowhere".into(),
        mesh_type: 2,
        mesh_id: [1; 48],
        server_id: [2; 48],
        mesh_server: format!("wss://127.0.0.1:{port}/agent.ashx"),
        extra: Vec::new(),
    };
    let msh_path = dir.path().join("nowhere.msh");
    std::fs::write(&msh_path, msh.to_string()).unwrap();

    let args = ["--agents", "2", "--rate", "100", "--hold", "0"];
    let (output, summary) = run_loadgen(&msh_path, &dir.path().join("keys"), &args).await;
    assert!(!output.status.success(), "{summary}");
    assert_eq!(
        (summary["online"].as_u64(), summary["failed"].as_u64()),
        (Some(0), Some(2)),
        "{summary}"
    );
    assert_eq!(summary["failures"], json!({ "tcp": 2 }), "{summary}");
}

/// Simulated agents at version 0.0.0-loadgen, with `--accept-updates`, all online; `release`
/// shipped by the server. Returns the running tool (killed when dropped).
async fn update_ready_fleet(
    server: &TestServer,
    control: &mut common::ControlClient,
    msh: &Path,
    keys: &Path,
    agents: usize,
    release: &[u8],
) -> tokio::process::Child {
    let shipped = server.file("agents/tether-agent-linux-x86_64");
    std::fs::create_dir_all(shipped.parent().unwrap()).unwrap();
    std::fs::write(&shipped, release).unwrap();
    let child = Command::new(loadgen_binary())
        .arg("--msh")
        .arg(msh)
        .arg("--keys")
        .arg(keys)
        .args(["--small-keys", "--accept-updates", "--rate", "200"])
        .args(["--agents", &agents.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("tether-loadgen runs");
    wait_fleet_version(control, agents, "0.0.0-loadgen").await;
    child
}

/// Waits until `agents` devices are online and report `version`.
async fn wait_fleet_version(control: &mut common::ControlClient, agents: usize, version: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        let devices = control.ok(ListDevices { group: None }).await;
        let ready = devices
            .iter()
            .filter(|d| d.online && d.agent.as_ref().is_some_and(|a| a.agent_version == version))
            .count();
        if ready == agents {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of {agents} devices online on {version}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Polls `agentUpdates` until the campaign is no longer running.
async fn wait_campaign(control: &mut common::ControlClient) -> CampaignInfo {
    loop {
        let campaign = control.ok(GetAgentUpdates {}).await.campaign.unwrap();
        if campaign.state != CampaignState::Running {
            return campaign;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn simulated_agents_take_an_update_campaign_to_done() {
    let dir = tempfile::tempdir().unwrap();
    let (server, mut control, _group, msh) = server_with_group(dir.path()).await;
    // A stand-in release: simulated agents fetch and check it, and never run it.
    let mut release = b"tether-agent-version:9.0.0;".to_vec();
    release.resize(3 << 20, 0x5a);
    let _fleet = update_ready_fleet(
        &server,
        &mut control,
        &msh,
        &dir.path().join("keys"),
        8,
        &release,
    )
    .await;

    let started = control
        .ok(StartAgentUpdate {
            group: None,
            waves: vec![25, 100],
            wave_timeout_secs: 60,
            max_failures: 0,
        })
        .await;
    assert_eq!((started.version.as_str(), started.total), ("9.0.0", 8));
    assert_eq!(started.counts.offered, 2, "{started:?}");
    let done = timeout(RUN_DEADLINE, wait_campaign(&mut control))
        .await
        .expect("the campaign settles");
    assert_eq!(
        done.state,
        CampaignState::Done,
        "{done:?}\n{}",
        server.stderr()
    );
    assert_eq!(done.counts.updated, 8);
    wait_fleet_version(&mut control, 8, "9.0.0").await;
}

/// Figure, not a check: a campaign over `TETHER_FIGURE_AGENTS` (default 1,000) simulated agents
/// in waves of 1, 10, 50 and 100 %, shipping the agent binary in `TETHER_AGENT_NEW_BIN` (a release
/// build): how long it takes, and the download rate the load tool saw (its 5-second progress
/// lines; see its stderr). Run alone, with release builds:
/// `TETHER_SERVER_BIN=… TETHER_LOADGEN_BIN=… TETHER_AGENT_NEW_BIN=… cargo test -p tether-server
/// --test loadgen campaign_figure -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a figure: run alone, with release builds"]
async fn campaign_figure() {
    let agents: usize = std::env::var("TETHER_FIGURE_AGENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let binary = std::env::var_os("TETHER_AGENT_NEW_BIN")
        .map(PathBuf::from)
        .expect("TETHER_AGENT_NEW_BIN names a release agent");
    let release = std::fs::read(&binary).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, mut control, _group, msh) = server_with_group(dir.path()).await;
    let keys = dirs_keys();
    let _fleet = update_ready_fleet(&server, &mut control, &msh, &keys, agents, &release).await;
    let started = std::time::Instant::now();
    control
        .ok(StartAgentUpdate {
            group: None,
            waves: vec![1, 10, 50, 100],
            wave_timeout_secs: 600,
            max_failures: 0,
        })
        .await;
    let done = wait_campaign(&mut control).await;
    let took = started.elapsed();
    assert_eq!(done.counts.updated, agents, "{done:?}");
    println!(
        "FIGURE campaign over {agents} simulated agents, {:.1} MB binary, waves 1/10/50/100 %: {:.1} s",
        release.len() as f64 / 1e6,
        took.as_secs_f64()
    );
}

/// The load tool's key cache, shared between figure runs (making 1,000 keys takes a while).
fn dirs_keys() -> PathBuf {
    std::env::var_os("TETHER_LOADGEN_KEYS")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("tether-figure-keys"))
}
