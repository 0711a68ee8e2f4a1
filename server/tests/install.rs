//! Enrolling machines, end to end with the real binaries: `tetherctl agentconfig`, invites and
//! their three downloads, the install script starting an agent, and deleting what it enrolled.
//! Build every binary first (`cargo build --workspace --bins`).

mod common;
#[path = "install/support.rs"]
mod install_support;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use sha2::{Digest, Sha256};
use tether_common::control::{
    AddUser, CreateInvite, DeleteDevice, DeleteGroup, ErrorCode, Event, GetAgentConfig,
    GetServerInfo, ListEvents, SetGroupRights,
};
use tether_common::ids::UserId;
use tether_common::msh::Msh;
use tether_common::rights::Rights;

use install_support::{
    InstalledAgent, create_invite, fetch, fetch_with_cookie, sibling_binary, tetherctl,
    tetherctl_ok,
};
use support::{DEADLINE, Fixture};

/// A second account `name` holding `rights` on the fixture's group, logged in on its own console.
async fn member(fx: &mut Fixture, name: &str, rights: Rights) -> common::ControlClient {
    let password = "member password 1";
    fx.control
        .ok(AddUser {
            name: name.into(),
            password: password.into(),
            email: None,
            site_admin: false,
        })
        .await;
    set_rights(fx, name, rights).await;
    let cookie = fx.server.login(name, password).await;
    fx.server.control(&cookie).await
}

async fn set_rights(fx: &mut Fixture, name: &str, rights: Rights) {
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId::from_name(name),
            rights,
        })
        .await;
}

#[tokio::test]
async fn agentconfig_prints_the_groups_msh_to_those_who_may_enrol() {
    let mut fx = Fixture::start().await;
    let known = tempfile::tempdir().unwrap();
    let info = fx.control.ok(GetServerInfo {}).await;

    let printed = tetherctl_ok(&fx.server, known.path(), &["agentconfig", "--group", "Lab"]).await;
    let msh = Msh::parse(&printed).unwrap();
    assert_eq!(msh.mesh_id, fx.enrolment_key());
    assert_ne!(Some(msh.mesh_id), fx.group.to_bytes());
    assert_eq!(hex::encode(msh.server_id), info.agent_cert_hash);
    assert_eq!(
        msh.mesh_server,
        format!("wss://127.0.0.1:{}/agent.ashx", fx.server.port)
    );
    assert_eq!(msh.mesh_name, "Lab");
    assert_eq!(printed, fx.msh, "the same file as the logged-in download");

    let out = known.path().join("lab.msh");
    let group_id = fx.group.to_string();
    let said = tetherctl_ok(
        &fx.server,
        known.path(),
        &[
            "agentconfig",
            "--group",
            &group_id,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .await;
    assert!(said.starts_with("wrote "), "{said}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), printed);
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file enrols devices: owner only");

    // Seeing a group is not enough to enrol devices in it; managing its devices is.
    let mut viewer = member(&mut fx, "viewer", Rights::VIEW).await;
    let group = fx.group.clone();
    assert_eq!(
        viewer
            .refused(GetAgentConfig {
                group: group.clone()
            })
            .await,
        ErrorCode::Forbidden
    );
    let invite = CreateInvite {
        group,
        expires_minutes: None,
        max_devices: None,
    };
    assert_eq!(viewer.refused(invite).await, ErrorCode::Forbidden);
    set_rights(
        &mut fx,
        "viewer",
        Rights(Rights::VIEW.0 | Rights::MANAGE_DEVICES.0),
    )
    .await;
    let config = viewer
        .ok(GetAgentConfig {
            group: fx.group.clone(),
        })
        .await;
    assert_eq!(config.msh, printed);
}

#[tokio::test]
async fn an_invite_serves_three_files_without_a_login_and_nothing_when_tampered_with() {
    let mut fx = Fixture::start().await;
    let started = tether_server::clock::now_secs();
    let invite = create_invite(&mut fx, None).await.unwrap();
    assert!((started + 3590..=started + 3610).contains(&invite.expires));
    let base = format!("{}/api/invite/{}", fx.server.url, invite.token);
    assert_eq!(invite.msh_url, format!("{base}/agent.msh"));

    let (status, msh) = fetch(&fx.server, &invite.msh_url).await;
    assert_eq!(status, 200);
    let msh = Msh::parse(std::str::from_utf8(&msh).unwrap()).unwrap();
    assert_ne!(Some(msh.mesh_id), fx.group.to_bytes());
    assert_ne!(
        msh.mesh_id,
        fx.enrolment_key(),
        "an invite has a key of its own"
    );
    assert_eq!(msh.mesh_name, "Lab");

    let agent_binary = std::fs::read(sibling_binary("tether-agent")).unwrap();
    let (status, downloaded) = fetch(&fx.server, &invite.agent_url).await;
    assert_eq!(status, 200);
    assert!(
        downloaded == agent_binary,
        "the binary arrives byte for byte"
    );

    let (status, script) = fetch(&fx.server, &invite.install_url).await;
    assert_eq!(status, 200);
    let script = String::from_utf8(script).unwrap();
    assert!(script.starts_with("#!/bin/sh\n"));
    assert!(
        script.contains(&base),
        "it downloads through the same invite"
    );
    assert!(script.contains(fx.server.root_cert_pem.trim()));

    let (status, root) = fetch(&fx.server, &invite.root_cert_url).await;
    assert_eq!(status, 200);
    assert_eq!(hex::encode(Sha256::digest(&root)), invite.root_cert_sha256);
    assert_eq!(root, fx.server.root_cert_pem.as_bytes());

    // Logged in, the binary is at the group's own address, under the same rule as agent.msh.
    let own = format!("{}/api/groups/{}/tether-agent", fx.server.url, fx.group);
    let (status, bytes) = fetch_with_cookie(&fx.server, &own, Some(&fx.cookie)).await;
    assert_eq!(status, 200);
    assert!(bytes == agent_binary);
    assert_eq!(fetch(&fx.server, &own).await.0, 401);

    // A changed signature, a later expiry written into the claims, an unknown file: all 404.
    let (body, tag) = invite.token.split_once('.').unwrap();
    let flipped = format!("{body}.{}", flip_first(tag));
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    let extended = format!(
        "{}.{tag}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    for token in [flipped.as_str(), extended.as_str(), "garbage"] {
        for file in ["agent.msh", "tether-agent", "install.sh"] {
            let url = format!("{}/api/invite/{token}/{file}", fx.server.url);
            assert_eq!(fetch(&fx.server, &url).await.0, 404, "{url}");
        }
    }
    assert_eq!(fetch(&fx.server, &format!("{base}/root.crt")).await.0, 404);
    let log = fx.server.stderr();
    assert!(log.contains("invite: refused a download"), "{log}");
    assert!(!log.contains(&invite.token), "tokens are never logged");

    for minutes in [0, 7 * 24 * 60 + 1] {
        let refused = create_invite(&mut fx, Some(minutes)).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::BadRequest), "{refused:?}");
    }

    let events = fx
        .control
        .ok(ListEvents {
            limit: None,
            group: Some(fx.group.clone()),
            device: None,
            ..Default::default()
        })
        .await;
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "invite_created").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| **k == "invite_used").count(),
        3,
        "one record per download: {kinds:?}"
    );
}

/// Changes the first character of a base64url string to another valid one.
fn flip_first(text: &str) -> String {
    let replacement = if text.starts_with('A') { "B" } else { "A" };
    format!("{replacement}{}", &text[1..])
}

#[tokio::test]
async fn an_invite_dies_with_its_creators_right_to_enrol() {
    let mut fx = Fixture::start().await;
    let mut helper = member(&mut fx, "helper", Rights::MANAGE_DEVICES).await;
    let invite = helper
        .ok(CreateInvite {
            group: fx.group.clone(),
            expires_minutes: Some(5),
            max_devices: None,
        })
        .await;
    assert_eq!(fetch(&fx.server, &invite.msh_url).await.0, 200);
    set_rights(&mut fx, "helper", Rights::VIEW).await;
    assert_eq!(fetch(&fx.server, &invite.msh_url).await.0, 404);
}

#[tokio::test]
async fn tetherctl_prints_a_command_that_checks_the_root_before_installing() {
    let fx = Fixture::start().await;
    let known = tempfile::tempdir().unwrap();
    let printed = tetherctl_ok(
        &fx.server,
        known.path(),
        &["invite", "--group", "Lab", "--minutes", "30"],
    )
    .await;
    let root = format!("https://127.0.0.1:{}/api/root.crt", fx.server.port);
    let expected_hash = hex::encode(Sha256::digest(fx.server.root_cert_pem.as_bytes()));
    let command = printed
        .lines()
        .find(|l| l.starts_with("curl "))
        .unwrap_or_else(|| panic!("no command in {printed}"));
    assert!(
        command.starts_with(&format!("curl -fsSk -o tether-root.crt {root} && echo '{expected_hash}  tether-root.crt' | sha256sum -c - && curl -fsS --cacert tether-root.crt https://127.0.0.1:")),
        "{command}"
    );
    assert!(command.ends_with("/install.sh | sh"), "{command}");
    let too_long = tetherctl(
        &fx.server,
        known.path(),
        &["invite", "--group", "Lab", "--minutes", "10081"],
    )
    .await;
    assert!(!too_long.status.success());
}

#[tokio::test]
async fn the_install_command_starts_an_agent_and_deleting_its_device_disconnects_it() {
    let mut fx = Fixture::start().await;
    let invite = create_invite(&mut fx, None).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (work, home, install_dir) = (
        dir.path().join("work"),
        dir.path().join("home"),
        dir.path().join("installed"),
    );
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&home).unwrap();
    let run = |command: String| {
        let mut sh = tokio::process::Command::new("sh");
        sh.arg("-c")
            .arg(command)
            .current_dir(&work)
            .env("HOME", &home)
            .env("TETHER_INSTALL_DIR", &install_dir)
            .env("TETHER_AGENT_ARGS", "--small-key")
            .kill_on_drop(true);
        async move {
            tokio::time::timeout(DEADLINE, sh.output())
                .await
                .expect("the install command timed out")
                .unwrap()
        }
    };

    // A root certificate that does not match the expected hash stops everything.
    let wrong = invite
        .install_command
        .replace(&invite.root_cert_sha256, &"0".repeat(64));
    assert!(!run(wrong).await.status.success());
    assert!(!install_dir.exists(), "nothing was installed");

    let output = run(invite.install_command.clone()).await;
    let agent = InstalledAgent {
        dir: install_dir.clone(),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("tether-root.crt: OK"), "{stdout}");
    assert!(stdout.contains("started the agent"), "{stdout}");
    // Not root under systemd here (a test machine or container): the nohup way, with a warning.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not installing a service"), "{stderr}");
    assert!(agent.pid().is_some());
    assert!(
        std::fs::read(install_dir.join("tether-agent")).unwrap()
            == std::fs::read(sibling_binary("tether-agent")).unwrap()
    );
    let msh = std::fs::read_to_string(install_dir.join("agent.msh")).unwrap();
    let msh = Msh::parse(&msh).unwrap();
    assert_ne!(msh.mesh_id, fx.enrolment_key(), "the invite's own key");
    assert_ne!(Some(msh.mesh_id), fx.group.to_bytes());

    let online = fx
        .wait_event("deviceOnline", |e| matches!(e, Event::DeviceOnline { .. }))
        .await;
    let Event::DeviceOnline { device, group } = online else {
        unreachable!()
    };
    assert_eq!(group, fx.group, "{}", agent.log());

    fx.control
        .ok(DeleteDevice {
            device: device.clone(),
            block: false,
        })
        .await;
    fx.wait_event(
        "deviceOffline after deleteDevice",
        |e| matches!(e, Event::DeviceOffline { device: d, .. } if *d == device),
    )
    .await;
    // Its invite is still valid, so it enrols again, as a MeshCentral agent would (deleting with
    // `block` keeps it out: see tests/enrolment.rs).
    fx.wait_event(
        "deviceOnline after re-enrolling",
        |e| matches!(e, Event::DeviceOnline { device: d, .. } if *d == device),
    )
    .await;

    fx.control
        .ok(DeleteGroup {
            group: fx.group.clone(),
        })
        .await;
    fx.wait_event(
        "deviceOffline after deleteGroup",
        |e| matches!(e, Event::DeviceOffline { device: d, .. } if *d == device),
    )
    .await;

    // `tether-agent uninstall` stops the agent and removes what the script installed.
    let pid: i32 = agent.pid().unwrap().parse().unwrap();
    let uninstall = tokio::process::Command::new(install_dir.join("tether-agent"))
        .args(["uninstall", "--dir"])
        .arg(&install_dir)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&uninstall.stdout);
    assert!(
        uninstall.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&uninstall.stderr)
    );
    assert!(
        said.contains(&format!("stopped the agent (pid {pid})")),
        "{said}"
    );
    assert!(!install_dir.exists(), "the install folder is gone: {said}");
    // The process ends: gone, or a zombie its new parent has not reaped yet (polled, since
    // nothing notifies a non-parent of another process's exit).
    let running = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(") ")
                    .map(|(_, rest)| !rest.starts_with('Z'))
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    while running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(agent);
}
