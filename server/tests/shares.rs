//! Guest sharing links end to end: the real server, the real agent and the real `tetherctl`. A
//! link made with `tetherctl share` opens a terminal for a guest with no account or cookie; the
//! session ends the moment the link is revoked; single-use links open one session; links carry
//! no more than their kind and their creator's current rights; wrong links are refused; and
//! every use is in the audit log. Build every binary first (`cargo build --workspace --bins`).

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

use serde_json::json;
use tether_common::control::{
    AddUser, CreateShare, ErrorCode, Event, ListShares, RevokeShare, SetGroupRights,
};
use tether_common::ids::UserId;
use tether_common::relay::terminal::{self, StartTerminal, TerminalRequest};
use tether_common::rights::Rights;
use tether_common::share::{GUEST_SESSION_PATH, GuestTicket, ShareKind, ShareStatus};
use tokio_tungstenite::tungstenite::Message;

use sockets::{closed, expect_paired, open_from, send};
use support::Fixture;
use terminal_session::read_until;

/// A guest's browser: no cookie, asking for a session with the link's fragment.
async fn guest_asks(fx: &Fixture, token: &str) -> (u16, serde_json::Value) {
    let response = fx
        .server
        .http_client()
        .post(format!(
            "https://localhost:{}{GUEST_SESSION_PATH}",
            fx.server.port
        ))
        .json(&json!({ "token": token }))
        .send()
        .await
        .expect("the guest's request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

fn token_of(url: &str) -> &str {
    url.split_once("/share#").expect("a guest link").1.trim()
}

#[tokio::test]
async fn a_guest_link_opens_a_terminal_without_an_account_until_it_is_revoked() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("shared", &[]).await;
    let device = agent.device_id.to_string();

    let (status, url, err) = fx
        .tetherctl(
            &[
                "share",
                "--device",
                &device,
                "--kind",
                "terminal",
                "--minutes",
                "30",
                "--label",
                "Bob from accounting",
            ],
            None,
        )
        .await;
    assert_eq!(status, 0, "{err}");
    assert!(err.contains("it is shown only now"), "{err}");
    let token = token_of(&url).to_owned();

    let (status, ticket) = guest_asks(&fx, &token).await;
    assert_eq!(status, 200, "{ticket}");
    let ticket: GuestTicket = serde_json::from_value(ticket).unwrap();
    assert_eq!(ticket.kind, ShareKind::Terminal);
    assert_eq!(ticket.creator, UserId("admin".into()));
    let origin = format!("https://127.0.0.1:{}", fx.server.port);
    let mut guest = open_from(&fx.server, &ticket.url, None, Some(&origin))
        .await
        .expect("the relay admits the guest without a cookie");
    expect_paired(&mut guest).await;
    let start = StartTerminal {
        command: vec!["/bin/sh".into()],
        ..StartTerminal::shell(80, 24)
    };
    send(
        &mut guest,
        Message::text(terminal::to_json(&TerminalRequest::Start(start))),
    )
    .await;
    send(
        &mut guest,
        Message::binary(b"echo guest-$((6*7))\n".to_vec()),
    )
    .await;
    read_until(&mut guest, "guest-42").await;

    // Listed with its use; the audit log names the guest and the link.
    let listed = fx
        .control
        .ok(ListShares {
            device: Some(agent.device_id.clone()),
        })
        .await;
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].uses, listed[0].status), (1, ShareStatus::Active));
    assert_eq!(listed[0].label, "Bob from accounting");
    let (status, table, _) = fx.tetherctl(&["shares"], None).await;
    assert_eq!(status, 0);
    assert!(
        table.contains(&listed[0].id) && table.contains("active"),
        "{table}"
    );
    // Logged when the link is used, then as the session starts.
    fx.wait_event("the use in the audit log", |event| {
        matches!(event, Event::Logged { record } if record.kind == "share_used"
            && record.message.contains("a guest used admin's link \"Bob from accounting\""))
    })
    .await;
    fx.wait_event("the guest's session start", |event| {
        matches!(event, Event::Logged { record } if record.kind == "session_started"
            && record.message.contains("a guest on admin's link \"Bob from accounting\""))
    })
    .await;

    // Revoked: the running session ends at once, and the link opens nothing more.
    let (status, out, err) = fx.tetherctl(&["unshare", &listed[0].id], None).await;
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("revoked guest link"), "{out}");
    let frame = closed(&mut guest).await.expect("a close frame");
    assert_eq!(
        frame.reason.as_str(),
        "the sharing link was revoked or expired"
    );
    let (status, body) = guest_asks(&fx, &token).await;
    assert_eq!(status, 410, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn links_hold_to_their_kind_their_single_use_and_their_creators_rights() {
    let mut fx = Fixture::start().await;
    let agent = fx.online_agent("bounded", &[]).await;
    let device = agent.device_id.clone();

    // Wrong and malformed links say nothing more than "not valid".
    for token in [
        "nonsense",
        "abcdefghijkl.0123456789abcdef0123",
        "../../etc.passwd",
    ] {
        let (status, body) = guest_asks(&fx, token).await;
        assert_eq!(status, 404, "{token}: {body}");
    }

    // A single-use link opens one session.
    let once = fx
        .control
        .ok(CreateShare {
            device: device.clone(),
            kind: ShareKind::DesktopView,
            minutes: 5,
            single_use: true,
            label: String::new(),
        })
        .await;
    let token = token_of(&once.url).to_owned();
    let (status, _) = guest_asks(&fx, &token).await;
    assert_eq!(status, 200);
    let (status, body) = guest_asks(&fx, &token).await;
    assert_eq!(status, 410);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{body}"
    );
    // The right secret is needed, not only the id.
    let (id, _) = token.split_once('.').unwrap();
    let (status, _) = guest_asks(
        &fx,
        &format!("{id}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    )
    .await;
    assert_eq!(status, 404);

    // Carol may only watch the desktop: she cannot share more than that.
    fx.control
        .ok(AddUser {
            name: "carol".into(),
            password: "carol's long passphrase".into(),
            email: None,
            site_admin: false,
        })
        .await;
    let watch_only = Rights::VIEW.union(Rights::DESKTOP_VIEW_ONLY);
    let set_rights = |rights| SetGroupRights {
        group: fx.group.clone(),
        user: UserId("carol".into()),
        rights,
    };
    fx.control.ok(set_rights(watch_only)).await;
    let carol_cookie = fx.server.login("carol", "carol's long passphrase").await;
    let mut carol = fx.server.control(&carol_cookie).await;
    let share = |kind| CreateShare {
        device: device.clone(),
        kind,
        minutes: 60,
        single_use: false,
        label: "for Dan".into(),
    };
    for kind in [
        ShareKind::Terminal,
        ShareKind::DesktopControl,
        ShareKind::Files,
    ] {
        assert_eq!(
            carol.refused(share(kind)).await,
            ErrorCode::Forbidden,
            "{kind:?}"
        );
    }
    assert_eq!(
        carol
            .refused(CreateShare {
                minutes: 0,
                ..share(ShareKind::DesktopView)
            })
            .await,
        ErrorCode::BadRequest
    );
    let hers = carol.ok(share(ShareKind::DesktopView)).await;
    // She sees her own links, not the admin's, and cannot revoke the admin's.
    let seen = carol.ok(ListShares { device: None }).await;
    assert_eq!(
        seen.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [hers.share.id.as_str()]
    );
    assert_eq!(
        carol
            .refused(RevokeShare {
                share: once.share.id.clone(),
            })
            .await,
        ErrorCode::Forbidden
    );

    // Once Carol loses the right, her link opens nothing.
    fx.control.ok(set_rights(Rights::VIEW)).await;
    let (status, body) = guest_asks(&fx, token_of(&hers.url)).await;
    assert_eq!(status, 403, "{body}");
}
