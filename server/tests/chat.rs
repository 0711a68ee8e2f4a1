//! The messenger, end to end with the real server and the real `tether-agent`: `createSession
//! {kind: "chat"}` has the agent open the chat page for whoever sits at the screen (a stub opener
//! records who ran it, with which display and URL), the console's reply says whom it opened for,
//! and the page's token joins the relay as the other end of the chat. When the page cannot open,
//! the console is told why. Build every binary first (`cargo build --workspace --bins`).

mod common;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tether_common::control::{
    AddUser, ChatPeer, CreateSession, DeclineChat, EditGroup, ErrorCode, Event, GetWhoAmI,
    InviteChat, ListChatPeers, ListEvents, ReplyError, SetGroupRights,
};
use tether_common::ids::UserId;
use tether_common::relay::SessionKind;
use tether_common::relay::chat::{ChatMessage, ChatWindow};
use tether_common::rights::Rights;
use tokio_tungstenite::tungstenite::Message;

use sockets::RelaySocket;
use support::{AgentProcess, Fixture};

/// A stand-in for `xdg-open`: writes its uid, `DISPLAY`, `XDG_RUNTIME_DIR`-free environment
/// facts and the URL it was given to `record`, then exits with `status`.
fn stub_opener(dir: &Path, record: &Path, status: i32) -> PathBuf {
    let path = dir.join(format!("opener-{status}"));
    let script = format!(
        "#!/bin/sh\nprintf 'uid=%s\\ndisplay=%s\\nhome=%s\\nurl=%s\\n' \"$(id -u)\" \"$DISPLAY\" \"$HOME\" \"$1\" > '{}'\necho 'no method available for opening' >&2\nexit {status}\n",
        record.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `id ARGS`, trimmed: who runs this test (and so the agent it starts).
fn id(args: &[&str]) -> String {
    let out = std::process::Command::new("id")
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits (up to the test deadline) until `read` has something: a file another process writes.
async fn poll<T>(mut read: impl FnMut() -> Option<T>) -> T {
    let until = tokio::time::Instant::now() + support::DEADLINE;
    loop {
        if let Some(value) = read() {
            return value;
        }
        assert!(tokio::time::Instant::now() < until, "timed out waiting");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

fn chat(device: &tether_common::ids::DeviceId) -> CreateSession {
    CreateSession {
        device: device.clone(),
        kind: SessionKind::Chat,
    }
}

/// An online agent named `name` on X display `display` whose opener is a stub that records
/// into `record` and exits with `status`.
async fn stub_agent(
    fx: &mut Fixture,
    name: &str,
    display: &str,
    record: &Path,
    status: i32,
) -> AgentProcess {
    let opener = stub_opener(fx.dir.path(), record, status);
    let flags = [
        "--x-display",
        display,
        "--chat-opener",
        opener.to_str().unwrap(),
    ];
    fx.online_agent(name, &flags).await
}

/// The relay path of the page the opener recorded: the token of its
/// `https://127.0.0.1:PORT/messenger#t=TOKEN`.
fn page_path(opened: &str, server: &common::TestServer) -> String {
    let url = opened
        .lines()
        .find_map(|line| line.strip_prefix("url="))
        .unwrap_or_else(|| panic!("no URL recorded: {opened}"));
    let prefix = format!("https://127.0.0.1:{}/messenger#t=", server.port);
    let token = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("{url}"));
    format!("/meshrelay.ashx?id={token}")
}

/// Opens two relay ends (each with its cookie, if any) and waits until both are paired.
async fn paired(
    server: &common::TestServer,
    one: (&str, Option<&str>),
    other: (&str, Option<&str>),
) -> (RelaySocket, RelaySocket) {
    let (a, b) = tokio::join!(
        sockets::open(server, one.0, one.1),
        sockets::open(server, other.0, other.1)
    );
    let (mut a, mut b) = (a.unwrap(), b.unwrap());
    sockets::expect_paired(&mut a).await;
    sockets::expect_paired(&mut b).await;
    (a, b)
}

/// `from` says `text`; `to` gets the very same message.
async fn say(from: &mut RelaySocket, to: &mut RelaySocket, text: &str) {
    let message = ChatMessage::Text {
        id: 1,
        text: text.into(),
    };
    sockets::send(from, Message::text(message.to_json())).await;
    match sockets::next_data(to).await {
        Message::Text(got) => assert_eq!(ChatMessage::parse(&got), Some(message)),
        other => panic!("{other:?}"),
    }
}

/// The next chat invitation `control` is sent: (its id, the invitee's end, who invited).
async fn invitation(control: &mut common::ControlClient) -> (String, String, UserId) {
    match control.next_event(support::DEADLINE).await {
        Event::ChatInvitation {
            invitation,
            url,
            from,
            ..
        } => (invitation, url, from),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_page_opens_for_the_person_at_the_screen_and_joins_the_chat() {
    let mut fx = Fixture::start().await;
    let record = fx.dir.path().join("opened.txt");
    let agent = stub_agent(&mut fx, "chat", ":77", &record, 0).await;

    let ticket = fx.control.ok(chat(&agent.device_id)).await;
    let (my_name, my_uid) = (id(&["-un"]), id(&["-u"]));
    assert_eq!(
        ticket.chat,
        Some(ChatWindow {
            user: my_name,
            display: ":77".into()
        })
    );
    // The page answers a direct-path offer as the agent would (the group allows direct paths).
    assert!(ticket.direct.is_some());

    // The agent waited for the opener's verdict, so its record is there.
    let opened = std::fs::read_to_string(&record).unwrap();
    let field = |name: &str| {
        opened
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name}=")))
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(field("uid"), my_uid);
    assert_eq!(field("display"), ":77");
    assert_eq!(field("home"), std::env::var("HOME").unwrap());
    let page_path = page_path(&opened, &fx.server);

    // The page joins with the token alone (no account); the console with its cookie.
    let (mut page, mut console) = paired(
        &fx.server,
        (&page_path, None),
        (&ticket.url, Some(&fx.cookie)),
    )
    .await;
    say(
        &mut console,
        &mut page,
        "Hello, can I help? <b>not bold</b>",
    )
    .await;
    say(&mut page, &mut console, "yes please").await;
    // The page's token admitted it once.
    assert_eq!(
        sockets::refused_with(&fx.server, &page_path, None).await,
        409
    );
}

#[tokio::test]
async fn the_console_is_told_why_the_page_did_not_open() {
    let mut fx = Fixture::start().await;
    let record = fx.dir.path().join("opened.txt");
    let no_browser = stub_opener(fx.dir.path(), &record, 3);
    let failing = stub_opener(fx.dir.path(), &record, 4);
    let cases: [(&str, Vec<&str>, &str); 4] = [
        // No display configured and no graphical login (CI machines have no logind session).
        (
            "nobody",
            vec!["--x-display", ""],
            "no one is logged in to a graphical session",
        ),
        (
            "no-browser",
            vec![
                "--x-display",
                ":77",
                "--chat-opener",
                no_browser.to_str().unwrap(),
            ],
            "no web browser is set up for",
        ),
        (
            "failing",
            vec![
                "--x-display",
                ":77",
                "--chat-opener",
                failing.to_str().unwrap(),
            ],
            "exit status 4: no method available for opening",
        ),
        (
            "missing",
            vec![
                "--x-display",
                ":77",
                "--chat-opener",
                "/nonexistent/xdg-open",
            ],
            "/nonexistent/xdg-open is not installed on this device",
        ),
    ];
    for (name, flags, why) in cases {
        let agent = fx.online_agent(name, &flags).await;
        let refused = match fx.control.call(chat(&agent.device_id)).await {
            Err(ReplyError::Refused(refused)) => refused,
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(refused.code, ErrorCode::Conflict, "{name}");
        assert!(
            refused.message.starts_with("the chat did not open on ")
                && refused.message.contains(why),
            "{name}: {}",
            refused.message
        );
        agent.kill().await;
    }
}

#[tokio::test]
async fn tetherctl_opens_a_chat_says_for_whom_and_sends_its_text_or_its_input() {
    let mut fx = Fixture::start().await;
    let record = fx.dir.path().join("opened.txt");
    let agent = stub_agent(&mut fx, "ctl-chat", ":5", &record, 0).await;
    let device = agent.device_id.to_string();

    let args = [
        "chat",
        "--device",
        &device,
        "--text",
        "-- restart <now> \u{1b}[2J",
    ];
    let ((status, out, err), got) =
        tokio::join!(fx.tetherctl(&args, None), device_page(&record, &fx.server));
    assert_eq!(status, 0, "{err}");
    assert_eq!(
        out,
        format!("the chat window opened for {} on :5\n", id(&["-un"]))
    );
    assert!(
        matches!(&got[0], ChatMessage::Hello { name } if name.starts_with("admin")),
        "{got:?}"
    );
    assert_eq!(
        got[1],
        ChatMessage::Text {
            id: 1,
            text: "-- restart <now> \u{1b}[2J".into()
        }
    );
    assert_eq!(got.len(), 3);

    // Interactive: each input line is a message; the end of input says goodbye.
    let args = ["chat", "--device", &device];
    let input = b"first line\n\nsecond line\n".as_slice();
    let ((status, _, err), got) = tokio::join!(
        fx.tetherctl(&args, Some(input)),
        device_page(&record, &fx.server)
    );
    assert_eq!(status, 0, "{err}");
    let texts: Vec<_> = got
        .iter()
        .filter_map(|m| match m {
            ChatMessage::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, ["first line", "second line"]);
}

/// The device's page: joins with the token of the URL the opener recorded (and removes the
/// record, for the next chat) and collects what it is sent until `bye`.
async fn device_page(record: &Path, server: &common::TestServer) -> Vec<ChatMessage> {
    let opened = poll(|| {
        let text = std::fs::read_to_string(record).ok()?;
        text.contains("url=").then_some(())?;
        std::fs::remove_file(record).ok()?;
        Some(text)
    })
    .await;
    let path = page_path(&opened, server);
    let mut ws = sockets::open(server, &path, None).await.unwrap();
    sockets::expect_paired(&mut ws).await;
    let mut got = Vec::new();
    loop {
        match sockets::next_data(&mut ws).await {
            Message::Text(text) => {
                let message = ChatMessage::parse(&text).unwrap();
                let bye = message == ChatMessage::Bye;
                got.push(message);
                if bye {
                    return got;
                }
            }
            other => panic!("{other:?}"),
        }
    }
}

/// A user of the console: logged in, with a control connection open.
async fn console_user(
    fx: &mut Fixture,
    name: &str,
    in_group: bool,
) -> (String, common::ControlClient) {
    let password = format!("{name}'s password, long enough");
    fx.control
        .ok(AddUser {
            name: name.into(),
            password: password.clone(),
            email: None,
            site_admin: false,
        })
        .await;
    if in_group {
        fx.control
            .ok(SetGroupRights {
                group: fx.group.clone(),
                user: UserId(name.to_owned()),
                rights: Rights::VIEW,
            })
            .await;
    }
    let cookie = fx.server.login(name, &password).await;
    let mut control = fx.server.control(&cookie).await;
    // The server counts a console as open once it serves the connection, a moment after the
    // WebSocket upgrade the client already saw: an answered request says it does.
    control.ok(GetWhoAmI {}).await;
    (cookie, control)
}

#[tokio::test]
async fn two_users_chat_and_only_peers_and_the_invitee_take_part() {
    let mut fx = Fixture::start().await;
    let (bob_cookie, mut bob) = console_user(&mut fx, "bob", true).await;
    let (carol_cookie, mut carol) = console_user(&mut fx, "carol", false).await;

    // Who is at a console, as each may see: the admin sees both; carol, in no group, sees only
    // the site administrator, and may not invite bob.
    let names = |peers: Vec<ChatPeer>| peers.into_iter().map(|p| p.name).collect::<Vec<_>>();
    assert_eq!(
        names(fx.control.ok(ListChatPeers {}).await),
        ["bob", "carol"]
    );
    assert_eq!(names(carol.ok(ListChatPeers {}).await), ["admin"]);
    assert_eq!(names(bob.ok(ListChatPeers {}).await), ["admin"]);
    assert_eq!(
        carol.refused(InviteChat { user: "bob".into() }).await,
        ErrorCode::NotFound
    );

    // The admin invites bob; bob's console is told, with bob's end of the session.
    let ticket = fx.control.ok(InviteChat { user: "bob".into() }).await;
    let (id, url, from) = invitation(&mut bob).await;
    assert_eq!(from.as_str(), "admin");
    // Carol cannot take bob's end; bob can (with his own login).
    let refused = sockets::refused_with(&fx.server, &url, Some(&carol_cookie)).await;
    assert_eq!(refused, 401);
    let (mut admin_end, mut bob_end) = paired(
        &fx.server,
        (&ticket.url, Some(&fx.cookie)),
        (&url, Some(&bob_cookie)),
    )
    .await;
    say(&mut admin_end, &mut bob_end, "hi bob").await;
    // The invitation was taken: it can no longer be declined.
    assert_eq!(
        bob.refused(DeclineChat { invitation: id }).await,
        ErrorCode::NotFound
    );

    // A declined invitation: only the invitee may decline; the inviter is told, and its end is
    // gone.
    let second = fx.control.ok(InviteChat { user: "bob".into() }).await;
    let (id, ..) = invitation(&mut bob).await;
    assert_eq!(
        carol
            .refused(DeclineChat {
                invitation: id.clone()
            })
            .await,
        ErrorCode::NotFound
    );
    bob.ok(DeclineChat {
        invitation: id.clone(),
    })
    .await;
    let declined = fx
        .wait_event("chatDeclined", |e| matches!(e, Event::ChatDeclined { .. }))
        .await;
    assert!(
        matches!(declined, Event::ChatDeclined { invitation, by_name } if invitation == id && by_name == "bob")
    );
    assert_eq!(
        sockets::refused_with(&fx.server, &second.url, Some(&fx.cookie)).await,
        404
    );
}

/// Opens a chat with the stub-opened page, exchanges one message each way, and ends it from the
/// console; returns the ticket.
async fn one_exchange(
    fx: &mut Fixture,
    device: &tether_common::ids::DeviceId,
    record: &Path,
) -> tether_common::relay::SessionTicket {
    let ticket = fx.control.ok(chat(device)).await;
    let page_path = page_path(&std::fs::read_to_string(record).unwrap(), &fx.server);
    let (mut page, mut console) = paired(
        &fx.server,
        (&page_path, None),
        (&ticket.url, Some(&fx.cookie)),
    )
    .await;
    let ask = ChatMessage::Text {
        id: 1,
        text: "reboot now?\u{1b}[2J\u{202e}".into(),
    };
    sockets::send(&mut console, Message::text(ask.to_json())).await;
    sockets::next_data(&mut page).await;
    let answer = ChatMessage::Text {
        id: 1,
        text: "yes, go".into(),
    };
    sockets::send(&mut page, Message::text(answer.to_json())).await;
    sockets::next_data(&mut console).await;
    sockets::send(&mut console, Message::Close(None)).await;
    assert!(sockets::closed(&mut page).await.is_some());
    ticket
}

#[tokio::test]
async fn a_group_that_keeps_transcripts_has_chats_written_to_the_audit_log_and_relayed() {
    let mut fx = Fixture::start().await;
    let record = fx.dir.path().join("opened.txt");
    let agent = stub_agent(&mut fx, "kept", ":9", &record, 0).await;
    let device = agent.device_id.clone();
    let name = fx
        .devices()
        .await
        .into_iter()
        .find(|d| d.id == device)
        .unwrap()
        .name;

    // Off (the default): nothing of what was said is kept.
    one_exchange(&mut fx, &device, &record).await;
    assert!(chat_lines(&mut fx, &device).await.is_empty());

    // On: both sides' messages, cleaned to one line of text, and the chat stays relayed.
    fx.control
        .ok(EditGroup {
            chat_transcripts: Some(true),
            ..EditGroup::of(fx.group.clone())
        })
        .await;
    let ticket = one_exchange(&mut fx, &device, &record).await;
    assert_eq!(ticket.direct, None);
    let mut said = chat_lines(&mut fx, &device).await;
    said.sort();
    assert_eq!(
        said,
        [
            format!("chat: admin to the person at {name}: reboot now? [2J"),
            format!("chat: the person at {name} to admin: yes, go"),
        ]
    );
}

/// What the audit log kept of chats with `device`, once the latest session's end is written
/// (each message is written before it is passed on, the end after the last).
async fn chat_lines(fx: &mut Fixture, device: &tether_common::ids::DeviceId) -> Vec<String> {
    fx.wait_event(
        "session_ended",
        |e| matches!(e, Event::Logged { record } if record.kind == "session_ended"),
    )
    .await;
    let records = fx
        .control
        .ok(ListEvents {
            device: Some(device.clone()),
            kind: Some("chat_message".into()),
            ..ListEvents::default()
        })
        .await;
    records.into_iter().map(|r| r.message).collect()
}

#[tokio::test]
async fn a_chat_between_users_ends_when_the_invitee_logs_out() {
    let mut fx = Fixture::start().await;
    let (bob_cookie, mut bob) = console_user(&mut fx, "bob", true).await;
    let ticket = fx.control.ok(InviteChat { user: "bob".into() }).await;
    let (_, url, _) = invitation(&mut bob).await;
    let (mut admin_end, _bob_end) = paired(
        &fx.server,
        (&ticket.url, Some(&fx.cookie)),
        (&url, Some(&bob_cookie)),
    )
    .await;

    let logout = fx
        .server
        .http_client()
        .post(format!("{}/api/logout", fx.server.url))
        .header("cookie", format!("__Host-tether_session={bob_cookie}"))
        .send()
        .await
        .unwrap();
    assert!(logout.status().is_success(), "{logout:?}");
    // At once (the invitee's logout concerns the chat), not at the once-a-minute re-check.
    let frame = sockets::closed(&mut admin_end)
        .await
        .expect("a close frame");
    assert!(
        frame.reason.starts_with("the login session ended"),
        "{}",
        frame.reason
    );
}
