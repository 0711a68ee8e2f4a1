//! The messenger: a chat between an administrator and the person at a device.
//!
//! How one starts (`createSession {kind: "chat"}`):
//!
//! ```text
//!   console ── createSession chat ──▶ server ── openchat {path:"/messenger#t=TOKEN"} ──▶ agent
//!   agent: opens that page in the browser of whoever sits at the screen, as that user
//!   agent ── chatopened {session, opened|why not} ──▶ server ── reply (ticket + outcome) ──▶ console
//!   console ──▶ /meshrelay.ashx?id=… ◀── the device user's page (the agent side of the session)
//! ```
//!
//! The agent is not in the conversation: the page on the device holds the relay's agent-side
//! token (in the URL's fragment, so it is never sent in a request line or a Referer), which admits
//! it to this one chat and nothing else. The console waits for the agent's report, so the
//! administrator always learns whether the window opened, and why not (MeshCentral's most
//! reported messenger problem is a window that silently never appears).
//!
//! Once both ends are in, each sends JSON text frames ([`ChatMessage`]) and, for files, binary
//! frames of [`FILE_CHUNK_HEADER`] bytes (the transfer's id, big-endian `u32`) then the data, in
//! order: the relay (and the direct path's switch) keeps frames in order, so no offsets are needed.

use serde::{Deserialize, Serialize};

/// Where the server serves the messenger page.
pub const MESSENGER_PATH: &str = "/messenger";
/// Longest chat message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest name a side introduces itself with, in characters (longer ones are cut).
pub const MAX_NAME_CHARS: usize = 100;
/// Bytes of file data per binary frame (well under the relay's frame limit).
pub const FILE_CHUNK: usize = 64 * 1024;
/// Longest session description a call may carry.
pub const MAX_SDP: usize = 64 * 1024;
/// The transfer id in front of each binary frame.
pub const FILE_CHUNK_HEADER: usize = 4;

/// One chat frame, either way. Text a side sends is shown by the other as text, never markup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ChatMessage {
    /// The first frame of each side: who is talking (the console sends the user's name and
    /// e-mail; the device page, the device's name or "the person at the device").
    Hello { name: String },
    /// A message; `id` is the sender's own counter (for acknowledgements in the log).
    Text { id: u32, text: String },
    /// The sender started or stopped typing.
    Typing { on: bool },
    /// "I would like to send you this file." Nothing flows before the other side accepts.
    FileOffer { id: u32, name: String, size: u64 },
    /// The receiver takes the file: the sender streams it, then sends `fileEnd`.
    FileAccept { id: u32 },
    /// The receiver does not want it.
    FileDecline { id: u32 },
    /// Either side stops a transfer under way.
    FileCancel { id: u32 },
    /// All the file's bytes were sent.
    FileEnd { id: u32 },
    /// "Let us talk": the caller's WebRTC offer for a call on a peer connection of its own (apart
    /// from the chat's data path), and what the caller sends: its microphone, its camera.
    CallOffer {
        sdp: String,
        audio: bool,
        video: bool,
    },
    /// The callee takes the call, sending what it chose in turn (nothing is allowed: one-way
    /// calls are the common support case).
    CallAnswer {
        sdp: String,
        audio: bool,
        video: bool,
    },
    /// A trickled ICE candidate of the call's connection, either way.
    CallCandidate {
        candidate: String,
        #[serde(default)]
        mid: Option<String>,
    },
    /// The callee does not take the call.
    CallDecline,
    /// Either side hangs up.
    CallEnd,
    /// The sender is leaving the chat (the relay's close follows).
    Bye,
}

impl ChatMessage {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("chat messages serialize")
    }

    /// A frame the other side sent, checked: `None` for anything that is not a chat message
    /// within the limits (the caller logs and drops it).
    pub fn parse(text: &str) -> Option<ChatMessage> {
        let message: ChatMessage = serde_json::from_str(text).ok()?;
        match &message {
            ChatMessage::Text { text, .. } if text.chars().count() > MAX_TEXT_CHARS => None,
            ChatMessage::FileOffer { name, .. } if name.is_empty() || name.len() > 255 => None,
            ChatMessage::CallOffer { sdp, .. } | ChatMessage::CallAnswer { sdp, .. }
                if sdp.len() > MAX_SDP =>
            {
                None
            }
            ChatMessage::CallCandidate { candidate, .. } if candidate.len() > 1024 => None,
            _ => Some(message),
        }
    }
}

/// A name as shown to the other side: at most [`MAX_NAME_CHARS`], no control characters.
pub fn clean_name(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect()
}

/// One binary frame of a file transfer.
pub fn file_chunk(id: u32, data: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FILE_CHUNK_HEADER + data.len());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

/// The transfer id and the data of a binary frame; `None` when it is too short to have an id.
pub fn split_file_chunk(frame: &[u8]) -> Option<(u32, &[u8])> {
    let (id, data) = frame.split_first_chunk::<FILE_CHUNK_HEADER>()?;
    Some((u32::from_be_bytes(*id), data))
}

/// Server → agent, on the control channel: "open the messenger page for whoever is at the
/// screen". Sent as [`ServerToAgent::OpenChat`](crate::agent_proto::ServerToAgent::OpenChat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenChat {
    /// Names this request in the agent's report.
    pub session: String,
    /// A path on the server the agent is connected to: `/messenger#t=TOKEN`. The agent opens
    /// the server's address with this path.
    pub path: String,
    /// Who is asking, for the agent's log.
    pub from: String,
}

/// Agent → server: what became of an [`OpenChat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatOpened {
    pub session: String,
    /// Whom the page was opened for (a local account name) and on which display, when it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    /// Why it was not opened, when it was not: a sentence for the administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a chat's window opened on the device, as the console is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChatWindow {
    /// The local account it opened for.
    pub user: String,
    /// The X display it opened on.
    pub display: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_messages_have_the_documented_shape() {
        let text = ChatMessage::Text {
            id: 3,
            text: "<b>hi</b>".into(),
        };
        assert_eq!(
            text.to_json(),
            r#"{"type":"text","id":3,"text":"<b>hi</b>"}"#
        );
        assert_eq!(ChatMessage::parse(&text.to_json()), Some(text));
        let offer = r#"{"type":"fileOffer","id":1,"name":"a.txt","size":5}"#;
        assert!(matches!(
            ChatMessage::parse(offer),
            Some(ChatMessage::FileOffer { size: 5, .. })
        ));
    }

    #[test]
    fn oversized_or_malformed_frames_are_refused() {
        let long = ChatMessage::Text {
            id: 1,
            text: "x".repeat(MAX_TEXT_CHARS + 1),
        };
        assert_eq!(ChatMessage::parse(&long.to_json()), None);
        let nameless = r#"{"type":"fileOffer","id":1,"name":"","size":5}"#;
        assert_eq!(ChatMessage::parse(nameless), None);
        for garbage in ["", "{}", r#"{"type":"shell"}"#, "[1]", r#"{"type":"text"}"#] {
            assert_eq!(ChatMessage::parse(garbage), None, "{garbage}");
        }
    }

    #[test]
    fn file_chunks_round_trip_and_short_frames_are_refused() {
        let frame = file_chunk(0x0102_0304, b"data");
        assert_eq!(&frame[..4], &[1, 2, 3, 4]);
        assert_eq!(split_file_chunk(&frame), Some((0x0102_0304, &b"data"[..])));
        assert_eq!(split_file_chunk(&[1, 2, 3]), None);
    }

    #[test]
    fn names_lose_control_characters_and_length() {
        assert_eq!(clean_name("ali\u{1b}[31mce\n"), "ali[31mce");
        assert_eq!(clean_name(&"n".repeat(500)).chars().count(), MAX_NAME_CHARS);
    }
}
