//! Passing frames between the two ends of a paired session.
//!
//! Back-pressure: each direction reads its next frame only once the previous one has been written
//! to the other socket (`send` completes after the frame is flushed to the TLS stream). So the
//! server holds at most one frame (≤ `MAX_RELAY_FRAME`) per direction, and a slow reader stops
//! the writer's socket being read, which fills TCP windows back to the writer. MeshCentral does
//! the same with pause/resume (one message in flight per direction).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, close_code};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tether_common::relay::signal::{RelayText, RtcSignal};
use tokio::time::{MissedTickBehavior, interval_at, timeout};

use tether_common::recording::Direction;

use super::audit::DirectReport;
use super::recording::Recorder;

/// Pings keep NAT and proxy mappings of idle sessions (a terminal nobody types in) alive.
pub(super) const PING_EVERY: Duration = Duration::from_secs(30);
/// A reader that accepts nothing for this long is gone; a slow one is fine.
pub(super) const SEND_STALL_LIMIT: Duration = Duration::from_secs(300);
/// After sending a close frame, how long to wait for the peer's reply before dropping the socket.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Why one direction stopped.
#[derive(Debug)]
pub(super) enum Stop {
    /// The source sent a close frame (forwarded to the other side).
    Closed(Option<CloseFrame>),
    /// The source's socket failed or ended without a close frame (or sent an oversized frame).
    ReadFailed,
    /// Writing to the other side failed.
    WriteFailed,
    /// The other side did not take a frame within `SEND_STALL_LIMIT`.
    WriteStalled,
    /// The session is recorded and the recording could not be written.
    RecordingFailed,
}

impl Stop {
    /// The close frame for the side that did not cause the stop.
    pub(super) fn frame_for_the_other_side(&self) -> Option<CloseFrame> {
        match self {
            Stop::Closed(frame) => Some(frame.clone().unwrap_or(CloseFrame {
                code: close_code::NORMAL,
                reason: "the other side closed the session".into(),
            })),
            Stop::ReadFailed | Stop::WriteFailed | Stop::WriteStalled => Some(CloseFrame {
                code: close_code::AWAY,
                reason: "the other side disconnected".into(),
            }),
            Stop::RecordingFailed => Some(recording_failed()),
        }
    }
}

/// The close frame both ends get when a recorded session's file cannot be written.
pub(super) fn recording_failed() -> CloseFrame {
    CloseFrame {
        code: close_code::ERROR,
        reason: "the session could not be recorded".into(),
    }
}

/// Forwards text and binary frames from `from` to `to`, one at a time, adding their payload sizes
/// to `bytes`. Pings and pongs are per hop and not forwarded. An `rtcTotals` report (the bytes a
/// switched session moved on its direct path) is addressed to the server: kept in `reported`,
/// not forwarded, not counted. A recorded session (`tee`) writes each frame before passing it on
/// and drops direct-path signalling, so that it cannot leave the relay.
pub(super) async fn forward<S, K>(
    from: &mut S,
    to: &mut K,
    bytes: &mut u64,
    reported: &mut Option<DirectReport>,
    ping_every: Duration,
    tee: Option<(&Recorder, Direction)>,
    transcript: Option<Transcript<'_>>,
) -> Stop
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
    K: Sink<Message, Error = axum::Error> + Unpin,
{
    let start = tokio::time::Instant::now() + ping_every;
    let mut pings = interval_at(start, ping_every);
    pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A recorded desktop's seek points: a key-picture request to the agent, recorded like the
    // viewer's own (`recording.rs`).
    let seek_every = tee
        .filter(|(_, direction)| *direction == Direction::ToDevice)
        .and_then(|(recorder, _)| recorder.seek_points());
    let mut seek_points = interval_at(
        tokio::time::Instant::now() + seek_every.unwrap_or(ping_every),
        seek_every.unwrap_or(ping_every),
    );
    seek_points.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            _ = seek_points.tick(), if seek_every.is_some() => {
                let message = Message::Text(KEYFRAME_REQUEST.into());
                if let Some((recorder, direction)) = tee
                    && let Err(e) = recorder.frame(direction, &message).await
                {
                    tracing::error!("relay: cannot write the session's recording: {e}");
                    return Stop::RecordingFailed;
                }
                message
            }
            message = from.next() => match message {
                Some(Ok(Message::Close(frame))) => return Stop::Closed(frame),
                // Pings from the source are answered by the WebSocket layer.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Text(text))) if text.starts_with(TOTALS_PREFIX) => {
                    match RtcSignal::parse(&text) {
                        RelayText::Signal(RtcSignal::RtcTotals { direct_to_device, direct_from_device }) => {
                            *reported = Some(DirectReport { to_device: direct_to_device, from_device: direct_from_device });
                        }
                        _ => tracing::debug!("relay: ignoring a malformed rtcTotals report"),
                    }
                    continue;
                }
                Some(Ok(message)) => {
                    if let (Some(transcript), Message::Text(text)) = (&transcript, &message) {
                        transcript.frame(text).await;
                    }
                    if let Some((recorder, direction)) = tee {
                        if let Message::Text(text) = &message
                            && !matches!(RtcSignal::parse(text), RelayText::Session)
                        {
                            continue;
                        }
                        if let Err(e) = recorder.frame(direction, &message).await {
                            tracing::error!("relay: cannot write the session's recording: {e}");
                            return Stop::RecordingFailed;
                        }
                    }
                    *bytes += payload_len(&message);
                    message
                }
                Some(Err(_)) | None => return Stop::ReadFailed,
            },
            _ = pings.tick() => Message::Ping(Default::default()),
        };
        match timeout(SEND_STALL_LIMIT, to.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Stop::WriteFailed,
            Err(_) => return Stop::WriteStalled,
        }
    }
}

/// Where a chat's messages are written down (`chat_transcripts`), for one direction.
pub(super) struct Transcript<'a> {
    pub state: &'a crate::state::AppState,
    pub subject: &'a super::audit::Subject,
    pub to_device: bool,
}

impl Transcript<'_> {
    async fn frame(&self, text: &str) {
        if let Some(tether_common::relay::chat::ChatMessage::Text { text, .. }) =
            tether_common::relay::chat::ChatMessage::parse(text)
        {
            self.subject.said(self.state, self.to_device, &text).await;
        }
    }
}

/// A desktop viewer's "send a key picture now" (`DesktopRequest::Keyframe`).
const KEYFRAME_REQUEST: &str = r#"{"type":"keyframe"}"#;

/// How an `rtcTotals` report starts as the Rust and console ends write it.
const TOTALS_PREFIX: &str = r#"{"type":"rtcTotals""#;

fn payload_len(message: &Message) -> u64 {
    match message {
        Message::Text(text) => text.len() as u64,
        Message::Binary(data) => data.len() as u64,
        _ => 0,
    }
}

/// Sends `frame` (when given) and waits briefly for the peer's close reply, discarding anything
/// else it still sends, so the close frame is not lost to a TCP reset.
pub(super) async fn shut<S, K>(mut sink: K, mut stream: S, frame: Option<CloseFrame>)
where
    S: Stream<Item = Result<Message, axum::Error>> + Unpin,
    K: Sink<Message, Error = axum::Error> + Unpin,
{
    let _ = timeout(CLOSE_LINGER, async {
        if let Some(frame) = frame {
            let _ = sink.send(Message::Close(Some(frame))).await;
        } else {
            // Flushes the automatic reply to a close frame the peer sent.
            let _ = sink.flush().await;
        }
        while let Some(Ok(message)) = stream.next().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::{Semaphore, mpsc};

    use super::*;

    #[test]
    fn the_seek_point_request_is_a_desktop_key_picture_request() {
        use tether_common::relay::desktop::DesktopRequest;
        let request: DesktopRequest = serde_json::from_str(KEYFRAME_REQUEST).unwrap();
        assert_eq!(request, DesktopRequest::Keyframe);
    }

    const NO_PINGS: Duration = Duration::from_secs(3600);

    fn binary(n: u8) -> Result<Message, axum::Error> {
        Ok(Message::Binary(vec![n; 100].into()))
    }

    /// A sink that hands every frame it takes to the returned receiver.
    fn collecting_sink() -> (
        impl Sink<Message, Error = axum::Error> + Unpin,
        mpsc::UnboundedReceiver<Message>,
    ) {
        let (sender, received) = mpsc::unbounded_channel();
        let sink = Box::pin(futures_util::sink::unfold(
            sender,
            |sender, message: Message| async move {
                sender.send(message).unwrap();
                Ok::<_, axum::Error>(sender)
            },
        ));
        (sink, received)
    }

    #[tokio::test]
    async fn frames_pass_in_order_and_are_counted() {
        let mut from = futures_util::stream::iter(vec![
            binary(1),
            Ok(Message::Text("hello".into())),
            Ok(Message::Pong(Default::default())),
            binary(2),
            Ok(Message::Close(None)),
            binary(3),
        ]);
        let (mut to, mut received) = collecting_sink();
        let mut bytes = 0;
        let stop = forward(
            &mut from, &mut to, &mut bytes, &mut None, NO_PINGS, None, None,
        )
        .await;
        assert!(matches!(stop, Stop::Closed(None)));
        assert_eq!(bytes, 205);
        let mut got = Vec::new();
        while let Ok(message) = received.try_recv() {
            got.push(message);
        }
        assert_eq!(
            got.len(),
            3,
            "pong and what follows the close are not forwarded"
        );
        assert_eq!(got[1], Message::Text("hello".into()));
    }

    #[tokio::test]
    async fn a_direct_path_report_is_kept_not_forwarded() {
        let report = r#"{"type":"rtcTotals","directToDevice":7,"directFromDevice":9}"#;
        let mut from = futures_util::stream::iter(vec![
            Ok(Message::Text(report.into())),
            Ok(Message::Text(
                r#"{"type":"rtcTotals","directToDevice":"lots"}"#.into(),
            )),
            binary(1),
            Ok(Message::Close(None)),
        ]);
        let (mut to, mut received) = collecting_sink();
        let (mut bytes, mut reported) = (0, None);
        forward(
            &mut from,
            &mut to,
            &mut bytes,
            &mut reported,
            NO_PINGS,
            None,
            None,
        )
        .await;
        assert_eq!(
            reported,
            Some(DirectReport {
                to_device: 7,
                from_device: 9
            }),
            "the well-formed report is kept, the malformed one ignored"
        );
        assert_eq!(bytes, 100, "reports are not session bytes");
        assert_eq!(received.try_recv().unwrap(), binary(1).unwrap());
        assert!(
            received.try_recv().is_err(),
            "no report reaches the other end"
        );
    }

    #[tokio::test]
    async fn a_blocked_writer_stops_the_reading() {
        // The source can supply 1000 frames; the sink accepts one frame per permit.
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = pulled.clone();
        let mut from =
            futures_util::stream::iter((0..1000).map(|i| binary(i as u8))).inspect(move |_| {
                counter.fetch_add(1, Ordering::SeqCst);
            });
        let permits = Arc::new(Semaphore::new(0));
        let gate = permits.clone();
        let mut to = Box::pin(futures_util::sink::unfold(
            (),
            move |(), _message: Message| {
                let gate = gate.clone();
                async move {
                    gate.acquire().await.unwrap().forget();
                    Ok::<_, axum::Error>(())
                }
            },
        ));
        let mut bytes = 0;
        let mut reported = None;
        let forwarding = forward(
            &mut from,
            &mut to,
            &mut bytes,
            &mut reported,
            NO_PINGS,
            None,
            None,
        );
        tokio::pin!(forwarding);
        for delivered in 0..5 {
            // Let the forwarder run as far as it can.
            for _ in 0..50 {
                tokio::select! {
                    biased;
                    _ = &mut forwarding => panic!("the source is not exhausted"),
                    _ = tokio::task::yield_now() => {}
                }
            }
            assert_eq!(
                pulled.load(Ordering::SeqCst),
                delivered + 1,
                "one frame in flight, no read-ahead"
            );
            permits.add_permits(1);
        }
    }

    #[tokio::test]
    async fn a_failed_source_or_sink_ends_the_direction() {
        let mut broken = futures_util::stream::iter(vec![binary(1)]);
        let mut sink = Box::pin(futures_util::sink::unfold((), |(), _m: Message| async {
            Err::<(), _>(axum::Error::new(std::io::Error::other("gone")))
        }));
        let mut bytes = 0;
        let stop = forward(
            &mut broken,
            &mut sink,
            &mut bytes,
            &mut None,
            NO_PINGS,
            None,
            None,
        )
        .await;
        assert!(matches!(stop, Stop::WriteFailed));
        let mut ended = futures_util::stream::iter(Vec::<Result<Message, axum::Error>>::new());
        let stop = forward(
            &mut ended, &mut sink, &mut bytes, &mut None, NO_PINGS, None, None,
        )
        .await;
        assert!(matches!(stop, Stop::ReadFailed));
        let frame = stop.frame_for_the_other_side().unwrap();
        assert_eq!(frame.code, close_code::AWAY);
    }
}
