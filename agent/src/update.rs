//! Self-update: the server offers another version (`tether_common::agent_update`), and the agent
//!
//! 1. checks the offer's signature against its `.msh`'s `ServerID` (`fetch.rs`);
//! 2. fetches the binary from its own server over a WebSocket that must present the control
//!    channel's certificate, into `tether-agent.new`, checking size and SHA-384 as it goes;
//! 3. runs it once as a **trial** (`run … --update-trial`: connect and authenticate, then exit),
//!    so a binary that cannot start, cannot read this agent's identity or cannot reach the server
//!    is never swapped in;
//! 4. keeps the running binary as `tether-agent.old`, renames the new one into place (both in
//!    the install folder, so each rename is atomic) and `exec`s it with the same arguments: the
//!    same process id, so a service manager sees no restart;
//! 5. on `rollback`, renames `tether-agent.old` back and `exec`s it.
//!
//! Only agents installed by the install script (binary and `.msh` in one folder) replace
//! themselves; a packaged agent answers that its package manager updates it.

mod fetch;
mod probation;
mod swap;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub(crate) use fetch::{Fetched, fetch};
pub(crate) use swap::{restart_into, roll_back, trial};

/// The new binary waits here, next to the running one.
const NEW: &str = "tether-agent.new";
/// The binary that ran before the last update, for a rollback.
const OLD: &str = "tether-agent.old";

/// Where this agent runs from and how it was started: what an update replaces and restarts.
#[derive(Clone)]
pub(crate) struct Updater {
    /// The binary's path as started (`current_exe` later would name `tether-agent.old`).
    exe: Option<PathBuf>,
    /// The arguments after the program name, for the trial and the restart.
    args: Vec<OsString>,
    /// The folder with the agent's `.msh`.
    install_dir: Option<PathBuf>,
    /// The agent's state folder (the probation file lives there).
    state_dir: PathBuf,
    busy: Arc<AtomicBool>,
    /// Authenticated with a server since this process started.
    authenticated: Arc<AtomicBool>,
}

impl Updater {
    /// Reads how this process was started; call once, at start.
    pub(crate) fn of_this_process(install_dir: Option<PathBuf>, state_dir: PathBuf) -> Updater {
        Updater {
            exe: std::env::current_exe().ok(),
            args: std::env::args_os().skip(1).collect(),
            install_dir,
            state_dir,
            busy: Arc::default(),
            authenticated: Arc::default(),
        }
    }

    /// At start: a version still on probation after an update (`probation.rs`) is watched, and
    /// goes back to the previous one itself if it cannot show it works.
    pub(crate) fn watch_probation(&self) {
        let Some(probation) = probation::on_start(&self.state_dir, crate::version::VERSION) else {
            return;
        };
        let wait = match probation::verdict(&probation, probation::now_unix()) {
            probation::Verdict::RollBackNow => {
                tracing::error!(from = %probation.from, starts = probation.starts, "update: this version did not prove itself; going back");
                let failed = roll_back(self);
                tracing::error!("update: cannot go back: {failed:#}");
                return;
            }
            probation::Verdict::Watch(wait) => wait,
        };
        tracing::info!(from = %probation.from, "update: on probation for {wait:?}, until it authenticates with its server");
        let updater = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if !updater.authenticated.load(Ordering::Acquire) {
                tracing::error!("update: no server accepted this version in time; going back");
                let failed = roll_back(&updater);
                tracing::error!("update: cannot go back: {failed:#}");
            }
        });
    }

    /// This process authenticated with its server: any probation is over.
    pub(crate) fn authenticated(&self) {
        if !self.authenticated.swap(true, Ordering::AcqRel) {
            probation::passed(&self.state_dir);
        }
    }

    /// The running binary, if this agent may replace it: it must sit in the install folder,
    /// where the install script put it.
    pub(crate) fn replaceable_exe(&self) -> Result<&Path, String> {
        let exe = self
            .exe
            .as_deref()
            .ok_or("this agent cannot tell where its binary is")?;
        let folder = |p: &Path| p.canonicalize().ok();
        let same = match (exe.parent(), &self.install_dir) {
            (Some(bin_dir), Some(install_dir)) => {
                folder(bin_dir).is_some() && folder(bin_dir) == folder(install_dir)
            }
            _ => false,
        };
        if !same {
            return Err(
                "this agent was not installed by the install script (its binary is not in its \
                 .msh's folder): update it with the package manager that installed it"
                    .to_owned(),
            );
        }
        Ok(exe)
    }

    /// Claims the one update slot; `None` while another update is under way.
    pub(crate) fn begin(&self) -> Option<UpdateSlot> {
        (!self.busy.swap(true, Ordering::AcqRel)).then(|| UpdateSlot(self.busy.clone()))
    }

    pub(crate) fn args(&self) -> &[OsString] {
        &self.args
    }
}

/// Held while an update runs; frees the slot when dropped (also when the update fails).
pub(crate) struct UpdateSlot(Arc<AtomicBool>);

impl Drop for UpdateSlot {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The argument that makes `run` a trial: connect, authenticate, exit 0.
pub(crate) const TRIAL_FLAG: &str = "--update-trial";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_script_install_replaces_itself() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tether-agent");
        std::fs::write(&exe, b"x").unwrap();
        let updater = |exe: &Path, install: &Path| Updater {
            exe: Some(exe.to_owned()),
            args: vec![],
            install_dir: Some(install.to_owned()),
            state_dir: install.join("state"),
            busy: Arc::default(),
            authenticated: Arc::default(),
        };
        assert!(updater(&exe, dir.path()).replaceable_exe().is_ok());
        let elsewhere = tempfile::tempdir().unwrap();
        let packaged = updater(&exe, elsewhere.path());
        assert!(
            packaged
                .replaceable_exe()
                .unwrap_err()
                .contains("package manager")
        );
    }

    #[test]
    fn one_update_at_a_time() {
        let updater = Updater::of_this_process(None, PathBuf::from("/nonexistent"));
        let slot = updater.begin().unwrap();
        assert!(updater.begin().is_none());
        drop(slot);
        assert!(updater.begin().is_some());
    }
}
