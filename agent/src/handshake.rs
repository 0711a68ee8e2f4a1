//! Opening the control channel: WebSocket over TLS, then MeshCentral's authentication handshake
//! (driven by the sans-IO `AgentHandshake`). Returns the socket only once the server is verified
//! and has accepted us: before that, nothing the server sends is acted upon.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tether_common::handshake::rsa::RsaVerifier;
use tether_common::handshake::{AgentConfig, AgentEvent, AgentHandshake, AuthInfo, sha384};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::agent::Agent;
use crate::{pin, sysinfo, tls};

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest message accepted from the server.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

pub(crate) struct Authenticated {
    pub socket: Socket,
    /// The outer certificate was pinned, so the server did not have to sign.
    pub skipped_server_check: bool,
    /// The server's TLS certificate (DER) on this authenticated connection: relay connections
    /// must present the same one.
    pub web_cert_der: Vec<u8>,
}

pub(crate) async fn connect(agent: &Agent, url: &str) -> anyhow::Result<Authenticated> {
    let (tls_config, seen_cert) = tls::client_config()?;
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE));
    let deadline = Instant::now() + agent.timing.handshake_timeout;
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        url,
        Some(ws_config),
        // No Nagle: the handshake is several small frames in a row, which Nagle plus delayed ACKs
        // would hold back by tens of milliseconds each.
        true,
        Some(Connector::Rustls(tls_config)),
    );
    let (mut socket, _) = timeout_at(deadline, connecting)
        .await
        .map_err(|_| {
            anyhow!(
                "no WebSocket connection within {:?}",
                agent.timing.handshake_timeout
            )
        })?
        .context("cannot open the WebSocket")?;
    let cert = seen_cert
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .context("the server presented no TLS certificate (the URL must be wss://)")?;

    let mut nonce = [0u8; 48];
    rand::fill(&mut nonce);
    let config = AgentConfig {
        server_id: agent.msh.server_id,
        pinned_web_hash: pin::load(&agent.state_dir),
        agent_cert_der: agent.identity.cert_der.clone(),
        auth_info: auth_info(agent),
    };
    let mut handshake = AgentHandshake::new(
        config,
        sha384(&cert),
        nonce,
        agent.signer.clone(),
        Arc::new(RsaVerifier),
    );
    flush(&mut socket, &mut handshake).await?;
    while !handshake.is_authenticated() {
        let message = timeout_at(deadline, socket.next())
            .await
            .map_err(|_| {
                anyhow!(
                    "the server did not complete the handshake within {:?}",
                    agent.timing.handshake_timeout
                )
            })?
            .context("the server closed the connection during the handshake")?
            .context("connection failed during the handshake")?;
        match message {
            Message::Binary(frame) => handshake.handle_input(&frame)?,
            // Anything else before authentication is a management message, refused by the machine.
            Message::Text(text) => handshake.handle_input(text.as_bytes())?,
            Message::Close(frame) => {
                bail!("the server closed the connection during the handshake ({frame:?})")
            }
            _ => {}
        }
        flush(&mut socket, &mut handshake).await?;
        while let Some(event) = handshake.poll_event() {
            if let AgentEvent::ServerVerified { web_cert_hash } = event {
                // A failure here only costs a full check next time.
                if let Err(e) = pin::save(&agent.state_dir, &web_cert_hash) {
                    tracing::warn!("cannot store the pinned server certificate: {e}");
                }
            }
        }
    }
    Ok(Authenticated {
        socket,
        skipped_server_check: handshake.skipped_server_check(),
        web_cert_der: cert,
    })
}

async fn flush(socket: &mut Socket, handshake: &mut AgentHandshake) -> anyhow::Result<()> {
    while let Some(frame) = handshake.poll_transmit() {
        timeout(
            crate::session::SEND_DEADLINE,
            socket.send(Message::binary(frame)),
        )
        .await
        .map_err(|_| anyhow!("the server stopped reading"))??;
    }
    Ok(())
}

fn auth_info(agent: &Agent) -> AuthInfo {
    AuthInfo {
        info_version: 1,
        agent_id: meshcentral_architecture_id(),
        agent_version: agent_version_number(),
        platform_type: 1,
        mesh_id: agent.msh.mesh_id,
        // No JavaScript core (0x10): the server then does not negotiate one with us.
        capabilities: 0,
        hostname: sysinfo::hostname(),
    }
}

/// MeshCentral's agent architecture ids for Linux builds (meshcentral.js `meshAgentsArchitectureNumbers`).
fn meshcentral_architecture_id() -> u32 {
    match std::env::consts::ARCH {
        "x86" => 5,
        "x86_64" => 6,
        "arm" => 25,
        "aarch64" => 26,
        _ => 0,
    }
}

/// `major.minor.patch` as one number, `major*10000 + minor*100 + patch`.
fn agent_version_number() -> u32 {
    // "1.2.3-rc.1" counts as 1.2.3: the number has no room for a suffix.
    let parts: Vec<u32> = crate::version::VERSION
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    parts
        .iter()
        .take(3)
        .fold(0, |acc, p| acc * 100 + p.min(&99))
}
