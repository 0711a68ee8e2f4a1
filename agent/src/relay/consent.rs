//! The person at the device and a starting session: the agent's half of the group's consent
//! policy (`tether_common::relay::consent`). Runs on the relay socket right after `"c"`, before
//! the session reads its first frame or tries a direct path, so nothing of the session happens
//! until the person has accepted.

use futures_util::{SinkExt, StreamExt};
use tether_common::relay::consent::{
    ConsentMode, ConsentRequest, ConsentState, REFUSED_CLOSE_CODE, Refusal, WhenNobody,
    readable_name,
};
use tether_common::relay::terminal::{self, TerminalEvent};
use tether_common::relay::{SessionKind, TunnelRequest};
use tether_common::rights::Rights;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{RelaySocket, RelayWs};
use crate::screen_notice::{self, Answer, Message as ScreenMessage, Notice};

/// Longest viewer name shown on the device's screen.
const MAX_NAME_CHARS: usize = 80;
/// Bytes buffered in the pipe a notice puts between a session and its socket.
const NOTICE_PIPE: usize = 256 * 1024;

pub(super) enum Consented {
    /// Go on with the session; keep the notice (if any) for as long as it runs.
    Go(Box<RelayWs>, Option<Notice>),
    /// Refused; the viewer has been told why and the socket closed.
    Refused,
}

/// Shows or asks what the tunnel request's `consent` says, on `display`.
pub(super) async fn obtain(
    mut socket: RelayWs,
    request: &TunnelRequest,
    display: Option<&str>,
) -> anyhow::Result<Consented> {
    let Some(consent) = &request.consent else {
        return Ok(Consented::Go(Box::new(socket), None));
    };
    let viewer = readable_name(&consent.viewer, MAX_NAME_CHARS);
    let what = Activity::of(request.kind, request.rights);
    if consent.mode == ConsentMode::Prompt {
        let timeout_secs = consent.prompt_secs;
        socket
            .send(Message::text(
                ConsentState::Asking { timeout_secs }.to_text(),
            ))
            .await?;
        // The prompt goes away if the viewer does (dropping `ask` closes its window).
        let asked = tokio::select! {
            asked = screen_notice::ask(display, prompt(&viewer, what), timeout_secs) => asked,
            gone = viewer_gone(&mut socket) => {
                return match gone {
                    ViewerGone::Left(why) => {
                        tracing::info!("consent: the viewer left before the person at the device answered ({why})");
                        Ok(Consented::Refused)
                    }
                    ViewerGone::SentData => {
                        let message = "the viewer sent session data before the person at the device accepted";
                        tracing::warn!("consent: {message}");
                        refuse_with(socket, message).await
                    }
                };
            }
        };
        let how = match asked {
            Ok(Answer::Accepted) => "accepted by the person at the device".to_owned(),
            Ok(Answer::Declined) => return refuse(socket, Refusal::Declined).await,
            Ok(Answer::Unanswered) => {
                return refuse(socket, Refusal::Unanswered(timeout_secs)).await;
            }
            Err(e) => match nobody_there(consent, &e) {
                Some(how) => how,
                None => return refuse(socket, Refusal::Nobody).await,
            },
        };
        tracing::info!(user = %request.user, kind = %request.kind, "consent: {how}");
        socket
            .send(Message::text(ConsentState::Granted { how }.to_text()))
            .await?;
    }
    match Notice::show(display, notice(&viewer, what)) {
        Ok(notice) => Ok(Consented::Go(Box::new(socket), Some(notice))),
        Err(e) => match nobody_there(consent, &e) {
            Some(_) => Ok(Consented::Go(Box::new(socket), None)),
            None => refuse(socket, Refusal::Nobody).await,
        },
    }
}

/// With nobody to show anything to, the policy decides: `Some(why)` to go on.
fn nobody_there(consent: &ConsentRequest, e: &screen_notice::ScreenError) -> Option<String> {
    tracing::info!("consent: nothing can be shown at the device: {e}");
    match consent.when_nobody {
        WhenNobody::Allow => {
            Some("nobody is signed in at the device; its group allows that".into())
        }
        WhenNobody::Refuse => None,
    }
}

/// How the viewer's side ended the wait for consent.
enum ViewerGone {
    /// Its socket closed or failed.
    Left(String),
    /// It sent a session frame, which it must not before `granted`.
    SentData,
}

/// Resolves when the viewer leaves or breaks the rule; pends while it waits as it should.
async fn viewer_gone(socket: &mut RelayWs) -> ViewerGone {
    loop {
        match socket.next().await {
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Text(_) | Message::Binary(_))) => return ViewerGone::SentData,
            Some(Ok(Message::Close(frame))) => {
                return ViewerGone::Left(frame.map(|f| f.reason.to_string()).unwrap_or_default());
            }
            Some(Err(e)) => return ViewerGone::Left(e.to_string()),
            None => return ViewerGone::Left("the connection ended".into()),
        }
    }
}

/// Tells the viewer why (as every session kind shows an `error`), then closes with the reason.
async fn refuse(socket: RelayWs, refusal: Refusal) -> anyhow::Result<Consented> {
    let reason = refusal.to_string();
    tracing::info!("consent: session refused: {reason}");
    refuse_with(socket, &reason).await
}

async fn refuse_with(mut socket: RelayWs, reason: &str) -> anyhow::Result<Consented> {
    let error = TerminalEvent::Error {
        message: reason.to_owned(),
    };
    socket
        .send(Message::text(terminal::to_json(&error)))
        .await?;
    let frame = CloseFrame {
        code: CloseCode::from(REFUSED_CLOSE_CODE),
        reason: reason.to_owned().into(),
    };
    let _ = socket.close(Some(frame)).await;
    Ok(Consented::Refused)
}

/// What the session lets the viewer do, in words for the person at the device.
#[derive(Debug, Clone, Copy)]
enum Activity {
    Control,
    View,
    Terminal,
    Files,
}

impl Activity {
    fn of(kind: SessionKind, rights: Rights) -> Activity {
        match kind {
            SessionKind::Desktop if rights.contains(Rights::REMOTE_CONTROL) => Activity::Control,
            SessionKind::Desktop => Activity::View,
            SessionKind::Terminal => Activity::Terminal,
            SessionKind::Files | SessionKind::Chat => Activity::Files,
        }
    }
}

fn prompt(viewer: &str, what: Activity) -> ScreenMessage {
    let asks = match what {
        Activity::Control => "to see and control this screen",
        Activity::View => "to see this screen",
        Activity::Terminal => "to open a command line (terminal) on this computer",
        Activity::Files => "to browse and transfer files on this computer",
    };
    ScreenMessage {
        title: "Remote session request".into(),
        lines: vec![
            format!("{viewer} asks {asks}."),
            "Accept only if you expect this session.".into(),
        ],
    }
}

fn notice(viewer: &str, what: Activity) -> ScreenMessage {
    let doing = match what {
        Activity::Control => "sees and controls this screen",
        Activity::View => "sees this screen",
        Activity::Terminal => "uses a command line on this computer",
        Activity::Files => "has access to the files on this computer",
    };
    ScreenMessage {
        title: format!("Remote session: {viewer}"),
        lines: vec![
            format!("{viewer} {doing}."),
            "Disconnect ends the session.".into(),
        ],
    }
}

/// The session's socket, with the notice's Disconnect button able to end it: a pipe between the
/// session and `socket` that, when pressed, tells the viewer why and closes (the session sees its
/// socket close, as when the viewer leaves).
pub(super) async fn with_disconnect(socket: RelaySocket, mut notice: Notice) -> RelaySocket {
    let (ours, theirs) = tokio::io::duplex(NOTICE_PIPE);
    let inner = WebSocketStream::from_raw_socket(ours, WsRole::Server, None).await;
    let session = WebSocketStream::from_raw_socket(theirs, WsRole::Client, None).await;
    let (mut to_session, mut from_session) = inner.split();
    let (mut to_viewer, mut from_viewer) = socket.split();
    tokio::spawn(async move {
        while let Some(Ok(message)) = from_viewer.next().await {
            let last = message.is_close();
            if to_session.send(message).await.is_err() || last {
                break;
            }
        }
        let _ = to_session.close().await;
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                message = from_session.next() => match message {
                    Some(Ok(message)) => {
                        let last = message.is_close();
                        if to_viewer.send(message).await.is_err() || last {
                            break;
                        }
                    }
                    _ => break,
                },
                () = notice.disconnected() => {
                    let reason = "the person at the device ended the session";
                    tracing::info!("consent: {reason}");
                    let error = TerminalEvent::Error { message: reason.into() };
                    let _ = to_viewer.send(Message::text(terminal::to_json(&error))).await;
                    let frame = CloseFrame { code: CloseCode::from(REFUSED_CLOSE_CODE), reason: reason.into() };
                    let _ = to_viewer.send(Message::Close(Some(frame))).await;
                    break;
                }
            }
        }
        // The notice lives until here: the session's end closes it.
        drop(notice);
        let _ = to_viewer.close().await;
    });
    session
}
