//! The server's STUN port (`stunport`): answers Binding requests so that agents and viewers learn
//! the address the server sees them at, their server-reflexive ICE candidate for direct sessions,
//! without a STUN server outside the deployment. The codec is `tether_common::stun` (sans-IO);
//! this file only moves datagrams.
//!
//! Work per datagram is bounded and constant (one parse of at most 548 bytes, one answer of at
//! most 44), nothing is kept between datagrams, and anything but a well-formed Binding request
//! is dropped without an answer.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context;
use tether_common::stun::{MAX_REQUEST_LEN, binding_success, parse_binding_request};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Binds the STUN port for an HTTPS listener on `https_port`: `configured` if set (0 = off),
/// else the same number over UDP. A configured port that cannot be bound is an error; the
/// default is only tried, since direct sessions still work on host candidates without it.
pub(crate) async fn bind(
    ip: IpAddr,
    configured: Option<u16>,
    https_port: u16,
) -> anyhow::Result<Option<UdpSocket>> {
    let port = match configured {
        Some(0) => return Ok(None),
        Some(port) => port,
        None => https_port,
    };
    match UdpSocket::bind((ip, port)).await {
        Ok(socket) => Ok(Some(socket)),
        Err(e) if configured.is_none() => {
            tracing::warn!(
                "stun: cannot answer on UDP {ip}:{port} ({e}); direct sessions will find fewer \
                 paths. Set another port with --stunport, or 0 to silence this"
            );
            Ok(None)
        }
        Err(e) if e.kind() == ErrorKind::AddrInUse => {
            anyhow::bail!("UDP port {port} is already in use; choose another with --stunport")
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen on UDP {ip}:{port} (--stunport)")),
    }
}

/// Answers Binding requests on `socket` until `stopping` is cancelled.
pub(crate) async fn answer(socket: UdpSocket, stopping: CancellationToken) {
    // One byte more than the longest request we answer, so a longer one is seen as too long
    // rather than silently truncated into a valid-looking one.
    let mut datagram = [0u8; MAX_REQUEST_LEN + 1];
    loop {
        let received = tokio::select! {
            () = stopping.cancelled() => return,
            received = socket.recv_from(&mut datagram) => received,
        };
        let (len, from) = match received {
            Ok(received) => received,
            // e.g. ECONNREFUSED reported for an earlier answer to a closed port: not ours to fix.
            Err(e) => {
                tracing::debug!("stun: receive failed: {e}");
                continue;
            }
        };
        let id = match parse_binding_request(&datagram[..len]) {
            Ok(id) => id,
            Err(e) => {
                // Debug only: anyone can send these, and the log must not be theirs to fill.
                tracing::debug!(%from, "stun: dropped a datagram: {e}");
                continue;
            }
        };
        // A dual-stack socket sees IPv4 peers as ::ffff:a.b.c.d; they are told their IPv4 address.
        let seen_as = SocketAddr::new(from.ip().to_canonical(), from.port());
        if let Err(e) = socket.send_to(&binding_success(id, seen_as), from).await {
            tracing::debug!(%from, "stun: answer not sent: {e}");
        }
    }
}
