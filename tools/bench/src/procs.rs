//! The processes the bench starts, and what `/proc` says about them.
//!
//! Every child is held by a [`Guard`]: stopping it (or dropping it, on an error or Ctrl-C path)
//! signals the child *and every descendant it started* by PID. MeshCentral, for one, runs a
//! launcher that starts the real server as a second `node` process. Each PID is remembered with its
//! start time, so a PID the kernel has since reused for something else is never signalled.
//! Children get their own process group, so a Ctrl-C at the terminal reaches only the bench, which
//! then stops them in order.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

/// How long a stopped server gets to exit on SIGTERM before everything left is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running child process and, when stopped, its whole process tree.
pub(crate) struct Guard {
    name: String,
    child: Option<Child>,
    pid: u32,
}

impl Guard {
    /// Starts `command` with stdout and stderr appended to `log` (never a pipe: a chatty server
    /// would block once a pipe nobody reads is full).
    pub(crate) fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Guard> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .process_group(0)
            .kill_on_drop(true);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id().context("a just-spawned child has a PID")?;
        Ok(Guard {
            name: name.to_owned(),
            child: Some(child),
            pid,
        })
    }

    /// Wraps a child spawned elsewhere (with its own stdio), so it is cleaned up the same way.
    pub(crate) fn adopt(name: &str, child: Child) -> anyhow::Result<Guard> {
        let pid = child.id().context("the child has already exited")?;
        Ok(Guard {
            name: name.to_owned(),
            child: Some(child),
            pid,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` if the process has already ended.
    pub(crate) fn try_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().ok().flatten()
    }

    /// Asks the process to stop (SIGTERM, or SIGINT for tools that print a summary on Ctrl-C),
    /// waits up to `grace`, then kills whatever is left of its tree.
    pub(crate) async fn stop_with(&mut self, signal: Signal, grace: Duration) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let tree = process_tree(self.pid);
        let _ = kill(Pid::from_raw(self.pid as i32), signal);
        let exited = tokio::time::timeout(grace, child.wait()).await.is_ok();
        if !exited {
            eprintln!(
                "tether-bench: {} (pid {}) did not stop within {grace:?}; killing it",
                self.name, self.pid
            );
        }
        kill_all(&tree);
        let _ = child.wait().await;
        wait_gone(&tree, Duration::from_secs(5)).await;
    }

    pub(crate) async fn stop(&mut self) {
        self.stop_with(Signal::SIGTERM, STOP_GRACE).await;
    }

    /// Waits for the process to exit by itself, for at most `limit`.
    pub(crate) async fn wait_exit(
        &mut self,
        limit: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("already stopped")?;
        let status = tokio::time::timeout(limit, child.wait())
            .await
            .with_context(|| format!("{} did not finish within {limit:?}", self.name))??;
        self.child = None;
        Ok(status)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.child.is_some() {
            // An error or Ctrl-C path: no time for grace, but nothing may outlive the bench.
            kill_all(&process_tree(self.pid));
        }
    }
}

/// A process as `/proc` identifies it: PID plus start time (clock ticks since boot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcId {
    pid: u32,
    start: u64,
}

/// `pid` and all its descendants, parents first.
fn process_tree(pid: u32) -> Vec<ProcId> {
    let table = process_table();
    let mut tree: Vec<ProcId> = table
        .iter()
        .filter(|p| p.pid == pid)
        .map(|p| ProcId {
            pid: p.pid,
            start: p.start,
        })
        .collect();
    let mut next = 0;
    while next < tree.len() {
        let parent = tree[next].pid;
        tree.extend(table.iter().filter(|p| p.ppid == parent).map(|p| ProcId {
            pid: p.pid,
            start: p.start,
        }));
        next += 1;
    }
    tree
}

fn kill_all(tree: &[ProcId]) {
    for proc in tree {
        if is_alive(*proc) {
            let _ = kill(Pid::from_raw(proc.pid as i32), Signal::SIGKILL);
        }
    }
}

async fn wait_gone(tree: &[ProcId], limit: Duration) {
    let deadline = Instant::now() + limit;
    while tree.iter().any(|p| is_alive(*p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Still the same process, and not a zombie waiting to be reaped.
fn is_alive(proc: ProcId) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", proc.pid))
        .ok()
        .and_then(|stat| parse_stat(&stat))
        .is_some_and(|s| s.start == proc.start && s.state != 'Z')
}

/// The fields of `/proc/PID/stat` the bench needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stat {
    pub pid: u32,
    pub state: char,
    pub ppid: u32,
    /// Field 22, `starttime`.
    pub start: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) is in parentheses and may itself hold
/// spaces and parentheses, so the fields are counted after its last `)`.
pub(crate) fn parse_stat(stat: &str) -> Option<Stat> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    // After ppid (field 4), starttime is field 22: 17 fields further on.
    let start = rest.nth(17)?.parse().ok()?;
    Some(Stat {
        pid,
        state,
        ppid,
        start,
    })
}

fn process_table() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|stat| parse_stat(&stat))
        .collect()
}

/// `VmRSS:   123456 kB` → 123456.
pub(crate) fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Resident memory of `pid` and all its descendants together, in kB (`None` if it is gone).
/// Shared pages (the `node` binary mapped twice, say) count once per process, as `top` shows them.
pub(crate) fn tree_rss_kb(pid: u32) -> Option<u64> {
    let tree = process_tree(pid);
    if tree.is_empty() {
        return None;
    }
    Some(
        tree.iter()
            .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/status", p.pid)).ok())
            .filter_map(|status| parse_vm_rss_kb(&status))
            .sum(),
    )
}

/// User plus system CPU time of `pid` and its living descendants, in seconds (`None` if gone).
pub(crate) fn tree_cpu_s(pid: u32) -> Option<f64> {
    let tree = process_tree(pid);
    if tree.is_empty() {
        return None;
    }
    let ticks: u64 = tree
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{}/stat", p.pid)).ok())
        .filter_map(|stat| parse_cpu_ticks(&stat))
        .sum();
    // /proc counts in USER_HZ, which Linux fixes at 100 for user space on every architecture
    // the bench runs on.
    Some(ticks as f64 / 100.0)
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line, counted after the command
/// name's last `)` as in [`parse_stat`].
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let close = stat.rfind(')')?;
    let mut rest = stat[close + 1..].split_whitespace();
    // Field 3 (state) is the first after the name; utime is field 14, eleven further on.
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some(utime + stime)
}

/// How many processes the tree holds (MeshCentral: launcher + server, more with workers).
pub(crate) fn tree_size(pid: u32) -> usize {
    process_tree(pid).len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_fields_even_with_odd_command_names() {
        let stat = "4242 (node (x) y) S 17 4242 4242 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 11 0 987654 1000 200 18446744073709551615";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                pid: 4242,
                state: 'S',
                ppid: 17,
                start: 987654
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        // utime 5 + stime 3.
        assert_eq!(parse_cpu_ticks(stat), Some(8));
        assert_eq!(parse_cpu_ticks("1 (x) S 2"), None);
    }

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tnode\nVmPeak:\t 1 kB\nVmRSS:\t  123456 kB\nThreads:\t11\n";
        assert_eq!(parse_vm_rss_kb(status), Some(123_456));
        assert_eq!(parse_vm_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn our_own_process_is_in_the_table_with_its_parent() {
        let me = std::process::id();
        let tree = process_tree(me);
        assert_eq!(tree.first().map(|p| p.pid), Some(me));
        assert!(tree_rss_kb(me).is_some_and(|kb| kb > 0));
    }
}
