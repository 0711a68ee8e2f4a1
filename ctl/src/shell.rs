//! `tetherctl shell --device D [--as-user NAME]`: an interactive shell on the device (NAME's login
//! shell, when given). The local terminal is put in raw mode (every key goes to the remote shell,
//! Ctrl-C included) and restored on the way out; window size changes follow. Exits with the shell's exit status, as `ssh` does.

use std::io::{IsTerminal, Write};
use std::os::fd::AsFd;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use rustix::termios::{OptionalActions, Termios, tcgetattr, tcgetwinsize, tcsetattr};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::terminal::{self, StartTerminal, TerminalRequest};
use tokio::signal::unix::{SignalKind, signal};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::Control;
use crate::relay::{self, SessionWriter, close_reason};

/// `as_user`: a login shell of that account on the device (`None`: the agent's account).
pub(crate) async fn run(
    control: &mut Control,
    device: &DeviceId,
    as_user: Option<String>,
) -> anyhow::Result<i32> {
    let (cols, rows) = window_size().unwrap_or((80, 24));
    let socket = relay::start(control, device, SessionKind::Terminal).await?;
    let (mut sink, mut stream) = socket.split();
    let start = TerminalRequest::Start(StartTerminal::shell(cols, rows).run_as(as_user));
    sink.send(Message::text(terminal::to_json(&start)))
        .await
        .context("starting the shell")?;
    let _raw = RawMode::enable()?;
    // Keys go out on their own task while this loop shows output (`SessionWriter`); when input
    // ends (a pipe, not a terminal), output keeps showing until the shell ends.
    let writer = SessionWriter::spawn(sink, Some(relay::read_stdin()), false);
    let mut resized = signal(SignalKind::window_change()).context("watching the window size")?;
    loop {
        tokio::select! {
            _ = resized.recv() => {
                if let Some((cols, rows)) = window_size() {
                    let resize = TerminalRequest::Resize { cols, rows };
                    writer.send(Message::text(terminal::to_json(&resize)));
                }
            }
            message = stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&bytes).and_then(|()| out.flush()).context("writing to the terminal")?;
                }
                Some(Ok(Message::Text(text))) => {
                    if let Some(status) = relay::terminal_exit(&text)? {
                        writer.close().await;
                        return Ok(status);
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                other => bail!("the session ended ({})", close_reason(other)),
            },
        }
    }
}

/// The terminal's size as (columns, rows), when standard output is a terminal.
fn window_size() -> Option<(u16, u16)> {
    let stdout = std::io::stdout();
    if !stdout.is_terminal() {
        return None;
    }
    let size = tcgetwinsize(stdout.as_fd()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some((size.ws_col, size.ws_row))
}

/// Raw mode on standard input while it lives; the previous settings come back on drop, also on
/// errors and panics.
struct RawMode {
    saved: Option<Termios>,
}

impl RawMode {
    fn enable() -> anyhow::Result<RawMode> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(RawMode { saved: None });
        }
        let saved = tcgetattr(stdin.as_fd()).context("reading the terminal settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin.as_fd(), OptionalActions::Now, &raw).context("entering raw mode")?;
        Ok(RawMode { saved: Some(saved) })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = tcsetattr(std::io::stdin().as_fd(), OptionalActions::Now, saved);
        }
    }
}
