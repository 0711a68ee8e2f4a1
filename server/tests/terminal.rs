//! Terminal sessions end to end: the real server, the real `tether-agent` (a real PTY on this
//! machine) and, for `exec`, the real `tetherctl`. Build every binary first
//! (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;
#[allow(dead_code)]
#[path = "relay/terminal_session.rs"]
mod terminal_session;

use std::path::Path;
use std::time::Instant;

use tether_common::relay::terminal::{self, StartTerminal, TerminalEvent, TerminalRequest};
use tokio_tungstenite::tungstenite::Message;

use sockets::{RelaySocket, closed, next_data, send};
use support::Fixture;
use terminal_session::{exit_event, open_terminal, pid_in, read_until, wait_gone};

async fn type_line(console: &mut RelaySocket, line: &str) {
    send(console, Message::binary(format!("{line}\n").into_bytes())).await;
}

#[tokio::test]
async fn a_shell_echoes_resizes_speaks_utf8_and_reports_its_exit_code() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let shell = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    let mut console = open_terminal(&mut fx, &agent, shell).await;

    type_line(&mut console, "stty size").await;
    read_until(&mut console, "24 80").await;
    let resize = TerminalRequest::Resize {
        cols: 100,
        rows: 30,
    };
    send(&mut console, Message::text(terminal::to_json(&resize))).await;
    type_line(&mut console, "stty size").await;
    read_until(&mut console, "30 100").await;

    // The arithmetic happens in the remote shell, so the answer cannot be our own echo.
    type_line(&mut console, "echo tether-$((40+2))").await;
    read_until(&mut console, "tether-42").await;
    type_line(
        &mut console,
        "printf '%s\\n' \"h\u{e9}llo \u{2713}\" | od -An -c | tr -d ' \\n'",
    )
    .await;
    // é and ✓ travel as their UTF-8 bytes both ways.
    read_until(&mut console, "h303251llo342234223").await;

    // Keystroke echo latency: one byte out, the terminal's echo back.
    let mut rtts = Vec::new();
    for i in 0..200 {
        let key = [b'a' + (i % 26) as u8];
        let sent = Instant::now();
        send(&mut console, Message::binary(key.to_vec())).await;
        loop {
            if let Message::Binary(bytes) = next_data(&mut console).await
                && bytes.contains(&key[0])
            {
                break;
            }
        }
        rtts.push(sent.elapsed());
    }
    rtts.sort();
    eprintln!(
        "keystroke echo through the relay: p50 {:?}, p99 {:?}, max {:?} (200 keys)",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100],
        rtts[rtts.len() - 1]
    );
    // Ctrl-U drops the typed letters; then the shell exits with a code of our choosing.
    send(&mut console, Message::binary(vec![0x15])).await;
    type_line(&mut console, "exit 3").await;
    let exit = exit_event(&mut console).await;
    assert_eq!(
        exit,
        TerminalEvent::Exit {
            code: Some(3),
            signal: None
        }
    );
    assert!(
        closed(&mut console).await.is_some(),
        "the session closes after the exit"
    );
}

#[tokio::test]
async fn a_shell_killed_by_a_signal_reports_the_signal() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("sig", &[]).await;
    let shell = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    let mut console = open_terminal(&mut fx, &agent, shell).await;
    type_line(&mut console, "kill -9 $$").await;
    let exit = exit_event(&mut console).await;
    assert_eq!(
        exit,
        TerminalEvent::Exit {
            code: None,
            signal: Some(9)
        }
    );
    assert_eq!(exit.exit_status(), Some(137));
}

#[tokio::test]
async fn the_viewer_leaving_ends_the_program() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let start = StartTerminal {
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo pid=$$; exec sleep 1000".into(),
        ],
        ..StartTerminal::shell(80, 24)
    };
    let mut console = open_terminal(&mut fx, &agent, start).await;
    let pid = pid_in(&read_until(&mut console, "\n").await);
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    console.close(None).await.unwrap();
    // A killed child stays a zombie until reaped; either way it no longer runs `sleep`.
    wait_gone(pid).await;
}

/// `tetherctl exec`; (exit status, stdout, stderr).
async fn exec(
    fx: &Fixture,
    device: &str,
    stdin: Option<&[u8]>,
    command: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["exec", "--device", device, "--"];
    args.extend_from_slice(command);
    fx.tetherctl(&args, stdin).await
}

#[tokio::test]
async fn exec_prints_output_and_exits_with_the_remote_status() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();

    let (status, out, err) = exec(
        &fx,
        &id,
        None,
        &["sh", "-c", "echo out; echo err >&2; exit 7"],
    )
    .await;
    assert_eq!((status, out.as_str(), err.as_str()), (7, "out\n", "err\n"));
    let (status, out, _) = exec(&fx, &id, None, &["true"]).await;
    assert_eq!((status, out.as_str()), (0, ""));
    // Standard input goes through, byte for byte, and the device can be named.
    let name = fx
        .devices()
        .await
        .into_iter()
        .find(|d| d.id == agent.device_id)
        .unwrap()
        .name;
    let (status, out, _) = exec(&fx, &name, Some(b"line one\nline two"), &["cat"]).await;
    assert_eq!((status, out.as_str()), (0, "line one\nline two"));
    // A program that does not exist: a clear error and a failure status.
    let (status, _, err) = exec(&fx, &id, None, &["/no/such/program"]).await;
    assert_ne!(status, 0);
    assert!(err.contains("cannot start /no/such/program"), "{err}");
    let (status, _, err) = exec(&fx, "no-such-device", None, &["true"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("no device"), "{err}");
}

#[tokio::test]
async fn shell_runs_the_login_shell_and_exits_with_its_status() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();
    // Standard input is not a terminal here, so no raw mode; the keys still reach a real PTY.
    let keys = b"echo shell-$((6*7))\nexit 4\n";
    let (status, out, err) = fx.tetherctl(&["shell", "--device", &id], Some(keys)).await;
    assert_eq!(status, 4, "stdout {out:?}, stderr {err:?}");
    assert!(out.contains("shell-42"), "{out:?}");
}
