//! WebRTC signalling on the relay: how a session's two ends agree on a direct path while the
//! session itself keeps running on the relay.
//!
//! The viewer (console or tetherctl) offers, the agent answers, and both may trickle ICE
//! candidates, all as relay **text** frames beside the session's own messages:
//!
//! ```text
//!   viewer ── {"type":"rtcOffer","sdp":"v=0…"} ──────────────▶ agent
//!   viewer ◀────────────── {"type":"rtcAnswer","sdp":"v=0…"} ── agent
//!   viewer ◀─ {"type":"rtcCandidate","candidate":"candidate:…"} ─▶ agent   (any number, either way)
//! ```
//!
//! An agent that will not try (the session's group keeps sessions relayed, or it has no WebRTC
//! stack) answers the offer with [`RtcSignal::RtcUnavailable`], so a viewer that insists on a
//! direct path fails at once instead of waiting out its deadline. Once a data channel is open,
//! [`super::switch`] moves the session onto it.
//!
//! Everything whose `type` starts with `rtc` belongs to the direct path, never to a session kind
//! (none of them names its messages so), which is how [`RtcSignal::parse`] tells a broken or
//! unknown signal from session data: the first is an error to log, the second is passed on.

use serde::{Deserialize, Serialize};

use super::switch::SwitchSignal;

/// Largest signalling text frame accepted. An SDP offer for one data channel is about 1 KiB; a
/// browser's with audio and video sections stays under 16 KiB.
pub const MAX_SIGNAL_TEXT: usize = 64 * 1024;

/// Signalling messages, as relay text frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
/// Unknown extra fields are ignored: a browser's candidate carries `sdpMid` and `sdpMLineIndex`.
#[serde(tag = "type", rename_all = "camelCase")]
pub enum RtcSignal {
    /// Viewer → agent: the viewer's SDP offer (one data channel).
    RtcOffer { sdp: String },
    /// Agent → viewer: the SDP answer, with the agent's proof that its DTLS certificate is its
    /// own ([`super::identity`]).
    RtcAnswer {
        sdp: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        proof: Option<super::identity::PathProof>,
    },
    /// Either way: one trickled ICE candidate, `candidate:…` (an `a=` prefix is tolerated).
    RtcCandidate { candidate: String },
    /// "I will not try a direct path for this session": the session stays on the relay.
    RtcUnavailable { reason: String },
    /// To the server, from the end that closes a session, right before its close: the session
    /// bytes that went each way on the data channel, which the server cannot see, for its audit
    /// record. The server keeps it (never forwards it) and labels it as the sender's report.
    #[serde(rename_all = "camelCase")]
    RtcTotals {
        direct_to_device: u64,
        direct_from_device: u64,
    },
}

/// Why a frame that claims to be signalling cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    #[error("a {len}-byte signalling message (more than {MAX_SIGNAL_TEXT} bytes)")]
    TooLarge { len: usize },
    #[error("malformed or unknown signalling message {kind:?}: {detail}")]
    Malformed { kind: String, detail: String },
}

/// What a relay text frame is, as far as the direct path is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayText {
    /// The path switch's own marker ([`super::switch`]).
    Switch(SwitchSignal),
    /// Signalling.
    Signal(RtcSignal),
    /// Claims to be direct-path traffic but is unusable: log it and go on.
    Bad(SignalError),
    /// The session's own message.
    Session,
}

/// Only the `type` field of a JSON object; everything else is skipped without being built.
#[derive(Deserialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl RtcSignal {
    /// The relay text frame for this signal.
    pub fn to_text(&self) -> String {
        // Serialising a plain enum of strings cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Sorts one relay text frame: switch marker, signal, broken signal or session data.
    pub fn parse(text: &str) -> RelayText {
        // Cheap pre-check: most session frames never mention "rtc" at all.
        // (A JSON array would deserialise into `TypeOnly` too, hence the brace.)
        if !text.contains("\"rtc") || !text.trim_start().starts_with('{') {
            return RelayText::Session;
        }
        // The text mentions "rtc" somewhere (a file called rtcfoo in a listing, say): only the
        // top-level type decides.
        let kind = match serde_json::from_str::<TypeOnly>(text) {
            Ok(TypeOnly { kind: Some(kind) }) if kind.starts_with("rtc") => kind,
            _ => return RelayText::Session,
        };
        if let Some(switch) = SwitchSignal::parse(text) {
            return RelayText::Switch(switch);
        }
        if text.len() > MAX_SIGNAL_TEXT {
            return RelayText::Bad(SignalError::TooLarge { len: text.len() });
        }
        match serde_json::from_str::<RtcSignal>(text) {
            Ok(signal) => RelayText::Signal(signal),
            Err(e) => RelayText::Bad(SignalError::Malformed {
                kind,
                detail: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_with_camel_case_types() {
        let cases = [
            (
                RtcSignal::RtcOffer {
                    sdp: "v=0\r\n".into(),
                },
                r#"{"type":"rtcOffer","sdp":"v=0\r\n"}"#,
            ),
            (
                RtcSignal::RtcAnswer {
                    sdp: "v=0".into(),
                    proof: None,
                },
                r#"{"type":"rtcAnswer","sdp":"v=0"}"#,
            ),
            (
                RtcSignal::RtcCandidate {
                    candidate: "candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host".into(),
                },
                r#"{"type":"rtcCandidate","candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host"}"#,
            ),
            (
                RtcSignal::RtcUnavailable {
                    reason: "relayed group".into(),
                },
                r#"{"type":"rtcUnavailable","reason":"relayed group"}"#,
            ),
        ];
        for (signal, text) in cases {
            assert_eq!(signal.to_text(), text);
            assert_eq!(RtcSignal::parse(text), RelayText::Signal(signal));
        }
    }

    #[test]
    fn browser_candidates_with_extra_fields_parse() {
        let text =
            r#"{"type":"rtcCandidate","candidate":"candidate:x","sdpMid":"0","sdpMLineIndex":0}"#;
        assert_eq!(
            RtcSignal::parse(text),
            RelayText::Signal(RtcSignal::RtcCandidate {
                candidate: "candidate:x".into()
            })
        );
    }

    #[test]
    fn switch_markers_are_told_apart() {
        assert_eq!(
            RtcSignal::parse(r#"{"type":"rtcReady"}"#),
            RelayText::Switch(SwitchSignal::RtcReady)
        );
        assert_eq!(
            RtcSignal::parse(&SwitchSignal::RtcSwitch.to_text()),
            RelayText::Switch(SwitchSignal::RtcSwitch)
        );
    }

    #[test]
    fn session_messages_pass_even_when_they_mention_rtc() {
        for text in [
            r#"{"type":"resize","cols":80,"rows":24}"#,
            r#"{"type":"ls","entries":[{"name":"\"rtcOffer"}]}"#,
            r#"{"entries":[{"type":"rtcOffer"}]}"#,
            r#"["rtc"]"#,
            "not json \"rtc",
            "c",
        ] {
            assert_eq!(RtcSignal::parse(text), RelayText::Session, "{text}");
        }
    }

    #[test]
    fn broken_signals_are_errors_not_panics() {
        for text in [
            r#"{"type":"rtcOffer"}"#,
            r#"{"type":"rtcOffer","sdp":5}"#,
            r#"{"type":"rtcNope","sdp":"x"}"#,
            r#"{"type":"rtcCandidate","candidate":null}"#,
        ] {
            assert!(
                matches!(
                    RtcSignal::parse(text),
                    RelayText::Bad(SignalError::Malformed { .. })
                ),
                "{text}"
            );
        }
        let huge = RtcSignal::RtcOffer {
            sdp: "a".repeat(MAX_SIGNAL_TEXT),
        }
        .to_text();
        assert_eq!(
            RtcSignal::parse(&huge),
            RelayText::Bad(SignalError::TooLarge { len: huge.len() })
        );
    }
}
