//! One simulated agent: at its scheduled time it opens TCP, TLS and the WebSocket, runs the real
//! handshake (`tether_common::handshake::AgentHandshake`) with its own key, reports its machine,
//! then holds the connection answering pings until its hold ends or the run is stopped.
//! Each step that fails is reported as a [`Cause`], so the summary can say where a server gives way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_common::handshake::rsa::{RsaSigner, RsaVerifier};
use tether_common::handshake::wire::capabilities;
use tether_common::handshake::{
    AgentConfig, AgentHandshake, AuthInfo, HandshakeError, Hash, sha384,
};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::keys::Identity;

mod hold;
mod update;

/// From TCP connect to authenticated; longer is a `timeout` failure.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// Server messages are small; a 4 KiB read buffer (tungstenite's default is 128 KiB) keeps 10,000
/// idle connections cheap. Larger messages still arrive, the buffer just grows for them.
const READ_BUFFER: usize = 4 * 1024;
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

type Socket = WebSocketStream<TlsStream<TcpStream>>;

/// Where the agents connect and what they claim, from the `.msh`.
pub(crate) struct Target {
    /// The `MeshServer` URL.
    pub url: String,
    /// Resolved once, so name lookups are not part of every agent's connect time.
    pub addr: SocketAddr,
    pub server_name: rustls::pki_types::ServerName<'static>,
    pub server_id: Hash,
    pub mesh_id: Hash,
}

/// What every agent task shares.
pub(crate) struct Shared {
    pub target: Target,
    pub tls: TlsConnector,
    /// `None`: hold until the run is stopped.
    pub hold: Option<Duration>,
    pub stop: CancellationToken,
    pub counters: Counters,
    /// Local addresses agents connect from, in turn; empty: the system's choice.
    pub source_addrs: Vec<std::net::IpAddr>,
    /// Agents take update offers (`--accept-updates`, see `update.rs`).
    pub accept_updates: bool,
    /// Agents whose connection drops or fails come back, waiting as the real agent does
    /// (`--reconnect`), instead of counting a failure.
    pub reconnect: bool,
}

/// Live figures for progress lines.
#[derive(Default)]
pub(crate) struct Counters {
    pub online_now: AtomicUsize,
    pub authenticated: AtomicUsize,
    pub failed: AtomicUsize,
    /// Update offers taken: binary downloaded and checked, then back on the new version.
    pub updated: AtomicUsize,
    /// Update binaries' bytes received.
    pub update_bytes: std::sync::atomic::AtomicU64,
}

/// Why an agent did not stay online for its whole hold.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Cause {
    /// Its cached key file does not hold an RSA key.
    Key,
    Tcp,
    Tls,
    WebSocket,
    /// The handshake state machine refused what the server sent (kebab-case error kind).
    Handshake(String),
    /// Not authenticated within [`CONNECT_TIMEOUT`] (a server *holding* an agent ends here too).
    Timeout,
    /// The server closed the connection before the agent was authenticated.
    ClosedByServer,
    /// Authenticated, then the connection ended before the hold did.
    Dropped,
    /// The run was stopped (Ctrl-C) before this agent got online.
    Cancelled,
    /// The agent's task panicked: a bug in this tool.
    Internal,
}

impl Cause {
    pub(crate) fn label(&self) -> String {
        match self {
            Cause::Key => "key".into(),
            Cause::Tcp => "tcp".into(),
            Cause::Tls => "tls".into(),
            Cause::WebSocket => "websocket".into(),
            Cause::Handshake(kind) => format!("handshake:{kind}"),
            Cause::Timeout => "timeout".into(),
            Cause::ClosedByServer => "closed-by-server".into(),
            Cause::Dropped => "dropped".into(),
            Cause::Cancelled => "cancelled".into(),
            Cause::Internal => "internal".into(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Failure {
    pub cause: Cause,
    /// The first line of the underlying error, for the summary's examples.
    pub detail: String,
}

fn fail(cause: Cause, detail: impl ToString) -> Failure {
    Failure {
        cause,
        detail: detail.to_string(),
    }
}

/// How one agent fared.
pub(crate) struct Report {
    /// TCP connect → authenticated, if it got that far.
    pub connect: Option<Duration>,
    pub result: Result<(), Failure>,
    /// With `--reconnect`: for each time its connection was lost, how long until it was
    /// authenticated again (lost → back, the backoff waits included).
    pub reconnects: Vec<Duration>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    index: usize,
    identity: Identity,
    start_at: Instant,
) -> Report {
    let report = run_inner(&shared, index, identity, start_at).await;
    if report.result.is_err() {
        shared.counters.failed.fetch_add(1, Ordering::Relaxed);
    }
    report
}

async fn run_inner(shared: &Shared, index: usize, identity: Identity, start_at: Instant) -> Report {
    let cancelled = || Report {
        connect: None,
        result: Err(fail(Cause::Cancelled, "stopped before connecting")),
        reconnects: Vec::new(),
    };
    tokio::select! {
        _ = sleep_until(start_at) => {}
        _ = shared.stop.cancelled() => return cancelled(),
    }
    // Parsed here rather than at load time: 10,000 RSA keys take a while to check, and this
    // spreads the work over the ramp, outside the timed part.
    let signer = match RsaSigner::from_pkcs8(&identity.key_pkcs8_der) {
        Ok(signer) => Arc::new(signer),
        Err(e) => {
            return Report {
                connect: None,
                result: Err(fail(Cause::Key, e)),
                reconnects: Vec::new(),
            };
        }
    };
    let mut version = update::STARTING_VERSION.to_owned();
    let mut first_connect = None;
    let mut reconnects = Vec::new();
    // With --reconnect: when the connection was lost, and how many attempts failed since.
    let mut lost: Option<(Instant, u32)> = None;
    loop {
        if let Some((_, failures)) = lost {
            let wait = tether_common::agent_session::reconnect_delay(failures, rand::random());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shared.stop.cancelled() => {
                    return Report { connect: first_connect, result: Err(fail(Cause::Dropped, "stopped while reconnecting")), reconnects };
                }
            }
        }
        let started = Instant::now();
        // Boxed so the large connect state is freed once the agent only holds.
        let connecting = Box::pin(connect(
            shared,
            index,
            identity.cert_der.clone(),
            signer.clone(),
        ));
        let outcome = tokio::select! {
            outcome = timeout(CONNECT_TIMEOUT, connecting) => match outcome {
                Ok(outcome) => outcome,
                Err(_) => Err(fail(Cause::Timeout, format!("not authenticated within {CONNECT_TIMEOUT:?}"))),
            },
            _ = shared.stop.cancelled() => return Report { reconnects, ..cancelled() },
        };
        let socket = match outcome {
            Ok(socket) => socket,
            Err(failure) if shared.reconnect && failure.cause != Cause::Key => {
                let (since, failures) = lost.unwrap_or((started, 0));
                lost = Some((since, failures + 1));
                continue;
            }
            Err(failure) => {
                return Report {
                    connect: first_connect,
                    result: Err(failure),
                    reconnects,
                };
            }
        };
        first_connect.get_or_insert(started.elapsed());
        if let Some((since, _)) = lost.take() {
            reconnects.push(since.elapsed());
        }
        shared
            .counters
            .authenticated
            .fetch_add(1, Ordering::Relaxed);
        shared.counters.online_now.fetch_add(1, Ordering::Relaxed);
        let result = hold::hold(shared, index, &version, socket).await;
        shared.counters.online_now.fetch_sub(1, Ordering::Relaxed);
        match result {
            // "Restarted" on the new version: connect again at once, as a real agent's exec does.
            Ok(hold::Ended::Updated(new_version)) => version = new_version,
            Ok(hold::Ended::Done) => {
                return Report {
                    connect: first_connect,
                    result: Ok(()),
                    reconnects,
                };
            }
            Err(failure) if shared.reconnect => {
                let _ = failure;
                lost = Some((Instant::now(), 0));
            }
            Err(failure) => {
                return Report {
                    connect: first_connect,
                    result: Err(failure),
                    reconnects,
                };
            }
        }
    }
}

/// A TCP connection from a chosen local address (any port), so one load tool can open more
/// connections to one server port than a single source address has ephemeral ports.
async fn connect_from(source: std::net::IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match source {
        std::net::IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

async fn connect(
    shared: &Shared,
    index: usize,
    cert_der: Vec<u8>,
    signer: Arc<RsaSigner>,
) -> Result<Socket, Failure> {
    let target = &shared.target;
    let (mut socket, seen_cert) = open_websocket(shared, index, &target.url).await?;
    let mut nonce = [0u8; 48];
    rand::fill(&mut nonce);
    let config = AgentConfig {
        server_id: target.server_id,
        // Every run is a first contact: the full check, the server's signature included.
        pinned_web_hash: None,
        agent_cert_der: cert_der,
        auth_info: auth_info(index, target.mesh_id),
    };
    let mut handshake =
        AgentHandshake::new(config, seen_cert, nonce, signer, Arc::new(RsaVerifier));
    send_handshake_frames(&mut socket, &mut handshake).await?;
    while !handshake.is_authenticated() {
        let frame = match socket.next().await {
            None => {
                return Err(fail(
                    Cause::ClosedByServer,
                    "connection ended during the handshake",
                ));
            }
            Some(Err(e)) => return Err(fail(Cause::ClosedByServer, e)),
            Some(Ok(Message::Close(frame))) => {
                return Err(fail(
                    Cause::ClosedByServer,
                    format!("close frame {frame:?}"),
                ));
            }
            Some(Ok(Message::Binary(frame))) => frame.to_vec(),
            Some(Ok(Message::Text(text))) => text.as_bytes().to_vec(),
            Some(Ok(_)) => continue,
        };
        handshake
            .handle_input(&frame)
            .map_err(|e| fail(Cause::Handshake(error_kind(&e)), e))?;
        send_handshake_frames(&mut socket, &mut handshake).await?;
        // Events (server verified, authenticated) matter to a real agent for pinning only.
        while handshake.poll_event().is_some() {}
    }
    Ok(socket)
}

/// TCP, TLS and a WebSocket to `url` on the target server; the socket and the SHA-384 of the
/// certificate the server presented.
async fn open_websocket(
    shared: &Shared,
    index: usize,
    url: &str,
) -> Result<(Socket, Hash), Failure> {
    let target = &shared.target;
    let tcp = match shared
        .source_addrs
        .get(index % shared.source_addrs.len().max(1))
    {
        None => TcpStream::connect(target.addr).await,
        Some(source) => connect_from(*source, target.addr).await,
    }
    .map_err(|e| fail(Cause::Tcp, e))?;
    // Handshake messages are small and wait on each other: no Nagle delay.
    let _ = tcp.set_nodelay(true);
    let tls = shared
        .tls
        .connect(target.server_name.clone(), tcp)
        .await
        .map_err(|e| fail(Cause::Tls, e))?;
    let seen_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| sha384(cert))
        .ok_or_else(|| fail(Cause::Tls, "the server presented no certificate"))?;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let (socket, _) = tokio_tungstenite::client_async_with_config(url, tls, Some(ws_config))
        .await
        .map_err(|e| fail(Cause::WebSocket, e))?;
    Ok((socket, seen_cert))
}

async fn send_handshake_frames(
    socket: &mut Socket,
    handshake: &mut AgentHandshake,
) -> Result<(), Failure> {
    while let Some(frame) = handshake.poll_transmit() {
        socket
            .send(Message::binary(frame))
            .await
            .map_err(|e| fail(Cause::ClosedByServer, e))?;
    }
    Ok(())
}

fn auth_info(index: usize, mesh_id: Hash) -> AuthInfo {
    AuthInfo {
        info_version: 1,
        // Linux x86-64, as MeshCentral numbers architectures.
        agent_id: 6,
        agent_version: 100,
        // 8: virtual machine.
        platform_type: 8,
        mesh_id,
        // Terminal and files, but no JavaScript core to negotiate.
        capabilities: capabilities::TERMINAL | capabilities::FILES,
        hostname: hostname(index),
    }
}

fn hostname(index: usize) -> String {
    format!("loadgen-{index:05}")
}

/// `ServerIdMismatch { .. }` → `server-id-mismatch`: the variant name, for grouping failures.
fn error_kind(error: &HandshakeError) -> String {
    let debug = format!("{error:?}");
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let mut kind = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            kind.push('-');
        }
        kind.push(c.to_ascii_lowercase());
    }
    kind
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_errors_are_grouped_by_kind() {
        assert_eq!(
            error_kind(&HandshakeError::ServerIdMismatch),
            "server-id-mismatch"
        );
        assert_eq!(
            error_kind(&HandshakeError::BadLength { command: 2, len: 3 }),
            "bad-length"
        );
        assert_eq!(error_kind(&HandshakeError::Repeated(4)), "repeated");
        assert_eq!(
            Cause::Handshake(error_kind(&HandshakeError::BadServerSignature)).label(),
            "handshake:bad-server-signature"
        );
    }
}
