//! Session messages too big for one data-channel message. A relay message may be up to
//! [`MAX_RELAY_FRAME`] bytes, but a WebRTC peer only promises to take messages up to the
//! `max-message-size` it advertises (Chromium: 256 KiB; 64 KiB when the attribute is absent), and
//! str0m refuses to send more than that. So on the data channel a session message bigger than
//! [`PIECE`] travels as a text header followed by its bytes in binary pieces:
//!
//! ```text
//!   {"type":"rtcPieces","parts":3,"text":false}   (text)
//!   <at most PIECE bytes> <…> <…>                 (binary, exactly `parts` of them)
//! ```
//!
//! Smaller messages pass unchanged, so what fits is sent as before. The header's `rtc` type cannot
//! be session data: relay text frames whose type starts with `rtc` are the path's own
//! (`signal.rs`). Sans-IO: [`split`] for the sender, [`Joiner`] for the receiver; the splice (Rust)
//! and `relay.ts` (console) apply them on the direct path only.

use serde::{Deserialize, Serialize};

use super::MAX_RELAY_FRAME;
use super::switch::Payload;

/// Largest data-channel message either side sends: the default `max-message-size` (RFC 8841),
/// which every WebRTC peer takes.
pub const PIECE: usize = 64 * 1024;

/// The header's prefix as [`split`] writes it; [`Joiner`] checks it before parsing.
const HEADER_PREFIX: &str = r#"{"type":"rtcPieces","#;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename = "rtcPieces")]
struct Header {
    parts: usize,
    /// The joined bytes are a text message (UTF-8), not a binary one.
    text: bool,
}

/// The data-channel messages that carry `payload`: itself when it fits in [`PIECE`], else a
/// header and its pieces.
pub fn split(payload: Payload) -> Vec<Payload> {
    let (text, bytes) = match payload {
        Payload::Text(text) if text.len() > PIECE => (true, text.into_bytes()),
        Payload::Binary(bytes) if bytes.len() > PIECE => (false, bytes),
        fits => return vec![fits],
    };
    let parts = bytes.len().div_ceil(PIECE);
    let header = Header { parts, text };
    // Serialising two plain fields cannot fail.
    let header = serde_json::to_string(&header).unwrap_or_default();
    let mut messages = Vec::with_capacity(parts + 1);
    messages.push(Payload::Text(header));
    messages.extend(
        bytes
            .chunks(PIECE)
            .map(|piece| Payload::Binary(piece.to_vec())),
    );
    messages
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiecesError {
    #[error("a pieces header announces {parts} parts, more than a session message can need")]
    TooManyParts { parts: usize },
    #[error("a pieces header has no parts")]
    NoParts,
    #[error("a text message came where a piece was due")]
    TextInsteadOfPiece,
    #[error("a piece is larger than {PIECE} bytes")]
    PieceTooLarge,
    #[error("a message sent in pieces is not UTF-8 text")]
    NotUtf8,
    #[error("a message sent in pieces is larger than a session message may be")]
    TooLarge,
}

/// Joins what [`split`] made; feed it every data-channel message in order.
#[derive(Debug, Default)]
pub struct Joiner {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    left: usize,
    text: bool,
    bytes: Vec<u8>,
}

impl Joiner {
    /// The session message `message` completes, if any. An error means the peer broke the framing:
    /// the session cannot trust what follows.
    pub fn push(&mut self, message: Payload) -> Result<Option<Payload>, PiecesError> {
        match (&mut self.pending, message) {
            (None, Payload::Text(text)) if text.starts_with(HEADER_PREFIX) => {
                match serde_json::from_str::<Header>(&text) {
                    Ok(header) => {
                        let most = MAX_RELAY_FRAME.div_ceil(PIECE);
                        if header.parts == 0 {
                            return Err(PiecesError::NoParts);
                        }
                        if header.parts > most {
                            return Err(PiecesError::TooManyParts {
                                parts: header.parts,
                            });
                        }
                        self.pending = Some(Pending {
                            left: header.parts,
                            text: header.text,
                            bytes: Vec::new(),
                        });
                        Ok(None)
                    }
                    // Starts like a header but is not one: session data after all.
                    Err(_) => Ok(Some(Payload::Text(text))),
                }
            }
            (None, message) => Ok(Some(message)),
            (Some(_), Payload::Text(_)) => Err(PiecesError::TextInsteadOfPiece),
            (Some(pending), Payload::Binary(piece)) => {
                if piece.len() > PIECE {
                    return Err(PiecesError::PieceTooLarge);
                }
                if pending.bytes.len() + piece.len() > MAX_RELAY_FRAME {
                    return Err(PiecesError::TooLarge);
                }
                pending.bytes.extend_from_slice(&piece);
                pending.left -= 1;
                if pending.left > 0 {
                    return Ok(None);
                }
                let Some(done) = self.pending.take() else {
                    return Ok(None);
                };
                if done.text {
                    String::from_utf8(done.bytes)
                        .map(|text| Some(Payload::Text(text)))
                        .map_err(|_| PiecesError::NotUtf8)
                } else {
                    Ok(Some(Payload::Binary(done.bytes)))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_all(messages: Vec<Payload>) -> Vec<Payload> {
        let mut joiner = Joiner::default();
        messages
            .into_iter()
            .filter_map(|m| joiner.push(m).unwrap())
            .collect()
    }

    #[test]
    fn small_messages_pass_unchanged() {
        for payload in [
            Payload::Text("{\"type\":\"ack\"}".into()),
            Payload::Binary(vec![1; PIECE]),
            Payload::Binary(Vec::new()),
        ] {
            assert_eq!(split(payload.clone()), vec![payload.clone()]);
            assert_eq!(join_all(vec![payload.clone()]), vec![payload]);
        }
    }

    #[test]
    fn big_messages_travel_in_pieces_and_join_whole() {
        let binary: Vec<u8> = (0..PIECE * 2 + 5).map(|i| (i % 251) as u8).collect();
        let messages = split(Payload::Binary(binary.clone()));
        assert_eq!(
            messages[0],
            Payload::Text(r#"{"type":"rtcPieces","parts":3,"text":false}"#.into())
        );
        assert_eq!(messages.len(), 4);
        assert!(messages[1..].iter().all(|m| match m {
            Payload::Binary(b) => b.len() <= PIECE,
            Payload::Text(_) => false,
        }));
        let text = "é".repeat(PIECE); // 2 bytes each; a piece boundary splits a character
        let mut all = messages;
        all.extend(split(Payload::Text(text.clone())));
        all.push(Payload::Text("after".into()));
        assert_eq!(
            join_all(all),
            vec![
                Payload::Binary(binary),
                Payload::Text(text),
                Payload::Text("after".into())
            ]
        );
    }

    #[test]
    fn broken_framing_is_an_error() {
        let mut joiner = Joiner::default();
        let header = |parts: usize| {
            Payload::Text(format!(
                r#"{{"type":"rtcPieces","parts":{parts},"text":false}}"#
            ))
        };
        assert_eq!(joiner.push(header(0)), Err(PiecesError::NoParts));
        assert!(matches!(
            joiner.push(header(1000)),
            Err(PiecesError::TooManyParts { parts: 1000 })
        ));
        assert_eq!(joiner.push(header(2)), Ok(None));
        assert_eq!(
            joiner.push(Payload::Text("x".into())),
            Err(PiecesError::TextInsteadOfPiece)
        );
        let mut joiner = Joiner::default();
        joiner.push(header(1)).unwrap();
        assert_eq!(
            joiner.push(Payload::Binary(vec![0; PIECE + 1])),
            Err(PiecesError::PieceTooLarge)
        );
        let mut joiner = Joiner::default();
        joiner
            .push(Payload::Text(
                r#"{"type":"rtcPieces","parts":1,"text":true}"#.into(),
            ))
            .unwrap();
        assert_eq!(
            joiner.push(Payload::Binary(vec![0xff])),
            Err(PiecesError::NotUtf8)
        );
        // Starts like a header but is not one: handed on as data.
        let odd = Payload::Text(r#"{"type":"rtcPieces","nope":1}"#.into());
        assert_eq!(Joiner::default().push(odd.clone()), Ok(Some(odd)));
    }
}
