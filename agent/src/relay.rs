//! Relayed sessions: when the server sends `tunnel` on the control channel, the agent opens the
//! relay WebSocket it names (on the same server, checked to present the same TLS certificate as
//! the authenticated control channel), waits for the server's `"c"`, and serves the session.
//!
//! - `process.rs`: a running program as channels (output, input, exit) and the loop that joins it
//!   to the relay socket;
//! - `pty.rs`: an interactive shell in a pseudo-terminal (portable-pty);
//! - `pipes.rs`: a command with plain pipes (`tetherctl exec`);
//! - `run_as.rs`: which local account a terminal session runs as (`runuser` for another one);
//! - `files.rs`: file-manager sessions, confined to a root folder;
//! - `consent.rs`: the person at the device is told or asked first, as the group's policy says.

mod consent;
mod files;
mod pipes;
mod process;
mod pty;
pub(crate) mod run_as;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tether_common::relay::terminal::{self, TerminalEvent, TerminalRequest};
use tether_common::relay::{MAX_RELAY_FRAME, PAIRED, SessionKind, TunnelRequest};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::tls;
pub(crate) use files::Uploads;

/// What a session's code talks to: the relay, or the direct data channel once the session has
/// moved there (`tether_rtc::splice`); the session cannot tell.
pub(crate) type RelaySocket = tether_rtc::SessionSocket;
/// The relay WebSocket itself.
pub(crate) type RelayWs = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// The server closes an unpaired session after its pairing timeout; this is a backstop.
const PAIRING_WAIT: Duration = Duration::from_secs(120);
/// The console's first frame (what to run) must come within this long after `"c"`.
const START_WAIT: Duration = Duration::from_secs(60);

/// What relay sessions need from the control channel and the agent's settings.
pub(crate) struct Settings {
    /// The control channel's URL, `wss://host:port/agent.ashx`.
    pub url: String,
    /// The TLS certificate (DER) the server presented on the authenticated control channel.
    pub cert_der: Vec<u8>,
    /// File sessions see this folder and what is below it.
    pub files_root: PathBuf,
    /// Where resumable uploads wait, and the mode of new files.
    pub uploads: Uploads,
    /// The agent key, which signs the DTLS fingerprint of every direct-path answer.
    pub path_identity: tether_rtc::PathIdentity,
    /// The X display desktop sessions show (`--x-display`, default `$DISPLAY`); without one,
    /// the logged-in user's (`seat.rs`).
    pub x_display: Option<String>,
    /// The agent's desktop hubs, shared by all its sessions (one capture per display).
    #[cfg(feature = "desktop")]
    pub desktop_hubs: crate::desktop::Hubs,
}

/// Serves one `tunnel` request to its end; errors are logged by the caller.
pub(crate) async fn serve_tunnel(
    settings: Arc<Settings>,
    request: TunnelRequest,
) -> anyhow::Result<()> {
    let url = relay_url(&settings.url, &request.url)?;
    let socket = connect(&url, &settings.cert_der).await?;
    let socket = wait_for_peer(socket).await?;
    // The display desktop sessions and consent windows use: the configured one, else the local
    // X11 session of whoever is logged in (`seat.rs`; an agent run as a service has no $DISPLAY).
    let display = if request.kind == SessionKind::Desktop || request.consent.is_some() {
        let configured = settings.x_display.clone();
        tokio::task::spawn_blocking(move || crate::seat::display(configured.as_deref()))
            .await
            .ok()
            .flatten()
    } else {
        None
    };
    let (socket, notice) = match consent::obtain(socket, &request, display.as_deref()).await? {
        consent::Consented::Go(socket, notice) => (*socket, notice),
        consent::Consented::Refused => return Ok(()),
    };
    tracing::info!(user = %request.user, kind = %request.kind, "relay: session started");
    // Terminal, file and desktop sessions may move to a direct path when the server allows one
    // (desktop pictures bigger than a data-channel message cross it in pieces, `pieces.rs`).
    let direct = match request.kind {
        SessionKind::Terminal | SessionKind::Files | SessionKind::Desktop => request.direct.clone(),
        SessionKind::Chat => None,
    };
    let (mut socket, video) = splice(socket, direct, Some(settings.path_identity.clone())).await;
    // Only desktop sessions take the video track.
    #[cfg(not(feature = "desktop"))]
    drop(video);
    if let Some(notice) = notice {
        socket = consent::with_disconnect(socket, notice).await;
    }
    // The server checked the user's rights; the agent holds the session to them too.
    let result = match request.kind {
        kind if !kind.allowed_by(request.rights) => {
            let message = format!(
                "{} may not open {kind} sessions on this device",
                request.user
            );
            refuse(&mut socket, &message).await
        }
        SessionKind::Terminal => serve_terminal(socket, request.user.as_str()).await,
        SessionKind::Files => match files::Root::new(&settings.files_root) {
            Ok(root) => files::serve(socket, root, settings.uploads.clone()).await,
            Err(e) => {
                let message = format!(
                    "the files root {} is unusable: {e}",
                    settings.files_root.display()
                );
                refuse(&mut socket, &message).await
            }
        },
        #[cfg(feature = "desktop")]
        SessionKind::Desktop => {
            let hubs = settings.desktop_hubs.clone();
            crate::desktop::serve(
                socket,
                display,
                hubs,
                request.rights,
                request.user.as_str(),
                video,
                request.microphone,
            )
            .await
        }
        kind => {
            let message = format!("this agent does not serve {kind} sessions yet");
            refuse(&mut socket, &message).await
        }
    };
    tracing::info!(user = %request.user, kind = %request.kind, "relay: session ended");
    result
}

/// Answers a `tunnel` request the agent will not serve (it is at its limit): joins the session
/// only to tell the console why, then closes.
pub(crate) async fn turn_away(
    settings: Arc<Settings>,
    request: TunnelRequest,
    message: &str,
) -> anyhow::Result<()> {
    let url = relay_url(&settings.url, &request.url)?;
    let socket = connect(&url, &settings.cert_der).await?;
    let socket = wait_for_peer(socket).await?;
    let (mut socket, _) = splice(socket, None, None).await;
    refuse(&mut socket, message).await
}

/// The session's socket, on the relay until a direct path (if `direct` allows one) takes over;
/// and the path's video track, handed over once the session is direct (desktop sessions use it).
async fn splice(
    relay: RelayWs,
    direct: Option<tether_common::relay::DirectPath>,
    identity: Option<tether_rtc::PathIdentity>,
) -> (
    RelaySocket,
    Option<tokio::sync::oneshot::Receiver<tether_rtc::VideoTrack>>,
) {
    let config = tether_rtc::SpliceConfig {
        role: tether_rtc::Role::Answerer,
        direct,
        // A viewer on this very machine (tetherctl next to its agent) connects over loopback.
        allow_loopback: true,
        identity,
        device: None,
    };
    let (socket, _status, video) = tether_rtc::splice_with_video(relay, config).await;
    (socket, Some(video))
}

/// The relay URL on the control channel's server: only a path is accepted, so a server message
/// can never send the agent to another host.
pub(crate) fn relay_url(control_url: &str, path: &str) -> anyhow::Result<String> {
    if !path.starts_with('/') || path.starts_with("//") {
        bail!("the relay URL must be a path on this server, not {path:?}");
    }
    let (scheme, rest) = control_url
        .split_once("://")
        .context("the control channel URL has no scheme")?;
    let authority = rest.split('/').next().unwrap_or_default();
    Ok(format!("{scheme}://{authority}{path}"))
}

pub(crate) async fn connect(url: &str, expected_cert: &[u8]) -> anyhow::Result<RelayWs> {
    let (tls_config, seen_cert) = tls::client_config()?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_RELAY_FRAME))
        .max_frame_size(Some(MAX_RELAY_FRAME));
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(ws_config),
        // Keystrokes are tiny frames that must not wait for Nagle.
        true,
        Some(Connector::Rustls(tls_config)),
    );
    let (socket, _) = timeout(PAIRING_WAIT, connecting)
        .await
        .context("the relay did not answer")?
        .context("cannot open the relay WebSocket")?;
    let seen = seen_cert.lock().unwrap_or_else(|p| p.into_inner()).take();
    // The relay carries a user's keystrokes and files: it must be the very server the control
    // channel authenticated (design paper §9), not whoever answers at that address now.
    if seen.as_deref() != Some(expected_cert) {
        bail!("the relay presented another TLS certificate than the authenticated control channel");
    }
    Ok(socket)
}

async fn wait_for_peer(mut socket: RelayWs) -> anyhow::Result<RelayWs> {
    let waited = timeout(PAIRING_WAIT, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) if text.as_str() == PAIRED => return Ok(()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => {
                    bail!("the relay closed before pairing: {frame:?}")
                }
                Some(Ok(other)) => bail!("unexpected frame before pairing: {other:?}"),
                Some(Err(e)) => bail!("relay failed before pairing: {e}"),
                None => bail!("the relay closed before pairing"),
            }
        }
    })
    .await;
    match waited {
        Ok(result) => result.map(|()| socket),
        Err(_) => bail!("the console did not join within {PAIRING_WAIT:?}"),
    }
}

/// `requester`: the console user, for the log.
async fn serve_terminal(mut socket: RelaySocket, requester: &str) -> anyhow::Result<()> {
    let start = match timeout(START_WAIT, socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => match terminal::parse_request(&text) {
            Some(TerminalRequest::Start(start)) => start,
            _ => return refuse(&mut socket, "the first frame must be a terminal start").await,
        },
        _ => return refuse(&mut socket, "no terminal start from the console").await,
    };
    // Another account needs no right beyond TERMINAL (checked by the caller): on a root agent, a
    // root shell can become any account anyway. The agent's own limits apply (run_as.rs).
    if let Some(wanted) = &start.as_user {
        tracing::info!(user = %requester, as_user = ?wanted, pty = start.pty, "relay: terminal as another account requested");
    }
    let account = match run_as::account_for(&start).await {
        Ok(account) => account,
        Err(e) => return refuse(&mut socket, &e.to_string()).await,
    };
    let spawned = if start.pty {
        pty::spawn(&start, &account)
    } else {
        pipes::spawn(&start, &account)
    };
    match spawned {
        Ok(running) => process::drive(socket, running).await,
        Err(e) => {
            refuse(
                &mut socket,
                &format!("cannot start {}: {e:#}", describe(&start.command)),
            )
            .await
        }
    }
}

fn describe(command: &[String]) -> String {
    match command.first() {
        Some(program) => program.clone(),
        None => "the shell".to_owned(),
    }
}

/// Tells the console why nothing will run, then closes.
async fn refuse(socket: &mut RelaySocket, message: &str) -> anyhow::Result<()> {
    tracing::warn!("relay: {message}");
    let error = TerminalEvent::Error {
        message: message.to_owned(),
    };
    socket
        .send(Message::text(terminal::to_json(&error)))
        .await?;
    let _ = socket.close(None).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_stay_on_the_control_channels_server() {
        assert_eq!(
            relay_url(
                "wss://srv.example:8443/agent.ashx",
                "/meshrelay.ashx?id=a.b"
            )
            .unwrap(),
            "wss://srv.example:8443/meshrelay.ashx?id=a.b"
        );
        assert_eq!(
            relay_url("wss://[::1]:9/agent.ashx", "/relay?id=x").unwrap(),
            "wss://[::1]:9/relay?id=x"
        );
        assert!(relay_url("wss://srv/agent.ashx", "wss://evil.example/x").is_err());
        assert!(relay_url("wss://srv/agent.ashx", "//evil.example/x").is_err());
        assert!(relay_url("wss://srv/agent.ashx", "meshrelay.ashx").is_err());
    }
}
