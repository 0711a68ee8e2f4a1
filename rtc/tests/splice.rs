//! The relay splice between two real peers (UDP on this machine), with the relay played by an
//! in-memory WebSocket pair: a session moves onto the data channel mid-stream without losing,
//! doubling or reordering a message, and bad signalling never ends a session.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tether_common::relay::pieces::PIECE;
use tether_common::relay::signal::{MAX_SIGNAL_TEXT, RtcSignal};
use tether_common::relay::{DirectPath, MAX_RELAY_FRAME};
use tether_rtc::{PathStatus, Role, SessionSocket, SpliceConfig, splice};
use tokio::io::DuplexStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

type Ws = WebSocketStream<DuplexStream>;

const WAIT: Duration = Duration::from_secs(20);

/// The next message on `socket`, which must come within [`WAIT`].
async fn next_message(socket: &mut Ws) -> Message {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a message in time")
        .expect("the socket still open")
        .expect("a readable message")
}

/// Two relay ends joined back to back, as the server pairs them, with a small buffer each way
/// (a busy server's socket buffers fill too): the splices must never wait on each other.
async fn relay_pair() -> (Ws, Ws) {
    let (a, b) = tokio::io::duplex(64 << 10);
    let a = WebSocketStream::from_raw_socket(a, WsRole::Client, None).await;
    let b = WebSocketStream::from_raw_socket(b, WsRole::Server, None).await;
    (a, b)
}

fn config(role: Role, direct: bool) -> SpliceConfig {
    SpliceConfig {
        role,
        direct: direct.then(|| DirectPath {
            ice_servers: Vec::new(),
            relay_only: false,
        }),
        allow_loopback: true,
        identity: None,
        device: None,
    }
}

async fn wait_for(status: &mut watch::Receiver<PathStatus>, wanted: PathStatus) {
    let waited = tokio::time::timeout(WAIT, status.wait_for(|s| *s == wanted))
        .await
        .map(|result| result.is_ok());
    match waited {
        Ok(true) => {}
        Ok(false) => panic!("the splice ended before {wanted:?}"),
        Err(_) => panic!("no {wanted:?}: {:?}", *status.borrow()),
    }
}

/// Sends `count` numbered messages (alternately text and binary) while reading the peer's
/// `count`; checks every one arrives once, in order.
async fn exchange(socket: SessionSocket, count: u32, tag: &'static str) -> SessionSocket {
    let (mut sink, mut stream) = socket.split();
    let sending = async move {
        for n in 0..count {
            sink.send(numbered(n, tag)).await.expect("send");
        }
        sink
    };
    let receiving = async move {
        let peer = if tag == "v" { "a" } else { "v" };
        for n in 0..count {
            let message = stream.next().await.expect("open").expect("frame");
            assert_eq!(message, numbered(n, peer), "{tag} got out of order");
        }
        stream
    };
    let (sink, stream) = tokio::join!(sending, receiving);
    sink.reunite(stream).expect("one socket")
}

fn numbered(n: u32, tag: &str) -> Message {
    if n.is_multiple_of(2) {
        Message::text(format!("{tag}{n}"))
    } else {
        // 16 KiB binary frames, so the relay has real data in flight during the switch.
        let mut bytes = vec![0u8; 16 * 1024];
        bytes[..4].copy_from_slice(&n.to_le_bytes());
        bytes[4] = tag.as_bytes()[0];
        Message::binary(bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_moves_to_the_data_channel_mid_stream_in_order() {
    let (viewer_relay, agent_relay) = relay_pair().await;
    let (agent, mut agent_status) = splice(agent_relay, config(Role::Answerer, true)).await;
    let (viewer, mut viewer_status) = splice(viewer_relay, config(Role::Offerer, true)).await;
    let (viewer, agent) = tokio::join!(
        tokio::spawn(exchange(viewer, 4000, "v")),
        tokio::spawn(exchange(agent, 4000, "a"))
    );
    let (mut viewer, mut agent) = (viewer.expect("viewer"), agent.expect("agent"));
    wait_for(&mut viewer_status, PathStatus::Direct).await;
    wait_for(&mut agent_status, PathStatus::Direct).await;
    // After the switch, both directions still work and the close reaches the other side after
    // the last message.
    viewer.send(Message::text("last")).await.unwrap();
    viewer.close(None).await.unwrap();
    assert_eq!(next_message(&mut agent).await, Message::text("last"));
    assert!(matches!(
        tokio::time::timeout(WAIT, agent.next()).await.unwrap(),
        Some(Ok(Message::Close(_))) | None
    ));
}

/// Desktop key frames and clipboards can be up to a relay frame: more than a browser takes in
/// one data-channel message (str0m refuses to send them). They cross whole, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_up_to_a_relay_frame_cross_the_data_channel_whole() {
    let (viewer_relay, agent_relay) = relay_pair().await;
    let (mut agent, mut agent_status) = splice(agent_relay, config(Role::Answerer, true)).await;
    let (mut viewer, mut viewer_status) = splice(viewer_relay, config(Role::Offerer, true)).await;
    wait_for(&mut viewer_status, PathStatus::Direct).await;
    wait_for(&mut agent_status, PathStatus::Direct).await;
    let frame: Vec<u8> = (0..MAX_RELAY_FRAME).map(|i| (i % 253) as u8).collect();
    let text = "ü".repeat(150_000);
    let sent = [
        Message::binary(frame),
        Message::text("small"),
        Message::text(text),
        Message::binary(vec![9; PIECE + 1]),
    ];
    for message in sent.clone() {
        agent.send(message).await.unwrap();
    }
    for message in sent {
        assert_eq!(next_message(&mut viewer).await, message);
    }
    assert_eq!(*agent_status.borrow(), PathStatus::Direct);
}

/// The agent side of `cat`: reads a message, writes it back, and only then reads the next, so
/// it stops reading whenever nobody takes what it writes.
async fn echo_one_at_a_time(socket: SessionSocket) {
    let (mut sink, mut stream) = socket.split();
    while let Some(Ok(message)) = stream.next().await {
        if message.is_close() || sink.send(message).await.is_err() {
            break;
        }
    }
}

/// 24 MiB through `cat` on the device while the viewer sends and reads at once: on the relay and
/// on the direct path, both directions full at the same time, nothing may wait on anything else.
async fn full_duplex(direct: bool) {
    const FRAMES: u32 = 1536; // of 16 KiB: 24 MiB each way
    let (viewer_relay, agent_relay) = relay_pair().await;
    let (agent, _agent_status) = splice(agent_relay, config(Role::Answerer, direct)).await;
    let (viewer, mut viewer_status) = splice(viewer_relay, config(Role::Offerer, direct)).await;
    if direct {
        wait_for(&mut viewer_status, PathStatus::Direct).await;
    }
    tokio::spawn(echo_one_at_a_time(agent));
    let (mut sink, mut stream) = viewer.split();
    let sending = async move {
        for n in 0..FRAMES {
            sink.send(numbered(2 * n + 1, "v")).await.expect("send");
        }
    };
    let receiving = async move {
        for n in 0..FRAMES {
            let message = stream.next().await.expect("open").expect("frame");
            assert_eq!(message, numbered(2 * n + 1, "v"), "echo {n} out of order");
        }
    };
    let both = async { tokio::join!(sending, receiving) };
    if tokio::time::timeout(Duration::from_secs(60), both)
        .await
        .is_err()
    {
        panic!("24 MiB each way did not cross within 60 s: the directions wait on each other");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relayed_session_carries_both_directions_full_at_once() {
    full_duplex(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_session_carries_both_directions_full_at_once() {
    full_duplex(true).await;
}

#[tokio::test]
async fn bad_signalling_is_answered_or_ignored_and_the_session_goes_on() {
    let (mut viewer_relay, agent_relay) = relay_pair().await;
    let (mut agent, mut status) = splice(agent_relay, config(Role::Answerer, true)).await;
    let junk = [
        r#"{"type":"rtcCandidate"}"#.to_owned(),
        r#"{"type":"rtcNope","sdp":"x"}"#.to_owned(),
        RtcSignal::RtcOffer {
            sdp: "x".repeat(MAX_SIGNAL_TEXT + 1),
        }
        .to_text(),
    ];
    for text in junk {
        viewer_relay.send(Message::text(text)).await.unwrap();
    }
    // Spam before any offer goes nowhere.
    for i in 0..500 {
        let text = RtcSignal::RtcCandidate {
            candidate: format!("candidate:{i} 1 udp 1 10.0.0.1 {i} typ host"),
        }
        .to_text();
        viewer_relay.send(Message::text(text)).await.unwrap();
    }
    viewer_relay
        .send(Message::text(
            RtcSignal::RtcOffer {
                sdp: "v=0\r\nnot an offer".into(),
            }
            .to_text(),
        ))
        .await
        .unwrap();
    viewer_relay.send(Message::text("hello")).await.unwrap();
    // The broken offer gets a clear refusal on the relay, the session its data.
    let reply = next_message(&mut viewer_relay).await;
    let text = reply.to_text().unwrap().to_owned();
    assert!(
        text.contains("rtcUnavailable") && text.contains("cannot answer"),
        "{text}"
    );
    assert_eq!(next_message(&mut agent).await, Message::text("hello"));
    assert!(matches!(
        *status.borrow_and_update(),
        PathStatus::Relayed(_)
    ));
    agent.send(Message::binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(
        next_message(&mut viewer_relay).await,
        Message::binary(vec![1, 2, 3])
    );
}

#[tokio::test]
async fn a_relayed_session_refuses_offers_and_the_viewer_stays_relayed() {
    let (viewer_relay, agent_relay) = relay_pair().await;
    let (mut agent, _) = splice(agent_relay, config(Role::Answerer, false)).await;
    let (mut viewer, mut status) = splice(viewer_relay, config(Role::Offerer, true)).await;
    tokio::time::timeout(
        WAIT,
        status.wait_for(|s| matches!(s, PathStatus::Relayed(_))),
    )
    .await
    .unwrap()
    .unwrap();
    match &*status.borrow() {
        PathStatus::Relayed(reason) => assert!(reason.contains("relayed"), "{reason}"),
        other => panic!("{other:?}"),
    }
    viewer.send(Message::text("ping")).await.unwrap();
    assert_eq!(next_message(&mut agent).await, Message::text("ping"));
}

/// A program exits while the viewer is still typing: the session writes its exit status and
/// closes its socket, and the viewer's next keystroke cannot be delivered. What the session wrote
/// must still reach the viewer, before the close. (One thread: the splice runs only when the test
/// waits, so the keystroke is read before the session's last words, every time.)
#[tokio::test(flavor = "current_thread")]
async fn a_session_that_stops_reading_still_gets_its_last_words_out() {
    let (mut viewer_relay, agent_relay) = relay_pair().await;
    let (mut session, _) = splice(agent_relay, config(Role::Answerer, false)).await;
    viewer_relay.send(Message::text("keystroke")).await.unwrap();
    session.send(Message::text("exit 3")).await.unwrap();
    session.send(Message::Close(None)).await.unwrap();
    drop(session);
    assert_eq!(
        next_message(&mut viewer_relay).await,
        Message::text("exit 3")
    );
    assert!(matches!(
        next_message(&mut viewer_relay).await,
        Message::Close(_)
    ));
}

/// A real agent key, as `PathIdentity` and as the device id it stands for.
fn agent_key() -> (tether_rtc::PathIdentity, tether_common::ids::DeviceId) {
    use tether_common::handshake::rsa::{RsaSigner, rsa_public_key_of_cert};
    let key = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA384, rcgen::RsaKeySize::_2048)
        .expect("an RSA key");
    let cert = rcgen::CertificateParams::new(vec!["agent".into()])
        .expect("params")
        .self_signed(&key)
        .expect("a certificate");
    let public_key = rsa_public_key_of_cert(cert.der()).expect("an RSA key");
    let device = tether_common::ids::DeviceId::from_public_key(&public_key);
    let signer = RsaSigner::from_pkcs8(&key.serialize_der()).expect("a signer");
    let identity = tether_rtc::PathIdentity {
        signer: std::sync::Arc::new(signer),
        public_key,
    };
    (identity, device)
}

/// The viewer takes a direct path only from the device it asked for: an answer signed by
/// another key (what a server in the middle would have to send) keeps the session relayed, and
/// the session goes on there.
#[tokio::test]
async fn a_viewer_goes_direct_only_with_the_device_s_own_signature() {
    let (identity, device) = agent_key();
    let (_, stranger) = agent_key();
    for (expected, goes_direct) in [(device, true), (stranger, false)] {
        let (viewer_relay, agent_relay) = relay_pair().await;
        let mut agent_config = config(Role::Answerer, true);
        agent_config.identity = Some(identity.clone());
        let mut viewer_config = config(Role::Offerer, true);
        viewer_config.device = Some(expected);
        let (mut agent, _) = splice(agent_relay, agent_config).await;
        let (mut viewer, mut status) = splice(viewer_relay, viewer_config).await;
        if goes_direct {
            wait_for(&mut status, PathStatus::Direct).await;
        } else {
            tokio::time::timeout(
                WAIT,
                status.wait_for(|s| matches!(s, PathStatus::Relayed(_))),
            )
            .await
            .expect("a verdict in time")
            .expect("the splice runs");
            match &*status.borrow() {
                PathStatus::Relayed(reason) => {
                    assert!(reason.contains("identity did not verify"), "{reason}")
                }
                other => panic!("{other:?}"),
            }
        }
        viewer.send(Message::text("still here")).await.unwrap();
        assert_eq!(next_message(&mut agent).await, Message::text("still here"));
    }
}
