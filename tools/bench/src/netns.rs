//! The private network the measurements run in. MeshCentral must make no outside traffic (it
//! would fetch npm modules, time-stamp servers, Let's Encrypt…), so the bench re-executes itself
//! under `unshare` in a new network namespace whose only interface is loopback, and runs both
//! servers and the load tool there, so both see the same conditions.
//!
//! Where it can, the namespace is also a new PID namespace with the bench as its init: should the
//! bench die without cleaning up, the kernel kills everything left in it.

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::process::Command;

/// Set in the environment of the re-executed bench.
const INSIDE_ENV: &str = "TETHER_BENCH_IN_NETNS";

pub(crate) fn inside() -> bool {
    std::env::var_os(INSIDE_ENV).is_some_and(|v| v == "1")
}

/// `unshare` and `ip` (iproute2) are needed; say which package provides a missing one.
pub(crate) fn check_tools() -> anyhow::Result<()> {
    for (tool, package) in [("unshare", "util-linux"), ("ip", "iproute2")] {
        if which(tool).is_none() {
            bail!(
                "`{tool}` is not installed (Debian package {package}); it is needed for the private network namespace"
            );
        }
    }
    Ok(())
}

pub(crate) fn which(tool: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

/// `unshare`'s flags: a new network namespace (plus a user namespace mapping us to root when not
/// already root, which is what lets an ordinary user do this), and optionally a PID namespace.
pub(crate) fn unshare_flags(is_root: bool, pid_namespace: bool) -> Vec<&'static str> {
    let mut flags = vec!["--net"];
    if !is_root {
        flags.push("--map-root-user");
    }
    if pid_namespace {
        flags.extend(["--pid", "--fork", "--mount-proc", "--kill-child"]);
    }
    flags
}

/// Runs this same program, with the same arguments, inside a fresh namespace; returns its exit code.
/// `env` is passed to it on top of ours.
pub(crate) async fn reexec(env: &[(&str, OsString)]) -> anyhow::Result<ExitCode> {
    let is_root = nix::unistd::geteuid().is_root();
    let pid_namespace = probe(&unshare_flags(is_root, true)).await;
    if !pid_namespace {
        eprintln!("tether-bench: no PID namespace here; relying on the bench's own cleanup");
        if !probe(&unshare_flags(is_root, false)).await {
            bail!(
                "`unshare --net` fails here (user namespaces disabled?); run the bench as root, or \
                 with --no-netns and --meshcentral no"
            );
        }
    }
    let exe = std::env::current_exe().context("finding the bench's own executable")?;
    let mut command = Command::new("unshare");
    command
        .args(unshare_flags(is_root, pid_namespace))
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(INSIDE_ENV, "1");
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().context("starting unshare")?;
    // A Ctrl-C reaches the inner bench as well; it cleans up and exits, and so do we.
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = tokio::signal::ctrl_c() => eprintln!("tether-bench: stopping; cleaning up"),
        }
    };
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

async fn probe(flags: &[&str]) -> bool {
    Command::new("unshare")
        .args(flags)
        .arg("true")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Inside the namespace: bring loopback up and make sure it is the only interface.
pub(crate) async fn bring_up_loopback() -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .await
        .context("running `ip link set lo up`")?;
    if !status.success() {
        bail!("`ip link set lo up` failed ({status})");
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .await
        .context("running `ip -o link show`")?;
    let names = link_names(&String::from_utf8_lossy(&links.stdout));
    if names != ["lo"] {
        bail!("the private namespace has interfaces besides loopback: {names:?}");
    }
    Ok(())
}

/// `1: lo: <LOOPBACK,UP> mtu 65536 …` lines → `["lo"]`.
pub(crate) fn link_names(ip_output: &str) -> Vec<String> {
    ip_output
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or_default().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_needs_no_user_namespace() {
        assert_eq!(unshare_flags(true, false), ["--net"]);
        assert_eq!(unshare_flags(false, false), ["--net", "--map-root-user"]);
        let with_pid = unshare_flags(true, true);
        assert!(with_pid.contains(&"--pid") && with_pid.contains(&"--kill-child"));
    }

    #[test]
    fn reads_interface_names() {
        let out = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n\
                   2: eth0@if7: <BROADCAST,MULTICAST,UP> mtu 1500 qdisc noqueue state UP\n";
        assert_eq!(link_names(out), ["lo", "eth0"]);
    }
}
