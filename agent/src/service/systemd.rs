//! systemd: the unit the invite's `install.sh` writes (`installers/systemd/tether-agent.service`
//! is the packaged one, which `apt` removes).

use std::path::Path;
use std::process::Command;

/// The unit `install.sh` writes when systemd runs the machine.
const UNIT: &str = "/etc/systemd/system/tether-agent.service";
const SERVICE: &str = "tether-agent.service";

fn systemctl(args: &[&str]) -> bool {
    Command::new("systemctl")
        .args(args)
        .status()
        .is_ok_and(|status| status.success())
}

/// Disables, stops and removes the unit, if `install.sh` wrote one.
pub(crate) fn remove() -> anyhow::Result<()> {
    if !Path::new(UNIT).exists() {
        return Ok(());
    }
    if !systemctl(&["disable", "--now", SERVICE]) {
        eprintln!("tether-agent uninstall: systemctl could not stop {SERVICE}; removing it anyway");
    }
    super_remove_file(Path::new(UNIT))?;
    let _ = systemctl(&["daemon-reload"]);
    println!("tether-agent uninstall: stopped and removed the {SERVICE} service");
    Ok(())
}

/// From inside the service: disable and remove the unit, then queue a stop job for ourselves
/// (`--no-block`: waiting for our own stop would wait forever).
pub(crate) fn remove_self() -> anyhow::Result<()> {
    if !Path::new(UNIT).exists() {
        return Ok(());
    }
    let _ = systemctl(&["disable", SERVICE]);
    super_remove_file(Path::new(UNIT))?;
    let _ = systemctl(&["daemon-reload"]);
    let _ = systemctl(&["--no-block", "stop", SERVICE]);
    Ok(())
}

fn super_remove_file(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("removing {}", path.display()))),
    }
}
