//! Interoperability with MeshCentral's own agent binary.

use tether_common::control::Event;

use crate::support::Fixture;
use crate::{nix_hostname, wait_for_log};

/// A stock MeshCentral agent (`agents/meshagent_x86-64` from the `meshcentral` npm package) joins
/// with the group's `.msh`, shows online with its hostname, and stays connected. Runs only when
/// `MESHAGENT_BIN` names that binary.
#[tokio::test]
async fn a_stock_meshagent_authenticates_and_stays_online() {
    let Some(binary) = std::env::var_os("MESHAGENT_BIN") else {
        eprintln!(
            "skipped: set MESHAGENT_BIN to a MeshCentral meshagent binary to run the interop test"
        );
        return;
    };
    let mut fx = Fixture::start_with_config("agent_ping_interval_secs = 1\n").await;
    // MeshAgent reads `<its name>.msh` next to itself and keeps its database there too.
    let dir = fx.state_dir("meshagent");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("meshagent");
    std::fs::copy(&binary, &exe).unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("meshagent.msh"), &fx.msh).unwrap();
    let log = std::fs::File::create(dir.join("meshagent.log")).unwrap();
    let mut child = tokio::process::Command::new(&exe)
        .arg("run")
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let online = fx
        .wait_event("deviceOnline", |e| matches!(e, Event::DeviceOnline { .. }))
        .await;
    let Event::DeviceOnline { device, group } = online else {
        unreachable!()
    };
    assert_eq!(group, fx.group);
    let info = fx.wait_device(&device, "online", |d| d.online).await;
    assert_eq!(info.hostname, nix_hostname());
    // Past the core negotiation and a few keepalive rounds, it is still the same connection.
    wait_for_log(&fx, "agent: connected").await;
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    assert!(
        fx.devices()
            .await
            .iter()
            .any(|d| d.id == device && d.online),
        "{}",
        std::fs::read_to_string(dir.join("meshagent.log")).unwrap_or_default()
    );
    assert!(
        !fx.server.stderr().contains("agent: disconnected"),
        "{}",
        fx.server.stderr()
    );
    let _ = child.kill().await;
}
