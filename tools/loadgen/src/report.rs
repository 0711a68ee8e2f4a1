//! The run's summary: one JSON object for scripts (`--json`), or a few lines for people.
//!
//! Every agent ends in exactly one state, so `online + failed == agents`: `online` counts agents
//! that authenticated and stayed connected until their hold ended (or the run was stopped);
//! `failed` counts the rest, by cause. `authenticated` also counts agents dropped later.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use serde::Serialize;

use crate::procstat::Sample;
use crate::sim::Report;
use crate::stats::{Latency, millis};

/// How the run was set up, for the summary.
pub(crate) struct RunInfo {
    pub url: String,
    pub agents: usize,
    pub rate: f64,
    pub hold: Option<Duration>,
    pub key_bits: u32,
    pub server_pid: Option<u32>,
    pub duration: Duration,
}

#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub url: String,
    pub agents: usize,
    pub online: usize,
    pub failed: usize,
    pub authenticated: usize,
    /// TCP connect → authenticated, over the agents that got there; `null` if none did.
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
    pub connect_ms_max: Option<f64>,
    /// Cause label → count.
    pub failures: BTreeMap<String, usize>,
    /// Cause label → the first error seen with it.
    pub failure_examples: BTreeMap<String, String>,
    pub duration_s: f64,
    pub rate: f64,
    /// `null`: held until stopped.
    pub hold_s: Option<f64>,
    pub key_bits: u32,
    pub server_pid: Option<u32>,
    /// One sample a second (`server_sample_t_s` gives their times).
    pub server_rss_kb: Vec<u64>,
    pub server_cpu_percent: Vec<f64>,
    pub server_sample_t_s: Vec<f64>,
    pub server_rss_kb_max: Option<u64>,
    /// With `--reconnect`: connections lost and made again, and how long each took to be back.
    pub reconnects: usize,
    pub reconnect_ms_p50: Option<f64>,
    pub reconnect_ms_p99: Option<f64>,
    pub reconnect_ms_max: Option<f64>,
    /// Each way back (ms), so that runs of several load tools can be combined.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reconnect_ms: Vec<f64>,
}

pub(crate) fn summarize(run: RunInfo, reports: &[Report], samples: &[Sample]) -> Summary {
    let times: Vec<Duration> = reports.iter().filter_map(|r| r.connect).collect();
    let latency = Latency::of(&times);
    let mut failures = BTreeMap::new();
    let mut failure_examples = BTreeMap::new();
    for failure in reports.iter().filter_map(|r| r.result.as_ref().err()) {
        let label = failure.cause.label();
        *failures.entry(label.clone()).or_insert(0) += 1;
        failure_examples
            .entry(label)
            .or_insert_with(|| failure.detail.clone());
    }
    let failed = failures.values().sum();
    let back: Vec<Duration> = reports
        .iter()
        .flat_map(|r| r.reconnects.iter().copied())
        .collect();
    let reconnect = Latency::of(&back);
    Summary {
        url: run.url,
        agents: run.agents,
        online: reports.len() - failed,
        failed,
        authenticated: times.len(),
        connect_ms_p50: latency.map(|l| millis(l.p50)),
        connect_ms_p99: latency.map(|l| millis(l.p99)),
        connect_ms_max: latency.map(|l| millis(l.max)),
        failures,
        failure_examples,
        duration_s: (run.duration.as_secs_f64() * 100.0).round() / 100.0,
        rate: run.rate,
        hold_s: run.hold.map(|h| h.as_secs_f64()),
        key_bits: run.key_bits,
        server_pid: run.server_pid,
        server_rss_kb: samples.iter().map(|s| s.rss_kb).collect(),
        server_cpu_percent: samples.iter().map(|s| s.cpu_percent).collect(),
        server_sample_t_s: samples.iter().map(|s| s.t_s).collect(),
        server_rss_kb_max: samples.iter().map(|s| s.rss_kb).max(),
        reconnects: back.len(),
        reconnect_ms_p50: reconnect.map(|l| millis(l.p50)),
        reconnect_ms_p99: reconnect.map(|l| millis(l.p99)),
        reconnect_ms_max: reconnect.map(|l| millis(l.max)),
        reconnect_ms: back.iter().map(|d| millis(*d)).collect(),
    }
}

impl Summary {
    pub(crate) fn to_json(&self) -> String {
        // Plain numbers, strings and maps with string keys: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        let hold = self
            .hold_s
            .map_or("until stopped".to_owned(), |h| format!("{h} s"));
        let _ = writeln!(
            out,
            "{} agents → {} (RSA-{}, {}/s, hold {hold})",
            self.agents, self.url, self.key_bits, self.rate
        );
        let _ = writeln!(
            out,
            "online {}, failed {} (authenticated {}) in {:.2} s",
            self.online, self.failed, self.authenticated, self.duration_s
        );
        if let (Some(p50), Some(p99), Some(max)) = (
            self.connect_ms_p50,
            self.connect_ms_p99,
            self.connect_ms_max,
        ) {
            let _ = writeln!(
                out,
                "connect (TCP → authenticated): p50 {p50} ms, p99 {p99} ms, max {max} ms"
            );
        }
        if let (Some(p50), Some(p99), Some(max)) = (
            self.reconnect_ms_p50,
            self.reconnect_ms_p99,
            self.reconnect_ms_max,
        ) {
            let _ = writeln!(
                out,
                "{} reconnects (lost → authenticated again): p50 {p50} ms, p99 {p99} ms, max {max} ms",
                self.reconnects
            );
        }
        for (label, count) in &self.failures {
            let example = self.failure_examples.get(label).map_or("", String::as_str);
            let _ = writeln!(out, "  {label}: {count} (e.g. {example})");
        }
        if let Some(pid) = self.server_pid {
            self.write_server(&mut out, pid);
        }
        out
    }

    fn write_server(&self, out: &mut String, pid: u32) {
        let (Some(first), Some(last), Some(max)) = (
            self.server_rss_kb.first(),
            self.server_rss_kb.last(),
            self.server_rss_kb_max,
        ) else {
            let _ = writeln!(out, "server {pid}: no samples");
            return;
        };
        let cpu_max = self.server_cpu_percent.iter().copied().fold(0.0, f64::max);
        let cpu_mean =
            self.server_cpu_percent.iter().sum::<f64>() / self.server_cpu_percent.len() as f64;
        let _ = writeln!(
            out,
            "server {pid}: RSS {first} kB → {last} kB (max {max} kB), CPU mean {cpu_mean:.1}%, max {cpu_max:.1}% of one core"
        );
        let _ = writeln!(out, "  t(s)    RSS(kB)   CPU%");
        // At most about 60 rows, evenly spaced, and always the last sample.
        let step = self.server_rss_kb.len().div_ceil(60).max(1);
        let last_index = self.server_rss_kb.len() - 1;
        for i in
            (0..self.server_rss_kb.len()).filter(|&i| i.is_multiple_of(step) || i == last_index)
        {
            let _ = writeln!(
                out,
                "  {:>5.1} {:>10} {:>6.1}",
                self.server_sample_t_s[i], self.server_rss_kb[i], self.server_cpu_percent[i]
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{Cause, Failure};

    fn online(ms: u64) -> Report {
        Report {
            connect: Some(Duration::from_millis(ms)),
            reconnects: Vec::new(),
            result: Ok(()),
        }
    }

    fn failed(cause: Cause, detail: &str, connect: Option<u64>) -> Report {
        Report {
            connect: connect.map(Duration::from_millis),
            reconnects: Vec::new(),
            result: Err(Failure {
                cause,
                detail: detail.into(),
            }),
        }
    }

    fn run(agents: usize, server_pid: Option<u32>) -> RunInfo {
        RunInfo {
            url: "wss://127.0.0.1:1/agent.ashx".into(),
            agents,
            rate: 50.0,
            hold: Some(Duration::ZERO),
            key_bits: 2048,
            server_pid,
            duration: Duration::from_millis(1234),
        }
    }

    #[test]
    fn counts_every_agent_once_and_groups_failures() {
        let reports = vec![
            online(10),
            online(30),
            failed(Cause::Tcp, "refused", None),
            failed(Cause::Tcp, "reset", None),
            failed(
                Cause::Handshake("server-id-mismatch".into()),
                "mismatch",
                None,
            ),
            failed(Cause::Dropped, "connection ended", Some(20)),
        ];
        let summary = summarize(run(6, None), &reports, &[]);
        assert_eq!(
            (summary.online, summary.failed, summary.authenticated),
            (2, 4, 3)
        );
        assert_eq!(summary.failures["tcp"], 2);
        assert_eq!(summary.failure_examples["tcp"], "refused");
        assert_eq!(summary.failures["handshake:server-id-mismatch"], 1);
        assert_eq!(summary.failures["dropped"], 1);
        assert_eq!(
            (summary.connect_ms_p50, summary.connect_ms_p99),
            (Some(20.0), Some(30.0))
        );

        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        for key in [
            "online",
            "failed",
            "connect_ms_p50",
            "connect_ms_p99",
            "failures",
            "server_rss_kb",
            "agents",
            "duration_s",
        ] {
            assert!(json.get(key).is_some(), "{key} missing from {json}");
        }
        assert_eq!(json["duration_s"], 1.23);
        assert!(
            summary.human().contains("tcp: 2 (e.g. refused)"),
            "{}",
            summary.human()
        );
    }

    #[test]
    fn nobody_authenticated_gives_null_latency() {
        let summary = summarize(run(1, None), &[failed(Cause::Timeout, "slow", None)], &[]);
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        assert!(json["connect_ms_p50"].is_null());
        assert_eq!(json["online"], 0);
    }

    #[test]
    fn server_samples_are_reported_in_order() {
        let samples = [
            Sample {
                t_s: 1.0,
                rss_kb: 40_000,
                cpu_percent: 10.0,
            },
            Sample {
                t_s: 2.0,
                rss_kb: 52_000,
                cpu_percent: 90.0,
            },
            Sample {
                t_s: 3.0,
                rss_kb: 50_000,
                cpu_percent: 20.0,
            },
        ];
        let summary = summarize(run(1, Some(42)), &[online(5)], &samples);
        assert_eq!(summary.server_rss_kb, [40_000, 52_000, 50_000]);
        assert_eq!(summary.server_rss_kb_max, Some(52_000));
        let human = summary.human();
        assert!(
            human.contains(
                "server 42: RSS 40000 kB → 50000 kB (max 52000 kB), CPU mean 40.0%, max 90.0%"
            ),
            "{human}"
        );
    }
}
