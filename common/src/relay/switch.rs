//! Moving one relayed session from the WebSocket relay onto a direct WebRTC data channel without
//! losing, duplicating or reordering a single message, in either direction, even in the middle of
//! a transfer. Sans-IO: the driver reports what happened and sends what [`PathSwitch`] hands out.
//!
//! Every session starts on the relay, which always works. Once a data channel is also open, each
//! direction switches on its own:
//!
//! ```text
//!   A                          relay (WebSocket)                          B
//!   data channel open ───────── rtcReady ──────────────────────────────▶
//!   ◀────────────────────────── rtcReady ───────────────────────── data channel open
//!   (sent and received rtcReady: A's sending side switches)
//!   … A's earlier relay data …
//!   ────────────────────────── rtcSwitch ─────────────────────────────▶ (B reads relay data up to
//!   ══ data channel ═══ A's later data ═════════════════════════════▶    here, keeping early
//!                                                                         data-channel data aside,
//!                                                                         then delivers it)
//! ```
//!
//! `rtcSwitch` is the last data message a side sends on the relay, and a receiver keeps reading the
//! relay until it has read it, so the two paths are spliced at one known point per direction with
//! no acknowledgement round trip. Data that arrives on the data channel early (before the marker
//! has been read) waits in a bounded buffer. This is what MeshCentral's switch lacks: it flips
//! paths when a control message says so, and whatever was still in flight on the old path
//! interleaves with the new one.
//!
//! Failure rules:
//! - The data channel fails before either direction switched: the session stays on the relay for
//!   good ([`PathSwitch::direct_failed`] returns `Ok`).
//! - It fails after a direction switched (or the peer's marker turns up after the failure): data
//!   may have been lost on the dead path, so the session must end; the viewer may reopen it. Such
//!   inputs return [`SwitchError::DirectLost`].
//!
//! Ending a switched session: the relay's close can overtake the last messages on the data
//! channel (two paths, two speeds), so a side that closes first sends `rtcEnd` as its last message
//! on the data channel ([`PathSwitch::finish`]). A receiver whose peer sends on the data channel
//! hands the relay's close to its session only once it has read that `rtcEnd`
//! ([`PathSwitch::peer_done`]); until then the close waits (bounded by the driver).
//!
//! The relay carries [`SwitchSignal`]s as text frames (`{"type":"rtcReady"}`), beside the
//! session's own messages; the driver tells them apart with [`SwitchSignal::parse`] and hands
//! only session data to [`PathSwitch::relay_data`].

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

/// How much data-channel data a receiver keeps while waiting for the peer's `rtcSwitch` on the
/// relay. The peer sends on the data channel only after its marker, so the buffer only has to
/// cover the relay's lag behind the data channel; more than this means a broken or hostile peer.
pub const DEFAULT_EARLY_LIMIT: usize = 8 * 1024 * 1024;

/// The two paths a session's data can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Path {
    /// The WebSocket relay through the server.
    Relay,
    /// The peer-to-peer WebRTC data channel.
    Direct,
}

/// One message of session data, as the session kind sends it (terminal bytes, a file chunk, a
/// desktop picture, a JSON control message). The switch never looks inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

impl Payload {
    fn len(&self) -> usize {
        match self {
            Payload::Text(text) => text.len(),
            Payload::Binary(bytes) => bytes.len(),
        }
    }
}

/// The switch's own messages, sent as relay text frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// Unknown extra fields are ignored, so a later version may add some (byte counts, say).
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SwitchSignal {
    /// "My data channel is open: you may switch your sending side."
    RtcReady,
    /// "This was my last data message on the relay; the rest comes on the data channel."
    RtcSwitch,
    /// "This was my last message on the data channel; the session is closing." The one signal
    /// sent on the data channel rather than the relay.
    RtcEnd,
}

impl SwitchSignal {
    /// The relay text frame for this signal.
    pub fn to_text(self) -> String {
        match self {
            SwitchSignal::RtcReady => r#"{"type":"rtcReady"}"#.to_owned(),
            SwitchSignal::RtcSwitch => r#"{"type":"rtcSwitch"}"#.to_owned(),
            SwitchSignal::RtcEnd => r#"{"type":"rtcEnd"}"#.to_owned(),
        }
    }

    /// Reads a relay text frame as a signal; `None` for anything else (session data).
    pub fn parse(text: &str) -> Option<SwitchSignal> {
        // Cheap pre-check: session kinds send many text frames, few of them start like a signal.
        if !text.contains("\"rtc") {
            return None;
        }
        serde_json::from_str(text).ok()
    }
}

/// What the driver sends, on which path, in the order handed out. Per path the order matters;
/// between the two paths it does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    Signal(SwitchSignal),
    Data { path: Path, payload: Payload },
}

/// Why the session cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwitchError {
    #[error("the direct path failed after the session had switched to it")]
    DirectLost,
    #[error("the peer sent session data on the relay after its rtcSwitch")]
    RelayDataAfterSwitch,
    #[error("the peer sent rtcSwitch twice")]
    SwitchedTwice,
    #[error("the peer sent rtcSwitch before rtcReady")]
    SwitchBeforeReady,
    #[error("more than {limit} bytes arrived on the data channel before the peer's rtcSwitch")]
    TooMuchEarlyData { limit: usize },
    #[error("the peer sent rtcEnd on the relay")]
    EndOnRelay,
    #[error("the peer sent data on the data channel after its rtcEnd")]
    DataAfterEnd,
}

/// One side's view of the two paths of one session.
#[derive(Debug)]
pub struct PathSwitch {
    early_limit: usize,
    /// Our data channel is open and we told the peer so.
    ready_sent: bool,
    /// The peer told us its data channel is open.
    peer_ready: bool,
    /// Where our data goes: `Direct` once we sent `rtcSwitch`.
    sending: Path,
    /// Where the peer's data comes from: `Direct` once we read its `rtcSwitch`.
    receiving: Path,
    direct_failed: bool,
    /// Data-channel data that came before the peer's marker, and its size.
    early: VecDeque<Payload>,
    early_bytes: usize,
    /// We sent (or had no need to send) our `rtcEnd`.
    finished: bool,
    /// The peer's `rtcEnd` came on the data channel; `peer_finished` once it is also in order
    /// (the peer's marker read), `early_end` while it waits among the early data.
    early_end: bool,
    peer_finished: bool,
    /// Session bytes that went each way on the data channel, for the audit record.
    direct_sent: u64,
    direct_received: u64,
    transmit: VecDeque<Transmit>,
    deliver: VecDeque<Payload>,
}

impl Default for PathSwitch {
    fn default() -> Self {
        PathSwitch::new(DEFAULT_EARLY_LIMIT)
    }
}

impl PathSwitch {
    /// A session on the relay, keeping at most `early_limit` bytes of early data-channel data.
    pub fn new(early_limit: usize) -> PathSwitch {
        PathSwitch {
            early_limit,
            ready_sent: false,
            peer_ready: false,
            sending: Path::Relay,
            receiving: Path::Relay,
            direct_failed: false,
            early: VecDeque::new(),
            early_bytes: 0,
            finished: false,
            early_end: false,
            peer_finished: false,
            direct_sent: 0,
            direct_received: 0,
            transmit: VecDeque::new(),
            deliver: VecDeque::new(),
        }
    }

    /// Where our data goes now.
    pub fn sending_path(&self) -> Path {
        self.sending
    }

    /// Where the peer's data comes from now.
    pub fn receiving_path(&self) -> Path {
        self.receiving
    }

    /// Both directions run on the data channel: the relay now carries control only.
    pub fn is_switched(&self) -> bool {
        self.sending == Path::Direct && self.receiving == Path::Direct
    }

    /// Our data channel opened (ordered and reliable).
    pub fn direct_opened(&mut self) {
        if self.ready_sent || self.direct_failed {
            return;
        }
        self.ready_sent = true;
        self.transmit
            .push_back(Transmit::Signal(SwitchSignal::RtcReady));
        self.maybe_switch_sending();
    }

    /// Session bytes sent and received on the data channel so far (markers not counted).
    pub fn direct_bytes(&self) -> (u64, u64) {
        (self.direct_sent, self.direct_received)
    }

    /// Everything the peer sent has been handed out by [`PathSwitch::poll_deliver`], or is on the
    /// relay ahead of its close: the relay's close may now reach the session. False only while
    /// the peer's data runs on the data channel and its `rtcEnd` has not been read.
    pub fn peer_done(&self) -> bool {
        self.receiving == Path::Relay || self.peer_finished
    }

    /// We send nothing more (the session is closing). When our data runs on the data channel,
    /// queues `rtcEnd` there after the last of it, so the peer knows it has everything even if
    /// our relay close reaches it first.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if self.sending == Path::Direct && !self.direct_failed {
            self.transmit.push_back(Transmit::Data {
                path: Path::Direct,
                payload: Payload::Text(SwitchSignal::RtcEnd.to_text()),
            });
        }
    }

    /// The data channel (or the ICE/DTLS below it) failed or closed.
    pub fn direct_failed(&mut self) -> Result<(), SwitchError> {
        self.direct_failed = true;
        if self.peer_finished {
            // The peer said all it had to say and is closing: its channel going is no loss.
            return Ok(());
        }
        if self.sending == Path::Direct || self.receiving == Path::Direct {
            return Err(SwitchError::DirectLost);
        }
        // Data that came early can never be placed now: the peer's marker, if it comes, means the
        // rest of its data is lost with the channel.
        self.early.clear();
        self.early_bytes = 0;
        Ok(())
    }

    /// A switch signal read on the relay.
    pub fn relay_signal(&mut self, signal: SwitchSignal) -> Result<(), SwitchError> {
        match signal {
            SwitchSignal::RtcReady => {
                self.peer_ready = true;
                self.maybe_switch_sending();
                Ok(())
            }
            SwitchSignal::RtcSwitch => {
                if self.receiving == Path::Direct {
                    return Err(SwitchError::SwitchedTwice);
                }
                if !self.peer_ready {
                    return Err(SwitchError::SwitchBeforeReady);
                }
                if self.direct_failed {
                    return Err(SwitchError::DirectLost);
                }
                self.receiving = Path::Direct;
                self.early_bytes = 0;
                self.deliver.append(&mut self.early);
                self.peer_finished = self.early_end;
                Ok(())
            }
            SwitchSignal::RtcEnd => Err(SwitchError::EndOnRelay),
        }
    }

    /// Session data read on the relay.
    pub fn relay_data(&mut self, payload: Payload) -> Result<(), SwitchError> {
        if self.receiving == Path::Direct {
            return Err(SwitchError::RelayDataAfterSwitch);
        }
        self.deliver.push_back(payload);
        Ok(())
    }

    /// Session data read on the data channel.
    pub fn direct_data(&mut self, payload: Payload) -> Result<(), SwitchError> {
        if self.early_end || self.peer_finished {
            return Err(SwitchError::DataAfterEnd);
        }
        if let Payload::Text(text) = &payload
            && SwitchSignal::parse(text) == Some(SwitchSignal::RtcEnd)
        {
            self.early_end = true;
            self.peer_finished = self.receiving == Path::Direct;
            return Ok(());
        }
        self.direct_received += payload.len() as u64;
        if self.receiving == Path::Direct {
            self.deliver.push_back(payload);
            return Ok(());
        }
        self.early_bytes += payload.len();
        if self.early_bytes > self.early_limit {
            return Err(SwitchError::TooMuchEarlyData {
                limit: self.early_limit,
            });
        }
        self.early.push_back(payload);
        Ok(())
    }

    /// Session data to send to the peer; it comes back out of [`PathSwitch::poll_transmit`] with
    /// the path to send it on.
    pub fn send(&mut self, payload: Payload) {
        if self.sending == Path::Direct {
            self.direct_sent += payload.len() as u64;
        }
        self.transmit.push_back(Transmit::Data {
            path: self.sending,
            payload,
        });
    }

    /// The next thing to send, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmit.pop_front()
    }

    /// The next message of the peer's data, in the order the peer sent it.
    pub fn poll_deliver(&mut self) -> Option<Payload> {
        self.deliver.pop_front()
    }

    fn maybe_switch_sending(&mut self) {
        if self.sending == Path::Relay
            && self.ready_sent
            && self.peer_ready
            && !self.direct_failed
            && !self.finished
        {
            // Queued after every earlier relay message, so it is the last data the peer reads
            // from the relay.
            self.transmit
                .push_back(Transmit::Signal(SwitchSignal::RtcSwitch));
            self.sending = Path::Direct;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Payload {
        Payload::Text(s.to_owned())
    }

    fn drain(switch: &mut PathSwitch) -> Vec<Transmit> {
        std::iter::from_fn(|| switch.poll_transmit()).collect()
    }

    fn delivered(switch: &mut PathSwitch) -> Vec<Payload> {
        std::iter::from_fn(|| switch.poll_deliver()).collect()
    }

    #[test]
    fn signals_have_fixed_wire_texts() {
        for signal in [
            SwitchSignal::RtcReady,
            SwitchSignal::RtcSwitch,
            SwitchSignal::RtcEnd,
        ] {
            let text = signal.to_text();
            assert_eq!(serde_json::to_string(&signal).unwrap(), text);
            assert_eq!(SwitchSignal::parse(&text), Some(signal));
        }
        assert_eq!(SwitchSignal::parse(r#"{"type":"resize","cols":80}"#), None);
        assert_eq!(
            SwitchSignal::parse(r#"{"type":"rtcSwitch","sent":1}"#),
            Some(SwitchSignal::RtcSwitch)
        );
        assert_eq!(SwitchSignal::parse(r#"{"type":"rtcNope"}"#), None);
    }

    #[test]
    fn sending_switches_once_both_sides_are_ready_and_marks_the_splice() {
        let mut a = PathSwitch::default();
        a.send(text("1"));
        a.direct_opened();
        a.send(text("2"));
        a.relay_signal(SwitchSignal::RtcReady).unwrap();
        a.send(text("3"));
        assert_eq!(
            drain(&mut a),
            vec![
                Transmit::Data {
                    path: Path::Relay,
                    payload: text("1")
                },
                Transmit::Signal(SwitchSignal::RtcReady),
                Transmit::Data {
                    path: Path::Relay,
                    payload: text("2")
                },
                Transmit::Signal(SwitchSignal::RtcSwitch),
                Transmit::Data {
                    path: Path::Direct,
                    payload: text("3")
                },
            ]
        );
        assert_eq!(a.sending_path(), Path::Direct);
        assert_eq!(a.receiving_path(), Path::Relay);
    }

    #[test]
    fn early_direct_data_waits_for_the_marker() {
        let mut b = PathSwitch::default();
        b.relay_signal(SwitchSignal::RtcReady).unwrap();
        b.direct_data(text("3")).unwrap();
        b.relay_data(text("1")).unwrap();
        assert_eq!(delivered(&mut b), vec![text("1")]);
        b.relay_data(text("2")).unwrap();
        b.relay_signal(SwitchSignal::RtcSwitch).unwrap();
        b.direct_data(text("4")).unwrap();
        assert_eq!(delivered(&mut b), vec![text("2"), text("3"), text("4")]);
        assert_eq!(
            b.relay_data(text("5")),
            Err(SwitchError::RelayDataAfterSwitch)
        );
    }

    #[test]
    fn too_much_early_data_ends_the_session() {
        let mut b = PathSwitch::new(4);
        b.direct_data(text("abc")).unwrap();
        assert_eq!(
            b.direct_data(text("de")),
            Err(SwitchError::TooMuchEarlyData { limit: 4 })
        );
    }

    #[test]
    fn a_failure_before_any_switch_keeps_the_relay_for_good() {
        let mut a = PathSwitch::default();
        a.direct_opened();
        a.direct_failed().unwrap();
        a.relay_signal(SwitchSignal::RtcReady).unwrap();
        a.send(text("x"));
        assert_eq!(
            drain(&mut a),
            vec![
                Transmit::Signal(SwitchSignal::RtcReady),
                Transmit::Data {
                    path: Path::Relay,
                    payload: text("x")
                },
            ]
        );
        // The peer switched before it learnt of the failure: its later data is gone.
        assert_eq!(
            a.relay_signal(SwitchSignal::RtcSwitch),
            Err(SwitchError::DirectLost)
        );
    }

    #[test]
    fn a_failure_after_a_switch_ends_the_session() {
        let mut a = PathSwitch::default();
        a.direct_opened();
        a.relay_signal(SwitchSignal::RtcReady).unwrap();
        assert_eq!(a.direct_failed(), Err(SwitchError::DirectLost));
    }

    /// Both sides switched; `a` sent "1" on the data channel.
    fn switched_pair() -> (PathSwitch, PathSwitch) {
        let (mut a, mut b) = (PathSwitch::default(), PathSwitch::default());
        for side in [&mut a, &mut b] {
            side.direct_opened();
            side.relay_signal(SwitchSignal::RtcReady).unwrap();
            side.relay_signal(SwitchSignal::RtcSwitch).unwrap();
            drain(side);
        }
        (a, b)
    }

    #[test]
    fn a_closing_side_ends_its_data_channel_data_with_rtc_end() {
        let (mut a, mut b) = switched_pair();
        a.send(text("last"));
        a.finish();
        a.finish();
        let sent = drain(&mut a);
        assert_eq!(
            sent,
            vec![
                Transmit::Data {
                    path: Path::Direct,
                    payload: text("last")
                },
                Transmit::Data {
                    path: Path::Direct,
                    payload: text(r#"{"type":"rtcEnd"}"#)
                },
            ]
        );
        // The relay's close came first: the receiver must wait for the channel.
        assert!(!b.peer_done());
        for transmit in sent {
            let Transmit::Data { payload, .. } = transmit else {
                panic!("{transmit:?}")
            };
            b.direct_data(payload).unwrap();
        }
        assert!(b.peer_done());
        assert_eq!(delivered(&mut b), vec![text("last")]);
        // Session bytes only: the marker is not counted.
        assert_eq!(a.direct_bytes(), (4, 0));
        assert_eq!(b.direct_bytes(), (0, 4));
        // The closing side drops its channel next; that loses nothing now.
        assert_eq!(b.direct_failed(), Ok(()));
        assert_eq!(b.direct_data(text("more")), Err(SwitchError::DataAfterEnd));
    }

    #[test]
    fn a_side_still_on_the_relay_needs_no_rtc_end() {
        let mut a = PathSwitch::default();
        a.send(text("last"));
        a.finish();
        assert_eq!(drain(&mut a).len(), 1);
        let b = PathSwitch::default();
        assert!(b.peer_done());
    }

    #[test]
    fn an_early_rtc_end_counts_once_the_marker_is_read() {
        let mut b = PathSwitch::default();
        b.relay_signal(SwitchSignal::RtcReady).unwrap();
        b.direct_data(text("3")).unwrap();
        b.direct_data(text(r#"{"type":"rtcEnd"}"#)).unwrap();
        assert!(b.peer_done(), "still on the relay: its close is in order");
        b.relay_signal(SwitchSignal::RtcSwitch).unwrap();
        assert!(b.peer_done());
        assert_eq!(delivered(&mut b), vec![text("3")]);
    }

    #[test]
    fn rtc_end_on_the_relay_is_a_protocol_error() {
        let mut b = PathSwitch::default();
        assert_eq!(
            b.relay_signal(SwitchSignal::RtcEnd),
            Err(SwitchError::EndOnRelay)
        );
    }

    #[test]
    fn protocol_violations_are_errors() {
        let mut b = PathSwitch::default();
        assert_eq!(
            b.relay_signal(SwitchSignal::RtcSwitch),
            Err(SwitchError::SwitchBeforeReady)
        );
        b.relay_signal(SwitchSignal::RtcReady).unwrap();
        b.relay_signal(SwitchSignal::RtcSwitch).unwrap();
        assert_eq!(
            b.relay_signal(SwitchSignal::RtcSwitch),
            Err(SwitchError::SwitchedTwice)
        );
    }
}
