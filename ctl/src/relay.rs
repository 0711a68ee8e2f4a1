//! Relayed sessions from the command line: ask the server for a session on `/control`, open the
//! relay WebSocket with the same login and trust, and wait until the device has joined.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use tether_common::control::CreateSession;
use tether_common::http_error::HttpErrorBody;
use tether_common::ids::DeviceId;
use tether_common::relay::consent::{ConsentMode, ConsentState};
use tether_common::relay::terminal::{self, TerminalEvent, TerminalRequest};
use tether_common::relay::{MAX_RELAY_FRAME, PAIRED, SessionKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{Connector, client_async_tls_with_config};

use crate::connection::{Control, Socket};
use crate::login;
use crate::target::Target;
pub(crate) use tether_rtc::SessionSocket;

/// The server closes an unpaired session after its pairing timeout (60 s by default); this is
/// only a backstop.
const PAIRING_WAIT: Duration = Duration::from_secs(120);
/// Longest wait for the person at the device (their prompt gives up after at most 300 s).
const CONSENT_WAIT: Duration = Duration::from_secs(330);
/// Bytes read from standard input at a time.
const INPUT_CHUNK: usize = 16 * 1024;

/// A remote program's exit status, which `tetherctl` exits with.
#[derive(Debug, thiserror::Error)]
#[error("the remote program exited with status {0}")]
pub(crate) struct RemoteExit(pub i32);

pub(crate) async fn open(
    target: &Target,
    tls: &Arc<rustls::ClientConfig>,
    cookie: &str,
    path: &str,
) -> anyhow::Result<Socket> {
    let mut request = format!("wss://{}{path}", target.authority()).into_client_request()?;
    let cookie = HeaderValue::from_str(cookie).context("odd session cookie")?;
    request.headers_mut().insert("Cookie", cookie);
    let tcp = login::connect_tcp(target).await?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_FRAME))
        .max_frame_size(Some(MAX_RELAY_FRAME));
    let connector = Connector::Rustls(tls.clone());
    match client_async_tls_with_config(request, tcp, Some(config), Some(connector)).await {
        Ok((socket, _)) => Ok(socket),
        Err(Error::Http(response)) => {
            let message = response
                .body()
                .as_deref()
                .and_then(HttpErrorBody::parse)
                .map(|body| body.message)
                .unwrap_or_else(|| format!("HTTP status {}", response.status()));
            bail!("the relay refused the session: {message}")
        }
        Err(e) => bail!("opening the relay: {e}"),
    }
}

/// Asks for a `kind` session on `device` and returns the session's socket once the device has
/// joined (the server's `"c"` was read). Terminal and file sessions then try a direct path as
/// `--direct` says (`direct.rs`); the socket carries the session on whichever path it runs.
pub(crate) async fn start(
    control: &mut Control,
    device: &DeviceId,
    kind: SessionKind,
) -> anyhow::Result<SessionSocket> {
    let request = CreateSession {
        device: device.clone(),
        kind,
    };
    let ticket = control.call(request).await?;
    let mut socket = control.open_relay(&ticket.url).await?;
    let direct = control.direct;
    wait_for_peer(&mut socket, PAIRING_WAIT).await?;
    if ticket.consent == ConsentMode::Prompt {
        wait_for_consent(&mut socket).await?;
    }
    crate::direct::go_direct(socket, kind, ticket.direct, direct, &ticket.device).await
}

/// Waits for the server's `"c"`: the other end joined.
pub(crate) async fn wait_for_peer(socket: &mut Socket, wait: Duration) -> anyhow::Result<()> {
    let waited = tokio::time::timeout(wait, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == PAIRED => return Ok(()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    bail!(
                        "the device did not join the session ({})",
                        crate::output::printable(&reason)
                    )
                }
                Some(Ok(other)) => bail!("unexpected frame before the session started: {other:?}"),
                Some(Err(e)) => bail!("the relay connection failed: {e}"),
                None => bail!("the relay connection closed before the device joined"),
            }
        }
    })
    .await;
    match waited {
        Ok(result) => result,
        Err(_) => bail!("the device did not join the session within {wait:?}"),
    }
}

/// The group asks the person at the device first: waits for the agent's `granted`, saying on
/// standard error that it waits; a refusal ends the command with the agent's reason.
async fn wait_for_consent(socket: &mut Socket) -> anyhow::Result<()> {
    // The prompt's own limit is at most 300 s; this is a backstop.
    let waited = tokio::time::timeout(CONSENT_WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => match ConsentState::parse(&text) {
                    Some(ConsentState::Asking { timeout_secs }) => eprintln!(
                        "waiting for the person at the device to accept (up to {timeout_secs} s)…"
                    ),
                    Some(ConsentState::Granted { .. }) => return Ok(()),
                    // The refusal's reason comes again with the close.
                    None => continue,
                },
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    bail!(
                        "the session was refused: {}",
                        crate::output::printable(&reason)
                    )
                }
                Some(Ok(other)) => bail!("unexpected frame before consent: {other:?}"),
                Some(Err(e)) => bail!("the relay connection failed: {e}"),
                None => {
                    bail!("the relay connection closed before the person at the device answered")
                }
            }
        }
    })
    .await;
    waited.map_err(|_| anyhow::anyhow!("no answer from the device within {CONSENT_WAIT:?}"))?
}

/// Standard input, read on its own thread (a blocking read must not hold up the runtime or its
/// shutdown); `None` from the receiver means end of input. The small channel keeps reading in
/// step with sending.
pub(crate) fn read_stdin() -> mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel(4);
    std::thread::spawn(move || {
        use std::io::Read;
        let mut stdin = std::io::stdin().lock();
        let mut buffer = vec![0u8; INPUT_CHUNK];
        loop {
            match stdin.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.blocking_send(buffer[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    receiver
}

/// The session's sending half on a task of its own, fed from standard input and from the caller.
///
/// Why: the caller's loop must keep reading the session's output while a send waits. The device
/// reads our input only as fast as its program does, and a program like `cat` stops reading
/// while its output waits for us; a loop that sent and read in turn would wait on the device
/// while the device waited on it.
pub(crate) struct SessionWriter {
    messages: mpsc::UnboundedSender<Message>,
    task: JoinHandle<()>,
}

impl SessionWriter {
    /// Sends standard input's chunks as they come (`input`), then `{"type":"eof"}` when it ends
    /// and `eof_after_input`, and whatever [`SessionWriter::send`] is given, in order.
    pub(crate) fn spawn(
        mut sink: SplitSink<SessionSocket, Message>,
        mut input: Option<mpsc::Receiver<Vec<u8>>>,
        eof_after_input: bool,
    ) -> SessionWriter {
        let (messages, mut queued) = mpsc::unbounded_channel::<Message>();
        let task = tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    // The caller's few messages (a resize) go before more input.
                    biased;
                    message = queued.recv() => match message {
                        Some(message) => message,
                        None => break,
                    },
                    chunk = async { input.as_mut()?.recv().await }, if input.is_some() => match chunk {
                        Some(bytes) => Message::binary(bytes),
                        None => {
                            input = None;
                            if !eof_after_input {
                                continue;
                            }
                            Message::text(terminal::to_json(&TerminalRequest::Eof))
                        }
                    },
                };
                if sink.send(message).await.is_err() {
                    // The session is over; the reading side says how.
                    return;
                }
            }
            let _ = sink.close().await;
        });
        SessionWriter { messages, task }
    }

    /// Queues a message after what was queued before (a few small ones: not for bulk data).
    pub(crate) fn send(&self, message: Message) {
        let _ = self.messages.send(message);
    }

    /// Sends what is queued and closes the session, waiting at most a few seconds.
    pub(crate) async fn close(self) {
        let SessionWriter { messages, mut task } = self;
        drop(messages);
        if tokio::time::timeout(Duration::from_secs(5), &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}

/// Why the relay closed, for an error message.
pub(crate) fn close_reason(message: Option<Result<Message, Error>>) -> String {
    match message {
        Some(Ok(Message::Close(Some(frame)))) if !frame.reason.is_empty() => {
            frame.reason.to_string()
        }
        Some(Err(e)) => e.to_string(),
        _ => "closed".to_owned(),
    }
}

/// A terminal session's text frame, as exec and shell both read it: `Some(status)` once the
/// program has exited, an error when the device reports one, `None` for anything else.
pub(crate) fn terminal_exit(text: &str) -> anyhow::Result<Option<i32>> {
    match terminal::parse_event(text) {
        Some(TerminalEvent::Error { message }) => bail!("{message}"),
        Some(exit @ TerminalEvent::Exit { .. }) => Ok(Some(exit.exit_status().unwrap_or(255))),
        _ => Ok(None),
    }
}
