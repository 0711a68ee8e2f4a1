//! Terminal echo latency, as a person at a terminal feels it: the admin tool's interactive shell
//! runs under `script` (which gives it a terminal; `meshctrl.js shell` insists on one), a key is
//! typed, and the time until the remote shell's echo of that key comes back is measured.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::procs::Guard;

/// The shell is ready once its output has been quiet this long (prompt printed).
const QUIET: Duration = Duration::from_millis(1500);
const READY_LIMIT: Duration = Duration::from_secs(60);
const ECHO_LIMIT: Duration = Duration::from_secs(5);
/// The key typed; nothing else is printed while the prompt waits, so its echo is unambiguous.
const KEY: u8 = b'x';

/// `samples` echo times in milliseconds.
pub(crate) async fn latencies(command_line: &str, samples: u32) -> anyhow::Result<Vec<f64>> {
    let mut command = Command::new("script");
    command
        .args(["-qfec", command_line, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().context("starting `script` (util-linux)")?;
    let mut keys = child.stdin.take().context("script stdin")?;
    let mut screen = child.stdout.take().context("script stdout")?;
    let mut guard = Guard::adopt("remote shell", child)?;
    let (sender, mut output) = mpsc::channel::<Vec<u8>>(256);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 8192];
        while let Ok(n) = screen.read(&mut buffer).await {
            if n == 0 || sender.send(buffer[..n].to_vec()).await.is_err() {
                break;
            }
        }
    });

    let result = async {
        wait_for_prompt(&mut output).await?;
        let mut times = Vec::with_capacity(samples as usize);
        for _ in 0..samples {
            keys.write_all(&[KEY]).await?;
            keys.flush().await?;
            let typed = Instant::now();
            loop {
                match timeout(ECHO_LIMIT, output.recv()).await {
                    Ok(Some(chunk)) if chunk.contains(&KEY) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) => bail!("the shell ended"),
                    Err(_) => bail!("no echo within {ECHO_LIMIT:?}"),
                }
            }
            times.push(typed.elapsed().as_secs_f64() * 1000.0);
            wait_until_quiet(
                &mut output,
                Duration::from_millis(100),
                Duration::from_secs(2),
            )
            .await?;
        }
        // Ctrl-U clears the typed keys; Enter is a carriage return in raw mode.
        keys.write_all(b"\x15exit\r").await?;
        keys.flush().await?;
        Ok(times)
    }
    .await;
    let _ = guard.wait_exit(Duration::from_secs(10)).await;
    guard.stop().await;
    result
}

/// Waits for a shell prompt (`# ` or `$ `) followed by [`QUIET`]: by then the tool has put its
/// terminal in raw mode, so a typed key is no longer echoed locally.
async fn wait_for_prompt(output: &mut mpsc::Receiver<Vec<u8>>) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        match timeout(QUIET, output.recv()).await {
            Ok(Some(chunk)) => seen.extend_from_slice(&chunk),
            Ok(None) => bail!(
                "the shell ended before its prompt: {}",
                String::from_utf8_lossy(&seen).trim()
            ),
            Err(_) if has_prompt(&seen) => return Ok(()),
            Err(_) => {}
        }
        if started.elapsed() > READY_LIMIT {
            bail!("no shell prompt within {READY_LIMIT:?}");
        }
    }
}

pub(crate) fn has_prompt(output: &[u8]) -> bool {
    output.windows(2).any(|w| w == b"# " || w == b"$ ")
}

/// Reads output until none has come for `quiet`.
async fn wait_until_quiet(
    output: &mut mpsc::Receiver<Vec<u8>>,
    quiet: Duration,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match timeout(quiet, output.recv()).await {
            Ok(Some(_)) => {}
            Ok(None) => bail!("the shell ended before it was ready"),
            Err(_) => return Ok(()),
        }
        if started.elapsed() > limit {
            bail!("the shell kept printing for {limit:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_shell_prompts() {
        assert!(has_prompt(b"Connected.\r\n\x1b[?2004hroot@vm:/tmp# "));
        assert!(has_prompt(b"user@host:~$ "));
        assert!(!has_prompt(b"Connecting...\r\nWaiting for Agent...\r\n"));
    }
}
