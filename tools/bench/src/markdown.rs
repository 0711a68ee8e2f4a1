//! `report.md`: the table, the charts, and the notes a reader needs to trust (or doubt) them.

use std::fmt::Write;
use std::path::Path;

use anyhow::Context;

use crate::Cli;
use crate::plot::{self, Series};
use crate::report::{self, MESHCENTRAL, Raw, StormSummary, Summary, TETHER};

const RSS_CHART: &str = "rss_vs_agents.png";
/// Picks one figure out of a storm's summary.
type Pick = fn(&StormSummary) -> Option<f64>;
const CONNECT_CHART: &str = "connect_vs_rate.png";

/// Writes `report.md` and the charts into `out`; returns the report text.
pub(crate) fn write(out: &Path, raw: &Raw, cli: &Cli) -> anyhow::Result<String> {
    let tether = report::summarize(&raw.runs, TETHER, &cli.storm_rates);
    let meshcentral = report::summarize(&raw.runs, MESHCENTRAL, &cli.storm_rates);
    let rows = report::rows(
        tether.as_ref(),
        meshcentral.as_ref(),
        &cli.agents,
        cli.ramp_rate,
        cli.storm_agents(),
        &cli.storm_rates,
    );
    let systems: Vec<(&str, &Summary)> = [(TETHER, &tether), (MESHCENTRAL, &meshcentral)]
        .into_iter()
        .filter_map(|(name, s)| s.as_ref().map(|s| (name, s)))
        .collect();
    let charts = draw_charts(out, &systems);

    let mut text = String::new();
    let _ = writeln!(text, "# Tether vs MeshCentral: bench report\n");
    let _ = writeln!(
        text,
        "Run started {} (UTC). Tether {}, MeshCentral {} on Node {}. Figures are medians of {} \
         repetition(s). The ratio is MeshCentral ÷ Tether: for times and memory, above 1 means \
         MeshCentral needs more; for rows marked \"higher is better\", below 1 means MeshCentral \
         achieves less.\n",
        utc_date(raw.machine.started_unix_s),
        raw.machine
            .tether_commit
            .as_deref()
            .unwrap_or("(unknown commit)"),
        raw.machine.meshcentral.as_deref().unwrap_or("(not run)"),
        raw.machine.node.as_deref().unwrap_or("–"),
        cli.repeat
    );
    text.push_str(&report::markdown_table(&rows));
    text.push('\n');
    write_desktop(&mut text, raw);
    for (name, summary) in &systems {
        if summary.logins_refused {
            let _ = writeln!(
                text,
                "**{name} refused some of the timed logins: its login figure is not valid.**\n"
            );
        }
    }
    match &charts {
        Ok(true) => {
            let _ = writeln!(
                text,
                "![Server memory versus connected agents]({RSS_CHART})\n\n\
                 ![Connect time versus storm rate]({CONNECT_CHART})\n"
            );
        }
        Ok(false) => {
            text.push_str("Charts skipped: no TrueType font found (install fonts-dejavu-core).\n\n")
        }
        Err(e) => {
            let _ = writeln!(text, "Charts failed: {e:#}\n");
        }
    }
    write_failures(&mut text, raw);
    write_notes(&mut text, raw, cli, &systems);
    std::fs::write(out.join("report.md"), &text)
        .with_context(|| format!("writing {}", out.join("report.md").display()))?;
    Ok(text)
}

fn draw_charts(out: &Path, systems: &[(&str, &Summary)]) -> anyhow::Result<bool> {
    if !plot::load_font() {
        return Ok(false);
    }
    let rss: Vec<Series> = systems
        .iter()
        .enumerate()
        .map(|(index, (name, s))| Series {
            name: (*name).into(),
            color: index,
            thin: false,
            points: s
                .idle_rss_mb
                .map(|mb| (0.0, mb))
                .into_iter()
                .chain(
                    s.agents
                        .iter()
                        .filter_map(|(n, a)| a.rss_mb.map(|mb| (f64::from(*n), mb))),
                )
                .collect(),
        })
        .collect();
    plot::line_chart(
        &out.join(RSS_CHART),
        "Server memory with idle agents connected",
        "agents connected",
        "RSS (MB, whole process tree)",
        &rss,
    )?;
    let mut connect = Vec::new();
    for (index, (name, s)) in systems.iter().enumerate() {
        let percentiles: [(&str, Pick); 2] =
            [("p99", |p| p.connect_p99_ms), ("p50", |p| p.connect_p50_ms)];
        for (label, pick) in percentiles {
            connect.push(Series {
                name: format!("{name} {label}"),
                color: index,
                thin: label == "p50",
                points: s
                    .storms
                    .iter()
                    .filter_map(|p| pick(p).map(|ms| (p.rate, ms)))
                    .collect(),
            });
        }
    }
    plot::line_chart(
        &out.join(CONNECT_CHART),
        "Agent connect time during a connect storm",
        "agents due per second",
        "TCP connect to authenticated (ms)",
        &connect,
    )?;
    Ok(true)
}

fn write_failures(text: &mut String, raw: &Raw) {
    let mut lines = Vec::new();
    for run in &raw.runs {
        for point in &run.agents {
            if point.failed > 0 {
                lines.push(format!(
                    "- {} #{}: {} of {} agents failed while holding ({:?})",
                    run.system, run.repetition, point.failed, point.agents, point.failures
                ));
            }
        }
        for storm in &run.storms {
            if storm.failed > 0 {
                lines.push(format!(
                    "- {} #{}: storm at {}/s: {} of {} failed ({:?})",
                    run.system,
                    run.repetition,
                    storm.rate,
                    storm.failed,
                    storm.agents,
                    storm.failures
                ));
            }
        }
        for error in &run.errors {
            lines.push(format!(
                "- {} #{}: error: {error}",
                run.system, run.repetition
            ));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            text,
            "## Failures and errors\n\n{}\n\nServer and load-tool logs are in `logs/`.\n",
            lines.join("\n")
        );
    }
}

/// The desktop table and how its figures were taken, when the run measured the desktop.
fn write_desktop(text: &mut String, raw: &Raw) {
    let rows = crate::desktop::table::rows(&raw.runs);
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(text, "## Remote desktop\n");
    let _ = writeln!(
        text,
        "Each system's real agent shows the same private 1920×1080 Xvfb; each system's own web \
         viewer (Tether's console, MeshCentral's Desktop tab) watches it in headless Chromium with \
         its default settings: MeshCentral's through its server's relay (its WebRTC switch is \
         off by default), Tether's moving to a direct WebRTC path where it can (see the routes \
         below). Scenes are drawn by the test kit's \
         `xprobe` (typing: ten characters a second, glyph then caret; scrolling: 30 lines a \
         second; motion: every pixel, 30 times a second), and the mix is a long article in a \
         headed Chromium window on the same screen, scrolled in bursts with pauses to read and \
         dragged 240 px now and then. KiB/s is \
         what the viewer page received over its WebSockets and WebRTC transports; a screen update is an animation \
         frame in which the viewer drew onto its canvas. CPU and RSS are whole process trees \
         (MeshAgent draws in a child process). SSIM and PSNR compare the viewer's canvas with \
         the X server's pixels once the scene is frozen and the viewer has stopped drawing: the \
         picture a person is left looking at.\n"
    );
    text.push_str(&report::markdown_table(&rows));
    text.push('\n');
    for run in &raw.runs {
        if let Some(desktop) = &run.desktop {
            let _ = writeln!(
                text,
                "- {} #{}: the session ended as \"{}\"",
                run.system, run.repetition, desktop.route
            );
        }
    }
    text.push('\n');
}

fn write_notes(text: &mut String, raw: &Raw, cli: &Cli, systems: &[(&str, &Summary)]) {
    let m = &raw.machine;
    let _ = writeln!(text, "## Machine and noise\n");
    let _ = writeln!(
        text,
        "- {} CPU(s){}, {} MB memory, Linux {}.",
        m.cpus,
        m.cpu_model
            .as_deref()
            .map_or(String::new(), |model| format!(" ({model})")),
        m.memory_mb.map_or("?".into(), |mb| mb.to_string()),
        m.kernel.as_deref().unwrap_or("?")
    );
    let _ = writeln!(
        text,
        "- Load average (1/5/15 min) at start {}, at end {}. Anything else running on the machine \
         adds noise; so does the load tool, which shares the CPUs with the server it measures \
         (it does its own TLS and an RSA signature per agent).",
        m.load_start.as_deref().unwrap_or("?"),
        m.load_end.as_deref().unwrap_or("?")
    );
    let namespace = raw.settings["private_network_namespace"] == true;
    let _ = writeln!(
        text,
        "- {}\n",
        if namespace {
            "Everything ran inside a private network namespace whose only interface is loopback: \
             MeshCentral could make no outside connection."
        } else {
            "Ran on the host's loopback (--no-netns)."
        }
    );
    let _ = writeln!(text, "## How it was measured\n");
    let _ = writeln!(
        text,
        "- Each repetition starts each server with a fresh data folder (\"fresh data folder\": \
         certificate generation included; MeshCentral also signs its Windows agent binaries), then \
         restarts it for every measurement below (\"existing data\"). Start time is from spawning \
         the process to the first answered `GET /` over HTTPS.\n\
         - RSS is VmRSS summed over the server's process tree (MeshCentral runs a launcher plus the \
         server: {} processes; Tether: {}), the median of {} samples one second apart, after {} s \
         of quiet.\n\
         - Agents are `tether-loadgen` simulated agents doing the real handshake with RSA-{} keys \
         against both servers, joining at {}/s and then idle. RSS per agent = (RSS with the agents \
         − RSS just before they joined) ÷ agents online.\n\
         - Connect storm: {} agents due at a fixed rate, each staying connected until all are in. \
         Connect time runs from TCP connect to authenticated. Accepted per s = agents \
         authenticated ÷ (time the last was due + the slowest connect).\n\
         - Login page: `GET /` ({} requests, one at a time, kept-alive connection). Login round \
         trip: Tether `POST /api/login` (JSON answer); MeshCentral `POST /` with its login form, \
         which answers with the whole ~1.4 MB application page.\n\
         - Relay: each system's real agent (`tether-agent`; MeshCentral's own `meshagent_x86-64`, \
         which also receives MeshCentral's JavaScript core) runs on this machine; the admin tool \
         (`tetherctl`; `node meshctrl.js`) downloads a {} MiB file of random bytes through the \
         relay. MB/s = size ÷ (median time for the file − median time for a one-byte file), so \
         tool start, login and session set-up are taken out. Terminal echo: the tool's \
         interactive shell runs under `script` (a terminal); after the prompt, a key is typed {} \
         times and the time until the remote shell's echo comes back is measured.\n\
         - Server keys: RSA-{} on both sides.\n",
        process_count(systems, MESHCENTRAL),
        process_count(systems, TETHER),
        3,
        cli.settle,
        if cli.small_keys { 2048 } else { 3072 },
        cli.ramp_rate,
        cli.storm_agents(),
        cli.web_samples,
        cli.relay_mib,
        cli.echo_samples,
        if cli.fastcert { 2048 } else { 3072 },
    );
    let _ = writeln!(text, "## MeshCentral specifics\n");
    let _ = writeln!(
        text,
        "- Config: high ports, `WANonly`, `cert` 127.0.0.1, `agentTimeStampServer: false`, no Let's \
         Encrypt, `selfUpdate: false`, `autoBackup: false`, `noAgentUpdate: true`, NeDB (its default \
         database). `noAgentUpdate` matters: otherwise MeshCentral asks each agent for its binary \
         hash (command 12) to push an update, which a simulated agent cannot answer.\n\
         - The simulated agents announce no JavaScript core (capabilities: terminal and files), so \
         MeshCentral sends no core (command 10/11) and considers them stable at once; real agents \
         would also receive and run its ~100 kB meshcore. The same agents send Tether's \
         `agentinfo` JSON, which MeshCentral logs as an unknown action (one log line per agent).\n\
         - Relay with the real `meshagent`: it is reachable through the relay only once its core \
         runs (tens of seconds after it connects; earlier tunnels are silently dropped), so the \
         bench retries a one-byte download until one succeeds. `meshctrl.js` wants device ids \
         without their `node//` prefix, and its `shell` needs a terminal.\n"
    );
    let _ = writeln!(text, "## Beyond this report\n");
    let _ = writeln!(
        text,
        "- The most agents one Tether server holds here: `bash tools/bench/scripts/max-agents.sh N` \
         (the load tool connects from several loopback addresses past the ephemeral-port limit).\n\
         - Where the server's CPU goes under a connect storm and under relay load (flame graphs \
         and flat profiles): `bash tools/bench/scripts/profile-server.sh`."
    );
}

fn process_count(systems: &[(&str, &Summary)], name: &str) -> String {
    systems
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, s)| s.processes)
        .map_or("?".into(), |n| n.to_string())
}

/// `YYYY-MM-DD HH:MM` from seconds since the epoch (days to civil date: Howard Hinnant's method).
pub(crate) fn utc_date(unix_s: u64) -> String {
    let days = (unix_s / 86_400) as i64;
    let secs = unix_s % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc_date(0), "1970-01-01 00:00");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_date(1_700_000_000), "2023-11-14 22:13");
    }
}
