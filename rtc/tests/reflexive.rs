//! Server-reflexive candidates over real UDP: a peer asks the ticket's STUN server where each of
//! its sockets is seen from and offers that address too. The STUN server here answers like a
//! server behind which a NAT mapped us to 203.0.113.7:40000 (a documentation address), so the
//! candidate differs from the host one, as it would across a real NAT.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tether_common::stun::{binding_success, parse_binding_request};
use tether_rtc::{DirectPeer, Gathering};
use tokio::net::UdpSocket;

const MAPPED: &str = "203.0.113.7:40000";

/// A STUN responder on loopback that reports every asker as `MAPPED`; `answer: false` keeps
/// silent, like a server behind a firewall that drops UDP.
async fn stun_server(answer: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let address = socket.local_addr().expect("address");
    let mapped: SocketAddr = MAPPED.parse().expect("address");
    tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
            if let (true, Ok(id)) = (answer, parse_binding_request(&buffer[..n])) {
                let _ = socket.send_to(&binding_success(id, mapped), from).await;
            }
        }
    });
    address
}

/// Whether this machine has an address other than loopback (only those sockets ask).
fn has_network() -> bool {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|()| s))
        .and_then(|s| s.local_addr())
        .is_ok_and(|a| !a.ip().is_loopback())
}

#[tokio::test]
async fn an_offer_carries_the_address_the_stun_server_saw() {
    if !has_network() {
        eprintln!("skipped: this machine has no address besides loopback");
        return;
    }
    let server = stun_server(true).await;
    let gathering = Gathering {
        allow_loopback: false,
        ice_servers: vec![format!("stun:{server}"), "turn:ignored.example:3478".into()],
    };
    let (_peer, offer) = DirectPeer::offer(&gathering).await.expect("offer");
    let (ip, port) = MAPPED.split_once(':').expect("ip:port");
    assert!(
        offer
            .lines()
            .any(|l| l.contains(&format!(" {ip} {port} typ srflx raddr "))),
        "no server-reflexive candidate in\n{offer}"
    );
    assert!(
        offer.contains(" typ host"),
        "the host candidates stay:\n{offer}"
    );
}

#[tokio::test]
async fn a_silent_stun_server_delays_the_offer_briefly_and_leaves_host_candidates() {
    let server = stun_server(false).await;
    let gathering = Gathering {
        allow_loopback: true,
        ice_servers: vec![format!("stun:{server}")],
    };
    let started = Instant::now();
    let (_peer, offer) = DirectPeer::offer(&gathering).await.expect("offer");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        offer.contains(" typ host") && !offer.contains(" typ srflx"),
        "{offer}"
    );
}
