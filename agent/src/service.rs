//! The seam between the agent and the machine's service manager, kept to three calls so that a
//! new platform is one small file:
//!
//! - [`remove`]: `tether-agent uninstall` run by an administrator stops the service and removes
//!   its definition;
//! - [`remove_self`]: the running agent, asked by the server to uninstall, removes its service
//!   definition and has the manager stop it (a stop, not an exit: an exit would be restarted);
//! - [`restart_as`]: after an update swapped the binary, become the new one.
//!
//! Linux (systemd, `systemd.rs`) is what this project builds and tests. macOS (launchd,
//! `launchd.rs`) and Windows (the service control manager through `windows-service`,
//! `windows.rs`) are written against their documentation and **have never been compiled**: no
//! such machine exists where this project is built (see `installers/README.md`).

#[cfg(target_os = "macos")]
mod launchd;
#[cfg(target_os = "linux")]
mod systemd;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "macos")]
pub(crate) use launchd::{remove, remove_self};
#[cfg(target_os = "linux")]
pub(crate) use systemd::{remove, remove_self};
#[cfg(windows)]
pub(crate) use windows::{remove, remove_self, restart_as};

/// Replaces this process with `exe` started with `args`: the same process id, so the service
/// manager sees no restart, and an agent started by hand (`nohup`) restarts too. Every descriptor
/// the agent opened is close-on-exec (Rust's default), so sockets and files end here. Returns
/// only if it failed.
#[cfg(unix)]
pub(crate) fn restart_as(exe: &std::path::Path, args: &[std::ffi::OsString]) -> anyhow::Error {
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(exe).args(args).exec();
    anyhow::Error::new(e).context("cannot start the new binary")
}
