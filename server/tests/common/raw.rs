//! Raw clients for tests that misbehave below what ready-made clients allow: TLS from a chosen
//! source address, a hand-made WebSocket upgrade, frames written byte by byte (a header without
//! its payload), and the server's memory as the kernel reports it.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::common::TestServer;

pub type Tls = TlsStream<TcpStream>;

/// A TLS connection to `server` from `source` (any 127/8 address works on loopback), offering
/// `alpn` (e.g. `h2`).
pub async fn tls_from(server: &TestServer, source: IpAddr, alpn: &[&[u8]]) -> std::io::Result<Tls> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let tcp = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], server.port)))
        .await?;
    let mut config = (*server.tls_client_config()).clone();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").expect("server name");
    timeout(Duration::from_secs(30), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))?
}

pub fn loopback() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// `/agent.ashx` upgraded to a WebSocket by hand; the server's `101` head is read.
pub async fn agent_socket(server: &TestServer) -> Tls {
    let mut tls = tls_from(server, loopback(), &[b"http/1.1"])
        .await
        .expect("TLS to the server");
    let request = "GET /agent.ashx HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
                   Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    tls.write_all(request.as_bytes())
        .await
        .expect("upgrade request");
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "no upgrade: {head}");
    tls
}

/// Reads a response head (up to the blank line), byte by byte so nothing after it is consumed.
pub async fn read_head(tls: &mut Tls) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        match timeout(Duration::from_secs(30), tls.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The header of a client frame (masked with a zero key, which leaves the payload as it is).
/// `first` is the FIN bit and opcode: 0x82 a whole binary frame.
pub fn frame_header(first: u8, payload: u64) -> Vec<u8> {
    let mut header = vec![first];
    match payload {
        0..=125 => header.push(0x80 | payload as u8),
        126..=0xFFFF => {
            header.push(0x80 | 126);
            header.extend((payload as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend(payload.to_be_bytes());
        }
    }
    header.extend([0, 0, 0, 0]);
    header
}

pub const BINARY: u8 = 0x82;

/// A whole binary frame.
pub fn binary_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = frame_header(BINARY, payload.len() as u64);
    frame.extend_from_slice(payload);
    frame
}

/// MeshCentral's command 1 with a web-certificate hash the server never had: 98 bytes anyone
/// can send.
pub fn bogus_auth_request() -> Vec<u8> {
    let mut command = vec![0, 1];
    command.extend((0..96).map(|i| (i * 7 + 3) as u8));
    command
}

/// Whether the peer closed the connection (EOF or an error) before `deadline`; whatever it
/// sends meanwhile is read and dropped.
pub async fn closed_before(tls: &mut Tls, deadline: Instant) -> bool {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        match timeout_at(deadline, tls.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// A `/proc/PID/status` figure in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
