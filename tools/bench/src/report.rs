//! What a run found: the raw figures (`raw.json`), their medians per system, and the Markdown
//! report with the side-by-side table.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::desktop::DesktopPoint;
use crate::machine::Machine;
use crate::relay::{PathPoint, RelayPoint};
use crate::stats::median_of;

pub(crate) const TETHER: &str = "Tether";
pub(crate) const MESHCENTRAL: &str = "MeshCentral";

#[derive(Debug, Clone, Serialize)]
pub(crate) struct IdlePoint {
    pub warm_start_s: f64,
    pub idle_rss_kb: Option<f64>,
    /// Processes in the server's tree (MeshCentral: a launcher and the server itself).
    pub processes: usize,
    pub page_ms_p50: Option<f64>,
    pub page_ms_p99: Option<f64>,
    pub login_ms_p50: Option<f64>,
    /// Every login was accepted (a refused one would time something else).
    pub login_ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AgentPoint {
    pub agents: u32,
    pub online: usize,
    pub failed: usize,
    pub failures: BTreeMap<String, usize>,
    pub baseline_rss_kb: Option<f64>,
    pub rss_kb: Option<f64>,
    pub per_agent_kb: Option<f64>,
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StormPoint {
    pub rate: f64,
    pub agents: u32,
    pub authenticated: usize,
    pub failed: usize,
    pub failures: BTreeMap<String, usize>,
    pub accepted_per_s: Option<f64>,
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
    pub connect_ms_max: Option<f64>,
}

/// One repetition on one system.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RunResult {
    pub system: String,
    pub repetition: u32,
    pub cold_start_s: Option<f64>,
    pub idle: Option<IdlePoint>,
    pub agents: Vec<AgentPoint>,
    pub storms: Vec<StormPoint>,
    pub relay: Option<RelayPoint>,
    pub desktop: Option<DesktopPoint>,
    pub errors: Vec<String>,
}

/// Everything, as `raw.json`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Raw {
    pub machine: Machine,
    pub settings: serde_json::Value,
    pub runs: Vec<RunResult>,
}

/// Medians over the repetitions of one system.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    pub cold_start_s: Option<f64>,
    pub warm_start_s: Option<f64>,
    pub idle_rss_mb: Option<f64>,
    pub processes: Option<usize>,
    pub page_ms: Option<f64>,
    pub login_ms: Option<f64>,
    pub logins_refused: bool,
    pub relay_mb_s: Option<f64>,
    pub relay_cpu_s_per_gib: Option<f64>,
    pub echo_ms: Option<f64>,
    pub echo_p99_ms: Option<f64>,
    /// Tether's direct path (`tetherctl --direct always`).
    pub direct_mb_s: Option<f64>,
    pub direct_cpu_s_per_gib: Option<f64>,
    pub direct_echo_ms: Option<f64>,
    pub direct_echo_p99_ms: Option<f64>,
    /// By agent count.
    pub agents: BTreeMap<u32, AgentSummary>,
    /// In the order of the rates asked for.
    pub storms: Vec<StormSummary>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AgentSummary {
    pub rss_mb: Option<f64>,
    pub per_agent_kb: Option<f64>,
    pub connect_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StormSummary {
    pub rate: f64,
    pub accepted_per_s: Option<f64>,
    pub connect_p50_ms: Option<f64>,
    pub connect_p99_ms: Option<f64>,
}

pub(crate) fn summarize(runs: &[RunResult], system: &str, rates: &[f64]) -> Option<Summary> {
    let runs: Vec<&RunResult> = runs.iter().filter(|r| r.system == system).collect();
    if runs.is_empty() {
        return None;
    }
    let idle = || runs.iter().filter_map(|r| r.idle.as_ref());
    // The median of one relay figure over the runs, relayed or on the direct path.
    let relayed = |figure: fn(&PathPoint) -> Option<f64>| {
        median_of(runs.iter().map(|r| figure(&r.relay.as_ref()?.relayed)))
    };
    let direct = |figure: fn(&PathPoint) -> Option<f64>| {
        median_of(
            runs.iter()
                .map(|r| figure(r.relay.as_ref()?.direct.as_ref()?)),
        )
    };
    let mut summary = Summary {
        cold_start_s: median_of(runs.iter().map(|r| r.cold_start_s)),
        warm_start_s: median_of(idle().map(|i| Some(i.warm_start_s))),
        idle_rss_mb: median_of(idle().map(|i| i.idle_rss_kb.map(|kb| kb / 1024.0))),
        processes: idle().map(|i| i.processes).max(),
        page_ms: median_of(idle().map(|i| i.page_ms_p50)),
        login_ms: median_of(idle().map(|i| i.login_ms_p50)),
        logins_refused: idle().any(|i| !i.login_ok),
        relay_mb_s: relayed(|p| p.download_mb_s),
        relay_cpu_s_per_gib: relayed(|p| p.server_cpu_s_per_gib),
        echo_ms: relayed(|p| p.echo_ms_p50),
        echo_p99_ms: relayed(|p| p.echo_ms_p99),
        direct_mb_s: direct(|p| p.download_mb_s),
        direct_cpu_s_per_gib: direct(|p| p.server_cpu_s_per_gib),
        direct_echo_ms: direct(|p| p.echo_ms_p50),
        direct_echo_p99_ms: direct(|p| p.echo_ms_p99),
        ..Summary::default()
    };
    let points = || runs.iter().flat_map(|r| r.agents.iter());
    let mut counts: Vec<u32> = points().map(|p| p.agents).collect();
    counts.sort_unstable();
    counts.dedup();
    for count in counts {
        let at = || points().filter(move |p| p.agents == count);
        summary.agents.insert(
            count,
            AgentSummary {
                rss_mb: median_of(at().map(|p| p.rss_kb.map(|kb| kb / 1024.0))),
                per_agent_kb: median_of(at().map(|p| p.per_agent_kb)),
                connect_p99_ms: median_of(at().map(|p| p.connect_ms_p99)),
            },
        );
    }
    for &rate in rates {
        let at = || {
            runs.iter()
                .flat_map(|r| r.storms.iter())
                .filter(move |s| s.rate == rate)
        };
        summary.storms.push(StormSummary {
            rate,
            accepted_per_s: median_of(at().map(|s| s.accepted_per_s)),
            connect_p50_ms: median_of(at().map(|s| s.connect_ms_p50)),
            connect_p99_ms: median_of(at().map(|s| s.connect_ms_p99)),
        });
    }
    Some(summary)
}

/// One table line: a metric and each system's median.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub metric: String,
    pub tether: Option<f64>,
    pub meshcentral: Option<f64>,
}

pub(crate) fn rows(
    tether: Option<&Summary>,
    meshcentral: Option<&Summary>,
    counts: &[u32],
    ramp_rate: f64,
    storm_agents: u32,
    rates: &[f64],
) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut add = |metric: String, pick: &dyn Fn(&Summary) -> Option<f64>| {
        rows.push(Row {
            metric,
            tether: tether.and_then(pick),
            meshcentral: meshcentral.and_then(pick),
        });
    };
    add("Start to serving, fresh data folder (s)".into(), &|s| {
        s.cold_start_s
    });
    add("Start to serving, existing data (s)".into(), &|s| {
        s.warm_start_s
    });
    add("Idle RSS after start (MB)".into(), &|s| s.idle_rss_mb);
    for &count in counts {
        add(format!("RSS with {count} idle agents (MB)"), &|s| {
            s.agents.get(&count).and_then(|a| a.rss_mb)
        });
        add(format!("RSS per idle agent at {count} (kB)"), &|s| {
            s.agents.get(&count).and_then(|a| a.per_agent_kb)
        });
        add(
            format!("Connect p99 while {count} agents join at {ramp_rate}/s (ms)"),
            &|s| s.agents.get(&count).and_then(|a| a.connect_p99_ms),
        );
    }
    for (i, &rate) in rates.iter().enumerate() {
        add(
            format!(
                "Storm of {storm_agents} at {rate}/s: agents accepted per s (higher is better)"
            ),
            &|s| s.storms.get(i).and_then(|p| p.accepted_per_s),
        );
        add(
            format!("Storm of {storm_agents} at {rate}/s: connect p99 (ms)"),
            &|s| s.storms.get(i).and_then(|p| p.connect_p99_ms),
        );
    }
    add(
        "Relay file download (MB/s, higher is better)".into(),
        &|s| s.relay_mb_s,
    );
    add(
        "Server CPU per GiB downloaded through the relay (s)".into(),
        &|s| s.relay_cpu_s_per_gib,
    );
    add("Terminal echo p50 (ms)".into(), &|s| s.echo_ms);
    add("Terminal echo p99 (ms)".into(), &|s| s.echo_p99_ms);
    add(
        "Direct path file download (MB/s; Tether only, higher is better)".into(),
        &|s| s.direct_mb_s,
    );
    add(
        "Server CPU per GiB downloaded on the direct path (s)".into(),
        &|s| s.direct_cpu_s_per_gib,
    );
    add("Terminal echo p50 on the direct path (ms)".into(), &|s| {
        s.direct_echo_ms
    });
    add("Terminal echo p99 on the direct path (ms)".into(), &|s| {
        s.direct_echo_p99_ms
    });
    add("Login page GET / p50 (ms)".into(), &|s| s.page_ms);
    add("Login round trip p50 (ms)".into(), &|s| s.login_ms);
    rows
}

/// A figure with as many decimals as its size deserves; `–` when missing.
pub(crate) fn format_value(value: Option<f64>) -> String {
    match value {
        None => "–".into(),
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// MeshCentral ÷ Tether, e.g. `3.2×`.
pub(crate) fn format_ratio(tether: Option<f64>, meshcentral: Option<f64>) -> String {
    match (tether, meshcentral) {
        (Some(t), Some(m)) if t > 0.0 => {
            let ratio = m / t;
            if ratio >= 10.0 {
                format!("{ratio:.0}×")
            } else if ratio >= 1.0 {
                format!("{ratio:.1}×")
            } else {
                format!("{ratio:.2}×")
            }
        }
        _ => "–".into(),
    }
}

pub(crate) fn markdown_table(rows: &[Row]) -> String {
    let mut out = String::from("| Metric | Tether | MeshCentral | MeshCentral ÷ Tether |\n");
    out.push_str("|---|---:|---:|---:|\n");
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            row.metric,
            format_value(row.tether),
            format_value(row.meshcentral),
            format_ratio(row.tether, row.meshcentral)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_get_sensible_precision() {
        assert_eq!(format_value(None), "–");
        assert_eq!(format_value(Some(123.456)), "123");
        assert_eq!(format_value(Some(12.345)), "12.3");
        assert_eq!(format_value(Some(1.2345)), "1.23");
        assert_eq!(format_ratio(Some(10.0), Some(35.0)), "3.5×");
        assert_eq!(format_ratio(Some(2.0), Some(50.0)), "25×");
        assert_eq!(format_ratio(Some(4.0), Some(1.0)), "0.25×");
        assert_eq!(format_ratio(Some(0.0), Some(1.0)), "–");
        assert_eq!(format_ratio(None, Some(1.0)), "–");
    }

    #[test]
    fn table_has_one_line_per_row_and_aligned_columns() {
        let table = markdown_table(&[
            Row {
                metric: "Idle RSS after start (MB)".into(),
                tether: Some(9.5),
                meshcentral: Some(190.0),
            },
            Row {
                metric: "Login round trip p50 (ms)".into(),
                tether: Some(40.0),
                meshcentral: None,
            },
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[1], "|---|---:|---:|---:|");
        assert_eq!(lines[2], "| Idle RSS after start (MB) | 9.50 | 190 | 20× |");
        assert_eq!(lines[3], "| Login round trip p50 (ms) | 40.0 | – | – |");
    }

    fn run(system: &str, repetition: u32, cold: f64, rss_at_10: f64) -> RunResult {
        RunResult {
            system: system.into(),
            repetition,
            cold_start_s: Some(cold),
            idle: None,
            agents: vec![AgentPoint {
                agents: 10,
                online: 10,
                failed: 0,
                failures: BTreeMap::new(),
                baseline_rss_kb: Some(1024.0),
                rss_kb: Some(rss_at_10 * 1024.0),
                per_agent_kb: Some(8.0),
                connect_ms_p50: Some(3.0),
                connect_ms_p99: Some(9.0),
            }],
            storms: Vec::new(),
            relay: None,
            desktop: None,
            errors: Vec::new(),
        }
    }

    #[test]
    fn summaries_are_medians_over_repetitions_of_one_system() {
        let runs = vec![
            run(TETHER, 1, 1.0, 10.0),
            run(TETHER, 2, 3.0, 30.0),
            run(TETHER, 3, 2.0, 20.0),
            run(MESHCENTRAL, 1, 60.0, 200.0),
        ];
        let tether = summarize(&runs, TETHER, &[]).unwrap();
        assert_eq!(tether.cold_start_s, Some(2.0));
        assert_eq!(tether.agents[&10].rss_mb, Some(20.0));
        assert!(summarize(&runs, "Other", &[]).is_none());
        let mesh = summarize(&runs, MESHCENTRAL, &[]).unwrap();
        let table = rows(Some(&tether), Some(&mesh), &[10], 100.0, 50, &[]);
        let rss = table
            .iter()
            .find(|r| r.metric == "RSS with 10 idle agents (MB)")
            .unwrap();
        assert_eq!((rss.tether, rss.meshcentral), (Some(20.0), Some(200.0)));
    }
}
