//! A program running for a relay session, seen as channels, and the loop that joins it to the
//! relay socket.
//!
//! Flow control both ways, each direction on its own: output is read from the program only as
//! fast as the socket takes it (the output channel is small and its reader waits on each send),
//! and input from the console is read only when the program has taken the previous frame (at
//! most one frame waits here), so a program that stops reading its input cannot make the agent
//! buffer what the console sends. The console's frames are read by a task of their own
//! (`read_console`): a program that both reads and writes a lot (`cat`) needs its input to keep
//! flowing while its output waits for the console, or each would wait on the other.

use std::time::Duration;

use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use tether_common::relay::terminal::{self, TerminalEvent, TerminalRequest, clamp_size};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message;

use super::RelaySocket;

/// Output frames waiting for the socket. Small: the program should feel the socket's pace.
pub(super) const OUTPUT_QUEUE: usize = 4;
/// After the program exits, how long to keep forwarding output still in flight (a background
/// process may keep the terminal open forever; the session ends anyway).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(500);
/// A console that takes no output for this long is gone.
const SEND_DEADLINE: Duration = Duration::from_secs(300);

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Exit {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

/// What the loop can ask of the program besides input.
pub(super) trait Control: Send {
    fn resize(&mut self, cols: u16, rows: u16);
    /// The console left: stop the program (and anything it started in its session).
    fn kill(&mut self);
}

pub(super) struct Running {
    /// Frames to send as they are (a pipe program's frames carry their stream byte already).
    pub output: mpsc::Receiver<Vec<u8>>,
    /// The program's input; dropping it closes the program's standard input.
    pub input: Option<mpsc::Sender<Vec<u8>>>,
    pub exited: oneshot::Receiver<Exit>,
    pub control: Box<dyn Control>,
}

/// What the console's reader tells the loop.
enum FromConsole {
    Resize {
        cols: u16,
        rows: u16,
    },
    /// The console closed the session or its connection failed.
    Left,
}

/// Runs until the program has exited and its output is sent (then sends the exit status and
/// closes), or until the console leaves (then kills the program).
pub(super) async fn drive(socket: RelaySocket, mut running: Running) -> anyhow::Result<()> {
    let (mut sink, stream) = socket.split();
    let (requests_tx, mut requests) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_console(stream, running.input.take(), requests_tx));
    let mut output_open = true;
    let mut exit: Option<Exit> = None;
    let mut drain_until = Instant::now();
    loop {
        if exit.is_some() && !output_open {
            break;
        }
        tokio::select! {
            frame = running.output.recv(), if output_open => match frame {
                Some(frame) => {
                    if !matches!(timeout(SEND_DEADLINE, sink.send(Message::binary(frame))).await, Ok(Ok(()))) {
                        running.control.kill();
                        reader.abort();
                        return Ok(());
                    }
                }
                None => output_open = false,
            },
            status = &mut running.exited, if exit.is_none() => {
                exit = Some(status.unwrap_or_default());
                drain_until = Instant::now() + DRAIN_AFTER_EXIT;
            }
            _ = sleep_until(drain_until), if exit.is_some() && output_open => break,
            request = requests.recv() => match request {
                Some(FromConsole::Resize { cols, rows }) => running.control.resize(cols, rows),
                Some(FromConsole::Left) | None => {
                    tracing::info!("relay: the console left; stopping the program");
                    running.control.kill();
                    return Ok(());
                }
            },
        }
    }
    reader.abort();
    let exit = exit.unwrap_or_default();
    let event = TerminalEvent::Exit {
        code: exit.code,
        signal: exit.signal,
    };
    sink.send(Message::text(terminal::to_json(&event))).await?;
    let _ = timeout(Duration::from_secs(5), sink.close()).await;
    Ok(())
}

/// Reads the console's frames: input goes to the program (waiting while the program has not taken
/// the previous frame), resizes and the console's leaving go to the loop. Ends when the console
/// leaves.
async fn read_console(
    mut stream: SplitStream<RelaySocket>,
    mut input: Option<mpsc::Sender<Vec<u8>>>,
    requests: mpsc::UnboundedSender<FromConsole>,
) {
    while let Some(message) = stream.next().await {
        match message {
            Ok(Message::Binary(bytes)) => {
                if let Some(program) = &input
                    && program.send(bytes.to_vec()).await.is_err()
                {
                    // The program closed its input: what the console types goes nowhere.
                    input = None;
                }
            }
            Ok(Message::Text(text)) => match terminal::parse_request(&text) {
                Some(TerminalRequest::Resize { cols, rows }) => {
                    let (cols, rows) = clamp_size(cols, rows);
                    let _ = requests.send(FromConsole::Resize { cols, rows });
                }
                Some(TerminalRequest::Eof) => input = None,
                _ => tracing::debug!("relay: ignoring a terminal message"),
            },
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Ok(Message::Close(_)) | Err(_) => break,
        }
    }
    let _ = requests.send(FromConsole::Left);
}
