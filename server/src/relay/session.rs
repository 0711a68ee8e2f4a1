//! A paired session: greet both ends with `"c"`, pass frames both ways until one side goes, close
//! the other, and write the audit records.

use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use tether_common::relay::{PAIRED, RelayClaims, RelaySide};
use tokio::time::timeout;

use super::audit::{Subject, Traffic};
use super::broker::RelayEnd;
use super::pipe::{PING_EVERY, Stop, forward, shut};
use crate::state::AppState;

/// Each end must take the `"c"` greeting within this long.
const GREETING_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(state: AppState, claims: RelayClaims, one: RelayEnd, other: RelayEnd) {
    let (console, agent) = match one.side {
        RelaySide::Console => (one, other),
        RelaySide::Agent => (other, one),
    };
    let subject = Subject::load(&state, &claims).await;
    let (mut console_sink, mut console_stream) = console.socket.split();
    let (mut agent_sink, mut agent_stream) = agent.socket.split();

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

    let mut traffic = Traffic::default();
    let (origin, stop) = tokio::select! {
        stop = forward(&mut console_stream, &mut agent_sink, &mut traffic.to_device, PING_EVERY) => (RelaySide::Console, stop),
        stop = forward(&mut agent_stream, &mut console_sink, &mut traffic.from_device, PING_EVERY) => (RelaySide::Agent, stop),
    };
    let ending = Ending::of(origin, &stop);
    let (console_frame, agent_frame) = match ending.culprit {
        RelaySide::Console => (None, ending.frame),
        RelaySide::Agent => (ending.frame, None),
    };
    tokio::join!(
        shut(console_sink, console_stream, console_frame),
        shut(agent_sink, agent_stream, agent_frame)
    );

    let duration = started.elapsed();
    tracing::info!(
        device = %claims.device, user = %claims.user, kind = %claims.kind,
        to_device = traffic.to_device, from_device = traffic.from_device,
        secs = duration.as_secs_f64(), "relay: session ended ({})", ending.why
    );
    subject.ended(&state, traffic, duration, &ending.why).await;
}

/// Who ended the session and what the other side is told.
struct Ending {
    /// The side that closed or failed; it gets no close frame from us (beyond the automatic reply).
    culprit: RelaySide,
    /// For the other side.
    frame: Option<CloseFrame>,
    why: String,
}

impl Ending {
    /// `origin` is the side the stopped direction reads from.
    fn of(origin: RelaySide, stop: &Stop) -> Ending {
        let name = |side| match side {
            RelaySide::Console => "console",
            RelaySide::Agent => "agent",
        };
        match stop {
            Stop::Closed(_) => Ending {
                culprit: origin,
                frame: stop.frame_for_the_other_side(),
                why: format!("closed by the {}", name(origin)),
            },
            Stop::ReadFailed => Ending {
                culprit: origin,
                frame: stop.frame_for_the_other_side(),
                why: format!("the {} disconnected", name(origin)),
            },
            Stop::WriteFailed | Stop::WriteStalled => {
                let culprit = origin.other();
                let what = match stop {
                    Stop::WriteStalled => "stopped reading",
                    _ => "disconnected",
                };
                Ending {
                    culprit,
                    frame: Some(away("the other side disconnected")),
                    why: format!("the {} {what}", name(culprit)),
                }
            }
        }
    }
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
        assert_eq!(closed.culprit, RelaySide::Agent);
        assert_eq!(closed.frame.unwrap().code, close_code::NORMAL);
        assert_eq!(closed.why, "closed by the agent");
        // The console→agent direction failed writing: the agent is the one gone.
        let stalled = Ending::of(RelaySide::Console, &Stop::WriteStalled);
        assert_eq!(stalled.culprit, RelaySide::Agent);
        assert_eq!(stalled.frame.unwrap().code, close_code::AWAY);
        assert_eq!(stalled.why, "the agent stopped reading");
        let dropped = Ending::of(RelaySide::Console, &Stop::ReadFailed);
        assert_eq!(dropped.culprit, RelaySide::Console);
    }
}
