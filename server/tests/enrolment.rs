//! Who may enrol a device, end to end with the real server (and the real agent where it matters):
//! enrolment keys instead of group ids, their rotation, invites that can be revoked or limited,
//! device ids blocked from enrolling again, and the cleaning of what agents say about themselves.
//! Build every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "agent/fakes.rs"]
mod fakes;
#[allow(dead_code)]
#[path = "install/support.rs"]
mod install_support;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::time::Duration;

use serde_json::json;
use tether_common::control::{
    AddUser, CreateInvite, DeleteDevice, ErrorCode, Event, GetAgentConfig, ListBlockedDevices,
    ListEvents, ListGroups, ListInvites, RenameDevice, RevokeInvite, RotateEnrolmentKey,
    SetGroupRights, UnblockDevice,
};
use tether_common::ids::{DeviceId, UserId};
use tether_common::install::{BlockedDevice, Invite, InviteInfo, InviteStatus};
use tether_common::msh::Msh;
use tether_common::rights::Rights;
use tokio::time::Instant;

use fakes::{Ending, FakeAgent};
use install_support::{fetch, fetch_with_cookie, tetherctl_ok};
use support::{DEADLINE, Fixture};

/// A second account holding `rights` on the fixture's group: its cookie and console.
async fn member(fx: &mut Fixture, name: &str, rights: Rights) -> (String, common::ControlClient) {
    let password = "member password 1";
    fx.control
        .ok(AddUser {
            name: name.into(),
            password: password.into(),
            email: None,
            site_admin: false,
        })
        .await;
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId(name.to_owned()),
            rights,
        })
        .await;
    let cookie = fx.server.login(name, password).await;
    let control = fx.server.control(&cookie).await;
    (cookie, control)
}

fn mesh_id(msh_text: &str) -> [u8; 48] {
    Msh::parse(msh_text).unwrap().mesh_id
}

/// How many server log lines mention `device` and `why`.
fn logged(fx: &Fixture, device: &DeviceId, why: &str) -> usize {
    fx.server
        .stderr()
        .lines()
        .filter(|l| l.contains(device.as_str()) && l.contains(why))
        .count()
}

/// Polls the server log until it has more than `before` lines about `device` saying `why`.
async fn wait_logged(fx: &Fixture, device: &DeviceId, why: &str, before: usize) {
    let deadline = Instant::now() + DEADLINE;
    while logged(fx, device, why) <= before {
        assert!(
            Instant::now() < deadline,
            "the server never logged {why:?} for {device}\n{}",
            fx.server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `agent`'s handshake and expects the server to refuse it, logging `why` for its device.
async fn expect_refused(fx: &Fixture, agent: &FakeAgent, why: &str) {
    let device = agent.device_id();
    let before = logged(fx, &device, why);
    let run = agent.run(&fx.server);
    tokio::pin!(run);
    tokio::select! {
        (ending, _) = &mut run => {
            assert_ne!(ending, Ending::Accepted, "the server admitted it\n{}", fx.server.stderr());
            wait_logged(fx, &device, why, before).await;
        }
        () = wait_logged(fx, &device, why, before) => {}
    }
}

async fn accepted(fx: &Fixture, agent: &FakeAgent) {
    let (ending, _) = agent.run(&fx.server).await;
    assert_eq!(ending, Ending::Accepted, "{}", fx.server.stderr());
}

async fn event_kinds(fx: &mut Fixture) -> Vec<String> {
    let events = fx
        .control
        .ok(ListEvents {
            limit: None,
            group: Some(fx.group.clone()),
            device: None,
            ..Default::default()
        })
        .await;
    events.into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn the_group_id_a_viewer_can_read_enrols_nothing_and_the_key_is_theirs_to_hand_out() {
    let mut fx = Fixture::start().await;
    let (cookie, mut viewer) = member(&mut fx, "viewer", Rights::VIEW).await;
    let groups = viewer.ok(ListGroups {}).await;
    let seen = groups[0].id.clone();
    assert_eq!(seen, fx.group, "a viewer reads the group id");

    let squatter = FakeAgent::new(seen.to_bytes().unwrap());
    expect_refused(&fx, &squatter, "refused to enrol a new device").await;
    assert!(fx.devices().await.is_empty(), "nothing was enrolled");
    assert!(
        !fx.server
            .stderr()
            .contains(&hex::encode(fx.enrolment_key())),
        "keys are never logged"
    );

    // Everything that reveals or controls the key needs the right to enrol devices.
    let group = || fx.group.clone();
    let refusals = [
        viewer.refused(GetAgentConfig { group: group() }).await,
        viewer.refused(RotateEnrolmentKey { group: group() }).await,
        viewer
            .refused(CreateInvite {
                group: group(),
                expires_minutes: None,
                max_devices: None,
            })
            .await,
        viewer.refused(ListInvites { group: group() }).await,
        viewer.refused(ListBlockedDevices { group: group() }).await,
    ];
    assert_eq!(refusals, [ErrorCode::Forbidden; 5]);
    let msh_path = format!("{}/api/groups/{}/agent.msh", fx.server.url, fx.group);
    assert_eq!(
        fetch_with_cookie(&fx.server, &msh_path, Some(&cookie))
            .await
            .0,
        403
    );

    let holder = FakeAgent::new(fx.enrolment_key());
    accepted(&fx, &holder).await;
    let device = fx
        .wait_device(&holder.device_id(), "enrolled", |_| true)
        .await;
    assert_eq!(device.group, fx.group);
}

#[tokio::test]
async fn after_a_rotation_the_old_key_admits_enrolled_devices_only() {
    let mut fx = Fixture::start().await;
    let old_msh = fx.msh.clone();
    let state = fx.state_dir("enrolled");
    let agent = fx.spawn_agent(&old_msh, &state, &[]).await;
    let device = agent.device_id.clone();
    fx.wait_device(&device, "online", |d| d.online).await;
    agent.kill().await;
    fx.wait_device(&device, "offline", |d| !d.online).await;

    let rotated = fx
        .control
        .ok(RotateEnrolmentKey {
            group: fx.group.clone(),
        })
        .await;
    let new_msh = rotated.msh;
    assert_ne!(mesh_id(&new_msh), mesh_id(&old_msh));
    let config = fx
        .control
        .ok(GetAgentConfig {
            group: fx.group.clone(),
        })
        .await;
    assert_eq!(config.msh, new_msh);
    let (status, downloaded) = fx
        .get(&format!("/api/groups/{}/agent.msh", fx.group), true)
        .await;
    assert_eq!((status, downloaded), (200, new_msh.clone()));

    let mut newcomer = FakeAgent::new(mesh_id(&old_msh));
    expect_refused(&fx, &newcomer, "not an enrolment key").await;

    // The enrolled agent, still with its old .msh, comes back.
    let mut again = fx
        .spawn_agent(&old_msh, &state, &["--handshake-timeout", "10"])
        .await;
    assert_eq!(again.device_id, device);
    again.wait_line("tether-agent connected ").await;
    fx.wait_device(&device, "online again", |d| d.online).await;
    again.kill().await;

    newcomer.mesh_id = mesh_id(&new_msh);
    accepted(&fx, &newcomer).await;
    assert_eq!(fx.devices().await.len(), 2);
    assert!(
        event_kinds(&mut fx)
            .await
            .contains(&"enrolment_key_rotated".to_owned())
    );
}

async fn invite(fx: &mut Fixture, max_devices: Option<u32>) -> Invite {
    let request = CreateInvite {
        group: fx.group.clone(),
        expires_minutes: None,
        max_devices,
    };
    fx.control.ok(request).await
}

async fn invites(fx: &mut Fixture) -> Vec<InviteInfo> {
    fx.control
        .ok(ListInvites {
            group: fx.group.clone(),
        })
        .await
}

#[tokio::test]
async fn a_revoked_invite_stops_serving_and_enrolling_at_once() {
    let mut fx = Fixture::start().await;
    let invite = invite(&mut fx, None).await;
    let (status, msh) = fetch(&fx.server, &invite.msh_url).await;
    assert_eq!(status, 200);
    let key = mesh_id(std::str::from_utf8(&msh).unwrap());
    assert_ne!(key, fx.enrolment_key(), "an invite has a key of its own");

    let first = FakeAgent::new(key);
    accepted(&fx, &first).await;
    let listed = invites(&mut fx).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (&listed[0].id, listed[0].status, listed[0].enrolled),
        (&invite.id, InviteStatus::Active, 1)
    );
    assert_eq!(listed[0].created_by.as_str(), support::ADMIN.0);

    let revoked = fx
        .control
        .ok(RevokeInvite {
            invite: invite.id.clone(),
        })
        .await;
    assert_eq!(revoked.status, InviteStatus::Revoked);
    for url in [&invite.install_url, &invite.msh_url, &invite.agent_url] {
        assert_eq!(fetch(&fx.server, url).await.0, 404, "{url}");
    }
    let second = FakeAgent::new(key);
    expect_refused(&fx, &second, "was revoked").await;
    accepted(&fx, &first).await;
    assert_eq!(
        fx.devices().await.len(),
        1,
        "only the first device enrolled"
    );

    let listed = invites(&mut fx).await;
    assert_eq!(
        (listed[0].status, listed[0].enrolled),
        (InviteStatus::Revoked, 1)
    );
    assert_eq!(
        listed[0].revoked_by.as_ref().map(|u| u.as_str()),
        Some("admin")
    );
    let kinds = event_kinds(&mut fx).await;
    assert!(kinds.contains(&"invite_revoked".to_owned()), "{kinds:?}");
    let unknown = RevokeInvite {
        invite: "no-such-invite".into(),
    };
    assert_eq!(fx.control.refused(unknown).await, ErrorCode::NotFound);
}

#[tokio::test]
async fn a_one_device_invite_enrols_one_device() {
    let mut fx = Fixture::start().await;
    let invite = invite(&mut fx, Some(1)).await;
    let (_, msh) = fetch(&fx.server, &invite.msh_url).await;
    let key = mesh_id(std::str::from_utf8(&msh).unwrap());
    accepted(&fx, &FakeAgent::new(key)).await;
    expect_refused(
        &fx,
        &FakeAgent::new(key),
        "enrolled as many devices as it may",
    )
    .await;
    assert_eq!(fetch(&fx.server, &invite.install_url).await.0, 404);
    assert_eq!(invites(&mut fx).await[0].status, InviteStatus::UsedUp);
    assert_eq!(fx.devices().await.len(), 1);
}

#[tokio::test]
async fn a_blocked_device_is_refused_until_unblocked() {
    let mut fx = Fixture::start().await;
    let mut agent = fx
        .online_agent("blocked", &["--handshake-timeout", "2"])
        .await;
    let device = agent.device_id.clone();
    let name = fx.wait_device(&device, "listed", |_| true).await.name;

    fx.control
        .ok(DeleteDevice {
            device: device.clone(),
            block: true,
        })
        .await;
    agent.wait_line("tether-agent disconnected").await;
    // It still holds a valid key, so it tries again, and is refused.
    wait_logged(&fx, &device, "blocked from enrolling", 0).await;
    assert!(fx.devices().await.iter().all(|d| d.id != device));
    let blocked: Vec<BlockedDevice> = fx
        .control
        .ok(ListBlockedDevices {
            group: fx.group.clone(),
        })
        .await;
    assert_eq!(blocked.len(), 1);
    assert_eq!(
        (
            &blocked[0].device,
            &blocked[0].name,
            blocked[0].blocked_by.as_str()
        ),
        (&device, &name, "admin")
    );

    fx.control
        .ok(UnblockDevice {
            device: device.clone(),
        })
        .await;
    fx.wait_event(
        "deviceOnline after the unblock",
        |e| matches!(e, Event::DeviceOnline { device: d, .. } if *d == device),
    )
    .await;
    let blocked = fx
        .control
        .ok(ListBlockedDevices {
            group: fx.group.clone(),
        })
        .await;
    assert!(blocked.is_empty(), "{blocked:?}");
    let kinds = event_kinds(&mut fx).await;
    for kind in ["device_blocked", "device_unblocked"] {
        assert!(kinds.contains(&kind.to_owned()), "{kinds:?}");
    }
    agent.kill().await;
}

#[tokio::test]
async fn names_and_machine_reports_from_agents_are_cleaned_and_bounded() {
    let mut fx = Fixture::start().await;
    let mut agent = FakeAgent::new(fx.enrolment_key());
    agent.agent_name = Some("db\u{1b}[31m-prod\u{202E}10\u{200B}".into());
    let users: Vec<String> = (0..2000).map(|i| format!("user{i}")).collect();
    agent.after_auth = vec![
        json!({
            "action": "agentinfo",
            "hostname": "h".repeat(900 * 1024),
            "os_name": "Linux\u{1b}]52;c;QUFB\u{7}",
            "users": users,
        })
        .to_string(),
    ];
    accepted(&fx, &agent).await;
    let device = agent.device_id();
    let info = fx
        .wait_device(&device, "described", |d| d.hostname.starts_with('h'))
        .await;
    assert_eq!(info.name, "db[31m-prod10");
    assert_eq!(info.hostname, "h".repeat(255));
    assert_eq!(info.os, "Linux]52;c;QUFB");
    assert!(info.agent.as_ref().expect("agent details").users.len() <= 64);

    // Raw on purpose: this measures the reply as the server sent it; re-serialising the typed
    // result would drop any field the client does not know, and so could hide one that grew.
    let listed = fx.control.request(json!({ "action": "listDevices" })).await;
    let size = serde_json::to_vec(&listed).unwrap().len();
    assert!(size < 32 * 1024, "listDevices reply is {size} bytes");
    wait_logged(&fx, &device, "stored a cleaned, shortened copy", 0).await;

    // Names typed in the console follow the same rule.
    let renamed = RenameDevice {
        device: device.clone(),
        name: "pc\u{202E}1".into(),
    };
    assert_eq!(fx.control.refused(renamed).await, ErrorCode::BadRequest);
}

#[tokio::test]
async fn tetherctl_rotates_keys_lists_and_revokes_invites_and_lifts_blocks() {
    let fx = Fixture::start().await;
    let known = tempfile::tempdir().unwrap();
    let ctl = |args: &'static [&'static str]| tetherctl_ok(&fx.server, known.path(), args);

    let printed = ctl(&["invite", "--group", "Lab", "--max-devices", "2"]).await;
    let id = printed
        .strip_prefix("Invite ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no invite id in {printed}"))
        .to_owned();
    let listed = ctl(&["listinvites", "--group", "Lab"]).await;
    let row = listed.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(row.contains("active") && row.ends_with("0/2"), "{listed}");
    let revoked = tetherctl_ok(&fx.server, known.path(), &["revokeinvite", &id]).await;
    assert!(revoked.contains("revoked invite"), "{revoked}");
    assert!(
        ctl(&["listinvites", "--group", "Lab"])
            .await
            .contains("revoked")
    );

    let rotated = ctl(&["rotatekey", "--group", "Lab"]).await;
    let key = mesh_id(&rotated);
    assert_ne!(key, fx.enrolment_key());
    let agent = FakeAgent::new(key);
    accepted(&fx, &agent).await;
    let device = agent.device_id();
    let removed = tetherctl_ok(
        &fx.server,
        known.path(),
        &["removedevice", device.as_str(), "--block"],
    )
    .await;
    assert!(
        removed.contains("blocked it from enrolling again"),
        "{removed}"
    );
    assert!(
        ctl(&["listblocked", "--group", "Lab"])
            .await
            .contains(device.as_str())
    );
    expect_refused(&fx, &agent, "blocked from enrolling").await;
    tetherctl_ok(
        &fx.server,
        known.path(),
        &["unblockdevice", device.as_str()],
    )
    .await;
    assert!(
        !ctl(&["listblocked", "--group", "Lab"])
            .await
            .contains(device.as_str())
    );
    accepted(&fx, &agent).await;
}

#[tokio::test]
async fn a_meshcentral_groups_mesh_id_imported_admits_its_agents_and_only_those() {
    let mut fx = Fixture::start().await;
    // A MeshAgent installed for a MeshCentral group presents that group's MeshID.
    let mesh_id: [u8; 48] = rand::random();
    let meshcentral_agent = FakeAgent::new(mesh_id);
    expect_refused(&fx, &meshcentral_agent, "refused to enrol a new device").await;

    let (_, mut viewer) = member(&mut fx, "viewer", Rights::VIEW).await;
    let this_group = fx.group.clone();
    let import = |mesh_id: String| tether_common::control::ImportEnrolmentKey {
        group: this_group.clone(),
        mesh_id,
    };
    let hex_id = format!("0x{}", hex::encode(mesh_id));
    assert_eq!(
        viewer.refused(import(hex_id.clone())).await,
        ErrorCode::Forbidden
    );
    for bad in [
        "0x1234".to_owned(),
        format!("0x{}", "00".repeat(48)),
        "not hex".to_owned(),
    ] {
        assert_eq!(fx.control.refused(import(bad)).await, ErrorCode::BadRequest);
    }

    // As an administrator would: from MeshCentral's own .msh file, with tetherctl.
    let known = tempfile::tempdir().unwrap();
    let msh_file = known.path().join("meshcentral.msh");
    std::fs::write(
        &msh_file,
        format!(
            "MeshName=Office\nMeshType=2\nMeshID={hex_id}\nServerID={}\nMeshServer=wss://meshcentral.example:443/agent.ashx\n",
            "ab".repeat(48)
        ),
    )
    .unwrap();
    let group = fx.group.to_string();
    let printed = tetherctl_ok(
        &fx.server,
        known.path(),
        &[
            "importmeshid",
            "--group",
            &group,
            "--msh",
            &msh_file.display().to_string(),
        ],
    )
    .await;
    let new_msh = Msh::parse(&printed).expect("the group's new .msh");
    assert_eq!(new_msh.mesh_id, mesh_id);
    accepted(&fx, &meshcentral_agent).await;
    let joined = fx.group.clone();
    fx.wait_device(&meshcentral_agent.device_id(), "enrolled", |d| {
        d.group == joined
    })
    .await;
    // The group's earlier key admits no new device now.
    expect_refused(
        &fx,
        &FakeAgent::new(fx.enrolment_key()),
        "refused to enrol a new device",
    )
    .await;
    // One MeshID, one group.
    fx.control
        .ok(tether_common::control::CreateGroup {
            name: "Other".into(),
            description: String::new(),
        })
        .await;
    let other = fx
        .control
        .ok(ListGroups {})
        .await
        .into_iter()
        .find(|g| g.name == "Other")
        .unwrap();
    let again = tether_common::control::ImportEnrolmentKey {
        group: other.id,
        mesh_id: hex_id,
    };
    assert_eq!(fx.control.refused(again).await, ErrorCode::Conflict);
}
