//! A terminal session's console end for the tests: opened through `createSession` and the relay,
//! started, then read until some output or the exit event; and the remote program's life.

use std::time::{Duration, Instant};

use tether_common::relay::SessionKind;
use tether_common::relay::terminal::{self, StartTerminal, TerminalEvent, TerminalRequest};
use tokio_tungstenite::tungstenite::Message;

use crate::sockets::{RelaySocket, next_data, open_session, send};
use crate::support::{AgentProcess, DEADLINE, Fixture};

/// A terminal session to the agent as the admin, paired and started.
pub async fn open_terminal(
    fx: &mut Fixture,
    agent: &AgentProcess,
    start: StartTerminal,
) -> RelaySocket {
    let device = &agent.device_id;
    let mut console = open_session(
        &fx.server,
        &mut fx.control,
        &fx.cookie,
        device,
        SessionKind::Terminal,
    )
    .await;
    let start = terminal::to_json(&TerminalRequest::Start(start));
    send(&mut console, Message::text(start)).await;
    console
}

/// Reads output until it contains `wanted`; returns everything read. Panics on an event first.
pub async fn read_until(console: &mut RelaySocket, wanted: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match next_data(console).await {
            Message::Binary(bytes) => {
                seen.extend_from_slice(&bytes);
                let text = String::from_utf8_lossy(&seen);
                if text.contains(wanted) {
                    return text.into_owned();
                }
            }
            Message::Text(text) => panic!(
                "got {text} before {wanted:?}; output so far: {:?}",
                String::from_utf8_lossy(&seen)
            ),
            _ => unreachable!(),
        }
    }
}

/// Reads until the agent's exit event, skipping output.
pub async fn exit_event(console: &mut RelaySocket) -> TerminalEvent {
    loop {
        if let Message::Text(text) = next_data(console).await {
            return terminal::parse_event(&text).unwrap_or_else(|| panic!("odd event {text}"));
        }
    }
}

/// The number after `pid=` in `text`.
pub fn pid_in(text: &str) -> u32 {
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// Waits until process `pid` no longer runs (gone, or a zombie waiting to be reaped).
pub async fn wait_gone(pid: u32) {
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "process {pid} outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
