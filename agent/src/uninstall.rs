//! `tether-agent uninstall`: undoes what the invite's `install.sh` did. Stops the agent (its
//! systemd service, disabled and removed, or the process `install.sh` started with `nohup`), then
//! deletes the files the script put in the install folder, the agent's identity among them, and
//! the folder once empty. Files it did not put there are left alone.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// What `install.sh` puts in the folder (and the agent writes there).
const FILES: &[&str] = &[
    "tether-agent",
    "tether-agent.new",
    "agent.msh",
    "agent.msh.new",
    "root.crt",
    "agent.log",
    "agent.pid",
];
const STATE: &str = "state";

/// The running agent removes itself (the server asked): the files first, since stopping the
/// service ends this very process; the caller exits when this returns.
pub(crate) fn remove_self(dir: &Path) -> anyhow::Result<()> {
    remove_files(dir)?;
    crate::service::remove_self()
}

/// `dir`: the install folder; by default the folder this binary runs from.
pub(crate) fn run(dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("finding this program's folder")?
            .parent()
            .context("this program has no folder")?
            .to_owned(),
    };
    if !dir.join("agent.msh").exists() && !dir.join(STATE).exists() {
        anyhow::bail!(
            "{} does not look like a tether-agent install folder (no agent.msh or state/); give it with --dir",
            dir.display()
        );
    }
    crate::service::remove()?;
    stop_background_agent(&dir);
    remove_files(&dir)
}

/// Deletes what `install.sh` put in `dir`, and `dir` once empty.
fn remove_files(dir: &Path) -> anyhow::Result<()> {
    for name in FILES {
        remove(&dir.join(name), false)?;
    }
    remove(&dir.join(STATE), true)?;
    match std::fs::remove_dir(dir) {
        Ok(()) => println!("tether-agent uninstall: removed {}", dir.display()),
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(_) => println!(
            "tether-agent uninstall: left {} in place: it holds files the installer did not put there",
            dir.display()
        ),
    }
    Ok(())
}

/// Ends the agent `install.sh` started in the background (its pid file names it), checking that
/// the pid is still a tether-agent and not another process that got the number since.
fn stop_background_agent(dir: &Path) {
    let Ok(text) = std::fs::read_to_string(dir.join("agent.pid")) else {
        return;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return;
    };
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if name.trim() != "tether-agent" || pid == std::process::id() as i32 {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid);
    if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).is_ok() {
        println!("tether-agent uninstall: stopped the agent (pid {pid})");
    }
}

fn remove(path: &Path, folder: bool) -> anyhow::Result<()> {
    let removed = if folder {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}
