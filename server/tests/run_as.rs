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
#[allow(dead_code)]
#[path = "relay/terminal_session.rs"]
mod terminal_session;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

use tether_common::relay::terminal::{
    self, OutputStream, StartTerminal, TerminalEvent, decode_output,
};
use tokio_tungstenite::tungstenite::Message;

use sockets::{RelaySocket, next_data, send};
use support::Fixture;
use terminal_session::{exit_event, open_terminal, pid_in, read_until, wait_gone};

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

fn exec_as(user: Option<&str>, command: &[&str]) -> StartTerminal {
    StartTerminal::exec(command.iter().map(|w| (*w).to_owned()).collect())
        .run_as(user.map(str::to_owned))
}

fn shell_as(user: &str) -> StartTerminal {
    StartTerminal::shell(80, 24).run_as(Some(user.to_owned()))
}

/// `tetherctl exec --device DEVICE --as-user USER -- COMMAND…`; (exit status, stdout, stderr).
async fn tetherctl_exec_as(
    fx: &Fixture,
    device: &str,
    user: &str,
    command: &[&str],
) -> (i32, String, String) {
    let mut args = vec!["exec", "--device", device, "--as-user", user, "--"];
    args.extend_from_slice(command);
    fx.tetherctl(&args, None).await
}

#[tokio::test]
async fn without_as_user_the_program_runs_as_the_agents_account() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let me = own_user_name();
    let mut console = open_terminal(&mut fx, &agent, exec_as(None, &["id", "-un"])).await;
    let (out, exit) = exec_output(&mut console).await;
    assert_eq!((out.trim(), exit.exit_status()), (me.as_str(), Some(0)));
    // Naming the agent's own account is the same thing, and needs no root.
    let mut console = open_terminal(&mut fx, &agent, exec_as(Some(&me), &["id", "-un"])).await;
    let (out, exit) = exec_output(&mut console).await;
    assert_eq!((out.trim(), exit.exit_status()), (me.as_str(), Some(0)));
}

#[tokio::test]
async fn exec_as_nobody_runs_as_nobody() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    let id = agent.device_id.to_string();
    let start = exec_as(Some("nobody"), &["id", "-un"]);
    let mut console = open_terminal(&mut fx, &agent, start).await;
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
    let mut console = open_terminal(&mut fx, &agent, sleeper).await;
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
    let (status, out, err) = tetherctl_exec_as(&fx, &id, "nobody", &["id", "-un"]).await;
    assert_eq!((status, out.as_str()), (0, "nobody\n"), "stderr {err:?}");
    let printf = ["printf", "%s|", "a b", "$HOME", "it's"];
    let (status, out, _) = tetherctl_exec_as(&fx, &id, "nobody", &printf).await;
    assert_eq!((status, out.as_str()), (0, "a b|$HOME|it's|"));
    // The agent's environment does not follow the program into the other account.
    let (status, out, _) = tetherctl_exec_as(&fx, &id, "nobody", &["env"]).await;
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
    let agent = fx.online_agent("a", &[]).await;
    let mut console = open_terminal(&mut fx, &agent, shell_as("nobody")).await;
    let message = error_message(&mut console).await;
    assert!(
        message.contains("nobody cannot log in") && message.contains(&shell),
        "{message}"
    );
    // tetherctl shows the agent's words and fails.
    let id = agent.device_id.to_string();
    let (status, _, err) = fx
        .tetherctl(&["shell", "--device", &id, "--as-user", "nobody"], None)
        .await;
    assert_eq!(status, 1);
    assert!(err.contains("nobody cannot log in"), "{err}");
}

#[tokio::test]
async fn bad_or_unknown_names_get_an_error_frame() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("a", &[]).await;
    for bad in ["-x", "a;b", "../root", ""] {
        for start in [shell_as(bad), exec_as(Some(bad), &["true"])] {
            let mut console = open_terminal(&mut fx, &agent, start).await;
            let message = error_message(&mut console).await;
            assert!(
                message.contains("not a plain user name"),
                "{bad:?}: {message}"
            );
        }
    }
    let unknown = format!("tether-none-{}", unique_suffix());
    let mut console = open_terminal(&mut fx, &agent, exec_as(Some(&unknown), &["true"])).await;
    let message = error_message(&mut console).await;
    let expected = if running_as_root() {
        format!("there is no user {unknown}")
    } else {
        "not as root".to_owned()
    };
    assert!(message.contains(&expected), "{message}");
    let id = agent.device_id.to_string();
    let (status, _, err) = fx
        .tetherctl(
            &["exec", "--device", &id, "--as-user=a;b", "--", "true"],
            None,
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
    let agent = fx.online_agent("a", &[]).await;
    let mut console = open_terminal(&mut fx, &agent, shell_as(&user.name)).await;
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
    let mut console = open_terminal(&mut fx, &agent, shell_as(&user.name)).await;
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
