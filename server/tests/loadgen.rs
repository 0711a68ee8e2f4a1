//! The agent load tool (`tether-loadgen`) against the real server: a small run where every agent
//! must get online and be listed, and runs that must fail, by the right cause.
//! Build every binary first (`cargo build --workspace --bins`), as `scripts/test.sh` does.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};
use tether_common::control::{CreateGroup, ListDevices};
use tether_common::ids::GroupId;
use tether_common::msh::Msh;
use tokio::process::Command;
use tokio::time::timeout;

use common::TestServer;

/// Covers making a handful of RSA-2048 keys and the run itself on a busy machine.
const RUN_DEADLINE: Duration = Duration::from_secs(300);
const ADMIN: (&str, &str) = ("admin", "correct horse battery staple");

fn loadgen_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tether-loadgen");
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
