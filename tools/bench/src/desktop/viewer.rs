//! The browser side of the desktop bench: `tools/bench/desktop/viewer.mjs` (playwright-core and
//! Debian's Chromium) running one system's own web viewer, driven by one JSON line per command.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

use crate::procs::Guard;

/// The longest any one command may take (opening waits for an agent's first picture).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

/// Where the script finds its browser and its browser driver.
pub(crate) struct BrowserParts {
    pub script: PathBuf,
    /// The console's playwright-core, which the script loads through the console's end-to-end
    /// test support (checked here so that a missing `npm ci` says so).
    pub playwright: PathBuf,
    pub chromium: PathBuf,
}

impl BrowserParts {
    pub(crate) fn in_workspace(workspace: &Path) -> BrowserParts {
        BrowserParts {
            script: workspace.join("tools/bench/desktop/viewer.mjs"),
            playwright: workspace.join("console/web/node_modules/playwright-core"),
            chromium: std::env::var_os("CHROMIUM")
                .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from),
        }
    }

    pub(crate) fn missing(&self) -> Option<String> {
        if !self.playwright.join("package.json").is_file() {
            return Some(format!(
                "{} is missing (run `npm ci` in console/web)",
                self.playwright.display()
            ));
        }
        if !self.chromium.is_file() {
            return Some(format!(
                "{} is missing (apt install chromium)",
                self.chromium.display()
            ));
        }
        None
    }
}

/// What the viewer is told to open.
pub(crate) struct Target<'a> {
    pub system: &'a str,
    pub url: &'a str,
    pub user: &'a str,
    pub password: &'a str,
    pub device: &'a str,
    pub display: &'a str,
}

pub(crate) struct Viewer {
    guard: Guard,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Viewer {
    pub(crate) fn start(
        parts: &BrowserParts,
        target: &Target,
        log: &Path,
    ) -> anyhow::Result<Viewer> {
        let config = json!({
            "system": target.system,
            "url": target.url,
            "user": target.user,
            "password": target.password,
            "device": target.device,
            "display": target.display,
            "chromium": parts.chromium,
            // A screenshot of the page next to the log when a command fails.
            "shots": log.parent(),
        });
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let mut child = Command::new("node")
            .arg(&parts.script)
            .arg(config.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("starting node for the desktop viewer")?;
        let stdin = child.stdin.take().context("the viewer's stdin")?;
        let stdout = child.stdout.take().context("the viewer's stdout")?;
        Ok(Viewer {
            guard: Guard::adopt("viewer", child)?,
            stdin,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// Sends one command and returns its answer (without the `ok` flag); an answer with
    /// `ok: false` becomes an error.
    pub(crate) async fn call(&mut self, command: Value) -> anyhow::Result<Value> {
        let name = command["cmd"].as_str().unwrap_or("?").to_owned();
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = tokio::time::timeout(COMMAND_TIMEOUT, self.lines.next_line())
            .await
            .with_context(|| format!("the viewer did not answer {name}"))??
            .with_context(|| format!("the viewer exited during {name}"))?;
        let answer: Value = serde_json::from_str(&line)
            .with_context(|| format!("the viewer's answer to {name}: {line}"))?;
        if answer["ok"] != true {
            bail!(
                "viewer {name}: {}",
                answer["error"].as_str().unwrap_or(&line)
            );
        }
        Ok(answer)
    }

    pub(crate) async fn close(mut self) {
        let _ =
            tokio::time::timeout(Duration::from_secs(20), self.call(json!({"cmd": "close"}))).await;
        self.guard.stop().await;
    }
}
