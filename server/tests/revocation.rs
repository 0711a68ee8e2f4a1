//! Revocation and relay quotas, end to end (the real server and `tether-agent`): relay sessions
//! end when their user is removed, loses the right the session needs, logs out or changes their
//! password, or when the site's maximum session length passes; a `/control` socket closes on
//! logout; one user cannot take every relay slot; the agent caps the sessions it serves. Build
//! every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "relay/fake_agent.rs"]
mod fake_agent;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tether_common::control::{
    AddUser, CreateSession, ErrorCode, RemoveUser, RenameDevice, ReplyError, SetGroupRights,
};
use tether_common::ids::{DeviceId, UserId};
use tether_common::relay::terminal::{self, StartTerminal, TerminalRequest};
use tether_common::relay::{SessionKind, SessionTicket};
use tether_common::rights::Rights;
use tokio::time::{Instant, sleep, timeout_at};
use tokio_tungstenite::tungstenite::Message;

use common::ControlClient;
use fake_agent::FakeAgent;
use sockets::{RelaySocket, expect_paired, next_data, open, open_session, send};
use support::{AgentProcess, Fixture};

const ALICE: (&str, &str) = ("alice", "alice's long passphrase");
/// The server should end a revoked session within about a second; this only bounds the wait on a
/// busy machine (before the fix, the session never ends).
const END_DEADLINE: Duration = Duration::from_secs(10);

/// Adds alice with `rights` on the fixture's group; her session cookie.
async fn add_alice(fx: &mut Fixture, rights: Rights) -> String {
    fx.control
        .ok(AddUser {
            name: ALICE.0.into(),
            password: ALICE.1.into(),
            email: None,
            site_admin: false,
        })
        .await;
    set_alice_rights(fx, rights).await;
    fx.server.login(ALICE.0, ALICE.1).await
}

async fn set_alice_rights(fx: &mut Fixture, rights: Rights) {
    fx.control
        .ok(SetGroupRights {
            group: fx.group.clone(),
            user: UserId(ALICE.0.to_owned()),
            rights,
        })
        .await;
}

/// A shell on `agent` opened by the owner of `cookie` through `control`, shown to answer.
async fn shell(
    fx: &Fixture,
    control: &mut ControlClient,
    cookie: &str,
    agent: &AgentProcess,
) -> RelaySocket {
    let device = &agent.device_id;
    let mut console =
        open_session(&fx.server, control, cookie, device, SessionKind::Terminal).await;
    let start = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    send(
        &mut console,
        Message::text(terminal::to_json(&TerminalRequest::Start(start))),
    )
    .await;
    assert_answers(&mut console).await;
    console
}

/// The shell computes something (so the answer is not our own echo).
async fn assert_answers(console: &mut RelaySocket) {
    send(console, Message::binary(b"echo alive-$((40+2))\n".to_vec())).await;
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("alive-42") {
        match next_data(console).await {
            Message::Binary(bytes) => seen.extend_from_slice(&bytes),
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// Waits for the server to close `console` (skipping output still in flight); the close reason.
/// If it stays open, shows that the shell still obeys.
async fn ended(console: &mut RelaySocket, what: &str) -> String {
    let since = Instant::now();
    let deadline = since + END_DEADLINE;
    let reason = loop {
        match timeout_at(deadline, console.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                break frame.map(|f| f.reason.to_string()).unwrap_or_default();
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => break String::new(),
            Err(_) => {
                let answer = still_here(console).await;
                panic!(
                    "after {what}, the relay stayed open for {END_DEADLINE:?}; the shell answered {answer:?}"
                );
            }
        }
    };
    eprintln!(
        "{what}: the relay closed after {:?} ({reason})",
        since.elapsed()
    );
    let answer = still_here(console).await;
    assert!(!answer.contains("still-here"), "{answer:?}");
    reason
}

/// Types `echo still-here` and collects what comes back for a moment.
async fn still_here(console: &mut RelaySocket) -> String {
    if console
        .send(Message::binary(b"echo still-here\n".to_vec()))
        .await
        .is_err()
    {
        return String::new();
    }
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(message))) = timeout_at(deadline, console.next()).await {
        if let Message::Binary(bytes) = message {
            seen.extend_from_slice(&bytes);
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test]
async fn removing_the_user_ends_her_terminal() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL).await;
    let mut alice = fx.server.control(&cookie).await;
    let mut console = shell(&fx, &mut alice, &cookie, &agent).await;

    fx.control
        .ok(RemoveUser {
            user: UserId(ALICE.0.to_owned()),
        })
        .await;
    let reason = ended(&mut console, "removeUser").await;
    assert_eq!(reason, "the account was removed");
}

#[tokio::test]
async fn taking_the_right_away_ends_her_terminal() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL).await;
    let mut alice = fx.server.control(&cookie).await;
    let mut console = shell(&fx, &mut alice, &cookie, &agent).await;

    set_alice_rights(&mut fx, Rights::NONE).await;
    let reason = ended(&mut console, "setGroupRights none").await;
    assert_eq!(reason, "the right to this session was revoked");
}

#[tokio::test]
async fn losing_the_files_right_ends_only_her_files_session() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL.union(Rights::FILES)).await;
    let mut alice = fx.server.control(&cookie).await;
    let device = &agent.device_id;
    let mut files = open_session(&fx.server, &mut alice, &cookie, device, SessionKind::Files).await;
    let mut console = shell(&fx, &mut alice, &cookie, &agent).await;

    set_alice_rights(&mut fx, Rights::TERMINAL).await;
    let since = Instant::now();
    let reason = loop {
        match timeout_at(since + END_DEADLINE, files.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.unwrap().reason.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the files session did not end: {other:?}"),
        }
    };
    eprintln!("files session closed after {:?}", since.elapsed());
    assert_eq!(reason, "the right to this session was revoked");
    // The terminal needs only TERMINAL, which she kept.
    assert_answers(&mut console).await;
}

#[tokio::test]
async fn logging_out_ends_her_terminal_and_closes_her_control_socket() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL).await;
    let mut alice = fx.server.control(&cookie).await;
    let mut console = shell(&fx, &mut alice, &cookie, &agent).await;

    let logout = fx
        .server
        .http_client()
        .post(format!("{}/api/logout", fx.server.url))
        .header("cookie", format!("__Host-tether_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{logout:?}");
    let reason = ended(&mut console, "logout").await;
    assert!(reason.starts_with("the login session ended"), "{reason}");

    // Something alice could see changes: her socket hears nothing of it, it is closed.
    fx.control
        .ok(RenameDevice {
            device: agent.device_id.clone(),
            name: "renamed".into(),
        })
        .await;
    match alice.wait_closed(END_DEADLINE).await {
        Ok(reason) => assert!(reason.contains("session ended"), "{reason}"),
        Err(frames) => panic!("alice's /control stayed open after logout; it got {frames:?}"),
    }
}

#[tokio::test]
async fn a_listening_control_socket_closes_on_logout() {
    let mut fx = Fixture::start().await;
    let device = FakeAgent::connect(&fx.server, fx.enrolment_key()).await;
    let cookie = add_alice(&mut fx, Rights::VIEW).await;
    let mut alice = fx.server.control(&cookie).await;
    let logout = fx
        .server
        .http_client()
        .post(format!("{}/api/logout", fx.server.url))
        .header("cookie", format!("__Host-tether_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{logout:?}");
    fx.control
        .ok(RenameDevice {
            device: device.device.clone(),
            name: "renamed".into(),
        })
        .await;
    match alice.wait_closed(END_DEADLINE).await {
        Ok(reason) => assert!(reason.contains("session ended"), "{reason}"),
        Err(frames) => panic!("alice's /control stayed open after logout; it got {frames:?}"),
    }
}

#[tokio::test]
async fn changing_her_password_ends_her_terminal() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL).await;
    let mut alice = fx.server.control(&cookie).await;
    let mut console = shell(&fx, &mut alice, &cookie, &agent).await;

    let changed = fx
        .server
        .http_client()
        .post(format!("{}/api/password", fx.server.url))
        .header("cookie", format!("__Host-tether_session={cookie}"))
        .json(&json!({ "old_password": ALICE.1, "new_password": "a brand new passphrase" }))
        .send()
        .await
        .unwrap();
    assert!(changed.status().is_success(), "{changed:?}");
    let reason = ended(&mut console, "a password change").await;
    assert!(reason.starts_with("the login session ended"), "{reason}");
}

#[tokio::test]
async fn the_site_maximum_ends_a_session_that_is_still_in_use() {
    let mut fx = Fixture::start_with_config("relay_max_session_secs = 2\n").await;
    let agent = fx.online_agent("a", &[]).await;
    let cookie = fx.cookie.clone();
    let opened = Instant::now();
    let mut control = fx.server.control(&cookie).await;
    let mut console = shell(&fx, &mut control, &cookie, &agent).await;
    let reason = ended(&mut console, "the maximum session length").await;
    assert_eq!(
        reason,
        "the session reached the site's maximum session length"
    );
    assert!(
        opened.elapsed() >= Duration::from_secs(2),
        "ended early: {:?}",
        opened.elapsed()
    );
}

/// `createSession`, retrying while the connection's request rate limit says to slow down.
async fn create_session(
    control: &mut ControlClient,
    device: &DeviceId,
    kind: SessionKind,
) -> Result<SessionTicket, ReplyError> {
    loop {
        let request = CreateSession {
            device: device.clone(),
            kind,
        };
        match control.call(request).await {
            Err(error) if error.code() == Some(ErrorCode::RateLimited) => {
                sleep(Duration::from_millis(50)).await
            }
            reply => return reply,
        }
    }
}

#[tokio::test]
async fn one_user_cannot_take_every_relay_slot() {
    let mut fx = Fixture::start().await;
    let (first, second) = (
        FakeAgent::connect(&fx.server, fx.enrolment_key()).await,
        FakeAgent::connect(&fx.server, fx.enrolment_key()).await,
    );
    fx.wait_device(&first.device, "online", |d| d.online).await;
    fx.wait_device(&second.device, "online", |d| d.online).await;
    let cookie = add_alice(&mut fx, Rights::TERMINAL).await;
    let mut alice = fx.server.control(&cookie).await;

    // Sessions nobody joins wait for their pairing timeout (60 s), holding their slots.
    let mut refusal = None;
    for attempt in 1..=200 {
        match create_session(&mut alice, &first.device, SessionKind::Terminal).await {
            Ok(_) => {}
            Err(ReplyError::Refused(error)) => {
                refusal = Some((attempt, error));
                break;
            }
            Err(other) => panic!("createSession failed without an error body: {other}"),
        }
    }
    let Some((attempt, error)) = refusal else {
        panic!("alice opened 200 sessions without meeting a quota");
    };
    assert_eq!(attempt, 65, "the default quota is 64 per user: {error:?}");
    assert_eq!(error.code, ErrorCode::Conflict);
    assert!(
        error
            .message
            .starts_with("alice already has 64 relay sessions open or waiting"),
        "{}",
        error.message
    );
    // Everybody else goes on, on another device and on the one alice filled.
    for device in [&second.device, &first.device] {
        let reply = create_session(&mut fx.control, device, SessionKind::Terminal).await;
        assert!(reply.is_ok(), "{reply:?}");
    }
}

#[tokio::test]
async fn the_agent_turns_away_sessions_past_its_cap() {
    // Quotas out of the way, so that the agent's own cap (128) is what stops the flood.
    let config = "relay_sessions_per_user = 1000\nrelay_sessions_per_device = 1000\n";
    let mut fx = Fixture::start_with_config(config).await;
    let agent = fx.online_agent("a", &[]).await;
    let device = agent.device_id.clone();
    let mut last = None;
    for _ in 0..129 {
        let reply = create_session(&mut fx.control, &device, SessionKind::Files).await;
        assert!(reply.is_ok(), "{reply:?}");
        last = reply.ok();
    }
    // The 129th: the agent joins only to say why it will not serve it.
    let ticket = last.unwrap();
    let mut console = open(&fx.server, &ticket.url, Some(&fx.cookie))
        .await
        .unwrap();
    expect_paired(&mut console).await;
    match next_data(&mut console).await {
        Message::Text(text) => assert!(
            text.contains("this device is already serving 128 sessions at once"),
            "{text}"
        ),
        other => panic!("expected the agent's refusal, got {other:?}"),
    }
}
