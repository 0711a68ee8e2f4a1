//! The invite's `install.sh` against a hostile group name (security review, finding 1): a group
//! manager renames the group so that the name holds a placeholder and shell text; the script an
//! administrator's invite serves afterwards must still run only its own commands.
//! Build every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "install/support.rs"]
mod install_support;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::process::Command;

use tether_common::control::{AddUser, EditGroup, SetGroupRights};
use tether_common::ids::UserId;
use tether_common::rights::Rights;

use install_support::{create_invite, fetch};
use support::Fixture;

#[tokio::test]
async fn a_managers_group_name_cannot_put_commands_into_the_install_script() {
    let mut fx = Fixture::start().await;
    fx.control
        .ok(AddUser {
            name: "mgr".into(),
            password: "manager password 1".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let rights = Rights::VIEW.union(Rights::MANAGE_GROUP);
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId::from_name("mgr"),
            rights,
        })
        .await;
    let cookie = fx.server.login("mgr", "manager password 1").await;
    let mut manager = fx.server.control(&cookie).await;

    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let hostile = format!("L@ROOT_PEM@touch {} #", marker.display());
    assert!(
        hostile.chars().count() <= 64,
        "group names are at most 64 characters"
    );
    manager
        .ok(EditGroup {
            name: Some(hostile),
            ..EditGroup::of(fx.group.clone())
        })
        .await;

    let invite = create_invite(&mut fx, None).await.unwrap();
    let (status, script) = fetch(&fx.server, &invite.install_url).await;
    assert_eq!(status, 200);
    let script = String::from_utf8(script).unwrap();
    assert!(
        !script.lines().any(|l| l.trim_start().starts_with("touch")),
        "no line of the script runs the group name's text:\n{script}"
    );

    // Run it as an installing administrator would, up to the first download, which a stub curl
    // fails: whatever the script did before that point has happened.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(bin.join("curl"), "#!/bin/sh\nexit 1\n").unwrap();
    std::fs::set_permissions(
        bin.join("curl"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let script_path = dir.path().join("install.sh");
    std::fs::write(&script_path, &script).unwrap();
    let run = Command::new("sh")
        .arg(&script_path)
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("TETHER_INSTALL_DIR", dir.path().join("install"))
        .output()
        .unwrap();
    assert!(!run.status.success(), "the stub curl stops it");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        !stderr.contains("not found"),
        "no stray lines ran: {stderr}"
    );
    assert!(!marker.exists(), "the group name's command ran");
}
