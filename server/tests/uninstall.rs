//! "Uninstall agent" from the server: a user holding UNINSTALL asks, the real agent removes what
//! its installer put in its folder (identity included) and exits; others are refused, and an
//! offline device says so. Build every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use tether_common::control::{AddUser, ErrorCode, Event, SetGroupRights, UninstallAgent};
use tether_common::ids::UserId;
use tether_common::rights::Rights;

use support::{AgentProcess, Fixture};

#[tokio::test]
async fn an_agent_asked_to_uninstall_removes_its_folder_and_exits() {
    let mut fx = Fixture::start().await;
    // Laid out as install.sh lays it out: the .msh and state/ in one folder.
    let folder = fx.dir.path().join("installed");
    std::fs::create_dir_all(&folder).unwrap();
    let msh = folder.join("agent.msh");
    std::fs::write(&msh, fx.msh.clone()).unwrap();
    let mut agent = AgentProcess::spawn(&msh, &folder.join("state"), &[]).await;
    agent.wait_line("tether-agent connected ").await;
    let device = agent.device_id.clone();
    fx.wait_device(&device, "online", |d| d.online).await;

    // Someone who may see the device but not uninstall its agent is refused.
    fx.control
        .ok(AddUser {
            name: "dana".into(),
            password: "dana's long passphrase".into(),
            email: None,
            site_admin: false,
        })
        .await;
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId("dana".into()),
            rights: Rights::VIEW.union(Rights::TERMINAL),
        })
        .await;
    let dana = fx.server.login("dana", "dana's long passphrase").await;
    let mut dana = fx.server.control(&dana).await;
    let ask = || UninstallAgent {
        device: device.clone(),
    };
    assert_eq!(dana.refused(ask()).await, ErrorCode::Forbidden);
    assert!(folder.join("agent.msh").exists());

    fx.control.ok(ask()).await;
    let status = agent.wait_exit().await;
    assert!(status.success(), "{status}: {}", agent.log());
    // What the installer put there is gone; the test's own log of the agent (state.log) stays,
    // and with it the folder, as the agent leaves files it did not install.
    let left: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["state.log"]);
    fx.wait_event(
        "the uninstall in the audit log",
        |e| matches!(e, Event::Logged { record } if record.kind == "agent_uninstall"),
    )
    .await;
    fx.wait_device(&device, "offline", |d| !d.online).await;
    // Gone: asking again says the device is offline.
    assert_eq!(fx.control.refused(ask()).await, ErrorCode::Conflict);
}
