//! The bytes that cross the IPC boundary for a direct path, both ways, and a call's news
//! (`call.rs`). Pure, so the framing is tested without a webview
//! (`console/web/src/lib/sessions/nativePeer.ts` and `nativeCall.ts` are the other end).
//!
//! Rust → page: one Tauri channel message per event, raw bytes (an `ArrayBuffer` in the page, not
//! JSON): a tag byte, then the event's bytes.
//!
//! Page → Rust: one `rtc_send` invoke carries every message the page queued while the previous
//! invoke was in flight, each as a tag byte, a 32-bit big-endian length and the message. One invoke
//! at a time keeps the messages in order (two invokes in flight may be handled in either order)
//! and batching keeps that cheap.

use tether_common::relay::switch::Payload;

const OPEN: u8 = 1;
const CLOSED: u8 = 2;
const TEXT: u8 = 3;
const BINARY: u8 = 4;
const SOUND_RATE: u8 = 5;

/// The largest single message the page may send: the data channel's own messages are far
/// smaller (big ones travel in pieces, `directPieces.ts`), so anything bigger is a broken page.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// What the page hears about a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PeerNews {
    Open,
    Closed(String),
    Message(Payload),
    /// What a call's sound from the other side arrives at, kbit/s.
    SoundRate(u32),
}

pub(crate) fn encode(news: PeerNews) -> Vec<u8> {
    let (tag, body) = match news {
        PeerNews::Open => (OPEN, Vec::new()),
        PeerNews::Closed(why) => (CLOSED, why.into_bytes()),
        PeerNews::Message(Payload::Text(text)) => (TEXT, text.into_bytes()),
        PeerNews::Message(Payload::Binary(bytes)) => (BINARY, bytes),
        PeerNews::SoundRate(kbps) => (SOUND_RATE, kbps.to_be_bytes().to_vec()),
    };
    let mut frame = Vec::with_capacity(1 + body.len());
    frame.push(tag);
    frame.extend_from_slice(&body);
    frame
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum BatchError {
    #[error("a batch ends inside a message header")]
    Truncated,
    #[error("a message says it has {0} bytes, more than the batch holds")]
    Short(usize),
    #[error("a message of {0} bytes is over the {MAX_MESSAGE}-byte limit")]
    TooBig(usize),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("a text message is not UTF-8")]
    NotUtf8,
}

/// The messages of one `rtc_send` batch, in order; the whole batch is refused if any part is bad
/// (the page then closes the path: sending half of it would corrupt the session).
pub(crate) fn decode_batch(mut batch: &[u8]) -> Result<Vec<Payload>, BatchError> {
    let mut messages = Vec::new();
    while !batch.is_empty() {
        let Some((&tag, rest)) = batch.split_first() else {
            break;
        };
        let Some((length, rest)) = rest.split_first_chunk::<4>() else {
            return Err(BatchError::Truncated);
        };
        let length = u32::from_be_bytes(*length) as usize;
        if length > MAX_MESSAGE {
            return Err(BatchError::TooBig(length));
        }
        if rest.len() < length {
            return Err(BatchError::Short(length));
        }
        let (body, rest) = rest.split_at(length);
        messages.push(match tag {
            TEXT => {
                Payload::Text(String::from_utf8(body.to_vec()).map_err(|_| BatchError::NotUtf8)?)
            }
            BINARY => Payload::Binary(body.to_vec()),
            other => return Err(BatchError::Kind(other)),
        });
        batch = rest;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut part = vec![tag];
        part.extend_from_slice(&(body.len() as u32).to_be_bytes());
        part.extend_from_slice(body);
        part
    }

    #[test]
    fn a_batch_comes_apart_in_order() {
        let mut batch = part(TEXT, "{\"type\":\"key\"}".as_bytes());
        batch.extend(part(BINARY, &[0, 1, 2, 255]));
        batch.extend(part(BINARY, &[]));
        batch.extend(part(TEXT, "ünïcode".as_bytes()));
        assert_eq!(
            decode_batch(&batch),
            Ok(vec![
                Payload::Text("{\"type\":\"key\"}".into()),
                Payload::Binary(vec![0, 1, 2, 255]),
                Payload::Binary(vec![]),
                Payload::Text("ünïcode".into()),
            ])
        );
        assert_eq!(decode_batch(&[]), Ok(vec![]));
    }

    #[test]
    fn a_bad_batch_is_refused_whole() {
        let good = part(BINARY, b"ok");
        let mut truncated = good.clone();
        truncated.extend([TEXT, 0, 0]);
        assert_eq!(decode_batch(&truncated), Err(BatchError::Truncated));
        let mut short = good.clone();
        short.extend([BINARY, 0, 0, 0, 9, 1, 2]);
        assert_eq!(decode_batch(&short), Err(BatchError::Short(9)));
        let huge = [BINARY, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            decode_batch(&huge),
            Err(BatchError::TooBig(u32::MAX as usize))
        );
        assert_eq!(decode_batch(&part(9, b"x")), Err(BatchError::Kind(9)));
        assert_eq!(
            decode_batch(&part(TEXT, &[0xff, 0xfe])),
            Err(BatchError::NotUtf8)
        );
    }

    #[test]
    fn events_carry_their_tag_first() {
        assert_eq!(encode(PeerNews::Open), [OPEN]);
        assert_eq!(encode(PeerNews::Closed("gone".into())), b"\x02gone");
        assert_eq!(
            encode(PeerNews::Message(Payload::Text("hi".into()))),
            b"\x03hi"
        );
        assert_eq!(
            encode(PeerNews::Message(Payload::Binary(vec![7]))),
            [BINARY, 7]
        );
        assert_eq!(encode(PeerNews::SoundRate(33)), [SOUND_RATE, 0, 0, 0, 33]);
    }
}
