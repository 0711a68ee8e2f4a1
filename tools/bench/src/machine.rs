//! Facts about the machine and the software, recorded with the results: figures from a busy or
//! small machine mean something different, and the report says so.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub cpus: usize,
    pub cpu_model: Option<String>,
    pub memory_mb: Option<u64>,
    pub kernel: Option<String>,
    /// `/proc/loadavg`'s first three numbers when the run started and ended.
    pub load_start: Option<String>,
    pub load_end: Option<String>,
    pub node: Option<String>,
    pub meshcentral: Option<String>,
    pub tether_commit: Option<String>,
    pub started_unix_s: u64,
}

impl Machine {
    pub(crate) fn now() -> Machine {
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model: read("/proc/cpuinfo").and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            }),
            memory_mb: read("/proc/meminfo").and_then(|text| mem_total_mb(&text)),
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
            load_start: load_average(),
            load_end: None,
            node: None,
            meshcentral: None,
            tether_commit: None,
            started_unix_s: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
pub(crate) fn load_average() -> Option<String> {
    let text = read("/proc/loadavg")?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// `MemTotal:  24684000 kB` → MB.
pub(crate) fn mem_total_mb(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line["MemTotal:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024)
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The checked-out commit, with `+dirty` when the tree has local changes.
pub(crate) async fn git_commit(workspace: &std::path::Path) -> Option<String> {
    let run = |args: &'static [&'static str]| {
        tokio::process::Command::new("git")
            .args(args)
            .current_dir(workspace)
            .output()
    };
    let head = run(&["rev-parse", "--short", "HEAD"]).await.ok()?;
    if !head.status.success() {
        return None;
    }
    let mut commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let status = run(&["status", "--porcelain", "--untracked-files=no"])
        .await
        .ok()?;
    if !status.stdout.is_empty() {
        commit.push_str("+dirty");
    }
    Some(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_total_memory() {
        assert_eq!(
            mem_total_mb("MemTotal:       24684000 kB\nMemFree: 1 kB\n"),
            Some(24105)
        );
        assert_eq!(mem_total_mb("nothing"), None);
    }
}
