//! Consent of the person at the device, end to end: the real server, the real `tether-agent` on a
//! private Xvfb, the real `tetherctl`, and a scripted "person" at the device's screen who finds
//! the agent's windows by name and clicks their buttons with XTest. Build every binary first
//! (`cargo build --workspace --bins`). Skips, saying why, when Xvfb is missing (not under CI).

mod common;
#[allow(dead_code)]
#[path = "desktop/person.rs"]
mod person;
#[allow(dead_code)]
#[path = "relay/sockets.rs"]
mod sockets;
#[allow(dead_code)]
#[path = "agent/support.rs"]
mod support;

use person::{Person, at_the_device};
use support::Fixture;
use tether_common::control::{EditGroup, Event};
use tether_common::relay::consent::{ConsentMode, ConsentPolicy, WhenNobody};
use xprobe::Xvfb;

async fn set_consent(fx: &mut Fixture, consent: ConsentPolicy) {
    let group = fx.group.clone();
    let edited = fx
        .control
        .ok(EditGroup {
            consent: Some(consent),
            ..EditGroup::of(group)
        })
        .await;
    assert_eq!(edited.consent, consent);
}

fn terminal_prompt(secs: u16) -> ConsentPolicy {
    ConsentPolicy {
        terminal: ConsentMode::Prompt,
        prompt_secs: secs,
        ..ConsentPolicy::default()
    }
}

/// Waits for the audit record of a session that ended with `why` in its message.
async fn session_ended_with(fx: &mut Fixture, why: &str) -> String {
    let event = fx
        .wait_event("the session's end in the audit log", |event| {
            matches!(event, Event::Logged { record }
                if record.kind == "session_ended" && record.message.contains(why))
        })
        .await;
    match event {
        Event::Logged { record } => record.message,
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn an_accepted_prompt_starts_the_session_under_a_notice_that_lasts_as_long() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("consent", &["--x-display", &xvfb.display])
        .await;
    let device = agent.device_id.to_string();
    set_consent(&mut fx, terminal_prompt(60)).await;

    let person = Person::at(&xvfb.display);
    let script = at_the_device(person, |person| {
        let (prompt, title) = person.sees("Remote session request");
        person.presses(prompt, "Accept");
        person.sees_gone(prompt);
        let (notice, notice_title) = person.sees("Remote session: ");
        person.sees_gone(notice);
        (title, notice_title)
    });
    let command = [
        "exec",
        "--device",
        &device,
        "--",
        "sh",
        "-c",
        "echo accepted-$((6*7))",
    ];
    let ((status, out, err), (title, notice_title)) =
        tokio::join!(fx.tetherctl(&command, None), script);
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "accepted-42\n");
    assert!(
        err.contains("waiting for the person at the device to accept"),
        "{err}"
    );
    assert_eq!(title, "Remote session request");
    assert!(
        notice_title.contains("admin"),
        "the notice names who: {notice_title}"
    );
}

#[tokio::test]
async fn a_declined_or_unanswered_prompt_refuses_the_session_and_says_why() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("decline", &["--x-display", &xvfb.display])
        .await;
    let device = agent.device_id.to_string();
    set_consent(&mut fx, terminal_prompt(5)).await;
    let command = ["exec", "--device", &device, "--", "sh", "-c", "echo ran"];

    let person = Person::at(&xvfb.display);
    let script = at_the_device(person, |person| {
        let (prompt, _) = person.sees("Remote session request");
        person.presses(prompt, "Decline");
        person.sees_gone(prompt);
    });
    let ((status, out, err), ()) = tokio::join!(fx.tetherctl(&command, None), script);
    assert_ne!(status, 0);
    assert_eq!(out, "", "nothing ran");
    assert!(
        err.contains("the person at the device declined the session"),
        "{err}"
    );
    let ended = session_ended_with(&mut fx, "declined").await;
    assert!(ended.contains("closed by the agent"), "{ended}");

    // Nobody answers: the prompt closes itself after its 5 s and the session is refused.
    let person = Person::at(&xvfb.display);
    let script = at_the_device(person, |person| {
        let (prompt, _) = person.sees("Remote session request");
        person.sees_gone(prompt);
    });
    let ((status, out, err), ()) = tokio::join!(fx.tetherctl(&command, None), script);
    assert_ne!(status, 0);
    assert_eq!(out, "");
    assert!(
        err.contains("nobody at the device answered within 5 s"),
        "{err}"
    );
}

#[tokio::test]
async fn the_notice_names_the_viewer_and_its_disconnect_button_ends_the_session() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("notice", &["--x-display", &xvfb.display])
        .await;
    let device = agent.device_id.to_string();
    set_consent(
        &mut fx,
        ConsentPolicy {
            terminal: ConsentMode::Notify,
            ..ConsentPolicy::default()
        },
    )
    .await;

    let person = Person::at(&xvfb.display);
    let script = at_the_device(person, |person| {
        let (notice, title) = person.sees("Remote session: ");
        person.presses(notice, "Disconnect");
        person.sees_gone(notice);
        title
    });
    // A command that would run far longer than the test: only the button can end it in time.
    let command = [
        "exec",
        "--device",
        &device,
        "--",
        "sh",
        "-c",
        "echo started; sleep 600",
    ];
    let ((status, out, err), title) = tokio::join!(fx.tetherctl(&command, None), script);
    assert!(title.contains("admin"), "{title}");
    assert_ne!(status, 0);
    assert!(out.contains("started") || out.is_empty(), "{out}");
    assert!(
        err.contains("the person at the device ended the session"),
        "{err}"
    );
    session_ended_with(&mut fx, "the person at the device ended the session").await;
}

#[tokio::test]
async fn with_nobody_signed_in_the_group_policy_decides() {
    let mut fx = Fixture::start().await;
    // No X display: nobody can be shown or asked anything.
    let agent = fx.online_agent("nobody", &[]).await;
    let device = agent.device_id.to_string();
    let command = [
        "exec",
        "--device",
        &device,
        "--",
        "sh",
        "-c",
        "echo unattended",
    ];

    set_consent(
        &mut fx,
        ConsentPolicy {
            when_nobody: WhenNobody::Refuse,
            ..terminal_prompt(30)
        },
    )
    .await;
    let (status, out, err) = fx.tetherctl(&command, None).await;
    assert_ne!(status, 0);
    assert_eq!(out, "");
    assert!(err.contains("nobody is signed in at the device"), "{err}");

    set_consent(&mut fx, terminal_prompt(30)).await;
    let (status, out, err) = fx.tetherctl(&command, None).await;
    assert_eq!(status, 0, "{err}");
    assert_eq!(out, "unattended\n");

    // A policy the server must not store.
    let group = fx.group.clone();
    fx.control
        .refused(EditGroup {
            consent: Some(terminal_prompt(1)),
            ..EditGroup::of(group)
        })
        .await;
}

#[tokio::test]
async fn the_prompt_goes_away_when_the_viewer_does() {
    let Some(xvfb) = Xvfb::start(800, 600) else {
        return;
    };
    let mut fx = Fixture::start().await;
    let agent = fx
        .online_agent("left", &["--x-display", &xvfb.display])
        .await;
    set_consent(&mut fx, terminal_prompt(300)).await;
    let person = Person::at(&xvfb.display);
    let mut viewer = sockets::open_session(
        &fx.server,
        &mut fx.control,
        &fx.cookie,
        &agent.device_id,
        tether_common::relay::SessionKind::Terminal,
    )
    .await;
    let asked = sockets::next_data(&mut viewer).await;
    let asked = asked.to_text().unwrap().to_owned();
    assert!(asked.contains(r#""state":"asking""#), "{asked}");
    let prompt = at_the_device(person, |person| {
        let (prompt, _) = person.sees("Remote session request");
        prompt
    })
    .await;
    // The viewer gives up long before the prompt's 300 s: the prompt closes with it. (The person
    // looks again before the viewer leaves, so the window's end cannot pass unseen.)
    let person = Person::at(&xvfb.display);
    viewer.close(None).await.unwrap();
    at_the_device(person, move |person| person.sees_gone(prompt)).await;
}
