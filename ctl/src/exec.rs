//! `tetherctl exec --device D [--as-user NAME] -- CMD ARGS…`: runs a command on the device (as
//! the agent's account, or as NAME) with plain pipes, copies its standard output and error here
//! as they come, and returns its exit status.
//! Standard input is passed on when it is not a terminal (`echo x | tetherctl exec … -- cat`).

use std::io::{IsTerminal, Write};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tether_common::ids::DeviceId;
use tether_common::relay::SessionKind;
use tether_common::relay::terminal::{
    self, OutputStream, StartTerminal, TerminalRequest, decode_output,
};
use tokio_tungstenite::tungstenite::Message;

use crate::connection::Control;
use crate::relay::{self, SessionWriter, close_reason};

/// The command's exit status (0..=255 where the platform has them).
pub(crate) async fn run(
    control: &mut Control,
    device: &DeviceId,
    command: Vec<String>,
    as_user: Option<String>,
) -> anyhow::Result<i32> {
    let socket = relay::start(control, device, SessionKind::Terminal).await?;
    let (mut sink, mut stream) = socket.split();
    let start = TerminalRequest::Start(StartTerminal::exec(command).run_as(as_user));
    sink.send(Message::text(terminal::to_json(&start)))
        .await
        .context("starting the command")?;
    let input = if std::io::stdin().is_terminal() {
        sink.send(Message::text(terminal::to_json(&TerminalRequest::Eof)))
            .await?;
        None
    } else {
        Some(relay::read_stdin())
    };
    // Input goes out on its own task while this loop reads output (`SessionWriter`).
    let writer = SessionWriter::spawn(sink, input, true);
    loop {
        match stream.next().await {
            Some(Ok(Message::Binary(frame))) => write_output(&frame)?,
            Some(Ok(Message::Text(text))) => {
                if let Some(status) = relay::terminal_exit(&text)? {
                    writer.close().await;
                    return Ok(status);
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
            other => bail!(
                "the session ended before the command did ({})",
                close_reason(other)
            ),
        }
    }
}

/// Blocking writes: when our reader is slow, we stop reading the relay, which slows the device.
fn write_output(frame: &[u8]) -> anyhow::Result<()> {
    let Some((stream, bytes)) = decode_output(frame) else {
        return Ok(());
    };
    let result = match stream {
        OutputStream::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        OutputStream::Stderr => {
            let mut err = std::io::stderr().lock();
            err.write_all(bytes).and_then(|()| err.flush())
        }
    };
    result.context("writing the command's output")
}
