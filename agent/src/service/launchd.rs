//! launchd (macOS): the daemon `installers/macos/com.tether.agent.plist` defines. NEVER COMPILED
//! OR RUN: written from launchctl(1) and launchd.plist(5); see `installers/README.md`.

use std::path::Path;
use std::process::Command;

const PLIST: &str = "/Library/LaunchDaemons/com.tether.agent.plist";
const TARGET: &str = "system/com.tether.agent";

fn launchctl(args: &[&str]) -> bool {
    Command::new("launchctl")
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

/// Unloads the daemon (which stops it) and removes its plist.
pub(crate) fn remove() -> anyhow::Result<()> {
    if !Path::new(PLIST).exists() {
        return Ok(());
    }
    if !launchctl(&["bootout", TARGET]) {
        eprintln!(
            "tether-agent uninstall: launchctl could not unload {TARGET}; removing it anyway"
        );
    }
    std::fs::remove_file(PLIST)?;
    println!("tether-agent uninstall: unloaded and removed {TARGET}");
    Ok(())
}

/// From inside the daemon: remove the plist first (so `KeepAlive` cannot bring us back after a
/// reboot), then unload ourselves; launchd ends this process.
pub(crate) fn remove_self() -> anyhow::Result<()> {
    if !Path::new(PLIST).exists() {
        return Ok(());
    }
    std::fs::remove_file(PLIST)?;
    let _ = launchctl(&["bootout", TARGET]);
    Ok(())
}
