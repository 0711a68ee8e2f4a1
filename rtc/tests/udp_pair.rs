//! Two `DirectPeer`s in one process over real UDP (host candidates, loopback included) exchange
//! 32 MiB each way at once; both ends hash what they sent and received.

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tether_common::relay::switch::Payload;
use tether_rtc::{DirectPeer, Gathering, PeerEvent};

/// Host candidates, loopback included: both peers run on this machine.
const LOOPBACK: Gathering = Gathering {
    allow_loopback: true,
    ice_servers: Vec::new(),
};

const TOTAL: usize = 32 << 20;
const MESSAGE: usize = 64 << 10;

/// Deterministic, incompressible bytes (xorshift64), different per seed.
fn message(seed: &mut u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn wait_open(peer: &mut DirectPeer) {
    match tokio::time::timeout(Duration::from_secs(10), peer.next_event()).await {
        Ok(Some(PeerEvent::Open)) => {}
        other => panic!("expected the channel to open, got {other:?}"),
    }
}

/// Sends TOTAL bytes and receives TOTAL bytes; returns (sent hash, received hash).
async fn pump(mut peer: DirectPeer, seed: u64) -> ([u8; 32], [u8; 32]) {
    let mut seed = seed;
    let mut sent = 0;
    let mut sent_hash = Sha256::new();
    let mut received = 0;
    let mut received_hash = Sha256::new();
    let mut next = message(&mut seed, MESSAGE);
    let sender = peer.sender();
    while sent < TOTAL || received < TOTAL {
        tokio::select! {
            result = sender.send(Payload::Binary(next.clone())), if sent < TOTAL => {
                result.expect("send");
                sent_hash.update(&next);
                sent += next.len();
                next = message(&mut seed, MESSAGE);
            }
            event = peer.next_event(), if received < TOTAL => match event {
                Some(PeerEvent::Message(Payload::Binary(bytes))) => {
                    received_hash.update(&bytes);
                    received += bytes.len();
                }
                other => panic!("unexpected {other:?} after {received} bytes"),
            },
        }
    }
    // Both sides stay up until the other has everything.
    sender.flush().await;
    (sent_hash.finalize().into(), received_hash.finalize().into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_peers_over_udp_exchange_32_mib_each_way() {
    let (mut offerer, offer) = DirectPeer::offer(&LOOPBACK).await.expect("offer");
    assert!(
        offer.contains("a=candidate"),
        "the offer carries host candidates:\n{offer}"
    );
    let (mut answerer, answer) = DirectPeer::answer(&offer, &LOOPBACK).await.expect("answer");
    offerer.accept_answer(&answer).await.expect("accept answer");
    let started = Instant::now();
    wait_open(&mut offerer).await;
    wait_open(&mut answerer).await;
    let opened = started.elapsed();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        tokio::spawn(pump(offerer, 1)),
        tokio::spawn(pump(answerer, 2))
    );
    let ((a_sent, a_received), (b_sent, b_received)) = (a.expect("a"), b.expect("b"));
    let took = started.elapsed();
    assert_eq!(a_sent, b_received, "offerer → answerer");
    assert_eq!(b_sent, a_received, "answerer → offerer");
    assert_ne!(a_sent, b_sent);
    println!(
        "open in {opened:?}; 2 × {} MiB in {took:?} ({:.1} MB/s each way)",
        TOTAL >> 20,
        TOTAL as f64 / took.as_secs_f64() / 1e6
    );
}

#[tokio::test]
async fn garbage_sdp_is_an_error_not_a_panic() {
    assert!(
        DirectPeer::answer("v=0\r\nnonsense", &LOOPBACK)
            .await
            .is_err()
    );
    let (offerer, _offer) = DirectPeer::offer(&LOOPBACK).await.expect("offer");
    assert!(offerer.accept_answer("not sdp").await.is_err());
    // Candidate spam and junk are logged and skipped; the peer lives on.
    for i in 0..200 {
        offerer.add_remote_candidate(&format!("candidate:{i} junk"));
    }
    // The driver still answers (a flush would wait for a channel that never opens).
    assert!(offerer.accept_answer("still not sdp").await.is_err());
}
