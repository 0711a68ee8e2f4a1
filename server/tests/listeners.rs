//! The HTTPS listener against clients that hold connections open: a cap per source address,
//! an idle timeout for HTTP/2 (whose pings a client may answer forever), and a deadline on
//! reading a request, and caps counted per listener. Real `tether-server` on loopback; raw TLS
//! clients.

mod common;
#[path = "common/raw.rs"]
mod raw;

use std::net::IpAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

use common::TestServer;
use raw::{Tls, closed_before, loopback, read_head, tls_from};

const DEADLINE: Duration = Duration::from_secs(30);

async fn wait_for_log(server: &TestServer, text: &str) {
    let deadline = Instant::now() + DEADLINE;
    while !server.stderr().contains(text) {
        assert!(
            Instant::now() < deadline,
            "the server never logged {text:?}\n{}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/status` over HTTP/1.1 on an open connection; the status line.
async fn get_status(tls: &mut Tls) -> String {
    tls.write_all(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("request");
    read_head(tls)
        .await
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Whether a connection from `source` gets through: TLS, then an HTTP answer.
async fn served(server: &TestServer, source: IpAddr) -> bool {
    match tls_from(server, source, &[b"http/1.1"]).await {
        Ok(mut tls) => get_status(&mut tls).await.starts_with("HTTP/1.1 200"),
        Err(_) => false,
    }
}

#[tokio::test]
async fn a_source_address_gets_at_most_its_cap_and_others_still_connect() {
    const CAP: usize = 3;
    let server = TestServer::start_with(&["--max-connections-per-ip", "3"]).await;
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut tls = tls_from(&server, loopback(), &[b"http/1.1"])
            .await
            .expect("within the cap");
        assert!(get_status(&mut tls).await.starts_with("HTTP/1.1 200"));
        held.push(tls);
    }
    // One more from the same address is closed as it is accepted.
    assert!(
        !served(&server, loopback()).await,
        "connection {} from one address was served",
        CAP + 1
    );
    wait_for_log(
        &server,
        "connection refused: 3 connections from this address are open already (max_connections_per_ip)",
    )
    .await;
    // Another source address is not affected.
    let elsewhere = IpAddr::from([127, 0, 0, 2]);
    assert!(served(&server, elsewhere).await, "127.0.0.2 was refused");

    // Closing one gives its place back (once the server has seen the close).
    drop(held.pop());
    let deadline = Instant::now() + DEADLINE;
    while !served(&server, loopback()).await {
        assert!(Instant::now() < deadline, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("the cap held {CAP} connections from 127.0.0.1 and refused the next");
}

/// A plain connection to the redirect port that got its redirect and stays open; `None` if the
/// server closed it instead.
async fn redirected(port: u16) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .ok()?;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        match timeout(DEADLINE, tcp.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            Ok(_) => return None,
            Err(_) => panic!("the redirect port neither answered nor closed"),
        }
    }
    String::from_utf8_lossy(&head)
        .starts_with("HTTP/1.1 30")
        .then_some(tcp)
}

/// A server with a redirect port (test servers have none by default): a port that was free a
/// moment ago, or another if something took it meanwhile.
async fn with_redirect_port() -> TestServer {
    for _ in 0..5 {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port().to_string();
        drop(free);
        match TestServer::try_start_with(&["--redirport", &port]).await {
            Ok(server) => return server,
            Err(e) if e.contains("already in use") => continue,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("no free port for the redirect listener after 5 tries");
}

/// The per-address cap is kept by each listener on its own: connections held open on the redirect
/// port do not use up the same address's places on the HTTPS port.
#[tokio::test]
async fn each_listener_counts_its_own_connections() {
    let mut server = with_redirect_port().await;
    server.stop().await;
    std::fs::write(server.file("config.toml"), "max_connections_per_ip = 2\n").unwrap();
    server.restart().await;
    let port = server
        .redirect_port
        .expect("the test server has a redirect port");
    let _held = [
        redirected(port).await.expect("first redirect connection"),
        redirected(port).await.expect("second redirect connection"),
    ];
    assert!(
        redirected(port).await.is_none(),
        "a third connection from one address to the redirect port was served"
    );
    assert!(
        served(&server, loopback()).await,
        "the HTTPS port refused an address that only the redirect port has capped"
    );
}

/// HTTP/2 frame types and flags this test speaks.
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

fn h2_frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let length = (payload.len() as u32).to_be_bytes();
    let mut frame = vec![length[1], length[2], length[3], kind, flags, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_though_it_answers_pings() {
    let server =
        TestServer::start_with_config("http_idle_timeout_secs = 3\nhttp2_keepalive_secs = 1\n")
            .await;
    let mut tls = tls_from(&server, loopback(), &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface.extend(h2_frame(SETTINGS, 0, &[]));
    tls.write_all(&preface).await.unwrap();

    // A live but idle client: acknowledges settings and pings, asks nothing.
    let opened = Instant::now();
    let deadline = opened + DEADLINE;
    let (mut pings, mut goaway) = (0, false);
    let closed = loop {
        let mut header = [0u8; 9];
        match timeout_at(deadline, tls.read_exact(&mut header)).await {
            Err(_) => break false,
            Ok(Err(_)) => break true,
            Ok(Ok(_)) => {}
        }
        let length = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
        let mut payload = vec![0u8; length];
        if tls.read_exact(&mut payload).await.is_err() {
            break true;
        }
        let (kind, flags) = (header[3], header[4]);
        let reply = match kind {
            SETTINGS if flags & ACK == 0 => Some(h2_frame(SETTINGS, ACK, &[])),
            PING if flags & ACK == 0 => {
                pings += 1;
                Some(h2_frame(PING, ACK, &payload))
            }
            GOAWAY => {
                goaway = true;
                None
            }
            _ => None,
        };
        if let Some(reply) = reply
            && tls.write_all(&reply).await.is_err()
        {
            break true;
        }
    };
    assert!(
        closed,
        "an idle HTTP/2 connection was still open after {DEADLINE:?}"
    );
    assert!(goaway, "closed without a GOAWAY");
    assert!(pings >= 1, "the server sent no keepalive ping");
    eprintln!(
        "idle HTTP/2 connection closed {:?} after opening, {pings} pings answered",
        opened.elapsed()
    );
}

#[tokio::test]
async fn a_request_body_trickled_past_the_deadline_gets_408_and_a_close() {
    let server = TestServer::start_with_config("http_request_timeout_secs = 2\n").await;
    let mut tls = tls_from(&server, loopback(), &[b"http/1.1"]).await.unwrap();
    tls.write_all(
        b"POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"user\":",
    )
    .await
    .unwrap();
    let status = read_head(&mut tls).await;
    assert!(status.starts_with("HTTP/1.1 408"), "{status}");
    assert!(
        closed_before(&mut tls, Instant::now() + DEADLINE).await,
        "the connection stayed open"
    );
}
