//! The server's footprint over the run, from `/proc/PID`: resident memory (`status` VmRSS) and CPU
//! (`stat` utime + stime, in clock ticks) sampled every second. CPU% is per core, as `top` shows
//! it: 200% is two cores busy.

use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval};
use tokio_util::sync::CancellationToken;

pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Seconds since sampling started.
    pub t_s: f64,
    pub rss_kb: u64,
    /// CPU used since the previous sample, in percent of one core.
    pub cpu_percent: f64,
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

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`). The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after its last `)`.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name come field 3 (state) onwards; utime is field 14, i.e. the 12th here.
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Percent of one core used between two readings.
pub(crate) fn cpu_percent(
    ticks_before: u64,
    ticks_after: u64,
    ticks_per_sec: u64,
    elapsed: Duration,
) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds <= 0.0 || ticks_per_sec == 0 {
        return 0.0;
    }
    let used = ticks_after.saturating_sub(ticks_before) as f64 / ticks_per_sec as f64;
    (used / seconds * 1000.0).round() / 10.0
}

fn ticks_per_sec() -> u64 {
    use nix::unistd::{SysconfVar, sysconf};
    // Linux has reported 100 for decades; sysconf is asked anyway.
    sysconf(SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .unwrap_or(100)
}

fn read(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some((parse_vm_rss_kb(&status)?, parse_cpu_ticks(&stat)?))
}

/// Samples `pid` every second until `stop`, or until the process is gone. `None` from the start if
/// the process cannot be read at all.
pub(crate) fn spawn_sampler(pid: u32, stop: CancellationToken) -> Option<JoinHandle<Vec<Sample>>> {
    let (_, first_ticks) = read(pid)?;
    let per_sec = ticks_per_sec();
    Some(tokio::spawn(async move {
        let started = Instant::now();
        let (mut last_ticks, mut last_at) = (first_ticks, started);
        let mut samples = Vec::new();
        let mut ticks = interval(SAMPLE_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let Some((rss_kb, cpu_ticks)) = read(pid) else {
                eprintln!("tether-loadgen: server process {pid} is gone; sampling stopped");
                break;
            };
            let now = Instant::now();
            samples.push(Sample {
                t_s: ((now - started).as_secs_f64() * 10.0).round() / 10.0,
                rss_kb,
                cpu_percent: cpu_percent(last_ticks, cpu_ticks, per_sec, now - last_at),
            });
            (last_ticks, last_at) = (cpu_ticks, now);
        }
        samples
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_from_status() {
        let status =
            "Name:\ttether-server\nVmPeak:\t  900000 kB\nVmRSS:\t   43210 kB\nRssAnon:\t 1 kB\n";
        assert_eq!(parse_vm_rss_kb(status), Some(43210));
        assert_eq!(
            parse_vm_rss_kb("Name:\tkthreadd\n"),
            None,
            "kernel threads have no VmRSS"
        );
    }

    #[test]
    fn reads_cpu_ticks_after_an_awkward_command_name() {
        // Fields 14 and 15 are 250 and 50; the name holds a space and a ')'.
        let stat = "1234 (tether) srv) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 100 1000 200";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("1234 (x) S 1"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn cpu_percent_is_per_core() {
        // 150 ticks at 100/s over one second: one and a half cores.
        assert_eq!(cpu_percent(1000, 1150, 100, Duration::from_secs(1)), 150.0);
        assert_eq!(cpu_percent(1000, 1005, 100, Duration::from_secs(2)), 2.5);
        assert_eq!(
            cpu_percent(1000, 900, 100, Duration::from_secs(1)),
            0.0,
            "a restarted pid does not go negative"
        );
        assert_eq!(cpu_percent(0, 10, 100, Duration::ZERO), 0.0);
    }

    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        let (rss, _) = read(me).expect("own /proc entry");
        assert!(rss > 0);
    }
}
