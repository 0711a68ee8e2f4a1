//! Driving `tether-loadgen`: the same simulated agents for both servers (the handshake is
//! MeshCentral's, byte for byte). Its progress lines on stderr say how many agents are online; its
//! `--json` summary on stdout gives connect times and failures.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::procs::Guard;

/// The loadgen closes every connection on Ctrl-C, each with up to 20 s for the close handshake.
const FINISH_GRACE: Duration = Duration::from_secs(40);
/// The loadgen's own limit on one agent's connect (its `CONNECT_TIMEOUT`), plus slack.
const CONNECT_LIMIT: Duration = Duration::from_secs(75);

pub(crate) struct Options<'a> {
    pub binary: &'a Path,
    pub msh: &'a Path,
    pub agents: u32,
    pub rate: f64,
    /// `None`: hold until [`Holding::finish`].
    pub hold: Option<u64>,
    pub small_keys: bool,
    pub log: PathBuf,
    /// Agents come back when their connection drops (`--reconnect`).
    pub reconnect: bool,
    /// The first cached key used (`--key-offset`): load tools side by side are other agents.
    pub key_offset: usize,
}

/// The fields of the loadgen's `--json` summary the bench uses.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Summary {
    pub online: usize,
    pub failed: usize,
    pub authenticated: usize,
    pub connect_ms_p50: Option<f64>,
    pub connect_ms_p99: Option<f64>,
    pub connect_ms_max: Option<f64>,
    #[serde(default)]
    pub failures: BTreeMap<String, usize>,
    /// Each agent's way back (ms), with `--reconnect`.
    #[serde(default)]
    pub reconnect_ms: Vec<f64>,
}

/// One progress line: `tether-loadgen:    5.0 s  online 5 / 5  authenticated 5  failed 0`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    pub online: u32,
    pub authenticated: u32,
    pub failed: u32,
    /// The identities are loaded (keys made): connecting has begun.
    pub keys_ready: bool,
}

pub(crate) fn parse_progress(line: &str, previous: Progress) -> Progress {
    let mut progress = previous;
    if line.contains("identities ready") {
        progress.keys_ready = true;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let number_after = |word: &str| {
        words
            .iter()
            .position(|w| *w == word)
            .and_then(|i| words.get(i + 1))
            .and_then(|n| n.parse().ok())
    };
    if let (Some(online), Some(authenticated), Some(failed)) = (
        number_after("online"),
        number_after("authenticated"),
        number_after("failed"),
    ) {
        progress.online = online;
        progress.authenticated = authenticated;
        progress.failed = failed;
    }
    progress
}

/// A loadgen run in progress.
pub(crate) struct Holding {
    guard: Guard,
    progress: watch::Receiver<Progress>,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<()>,
}

pub(crate) fn start(options: &Options<'_>) -> anyhow::Result<Holding> {
    let mut command = Command::new(options.binary);
    command
        .arg("--msh")
        .arg(options.msh)
        .args(["--agents", &options.agents.to_string()])
        .args(["--rate", &options.rate.to_string()])
        .arg("--json");
    if let Some(hold) = options.hold {
        command.args(["--hold", &hold.to_string()]);
    }
    if options.small_keys {
        command.arg("--small-keys");
    }
    if options.reconnect {
        command.arg("--reconnect");
    }
    if options.key_offset > 0 {
        command.args(["--key-offset", &options.key_offset.to_string()]);
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting tether-loadgen")?;
    let mut out = child.stdout.take().context("loadgen stdout")?;
    let err = child.stderr.take().context("loadgen stderr")?;
    let stdout = tokio::spawn(async move {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text).await;
        text
    });
    let (sender, progress) = watch::channel(Progress::default());
    let log = options.log.clone();
    let stderr = tokio::spawn(async move {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .await
            .ok();
        let mut lines = BufReader::new(err).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(file) = file.as_mut() {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
            let next = parse_progress(&line, *sender.borrow());
            sender.send_replace(next);
        }
    });
    Ok(Holding {
        guard: Guard::adopt("tether-loadgen", child)?,
        progress,
        stdout,
        stderr,
    })
}

impl Holding {
    /// Waits until every agent is online or has failed (progress lines come every 5 s). Key
    /// generation, on a first run, does not count against the limit.
    pub(crate) async fn wait_settled(
        &mut self,
        agents: u32,
        rate: f64,
    ) -> anyhow::Result<Progress> {
        let ramp = Duration::from_secs_f64(f64::from(agents) / rate);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let progress = *self.progress.borrow_and_update();
            if progress.online + progress.failed >= agents {
                return Ok(progress);
            }
            if progress.keys_ready && deadline.is_none() {
                deadline = Some(tokio::time::Instant::now() + ramp + CONNECT_LIMIT);
            }
            if let Some(status) = self.guard.try_exited() {
                bail!("tether-loadgen exited early ({status})");
            }
            let wait = tokio::time::sleep(Duration::from_millis(500));
            tokio::select! {
                _ = wait => {}
                changed = self.progress.changed() => { let _ = changed; }
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() > d) {
                bail!(
                    "agents did not settle in time: online {} failed {} of {agents}",
                    progress.online,
                    progress.failed
                );
            }
        }
    }

    /// Waits for the next progress line (they come every 5 s).
    pub(crate) async fn next_progress(&mut self) -> Progress {
        let _ = self.progress.changed().await;
        *self.progress.borrow_and_update()
    }

    /// Stops a holding run (as Ctrl-C does) and reads its summary.
    pub(crate) async fn finish(mut self) -> anyhow::Result<Summary> {
        self.guard.stop_with(Signal::SIGINT, FINISH_GRACE).await;
        self.summary().await
    }

    /// Waits for a run with `--hold` to end by itself and reads its summary.
    pub(crate) async fn complete(mut self, limit: Duration) -> anyhow::Result<Summary> {
        self.guard.wait_exit(limit).await?;
        self.summary().await
    }

    async fn summary(self) -> anyhow::Result<Summary> {
        let _ = self.stderr.await;
        let text = self.stdout.await.context("reading loadgen output")?;
        let line = text
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .with_context(|| format!("tether-loadgen printed no summary: {text:?}"))?;
        serde_json::from_str(line).context("parsing the tether-loadgen summary")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_progress_lines() {
        let start = Progress::default();
        let ready = parse_progress("tether-loadgen: 20 identities ready in 0.3 s", start);
        assert!(ready.keys_ready);
        let line = "tether-loadgen:   10.0 s  online 18 / 20  authenticated 19  failed 1";
        assert_eq!(
            parse_progress(line, ready),
            Progress {
                online: 18,
                authenticated: 19,
                failed: 1,
                keys_ready: true
            }
        );
        assert_eq!(parse_progress("something else", ready), ready);
    }

    #[test]
    fn reads_the_summary_fields_it_needs() {
        let json = r#"{"url":"wss://127.0.0.1:1/agent.ashx","agents":5,"online":5,"failed":0,"authenticated":5,"connect_ms_p50":222.83,"connect_ms_p99":282.54,"connect_ms_max":282.54,"failures":{},"failure_examples":{},"duration_s":5.33,"rate":20.0,"hold_s":5.0,"key_bits":2048,"server_pid":null,"server_rss_kb":[],"server_cpu_percent":[],"server_sample_t_s":[],"server_rss_kb_max":null}"#;
        let summary: Summary = serde_json::from_str(json).unwrap();
        assert_eq!((summary.online, summary.failed), (5, 0));
        assert_eq!(summary.connect_ms_p99, Some(282.54));
    }
}
