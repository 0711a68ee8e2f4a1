//! Terminal sessions as another local account (`asUser`), end to end: the real server, the real
//! `tether-agent` and `tetherctl`. Build every binary first (`cargo build --workspace --bins`).
//! A root agent may run as anyone; these tests run the agent as the test's own account, so the
//! cases that need root print why they skip when it is not.

mod common;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tether_common::relay::SessionTicket;
use tether_common::relay::terminal::{
    self, OutputStream, StartTerminal, TerminalEvent, TerminalRequest, decode_output,
};
use tokio_tungstenite::tungstenite::Message;

use sockets::{RelaySocket, expect_paired, next_data, open, send};
use support::{ADMIN, AgentProcess, DEADLINE, Fixture};

fn running_as_root() -> bool {
    // /proc/self belongs to the effective user.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn own_user_name() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Field `index` of `user`'s line in /etc/passwd (5: home, 6: shell).
fn passwd_field(user: &str, index: usize) -> Option<String> {
    std::fs::read_to_string("/etc/passwd")
        .ok()?
        .lines()
        .find(|line| line.split(':').next() == Some(user))
        .and_then(|line| line.split(':').nth(index))
        .map(str::to_owned)
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}{nanos:x}", std::process::id())
}

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

/// A piped command's standard output and its last event.
async fn exec_output(console: &mut RelaySocket) -> (String, TerminalEvent) {
    let mut stdout = Vec::new();
    loop {
        match next_data(console).await {
            Message::Binary(frame) => {
                if let Some((OutputStream::Stdout, bytes)) = decode_output(&frame) {
                    stdout.extend_from_slice(bytes);
                }
            }
            Message::Text(text) => {
                let event = terminal::parse_event(&text).unwrap_or_else(|| panic!("odd {text}"));
                return (String::from_utf8_lossy(&stdout).into_owned(), event);
            }
            _ => unreachable!(),
        }
    }
}

/// The first event, which must come before any output; its message when it is an error.
async fn error_message(console: &mut RelaySocket) -> String {
    match next_data(console).await {
        Message::Text(text) => match terminal::parse_event(&text) {
            Some(TerminalEvent::Error { message }) => message,
            other => panic!("expected an error event, got {other:?}"),
        },
        other => panic!("expected an error event, got {other:?}"),
    }
}

/// Reads PTY output until it contains `wanted`; panics on an event first.
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

async fn exit_event(console: &mut RelaySocket) -> TerminalEvent {
    loop {
        if let Message::Text(text) = next_data(console).await {
            return terminal::parse_event(&text).unwrap_or_else(|| panic!("odd event {text}"));
        }
    }
}

/// The number after `pid=` in `text`.
fn pid_in(text: &str) -> u32 {
    text.split("pid=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

/// Waits until process `pid` no longer runs (gone, or a zombie waiting to be reaped).
async fn wait_gone(pid: u32) {
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

fn exec_as(user: Option<&str>, command: &[&str]) -> StartTerminal {
    StartTerminal::exec(command.iter().map(|w| (*w).to_owned()).collect())
        .run_as(user.map(str::to_owned))
}

fn shell_as(user: &str) -> StartTerminal {
    StartTerminal::shell(80, 24).run_as(Some(user.to_owned()))
}

/// Runs `tetherctl ARGS` as the admin; (exit status, stdout, stderr).
async fn tetherctl(fx: &Fixture, args: &[&str]) -> (i32, String, String) {
    let binary = Path::new(env!("CARGO_BIN_EXE_tether-server")).with_file_name("tetherctl");
    let child = tokio::process::Command::new(binary)
        .env("TETHER_URL", format!("wss://127.0.0.1:{}", fx.server.port))
        .env("TETHER_USER", ADMIN.0)
        .env("TETHER_PASS", ADMIN.1)
        .env("TETHER_KNOWN_SERVERS", fx.dir.path().join("known_servers"))
        .arg("--trust-root")
        .arg(fx.server.file("root-cert-public.crt"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run tetherctl (build it first: cargo build --workspace --bins)");
    let output = tokio::time::timeout(DEADLINE, child.wait_with_output())
        .await
        .expect("tetherctl timed out")
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn without_as_user_the_program_runs_as_the_agents_account() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let me = own_user_name();
    let mut console = terminal(&mut fx, &agent, exec_as(None, &["id", "-un"])).await;
    let (out, exit) = exec_output(&mut console).await;
    assert_eq!((out.trim(), exit.exit_status()), (me.as_str(), Some(0)));
    // Naming the agent's own account is the same thing, and needs no root.
    let mut console = terminal(&mut fx, &agent, exec_as(Some(&me), &["id", "-un"])).await;
    let (out, exit) = exec_output(&mut console).await;
    assert_eq!((out.trim(), exit.exit_status()), (me.as_str(), Some(0)));
}

#[tokio::test]
async fn exec_as_nobody_runs_as_nobody() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let id = agent.device_id.to_string();
    let start = exec_as(Some("nobody"), &["id", "-un"]);
    let mut console = terminal(&mut fx, &agent, start).await;
    if !running_as_root() {
        println!("not root: only checking that a non-root agent refuses another account");
        let message = error_message(&mut console).await;
        assert!(message.contains("not as root"), "{message}");
        return;
    }
    let (out, exit) = exec_output(&mut console).await;
    assert_eq!((out.as_str(), exit.exit_status()), ("nobody\n", Some(0)));

    // Leaving stops the program, not only runuser (which would leave its child running).
    let sleeper = exec_as(
        Some("nobody"),
        &["sh", "-c", "echo pid=$$; exec sleep 1000"],
    );
    let mut console = terminal(&mut fx, &agent, sleeper).await;
    let pid = loop {
        match next_data(&mut console).await {
            Message::Binary(frame) => {
                if let Some((OutputStream::Stdout, bytes)) = decode_output(&frame) {
                    break pid_in(&String::from_utf8_lossy(bytes));
                }
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    console.close(None).await.unwrap();
    wait_gone(pid).await;

    // The same through tetherctl; arguments pass unquoted and unchanged.
    let (status, out, err) = tetherctl(
        &fx,
        &[
            "exec",
            "--device",
            &id,
            "--as-user",
            "nobody",
            "--",
            "id",
            "-un",
        ],
    )
    .await;
    assert_eq!((status, out.as_str()), (0, "nobody\n"), "stderr {err:?}");
    let (status, out, _) = tetherctl(
        &fx,
        &[
            "exec",
            "--device",
            &id,
            "--as-user",
            "nobody",
            "--",
            "printf",
            "%s|",
            "a b",
            "$HOME",
            "it's",
        ],
    )
    .await;
    assert_eq!((status, out.as_str()), (0, "a b|$HOME|it's|"));
    // The agent's environment does not follow the program into the other account.
    let (status, out, _) = tetherctl(
        &fx,
        &["exec", "--device", &id, "--as-user", "nobody", "--", "env"],
    )
    .await;
    assert_eq!(status, 0);
    assert!(out.contains("USER=nobody\n"), "{out}");
    assert!(
        out.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{out}"
    );
    let allowed = ["PATH", "LANG", "LC_ALL", "HOME", "USER", "LOGNAME", "SHELL"];
    for line in out.lines() {
        let name = line.split('=').next().unwrap_or_default();
        assert!(
            allowed.contains(&name),
            "{name} leaked from the agent: {out}"
        );
    }
}

#[tokio::test]
async fn a_login_shell_for_a_nologin_account_is_refused_clearly() {
    if !running_as_root() {
        println!("skipped: needs a root agent (this test is not root)");
        return;
    }
    let shell = passwd_field("nobody", 6).unwrap_or_default();
    if !shell.ends_with("/nologin") && !shell.ends_with("/false") {
        println!("skipped: nobody's shell here is {shell:?}, not a nologin shell");
        return;
    }
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let mut console = terminal(&mut fx, &agent, shell_as("nobody")).await;
    let message = error_message(&mut console).await;
    assert!(
        message.contains("nobody cannot log in") && message.contains(&shell),
        "{message}"
    );
    // tetherctl shows the agent's words and fails.
    let id = agent.device_id.to_string();
    let (status, _, err) = tetherctl(&fx, &["shell", "--device", &id, "--as-user", "nobody"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("nobody cannot log in"), "{err}");
}

#[tokio::test]
async fn bad_or_unknown_names_get_an_error_frame() {
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    for bad in ["-x", "a;b", "../root", ""] {
        for start in [shell_as(bad), exec_as(Some(bad), &["true"])] {
            let mut console = terminal(&mut fx, &agent, start).await;
            let message = error_message(&mut console).await;
            assert!(
                message.contains("not a plain user name"),
                "{bad:?}: {message}"
            );
        }
    }
    let unknown = format!("tether-none-{}", unique_suffix());
    let mut console = terminal(&mut fx, &agent, exec_as(Some(&unknown), &["true"])).await;
    let message = error_message(&mut console).await;
    let expected = if running_as_root() {
        format!("there is no user {unknown}")
    } else {
        "not as root".to_owned()
    };
    assert!(message.contains(&expected), "{message}");
    let id = agent.device_id.to_string();
    let (status, _, err) = tetherctl(
        &fx,
        &["exec", "--device", &id, "--as-user=a;b", "--", "true"],
    )
    .await;
    assert_eq!(status, 1);
    assert!(err.contains("not a plain user name"), "{err}");
}

/// A throwaway local account, removed (with its home) when dropped.
struct TempUser {
    name: String,
}

impl TempUser {
    fn create() -> Option<TempUser> {
        let name = format!("tether-t-{}", unique_suffix());
        let name = name[..name.len().min(32)].to_owned();
        let created = std::process::Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", &name])
            .status()
            .ok()?;
        created.success().then_some(TempUser { name })
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        // The session may still be closing; userdel refuses while the user runs processes.
        for _ in 0..50 {
            let removed = std::process::Command::new("userdel")
                .args(["--remove", &self.name])
                .stderr(Stdio::null())
                .status();
            if removed.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("could not remove the test user {}", self.name);
    }
}

#[tokio::test]
async fn a_pty_session_as_a_login_user_is_that_users_login_shell() {
    if !running_as_root() {
        println!("skipped: creating a user and switching to it need root");
        return;
    }
    let Some(user) = TempUser::create() else {
        println!("skipped: useradd is missing or failed");
        return;
    };
    let mut fx = Fixture::start().await;
    let agent = agent_online(&mut fx).await;
    let mut console = terminal(&mut fx, &agent, shell_as(&user.name)).await;
    // Computed in the remote shell, so our own echo cannot match.
    let line = "echo \"who=$(id -un) home=$HOME pwd=$(pwd) term=$TERM\"\n";
    send(&mut console, Message::binary(line.as_bytes().to_vec())).await;
    let home = passwd_field(&user.name, 5).expect("the new user's home");
    let wanted = format!(
        "who={} home={home} pwd={home} term=xterm-256color",
        user.name
    );
    read_until(&mut console, &wanted).await;
    send(&mut console, Message::binary(b"exit 5\n".to_vec())).await;
    assert_eq!(exit_event(&mut console).await.exit_status(), Some(5));

    // Leaving the tab ends that user's shell too.
    let mut console = terminal(&mut fx, &agent, shell_as(&user.name)).await;
    // The echo of what we type reads `pi""d=$$;"`; only the shell's output has `pid=N;\r\n`.
    send(
        &mut console,
        Message::binary(b"echo \"pi\"\"d=$$;\"\n".to_vec()),
    )
    .await;
    let pid = pid_in(&read_until(&mut console, ";\r\n").await);
    console.close(None).await.unwrap();
    wait_gone(pid).await;
    drop(user);
}
