//! Session recordings: what the relay carried between a console and an agent, frame for frame,
//! with the time of each, so that a player can show exactly what the viewer saw.
//!
//! A file is one header line (JSON, [`RecordingHeader`]) then frames, each
//! `[direction u8][type u8][milliseconds since the start, u32 BE][length u32 BE][payload]`:
//! direction 0 is console → device, 1 device → console; type 0 is a text frame, 1 binary. The
//! frames are the session's own (terminal bytes and events, desktop pictures as the agent encoded
//! them), so recording costs no re-encoding and a recording is as compact as the session.
//!
//! [`to_asciicast`] turns a terminal recording into asciicast v2, which asciinema and other
//! players read.

use serde::{Deserialize, Serialize};

use crate::relay::SessionKind;
use crate::relay::terminal::{TerminalRequest, decode_output, parse_request};

/// The first line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingHeader {
    /// 1 for this layout.
    pub version: u32,
    pub session: String,
    pub device: String,
    pub device_name: String,
    pub user: String,
    pub kind: SessionKind,
    /// Unix milliseconds.
    pub started_ms: i64,
}

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToDevice = 0,
    FromDevice = 1,
}

/// One recorded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub direction: Direction,
    /// A text frame (UTF-8), else binary.
    pub text: bool,
    /// Milliseconds since the session started.
    pub at_ms: u32,
    pub payload: Vec<u8>,
}

/// Bytes before a frame's payload.
pub const FRAME_HEADER: usize = 10;
/// Longest header line read back.
const MAX_HEADER_LINE: usize = 8 * 1024;
/// Largest frame read back (the relay's own limit is below it).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    #[error("not a recording: {0}")]
    Header(String),
    #[error("the recording is cut short at byte {0}")]
    Truncated(usize),
    #[error("a frame at byte {0} is broken")]
    BadFrame(usize),
}

impl RecordingHeader {
    /// The header line, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }
}

impl Frame {
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.direction as u8);
        out.push(u8::from(!self.text));
        out.extend_from_slice(&self.at_ms.to_be_bytes());
        out.extend_from_slice(&(self.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.payload);
    }
}

/// A whole recording read back: its header and frames. A recording whose last frame was cut
/// short (the server stopped mid-write) reads up to that frame, and says so.
pub fn parse(
    bytes: &[u8],
) -> Result<(RecordingHeader, Vec<Frame>, Option<RecordingError>), RecordingError> {
    let line_end = bytes
        .iter()
        .take(MAX_HEADER_LINE)
        .position(|b| *b == b'\n')
        .ok_or_else(|| RecordingError::Header("no header line".into()))?;
    let header: RecordingHeader = serde_json::from_slice(&bytes[..line_end])
        .map_err(|e| RecordingError::Header(e.to_string()))?;
    if header.version != 1 {
        return Err(RecordingError::Header(format!(
            "version {}",
            header.version
        )));
    }
    let mut frames = Vec::new();
    let mut at = line_end + 1;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + FRAME_HEADER) else {
            return Ok((header, frames, Some(RecordingError::Truncated(at))));
        };
        let direction = match head[0] {
            0 => Direction::ToDevice,
            1 => Direction::FromDevice,
            _ => return Ok((header, frames, Some(RecordingError::BadFrame(at)))),
        };
        let text = match head[1] {
            0 => true,
            1 => false,
            _ => return Ok((header, frames, Some(RecordingError::BadFrame(at)))),
        };
        let at_ms = u32::from_be_bytes([head[2], head[3], head[4], head[5]]);
        let len = u32::from_be_bytes([head[6], head[7], head[8], head[9]]) as usize;
        if len > MAX_FRAME {
            return Ok((header, frames, Some(RecordingError::BadFrame(at))));
        }
        let Some(payload) = bytes.get(at + FRAME_HEADER..at + FRAME_HEADER + len) else {
            return Ok((header, frames, Some(RecordingError::Truncated(at))));
        };
        frames.push(Frame {
            direction,
            text,
            at_ms,
            payload: payload.to_vec(),
        });
        at += FRAME_HEADER + len;
    }
    Ok((header, frames, None))
}

/// asciicast v2 of a terminal recording: the size from the start request, then each output
/// frame from the device as an `"o"` event and each resize as an `"r"` event. Output that is not
/// valid UTF-8 on its own (a character split across frames) is carried over to the next frame.
pub fn to_asciicast(header: &RecordingHeader, frames: &[Frame]) -> String {
    let (mut cols, mut rows) = (80, 24);
    // Without a PTY (`tetherctl exec`) each output frame starts with its stream's byte.
    let mut pty = true;
    let mut events = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for frame in frames {
        let seconds = f64::from(frame.at_ms) / 1000.0;
        match (frame.direction, frame.text) {
            (Direction::ToDevice, true) => {
                match std::str::from_utf8(&frame.payload)
                    .ok()
                    .and_then(parse_request)
                {
                    Some(TerminalRequest::Start(start)) if events.is_empty() => {
                        (cols, rows) = (start.cols, start.rows);
                        pty = start.pty;
                    }
                    Some(TerminalRequest::Resize { cols, rows }) => {
                        events.push(serde_json::json!([seconds, "r", format!("{cols}x{rows}")]));
                    }
                    _ => {}
                }
            }
            (Direction::FromDevice, false) => {
                if pty {
                    pending.extend_from_slice(&frame.payload);
                } else if let Some((_, output)) = decode_output(&frame.payload) {
                    pending.extend_from_slice(output);
                }
                let valid = match std::str::from_utf8(&pending) {
                    Ok(_) => pending.len(),
                    Err(e) if e.error_len().is_none() => e.valid_up_to(),
                    Err(_) => pending.len(),
                };
                let text = String::from_utf8_lossy(&pending[..valid]).into_owned();
                pending.drain(..valid);
                if !text.is_empty() {
                    events.push(serde_json::json!([seconds, "o", text]));
                }
            }
            _ => {}
        }
    }
    let head = serde_json::json!({
        "version": 2,
        "width": cols,
        "height": rows,
        "timestamp": header.started_ms / 1000,
        "title": format!("{} on {}", header.user, header.device_name),
    });
    let mut out = head.to_string();
    out.push('\n');
    for event in events {
        out.push_str(&event.to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> RecordingHeader {
        RecordingHeader {
            version: 1,
            session: "s1".into(),
            device: "d1".into(),
            device_name: "pc-7".into(),
            user: "alice".into(),
            kind: SessionKind::Terminal,
            started_ms: 1_796_450_000_000,
        }
    }

    fn frame(direction: Direction, text: bool, at_ms: u32, payload: &[u8]) -> Frame {
        Frame {
            direction,
            text,
            at_ms,
            payload: payload.to_vec(),
        }
    }

    fn recording(frames: &[Frame]) -> Vec<u8> {
        let mut bytes = header().to_line();
        for f in frames {
            f.encode(&mut bytes);
        }
        bytes
    }

    #[test]
    fn frames_read_back_as_written_and_a_cut_tail_is_reported() {
        let frames = [
            frame(
                Direction::ToDevice,
                true,
                0,
                br#"{"type":"start","cols":100,"rows":30}"#,
            ),
            frame(Direction::FromDevice, false, 12, b"$ "),
            frame(Direction::FromDevice, true, 15, b"{}"),
        ];
        let bytes = recording(&frames);
        let (read, got, problem) = parse(&bytes).unwrap();
        assert_eq!(
            (read, got.as_slice(), problem),
            (header(), &frames[..], None)
        );
        let (_, got, problem) = parse(&bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(got.len(), 2);
        assert!(matches!(problem, Some(RecordingError::Truncated(_))));
        assert!(parse(b"no header").is_err());
        assert!(parse(b"{\"version\":9}\n").is_err());
    }

    #[test]
    fn a_terminal_recording_becomes_asciicast_with_split_characters_joined() {
        let check = "✓".as_bytes();
        let frames = [
            frame(
                Direction::ToDevice,
                true,
                0,
                br#"{"type":"start","cols":100,"rows":30}"#,
            ),
            frame(
                Direction::FromDevice,
                false,
                500,
                &[b"ok ", &check[..1]].concat(),
            ),
            frame(Direction::FromDevice, false, 750, &check[1..]),
            frame(Direction::ToDevice, false, 800, b"ls\r"),
            frame(
                Direction::ToDevice,
                true,
                1250,
                br#"{"type":"resize","cols":90,"rows":20}"#,
            ),
        ];
        let cast = to_asciicast(&header(), &frames);
        let lines: Vec<serde_json::Value> = cast
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["width"], 100);
        assert_eq!(lines[0]["height"], 30);
        assert_eq!(lines[1], serde_json::json!([0.5, "o", "ok "]));
        assert_eq!(lines[2], serde_json::json!([0.75, "o", "✓"]));
        assert_eq!(lines[3], serde_json::json!([1.25, "r", "90x20"]));
        assert_eq!(lines.len(), 4, "keystrokes are not output");
    }
}
