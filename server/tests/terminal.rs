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

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use tether_common::relay::SessionTicket;
use tether_common::relay::terminal::{self, StartTerminal, TerminalEvent, TerminalRequest};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::Message;

use sockets::{RelaySocket, closed, expect_paired, next_data, open, send};
use support::{ADMIN, AgentProcess, DEADLINE, Fixture};

async fn agent_online(fx: &mut Fixture) -> AgentProcess {
    let mut agent = fx
        .spawn_agent(&fx.msh.clone(), &fx.state_dir("a"), &[])
        .await;
    agent.wait_line("tether-agent connected ").await;
    let device = agent.device_id.clone();
    fx.wait_device(&device, "online", |d| d.online).await;
    agent
}

/// A terminal session to the agent, paired and started.
async fn terminal(fx: &mut Fixture, agent: &AgentProcess, start: StartTerminal) -> RelaySocket {
    let reply = fx
        .control
        .request(
            json!({ "action": "createSession", "device": agent.device_id, "kind": "terminal" }),
        )
        .await;
    assert!(reply.ok, "{reply:?}");
    let ticket: SessionTicket = serde_json::from_value(reply.result.unwrap()).unwrap();
    let mut console = open(&fx.server, &ticket.url, Some(&fx.cookie))
        .await
        .unwrap();
    expect_paired(&mut console).await;
    let start = terminal::to_json(&TerminalRequest::Start(start));
    send(&mut console, Message::text(start)).await;
    console
}

/// Reads output until it contains `wanted`; returns everything read. Panics on an exit first.
async fn read_until(console: &mut RelaySocket, wanted: &str) -> String {
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
async fn exit_event(console: &mut RelaySocket) -> TerminalEvent {
    loop {
        if let Message::Text(text) = next_data(console).await {
            return terminal::parse_event(&text).unwrap_or_else(|| panic!("odd event {text}"));
        }
    }
}

async fn type_line(console: &mut RelaySocket, line: &str) {
    send(console, Message::binary(format!("{line}\n").into_bytes())).await;
}

#[tokio::test]
async fn a_shell_echoes_resizes_speaks_utf8_and_reports_its_exit_code() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let shell = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    let mut console = terminal(&mut fx, &agent, shell).await;

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
async fn the_viewer_leaving_ends_the_program() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let start = StartTerminal {
        command: vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo pid=$$; exec sleep 1000".into(),
        ],
        ..StartTerminal::shell(80, 24)
    };
    let mut console = terminal(&mut fx, &agent, start).await;
    let text = read_until(&mut console, "\n").await;
    let pid: u32 = text
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"));
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    console.close(None).await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    // A killed child stays a zombie until reaped; either way it no longer runs `sleep`.
    while std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "))
    {
        assert!(
            Instant::now() < deadline,
            "the program outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn tetherctl() -> std::path::PathBuf {
    Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl")
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
    tetherctl_run(fx, &args, stdin).await
}

/// Runs `tetherctl ARGS` as the admin; (exit status, stdout, stderr).
async fn tetherctl_run(fx: &Fixture, args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(tetherctl())
        .env("TETHER_URL", format!("wss://127.0.0.1:{}", fx.server.port))
        .env("TETHER_USER", ADMIN.0)
        .env("TETHER_PASS", ADMIN.1)
        .env("TETHER_KNOWN_SERVERS", fx.dir.path().join("known_servers"))
        .arg("--trust-root")
        .arg(fx.server.file("root-cert-public.crt"))
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run tetherctl (build it first: cargo build --workspace --bins)");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
    }
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("tetherctl exec timed out")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn exec_prints_output_and_exits_with_the_remote_status() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
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
    let agent = agent_online(&mut fx).await;
    let id = agent.device_id.to_string();
    // Standard input is not a terminal here, so no raw mode; the keys still reach a real PTY.
    let keys = b"echo shell-$((6*7))\nexit 4\n";
    let (status, out, err) = tetherctl_run(&fx, &["shell", "--device", &id], Some(keys)).await;
    assert_eq!(status, 4, "stdout {out:?}, stderr {err:?}");
    assert!(out.contains("shell-42"), "{out:?}");
}
