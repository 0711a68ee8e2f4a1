//! `/agent.ashx` before authentication: what anyone who can reach the port may try. Frames are
//! limited as their headers arrive, failures are closed at once, held agents are capped and read
//! with a tiny limit, and one device may not reconnect in a loop.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::common::TestServer;
use crate::fakes::{Ending, FakeAgent};
use crate::raw::{
    BINARY, agent_socket, binary_frame, bogus_auth_request, closed_before, frame_header, proc_kib,
};
use crate::support::{DEADLINE, Fixture};
use crate::wait_for_log;

const MIB: u64 = 1024 * 1024;
/// A refused peer must see its socket closed within this long (the handshake timeout is 30 s,
/// holding was 600 s).
const CLOSE_DEADLINE: Duration = Duration::from_secs(10);

/// Polls the server's stderr for `text` (for servers without a `Fixture`).
async fn wait_for_server_log(server: &TestServer, text: &str) {
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

#[tokio::test]
async fn half_sent_16_mib_frames_after_a_bogus_auth_request_cost_the_server_no_memory() {
    let server = TestServer::start().await;
    let pid = server.pid().expect("server pid");
    let rss_before = proc_kib(pid, "VmRSS");
    let hwm_before = proc_kib(pid, "VmHWM");

    // 50 sockets: the 98-byte command 1 with an unknown web-certificate hash, then the header of
    // a 16 MiB binary frame and 15 MiB of it, never finished. They connect one after another
    // (50 TLS handshakes at once beside this binary's other tests outlasted the server's 10 s
    // handshake limit on a 2-core CI machine), then all send at once.
    let mut connected = Vec::new();
    for _ in 0..50 {
        connected.push(agent_socket(&server).await);
    }
    let sockets =
        futures_util::future::join_all(connected.into_iter().map(|mut socket| async move {
            let mut opening = binary_frame(&bogus_auth_request());
            opening.extend(frame_header(BINARY, 16 * MIB));
            let chunk = vec![0x42u8; 64 * 1024];
            let mut sent = 0u64;
            if socket.write_all(&opening).await.is_ok() {
                while sent < 15 * MIB && socket.write_all(&chunk).await.is_ok() {
                    sent += chunk.len() as u64;
                }
            }
            (socket, sent)
        }))
        .await;
    let rss_after = proc_kib(pid, "VmRSS");
    let hwm_after = proc_kib(pid, "VmHWM");
    let sent_mib: u64 = sockets.iter().map(|(_, sent)| sent).sum::<u64>() / MIB;
    eprintln!(
        "server VmRSS {} -> {} MiB, VmHWM {} -> {} MiB; the client got {sent_mib} MiB written before the closes",
        rss_before / 1024,
        rss_after / 1024,
        hwm_before / 1024,
        hwm_after / 1024
    );

    let deadline = Instant::now() + CLOSE_DEADLINE;
    let mut open = 0;
    for (mut socket, _) in sockets {
        if !closed_before(&mut socket, deadline).await {
            open += 1;
        }
    }
    let grew_kib = rss_after.max(hwm_after).saturating_sub(rss_before);
    assert!(
        grew_kib < 64 * 1024,
        "the server grew by {} MiB",
        grew_kib / 1024
    );
    assert_eq!(open, 0, "{open} of 50 sockets were still open");
}

#[tokio::test]
async fn a_bogus_auth_request_is_closed_at_once() {
    let server = TestServer::start().await;
    let mut socket = agent_socket(&server).await;
    socket
        .write_all(&binary_frame(&bogus_auth_request()))
        .await
        .unwrap();
    let sent = Instant::now();
    assert!(
        closed_before(&mut socket, sent + CLOSE_DEADLINE).await,
        "still open {CLOSE_DEADLINE:?} after a bogus command 1"
    );
    eprintln!("closed {:?} after the bogus command 1", sent.elapsed());
    wait_for_server_log(&server, "saw a web certificate that is not ours").await;
}

#[tokio::test]
async fn a_large_frame_header_before_authentication_closes_the_socket() {
    let server = TestServer::start().await;
    let mut socket = agent_socket(&server).await;
    let mut bytes = frame_header(BINARY, 16 * MIB);
    bytes.extend([0u8; 1024]);
    socket.write_all(&bytes).await.unwrap();
    assert!(
        closed_before(&mut socket, Instant::now() + CLOSE_DEADLINE).await,
        "the server waits for the rest of a 16 MiB frame"
    );
    wait_for_server_log(
        &server,
        "a frame of 16777216 bytes exceeds the limit of 65536 before authentication",
    )
    .await;
}

#[tokio::test]
async fn held_agents_are_capped_per_address_and_read_with_a_tiny_frame_limit() {
    let fx = Fixture::start_with_config("agent_hold_max_per_ip = 1\n").await;
    let unknown_group = [0xAB; 48];
    // A real key and a valid signature, for a group that does not exist: held.
    let held = FakeAgent::new(unknown_group);
    let (ending, mut held_socket) = held
        .run_until(
            &fx.server,
            wait_for_log(&fx, "not admitted; holding the connection"),
        )
        .await;
    assert_eq!(ending, Ending::Stuck, "held: no confirmation, no close");

    // A second one from the same address is over the cap: closed at once.
    let second = FakeAgent::new(unknown_group);
    let (ending, _) = second
        .run_until(&fx.server, tokio::time::sleep(CLOSE_DEADLINE))
        .await;
    assert_eq!(ending, Ending::Closed);
    wait_for_log(&fx, "not admitted, and not held").await;

    // The held one may ping, but a 2 KiB frame is more than a held socket reads.
    held_socket
        .send(Message::Ping(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let _ = held_socket.send(Message::binary(vec![0u8; 2048])).await;
    let closed = tokio::time::timeout(CLOSE_DEADLINE, async {
        while let Some(Ok(message)) = held_socket.next().await {
            if let Message::Close(_) = message {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a held socket took a 2 KiB frame");
    wait_for_log(&fx, "exceeds the limit of 1024 while held").await;
    assert!(fx.server.stderr().matches("holding the connection").count() == 1);
}

#[tokio::test]
async fn a_device_reconnecting_in_a_loop_is_refused_after_its_rate() {
    let mut fx = Fixture::start_with_config("agent_admissions_per_minute = 2\n").await;
    let agent = FakeAgent::new(fx.enrolment_key());
    assert_eq!(agent.run(&fx.server).await.0, Ending::Accepted);
    assert_eq!(agent.run(&fx.server).await.0, Ending::Accepted);
    assert_eq!(
        agent.run(&fx.server).await.0,
        Ending::Closed,
        "a third admission within the minute"
    );
    wait_for_log(&fx, "connects more than 2 times a minute").await;
    assert_eq!(
        fx.server.stderr().matches("agent: connected").count(),
        2,
        "the refused connection was not admitted"
    );
    assert_eq!(fx.devices().await.len(), 1);
    // Another device is not affected.
    let other = FakeAgent::new(fx.enrolment_key());
    assert_eq!(other.run(&fx.server).await.0, Ending::Accepted);
}
