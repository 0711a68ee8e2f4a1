//! A paired session: greet both ends with `"c"`, pass frames both ways until one side goes (and
//! close the other) or the session loses its right to exist (and close both), and write the audit
//! records.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use tether_common::relay::{PAIRED, RelayClaims, RelaySide};
use tokio::time::timeout;

use super::audit::{Subject, Traffic};
use super::broker::RelayEnd;
use super::lifetime::until_ended;
use super::live::{LiveSession, Opener, Revoked};
use super::pipe::{PING_EVERY, Stop, Transcript, forward, recording_failed, shut};
use crate::state::AppState;
use tether_common::recording::Direction;

/// Each end must take the `"c"` greeting within this long.
const GREETING_DEADLINE: Duration = Duration::from_secs(10);

pub(super) async fn run(state: AppState, claims: RelayClaims, one: RelayEnd, other: RelayEnd) {
    let (console, agent) = match one.side {
        RelaySide::Console => (one, other),
        RelaySide::Agent => (other, one),
    };
    let subject = Subject::load(&state, &claims).await;
    let (registration, stopped) = state.relay.live().register(LiveSession {
        id: claims.session.clone(),
        user: claims.user.clone(),
        device: claims.device.clone(),
        group: subject.group_id().cloned(),
        kind: claims.kind,
        granted: claims.rights,
        opener: match &claims.share {
            Some(share) => Opener::Share(share.clone()),
            // Always set for a console end without a link; an empty key matches no login
            // session, so it would end.
            None => Opener::Login(console.login.clone().unwrap_or_default()),
        },
        peer: claims
            .peer
            .clone()
            .map(|invitee| (invitee, agent.login.clone().unwrap_or_default())),
        started: Instant::now(),
    });
    let (mut console_sink, mut console_stream) = console.socket.split();
    let (mut agent_sink, mut agent_stream) = agent.socket.split();

    let recorder = match subject.recording(&state, &claims).await {
        Ok(recorder) => recorder,
        Err(e) => {
            tracing::error!(device = %claims.device, user = %claims.user, "relay: cannot start the session's recording: {e}");
            let frame = Some(recording_failed());
            tokio::join!(
                shut(console_sink, console_stream, frame.clone()),
                shut(agent_sink, agent_stream, frame)
            );
            return;
        }
    };
    let tee = |direction| recorder.as_ref().map(|r| (r, direction));

    let greeted = tokio::join!(greet(&mut console_sink), greet(&mut agent_sink));
    if !(greeted.0 && greeted.1) {
        tracing::info!(device = %claims.device, user = %claims.user, "relay: an end left before the greeting");
        let frame = Some(away("the other side left"));
        tokio::join!(
            shut(console_sink, console_stream, frame.clone()),
            shut(agent_sink, agent_stream, frame)
        );
        return;
    }
    let started = Instant::now();
    subject.started(&state, console.addr).await;
    tracing::info!(device = %claims.device, user = %claims.user, kind = %claims.kind, "relay: session started");

    let mut traffic = Traffic {
        recorded: recorder.as_ref().map(|_| claims.session.clone()),
        ..Traffic::default()
    };
    let max_session = state.relay.limits().max_session;
    let live = registration.session.clone();
    let (mut console_report, mut agent_report) = (None, None);
    let transcript = |to_device| {
        subject.keeps_transcript().then_some(Transcript {
            state: &state,
            subject: &subject,
            to_device,
        })
    };
    let ending = tokio::select! {
        stop = forward(&mut console_stream, &mut agent_sink, &mut traffic.to_device, &mut console_report, PING_EVERY, tee(Direction::ToDevice), transcript(true)) => Ending::of(RelaySide::Console, &stop),
        stop = forward(&mut agent_stream, &mut console_sink, &mut traffic.from_device, &mut agent_report, PING_EVERY, tee(Direction::FromDevice), transcript(false)) => Ending::of(RelaySide::Agent, &stop),
        why = until_ended(&state, &live, stopped, max_session) => Ending::revoked(why),
    };
    tokio::join!(
        shut(console_sink, console_stream, ending.console),
        shut(agent_sink, agent_stream, ending.agent)
    );
    if let Some(recorder) = &recorder
        && let Err(e) = recorder.finish().await
    {
        tracing::error!(device = %claims.device, "relay: the session's recording did not finish: {e}");
    }
    // The end that closed reported last; the agent's word first when both did.
    traffic.direct = agent_report
        .map(|report| (report, "agent"))
        .or(console_report.map(|report| (report, "console")));

    let duration = started.elapsed();
    tracing::info!(
        device = %claims.device, user = %claims.user, kind = %claims.kind,
        to_device = traffic.to_device, from_device = traffic.from_device,
        secs = duration.as_secs_f64(), "relay: session ended ({})", ending.why
    );
    subject.ended(&state, traffic, duration, &ending.why).await;
}

/// What each side is told when the session ends, and why it ended. The side that closed or
/// failed gets no close frame from us (beyond the automatic reply).
struct Ending {
    console: Option<CloseFrame>,
    agent: Option<CloseFrame>,
    why: String,
}

impl Ending {
    /// `origin` is the side the stopped direction reads from.
    fn of(origin: RelaySide, stop: &Stop) -> Ending {
        let name = |side| match side {
            RelaySide::Console => "console",
            RelaySide::Agent => "agent",
        };
        let (culprit, frame, why) = match stop {
            Stop::Closed(frame) => (
                origin,
                stop.frame_for_the_other_side(),
                match frame.as_ref().map(|f| printable_reason(&f.reason)) {
                    // The agent's reason says why, e.g. the person at the device declined.
                    Some(reason) if !reason.is_empty() => {
                        format!("closed by the {}: {reason}", name(origin))
                    }
                    _ => format!("closed by the {}", name(origin)),
                },
            ),
            Stop::ReadFailed => (
                origin,
                stop.frame_for_the_other_side(),
                format!("the {} disconnected", name(origin)),
            ),
            Stop::RecordingFailed => {
                return Ending {
                    console: Some(recording_failed()),
                    agent: Some(recording_failed()),
                    why: "the recording could not be written".into(),
                };
            }
            Stop::WriteFailed | Stop::WriteStalled => {
                let culprit = origin.other();
                let what = match stop {
                    Stop::WriteStalled => "stopped reading",
                    _ => "disconnected",
                };
                let frame = Some(away("the other side disconnected"));
                (culprit, frame, format!("the {} {what}", name(culprit)))
            }
        };
        let (console, agent) = match culprit {
            RelaySide::Console => (None, frame),
            RelaySide::Agent => (frame, None),
        };
        Ending {
            console,
            agent,
            why,
        }
    }

    /// The server ends the session: both sides are told why (the agent then stops what it runs).
    fn revoked(why: Revoked) -> Ending {
        // "Going away" invites both ends to come back; the other reasons are the site's policy.
        let code = match why {
            Revoked::ServerStopping => close_code::AWAY,
            _ => close_code::POLICY,
        };
        let frame = CloseFrame {
            code,
            reason: why.reason().into(),
        };
        Ending {
            console: Some(frame.clone()),
            agent: Some(frame),
            why: why.reason().to_owned(),
        }
    }
}

/// A close reason as text for the audit log: a peer chose it, so no control characters.
fn printable_reason(reason: &str) -> String {
    reason.chars().filter(|c| !c.is_control()).collect()
}

fn away(reason: &'static str) -> CloseFrame {
    CloseFrame {
        code: close_code::AWAY,
        reason: reason.into(),
    }
}

async fn greet(sink: &mut SplitSink<WebSocket, Message>) -> bool {
    matches!(
        timeout(GREETING_DEADLINE, sink.send(Message::Text(PAIRED.into()))).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_side_that_did_not_end_the_session_is_told() {
        let closed = Ending::of(RelaySide::Agent, &Stop::Closed(None));
        assert!(closed.agent.is_none());
        assert_eq!(closed.console.unwrap().code, close_code::NORMAL);
        assert_eq!(closed.why, "closed by the agent");
        // The console→agent direction failed writing: the agent is the one gone.
        let stalled = Ending::of(RelaySide::Console, &Stop::WriteStalled);
        assert!(stalled.agent.is_none());
        assert_eq!(stalled.console.unwrap().code, close_code::AWAY);
        assert_eq!(stalled.why, "the agent stopped reading");
        let dropped = Ending::of(RelaySide::Console, &Stop::ReadFailed);
        assert!(dropped.console.is_none());
        assert!(dropped.agent.is_some());
    }

    #[test]
    fn a_revoked_session_tells_both_sides_why() {
        let ending = Ending::revoked(Revoked::RightLost);
        for frame in [ending.console.unwrap(), ending.agent.unwrap()] {
            assert_eq!(frame.code, close_code::POLICY);
            assert_eq!(frame.reason, Revoked::RightLost.reason());
        }
    }
}
