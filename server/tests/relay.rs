//! The session relay end to end: the real `tether-server`, a console (WebSocket client with a
//! session cookie) and an agent end. The agent end is a scripted agent that passes the real
//! handshake and receives the real `tunnel` request, so every token here was minted by
//! `createSession`. Build the binaries first (`cargo build --workspace --bins`).

mod common;
#[path = "relay/fake_agent.rs"]
mod fake_agent;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use tether_common::control::{
    AddUser, CreateSession, EditGroup, ErrorCode, EventRecord, ListEvents, SetGroupRights,
};
use tether_common::ids::{DeviceId, UserId};
use tether_common::relay::{DirectPath, IceServer, SessionKind, SessionTicket, TunnelRequest};
use tether_common::rights::Rights;
use tokio::time::{Instant, sleep};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use fake_agent::FakeAgent;
use sockets::{RelaySocket, closed, expect_paired, next_data, open, open_from, refused_with, send};
use support::{DEADLINE, Fixture};

const BOB: (&str, &str) = ("bob", "another horse battery staple");

fn add_bob() -> AddUser {
    AddUser {
        name: BOB.0.into(),
        password: BOB.1.into(),
        email: None,
        site_admin: false,
    }
}

async fn online_agent(fx: &mut Fixture) -> FakeAgent {
    let agent = FakeAgent::connect(&fx.server, fx.enrolment_key()).await;
    fx.wait_device(&agent.device, "online", |d| d.online).await;
    agent
}

/// A session request of `kind` to `device`.
fn session(device: &DeviceId, kind: SessionKind) -> CreateSession {
    CreateSession {
        device: device.clone(),
        kind,
    }
}

/// A terminal session: the console's ticket and the agent's tunnel request.
async fn mint(fx: &mut Fixture, agent: &mut FakeAgent) -> (SessionTicket, TunnelRequest) {
    let ticket = fx
        .control
        .ok(session(&agent.device, SessionKind::Terminal))
        .await;
    (ticket, agent.next_tunnel().await)
}

/// Both ends connected and greeted.
async fn pair(
    fx: &Fixture,
    ticket: &SessionTicket,
    tunnel: &TunnelRequest,
) -> (RelaySocket, RelaySocket) {
    let mut console = open(&fx.server, &ticket.url, Some(&fx.cookie))
        .await
        .unwrap();
    let mut device = open(&fx.server, &tunnel.url, None).await.unwrap();
    expect_paired(&mut console).await;
    expect_paired(&mut device).await;
    (console, device)
}

/// Polls `listEvents` until a record of `kind` shows up.
async fn wait_record(fx: &mut Fixture, kind: &str) -> EventRecord {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let records: Vec<EventRecord> = fx
            .control
            .ok(ListEvents {
                limit: None,
                group: None,
                device: None,
                ..Default::default()
            })
            .await;
        if let Some(record) = records.into_iter().find(|r| r.kind == kind) {
            return record;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} record\n{}",
            fx.server.stderr()
        );
        sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn paired_ends_exchange_frames_both_ways_and_the_session_is_audited() {
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    assert_eq!(ticket.kind, SessionKind::Terminal);
    assert_eq!(
        (tunnel.kind, tunnel.user.as_str()),
        (SessionKind::Terminal, "admin")
    );
    assert_eq!(
        tunnel.rights,
        Rights::FULL,
        "a site admin holds every right"
    );
    assert!(
        ticket.url.starts_with("/meshrelay.ashx?id="),
        "{}",
        ticket.url
    );
    assert_ne!(ticket.url, tunnel.url, "each side has its own token");

    let (mut console, mut device) = pair(&fx, &ticket, &tunnel).await;
    send(&mut console, Message::binary(b"ls\n".to_vec())).await;
    assert_eq!(
        next_data(&mut device).await,
        Message::binary(b"ls\n".to_vec())
    );
    send(&mut device, Message::binary(b"file.txt\r\n".to_vec())).await;
    send(&mut device, Message::text(r#"{"type":"exit","code":0}"#)).await;
    assert_eq!(
        next_data(&mut console).await,
        Message::binary(b"file.txt\r\n".to_vec())
    );
    assert_eq!(
        next_data(&mut console).await,
        Message::text(r#"{"type":"exit","code":0}"#)
    );

    device.close(None).await.unwrap();
    let frame = closed(&mut console).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Normal);

    let started = wait_record(&mut fx, "session_started").await;
    assert_eq!(started.device.as_ref(), Some(&agent.device));
    assert_eq!(started.group.as_ref(), Some(&fx.group));
    assert!(
        started.message.contains("terminal session"),
        "{}",
        started.message
    );
    let ended = wait_record(&mut fx, "session_ended").await;
    assert!(
        ended
            .message
            .contains("3 bytes to the device, 34 bytes from it"),
        "{}",
        ended.message
    );
    assert!(
        ended.message.contains("closed by the agent"),
        "{}",
        ended.message
    );
}

/// Sessions are offered a direct path with the server's own STUN port, named by the host the
/// console reached the server at; a group whose policy is "direct connections: off" keeps its
/// sessions on the relay, and both ends are told the same.
/// With `[turn]` configured, each ticket (viewer and agent alike) also names the TURN server,
/// with a credential in coturn's REST scheme that coturn would accept: base64(HMAC-SHA1(secret,
/// "expiry:tag")), expiring in the configured time, and new for every session.
#[tokio::test]
async fn a_configured_turn_server_comes_with_a_fresh_credential_per_session() {
    use base64::Engine;
    use hmac::{Hmac, Mac};

    let config = "[turn]\nurls = [\"turn:turn.example:3478?transport=udp\"]\nsecret = \"north-wind\"\ncredential_secs = 600\n";
    let mut fx = Fixture::start_with_config(config).await;
    let mut agent = online_agent(&mut fx).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
        assert_eq!(
            tunnel.direct, ticket.direct,
            "the agent is offered the same servers"
        );
        let direct = ticket.direct.expect("a direct path");
        assert!(
            !direct.relay_only,
            "straight paths are allowed unless relay_only"
        );
        let servers = direct.ice_servers;
        let turn = servers
            .iter()
            .find(|s| s.urls[0].starts_with("turn:"))
            .expect("the TURN server is offered");
        assert_eq!(turn.urls, ["turn:turn.example:3478?transport=udp"]);
        let username = turn.username.clone().expect("a username");
        let (expiry, tag) = username.split_once(':').expect("expiry:tag");
        let expiry: i64 = expiry.parse().expect("a unix time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now + 590..=now + 610).contains(&expiry),
            "{expiry} vs {now}"
        );
        assert!(
            tag.len() == 16 && !tag.contains("admin"),
            "an opaque tag: {tag}"
        );
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"north-wind").unwrap();
        mac.update(username.as_bytes());
        let expected =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(turn.credential.as_deref(), Some(expected.as_str()));
        seen.push(username);
    }
    assert_ne!(seen[0], seen[1], "each session gets its own credential");
    let log = fx.server.stderr();
    assert!(!log.contains("north-wind"), "the secret reached the log");
}

/// `relay_only`: tickets tell viewers to reach the device through TURN only.
#[tokio::test]
async fn relay_only_reaches_viewer_and_agent_tickets() {
    let config = "[turn]\nurls = [\"turn:turn.example:3478?transport=udp\"]\nsecret = \"s\"\nrelay_only = true\n";
    let mut fx = Fixture::start_with_config(config).await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    assert!(ticket.direct.expect("a direct path").relay_only);
    assert!(tunnel.direct.expect("a direct path").relay_only);
}

#[tokio::test]
async fn sessions_offer_a_direct_path_unless_the_group_keeps_them_relayed() {
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    let authority = fx.server.url.trim_start_matches("https://");
    let (host, _) = authority.rsplit_once(':').expect("the URL has a port");
    // The STUN port is the HTTPS port's number by default.
    let stun = format!("stun:{host}:{}", fx.server.port);
    let offered = DirectPath {
        ice_servers: vec![IceServer {
            urls: vec![stun],
            username: None,
            credential: None,
        }],
        relay_only: false,
    };
    assert_eq!(ticket.direct.as_ref(), Some(&offered));
    assert_eq!(
        tunnel.direct, ticket.direct,
        "the agent is offered the same path"
    );

    let edited = fx
        .control
        .ok(EditGroup {
            direct_connections: Some(false),
            ..EditGroup::of(fx.group.clone())
        })
        .await;
    assert!(!edited.direct_connections);
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    assert_eq!(
        ticket.direct, None,
        "a relayed-only group offered a direct path"
    );
    assert_eq!(tunnel.direct, None, "the agent was offered a direct path");
    let record = wait_record(&mut fx, "group_changed").await;
    assert!(
        record.message.contains("direct connections off"),
        "{record:?}"
    );
}

/// Stopping the server (SIGTERM) ends relay sessions and agent connections with a "going away"
/// close frame rather than a cut connection, so both ends know to come back.
#[tokio::test]
async fn a_stopping_server_closes_relay_ends_and_agents_with_going_away() {
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    let (mut console, mut device) = pair(&fx, &ticket, &tunnel).await;
    let (status, console_frame, device_frame) =
        tokio::join!(fx.server.stop(), closed(&mut console), closed(&mut device));
    assert!(status.success(), "{status}");
    for frame in [console_frame, device_frame] {
        let frame = frame.expect("a close frame");
        assert_eq!(frame.code, CloseCode::Away);
        assert_eq!(frame.reason.as_str(), "server stopping");
    }
    let frame = agent.closed().await.expect("the agent got a close frame");
    assert_eq!(frame.code, CloseCode::Away);
    assert_eq!(frame.reason.as_str(), "server stopping");
}

#[tokio::test]
async fn tokens_admit_once_and_only_their_own_side_and_user() {
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    fx.control.ok(add_bob()).await;
    let bob = fx.server.login(BOB.0, BOB.1).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;

    assert_eq!(
        refused_with(&fx.server, &ticket.url, None).await,
        401,
        "no session cookie"
    );
    assert_eq!(
        refused_with(&fx.server, &ticket.url, Some(&bob)).await,
        401,
        "another user"
    );
    let garbage = "/meshrelay.ashx?id=bm90LWEtdG9rZW4.AAAA";
    assert_eq!(
        refused_with(&fx.server, garbage, Some(&fx.cookie)).await,
        403
    );
    // Flip one character of the MAC.
    let mut forged = tunnel.url.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    assert_eq!(refused_with(&fx.server, &forged, None).await, 403);

    // A page on another site cannot use the console end, even with the right cookie.
    match open_from(
        &fx.server,
        &ticket.url,
        Some(&fx.cookie),
        Some("https://evil.example"),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403)
        }
        other => panic!("a cross-origin console end was not refused: {other:?}"),
    }
    let mut console = open(&fx.server, &ticket.url, Some(&fx.cookie))
        .await
        .unwrap();
    assert_eq!(
        refused_with(&fx.server, &ticket.url, Some(&fx.cookie)).await,
        409,
        "reused"
    );
    let mut device = open(&fx.server, &tunnel.url, None).await.unwrap();
    expect_paired(&mut console).await;
    expect_paired(&mut device).await;
    assert_eq!(
        refused_with(&fx.server, &tunnel.url, None).await,
        409,
        "reused"
    );

    // The console closing ends the agent's side too.
    console.close(None).await.unwrap();
    assert_eq!(closed(&mut device).await.unwrap().code, CloseCode::Normal);

    // `/relay` is the same endpoint.
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    let alias = |url: &str| url.replace("/meshrelay.ashx", "/relay");
    let mut console = open(&fx.server, &alias(&ticket.url), Some(&fx.cookie))
        .await
        .unwrap();
    let mut device = open(&fx.server, &alias(&tunnel.url), None).await.unwrap();
    expect_paired(&mut console).await;
    expect_paired(&mut device).await;
}

#[tokio::test]
async fn a_lone_end_times_out_and_its_tokens_expire() {
    let mut fx = Fixture::start_with_config("relay_pair_timeout_secs = 2\n").await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    let mut console = open(&fx.server, &ticket.url, Some(&fx.cookie))
        .await
        .unwrap();
    let frame = closed(&mut console).await.expect("a close frame");
    assert_eq!(frame.code, CloseCode::Policy);
    assert!(frame.reason.contains("in time"), "{frame:?}");
    // Its table entry or its expiry (whichever the server looks at first) refuses the agent now.
    let status = refused_with(&fx.server, &tunnel.url, None).await;
    assert!(matches!(status, 404 | 410), "{status}");

    // A session nobody joins expires as a whole: once its time has passed, its tokens say so.
    let (ticket, _) = mint(&mut fx, &mut agent).await;
    let expires = std::time::UNIX_EPOCH + Duration::from_millis(ticket.expires_ms as u64);
    if let Ok(left) = expires.duration_since(std::time::SystemTime::now()) {
        sleep(left + Duration::from_millis(50)).await;
    }
    assert_eq!(
        refused_with(&fx.server, &ticket.url, Some(&fx.cookie)).await,
        410
    );
}

#[tokio::test]
async fn sessions_need_the_right_for_their_kind_on_an_online_device() {
    let mut fx = Fixture::start().await;
    let agent = online_agent(&mut fx).await;
    fx.control.ok(add_bob()).await;
    let bob_cookie = fx.server.login(BOB.0, BOB.1).await;
    let mut bob = fx.server.control(&bob_cookie).await;
    let device = agent.device.clone();
    let as_bob = |kind: SessionKind| session(&device, kind);

    assert_eq!(
        bob.refused(as_bob(SessionKind::Terminal)).await,
        ErrorCode::NotFound,
        "not a member"
    );
    let grant = |rights: Rights| SetGroupRights {
        group: fx.group.clone(),
        user: UserId("bob".to_owned()),
        rights,
    };
    fx.control.ok(grant(Rights::VIEW)).await;
    assert_eq!(
        bob.refused(as_bob(SessionKind::Terminal)).await,
        ErrorCode::Forbidden
    );
    let granted = Rights::TERMINAL.union(Rights::DESKTOP_VIEW_ONLY);
    fx.control.ok(grant(granted)).await;
    let ticket = bob.ok(as_bob(SessionKind::Terminal)).await;
    assert_eq!(
        ticket.rights,
        granted.normalized(),
        "the agent is told the user's rights"
    );
    assert_eq!(
        bob.refused(as_bob(SessionKind::Files)).await,
        ErrorCode::Forbidden
    );
    let desktop = bob.call(as_bob(SessionKind::Desktop)).await;
    assert!(
        desktop.is_ok(),
        "view-only is enough to open a desktop: {desktop:?}"
    );
    assert_eq!(
        bob.refused(as_bob(SessionKind::Chat)).await,
        ErrorCode::Forbidden
    );
    // A kind that does not exist cannot be typed: sent as raw JSON on purpose.
    let teleport = bob
        .request(json!({ "action": "createSession", "device": device, "kind": "teleport" }))
        .await;
    assert_eq!(teleport.error.map(|e| e.code), Some(ErrorCode::BadRequest));

    let unknown = session(&DeviceId::from("nope"), SessionKind::Terminal);
    assert_eq!(bob.refused(unknown).await, ErrorCode::NotFound);

    agent.disconnect();
    fx.wait_device(&device, "offline", |d| !d.online).await;
    let offline = session(&device, SessionKind::Terminal);
    assert_eq!(fx.control.refused(offline).await, ErrorCode::Conflict);
}

/// VmRSS of a process, in bytes.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_reader_that_stops_reading_stops_the_writer_and_server_memory_stays_flat() {
    const FRAME: usize = 64 * 1024;
    const BUDGET: u64 = 1024 * 1024 * 1024;
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
    let (console, mut device) = pair(&fx, &ticket, &tunnel).await;
    let pid = fx.server.pid().unwrap();
    let rss_before = rss_bytes(pid);

    // The console writes as fast as it can; the device end reads nothing for now.
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        let (mut sink, _stream) = console.split();
        let mut n: u64 = 0;
        while n * (FRAME as u64) < BUDGET {
            let frame = vec![(n % 251) as u8; FRAME];
            if futures_util::SinkExt::send(&mut sink, Message::binary(frame))
                .await
                .is_err()
            {
                break;
            }
            n += 1;
            counter.store(n * FRAME as u64, Ordering::SeqCst);
        }
    });

    // Wait until the writer makes no progress for two seconds: it is blocked on TCP.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = 0;
    let mut still_since = Instant::now();
    let stalled_at = loop {
        sleep(Duration::from_millis(200)).await;
        let now = sent.load(Ordering::SeqCst);
        if now != last {
            (last, still_since) = (now, Instant::now());
        } else if still_since.elapsed() >= Duration::from_secs(2) {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the writer never stalled ({now} bytes sent)"
        );
        assert!(
            now < BUDGET,
            "the writer sent everything: nothing held it back"
        );
    };
    let rss_stalled = rss_bytes(pid);
    eprintln!(
        "writer stalled after {} MiB; server RSS {} → {} MiB",
        stalled_at >> 20,
        rss_before >> 20,
        rss_stalled >> 20
    );
    // What the writer got out before stalling sits in the kernels' socket buffers (both hops)
    // and at most one frame per direction in the server.
    assert!(
        stalled_at < 64 << 20,
        "{stalled_at} bytes went out before the writer stalled"
    );
    assert!(
        rss_stalled < rss_before + (24 << 20),
        "server RSS grew from {rss_before} to {rss_stalled} bytes"
    );

    // Everything sent arrives, in order, once the reader reads.
    let mut received: u64 = 0;
    let mut frame_index: u64 = 0;
    while received < stalled_at {
        match next_data(&mut device).await {
            Message::Binary(data) => {
                assert_eq!(data.len(), FRAME);
                assert!(
                    data.iter().all(|b| *b == (frame_index % 251) as u8),
                    "frame {frame_index}"
                );
                received += data.len() as u64;
                frame_index += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.abort();
}

/// Figures, not a check: `cargo test -p tether-server --test relay -- --ignored --nocapture`.
/// Pushes 256 MiB console → device through one session, then 10 sessions at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement; run by hand"]
async fn relay_throughput() {
    const FRAME: usize = 64 * 1024;
    const TOTAL: u64 = 256 << 20;
    let mut fx = Fixture::start().await;
    let mut agent = online_agent(&mut fx).await;
    for sessions in [1usize, 10] {
        let mut pairs = Vec::new();
        for _ in 0..sessions {
            let (ticket, tunnel) = mint(&mut fx, &mut agent).await;
            pairs.push(pair(&fx, &ticket, &tunnel).await);
        }
        let per_session = TOTAL / sessions as u64;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (console, mut device) in pairs {
            tasks.push(tokio::spawn(async move {
                let (mut sink, _stream) = console.split();
                let writer = tokio::spawn(async move {
                    let frame = vec![7u8; FRAME];
                    let mut sent = 0;
                    while sent < per_session {
                        futures_util::SinkExt::send(&mut sink, Message::binary(frame.clone()))
                            .await
                            .unwrap();
                        sent += FRAME as u64;
                    }
                    sink
                });
                let mut received = 0;
                while received < per_session {
                    if let Message::Binary(data) = next_data(&mut device).await {
                        received += data.len() as u64;
                    }
                }
                drop(writer.await.unwrap());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "relay throughput, {sessions} session(s): {:.0} MB/s in total ({} MiB in {secs:.2} s)",
            TOTAL as f64 / secs / 1e6,
            TOTAL >> 20
        );
    }
}
