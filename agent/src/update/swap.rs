//! Steps 3 to 5 of an update: the trial run, the swap and restart, and the way back.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;
use tokio::time::timeout;

use super::{OLD, TRIAL_FLAG, Updater};

/// Long enough to start, load the identity and finish a handshake on a slow link.
const TRIAL_LIMIT: Duration = Duration::from_secs(90);

/// Runs `new` as this agent once (same configuration and identity) with the trial flag: it must
/// connect, authenticate and exit 0. Its connection replaces ours at the server for a moment.
pub(crate) async fn trial(updater: &Updater, new: &Path) -> anyhow::Result<()> {
    let mut command = Command::new(new);
    command
        .args(updater.args())
        .arg(TRIAL_FLAG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().context("the new binary does not start")?;
    let output = timeout(TRIAL_LIMIT, child.wait_with_output())
        .await
        .context("the new binary's trial run did not finish in time")?
        .context("the new binary's trial run failed")?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        bail!(
            "the new binary's trial run failed ({}){}",
            output.status,
            last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
        );
    }
    Ok(())
}

/// Keeps the running binary as `tether-agent.old`, moves `new` (version `version`) into its
/// place and becomes it, on probation. Returns only if that failed, with the old binary back.
pub(crate) fn restart_into(updater: &Updater, new: &Path, version: &str) -> anyhow::Error {
    let exe = match updater.replaceable_exe() {
        Ok(exe) => exe.to_owned(),
        Err(why) => return anyhow::anyhow!(why),
    };
    let old = exe.with_file_name(OLD);
    if let Err(e) = std::fs::rename(&exe, &old) {
        return anyhow::Error::new(e).context("cannot keep the running binary for a rollback");
    }
    if let Err(e) = std::fs::rename(new, &exe) {
        let _ = std::fs::rename(&old, &exe);
        return anyhow::Error::new(e).context("cannot move the new binary into place");
    }
    if let Err(e) = super::probation::begin(&updater.state_dir, crate::version::VERSION, version) {
        // Without it the new version is not watched; the trial run vouched for it already.
        tracing::warn!("update: cannot write the probation file: {e}");
    }
    let failed = exec(&exe, updater);
    // Still here: put the running version back so a restart by hand finds it.
    super::probation::passed(&updater.state_dir);
    let _ = std::fs::rename(&exe, new);
    let _ = std::fs::rename(&old, &exe);
    failed
}

/// Puts `tether-agent.old` back in place and becomes it. Returns only if that failed.
pub(crate) fn roll_back(updater: &Updater) -> anyhow::Error {
    let exe = match updater.replaceable_exe() {
        Ok(exe) => exe.to_owned(),
        Err(why) => return anyhow::anyhow!(why),
    };
    let old = exe.with_file_name(OLD);
    if !old.exists() {
        return anyhow::anyhow!("there is no previous version to go back to");
    }
    if let Err(e) = std::fs::rename(&old, &exe) {
        return anyhow::Error::new(e).context("cannot put the previous binary back");
    }
    // Going back on purpose: whatever probation there was is over.
    super::probation::passed(&updater.state_dir);
    exec(&exe, updater)
}

/// Becomes `exe` with the arguments this process was started with (`service::restart_as`).
fn exec(exe: &Path, updater: &Updater) -> anyhow::Error {
    println!("tether-agent restarting as {}", exe.display());
    crate::service::restart_as(exe, updater.args())
}
