//! Terminal sessions over the relay.
//!
//! After `"c"`, the console sends one [`TerminalRequest::Start`] text frame. Then:
//! - **binary frames, console → agent**: keystrokes / standard input, as UTF-8 bytes;
//! - **binary frames, agent → console**: with a PTY, the terminal's output as it comes; without
//!   one (`pty: false`, for `tetherctl exec`), each frame is [`encode_output`]: one stream byte
//!   ([`OutputStream`]) then the bytes, so standard output and error stay apart;
//! - **text frames**: [`TerminalRequest`] (console → agent) and [`TerminalEvent`] (agent →
//!   console) as JSON. The agent's last frame is [`TerminalEvent::Exit`] (or `Error`), then it
//!   closes.

use serde::{Deserialize, Serialize};

/// A terminal size the agent accepts: 1..=MAX_TERMINAL_CELLS in each direction.
pub const MAX_TERMINAL_CELLS: u16 = 1000;

/// Console → agent control messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TerminalRequest {
    /// The first frame after `"c"`.
    Start(StartTerminal),
    /// The console's window changed size (PTY sessions).
    Resize { cols: u16, rows: u16 },
    /// No more standard input (pipe sessions): the agent closes the command's stdin.
    Eof,
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartTerminal {
    pub cols: u16,
    pub rows: u16,
    /// Program and arguments; empty means the user's login shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Run in a pseudo-terminal (interactive) or with plain pipes (scripts: exact bytes, separate
    /// stdout and stderr).
    #[serde(default = "yes")]
    pub pty: bool,
    /// Run as this local account instead of the agent's own (`None`, the default). A root agent
    /// may run as any account; any other agent only as itself. With a PTY the program is a login
    /// session of that account (its shell, environment, home and groups). The TERMINAL right
    /// allows this: whoever holds it on a root agent could become any account from a root shell
    /// anyway.
    #[serde(default, rename = "asUser", skip_serializing_if = "Option::is_none")]
    pub as_user: Option<String>,
}

fn yes() -> bool {
    true
}

impl StartTerminal {
    /// An interactive login shell of the given size.
    pub fn shell(cols: u16, rows: u16) -> StartTerminal {
        StartTerminal {
            cols,
            rows,
            command: Vec::new(),
            pty: true,
            as_user: None,
        }
    }

    /// A command run with pipes.
    pub fn exec(command: Vec<String>) -> StartTerminal {
        StartTerminal {
            cols: 80,
            rows: 24,
            command,
            pty: false,
            as_user: None,
        }
    }

    /// The same session, run as `user` (`None`: the agent's own account).
    pub fn run_as(self, user: Option<String>) -> StartTerminal {
        StartTerminal {
            as_user: user,
            ..self
        }
    }
}

/// Clamps a requested size to what a PTY can take (0 would confuse programs; huge sizes waste
/// memory in full-screen programs).
pub fn clamp_size(cols: u16, rows: u16) -> (u16, u16) {
    (
        cols.clamp(1, MAX_TERMINAL_CELLS),
        rows.clamp(1, MAX_TERMINAL_CELLS),
    )
}

/// Agent → console control messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum TerminalEvent {
    /// The program ended: `code` when it exited, `signal` when a signal killed it.
    Exit {
        #[serde(default)]
        code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The session could not start or broke; `message` is for people.
    Error { message: String },
    #[serde(other)]
    Unknown,
}

impl TerminalEvent {
    /// The exit status a shell would report: the code, 128 + signal, or 255 when unknown.
    pub fn exit_status(&self) -> Option<i32> {
        match self {
            TerminalEvent::Exit {
                code: Some(code), ..
            } => Some(*code),
            TerminalEvent::Exit {
                signal: Some(signal),
                ..
            } => Some(128 + signal),
            TerminalEvent::Exit { .. } | TerminalEvent::Error { .. } => Some(255),
            TerminalEvent::Unknown => None,
        }
    }
}

/// Which output of a piped command a binary frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout = 1,
    Stderr = 2,
}

/// A pipe session's output frame: the stream byte, then the bytes.
pub fn encode_output(stream: OutputStream, bytes: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(bytes.len() + 1);
    frame.push(stream as u8);
    frame.extend_from_slice(bytes);
    frame
}

/// Splits a pipe session's output frame; `None` for an empty frame or an unknown stream byte.
pub fn decode_output(frame: &[u8]) -> Option<(OutputStream, &[u8])> {
    let (first, rest) = frame.split_first()?;
    let stream = match first {
        1 => OutputStream::Stdout,
        2 => OutputStream::Stderr,
        _ => return None,
    };
    Some((stream, rest))
}

pub fn to_json<T: Serialize>(message: &T) -> String {
    // These enums hold only strings and numbers: serialising cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

pub fn parse_request(text: &str) -> Option<TerminalRequest> {
    serde_json::from_str(text).ok()
}

pub fn parse_event(text: &str) -> Option<TerminalEvent> {
    serde_json::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_frames_are_small_json() {
        let shell = TerminalRequest::Start(StartTerminal::shell(120, 40));
        assert_eq!(
            to_json(&shell),
            r#"{"type":"start","cols":120,"rows":40,"pty":true}"#
        );
        let exec = TerminalRequest::Start(StartTerminal::exec(vec!["ls".into(), "-l".into()]));
        let text = to_json(&exec);
        assert_eq!(
            text,
            r#"{"type":"start","cols":80,"rows":24,"command":["ls","-l"],"pty":false}"#
        );
        assert_eq!(parse_request(&text), Some(exec));
        // A minimal start is an interactive shell.
        assert_eq!(
            parse_request(r#"{"type":"start","cols":80,"rows":24}"#),
            Some(TerminalRequest::Start(StartTerminal::shell(80, 24)))
        );
    }

    #[test]
    fn start_frames_name_another_account_only_when_asked() {
        let shell =
            TerminalRequest::Start(StartTerminal::shell(80, 24).run_as(Some("alice".into())));
        let text = to_json(&shell);
        assert_eq!(
            text,
            r#"{"type":"start","cols":80,"rows":24,"pty":true,"asUser":"alice"}"#
        );
        assert_eq!(parse_request(&text), Some(shell));
        let exec = TerminalRequest::Start(
            StartTerminal::exec(vec!["id".into(), "-un".into()]).run_as(Some("nobody".into())),
        );
        let text = to_json(&exec);
        assert_eq!(
            text,
            r#"{"type":"start","cols":80,"rows":24,"command":["id","-un"],"pty":false,"asUser":"nobody"}"#
        );
        assert_eq!(parse_request(&text), Some(exec));
        // Absent or null: the agent's own account; the Rust field name is not the wire name.
        for absent in [
            r#"{"type":"start","cols":80,"rows":24}"#,
            r#"{"type":"start","cols":80,"rows":24,"asUser":null}"#,
            r#"{"type":"start","cols":80,"rows":24,"as_user":"alice"}"#,
        ] {
            let Some(TerminalRequest::Start(start)) = parse_request(absent) else {
                panic!("{absent} is a start frame");
            };
            assert_eq!(start.as_user, None, "{absent}");
        }
        assert!(!to_json(&StartTerminal::shell(80, 24)).contains("asUser"));
        // A name that is not a string is no start frame at all.
        assert_eq!(
            parse_request(r#"{"type":"start","cols":80,"rows":24,"asUser":0}"#),
            None
        );
    }

    #[test]
    fn resize_eof_and_unknown() {
        assert_eq!(
            parse_request(r#"{"type":"resize","cols":100,"rows":30}"#),
            Some(TerminalRequest::Resize {
                cols: 100,
                rows: 30
            })
        );
        assert_eq!(
            parse_request(r#"{"type":"eof"}"#),
            Some(TerminalRequest::Eof)
        );
        assert_eq!(
            parse_request(r#"{"type":"paste","text":"x"}"#),
            Some(TerminalRequest::Unknown)
        );
        assert_eq!(
            parse_request(r#"{"type":"resize","cols":-1,"rows":3}"#),
            None
        );
        assert_eq!(parse_request("c"), None);
    }

    #[test]
    fn exit_events_give_a_shell_status() {
        let exited = TerminalEvent::Exit {
            code: Some(3),
            signal: None,
        };
        assert_eq!(to_json(&exited), r#"{"type":"exit","code":3}"#);
        assert_eq!(
            parse_event(r#"{"type":"exit","code":3}"#),
            Some(exited.clone())
        );
        assert_eq!(exited.exit_status(), Some(3));
        let killed = parse_event(r#"{"type":"exit","code":null,"signal":9}"#).unwrap();
        assert_eq!(killed.exit_status(), Some(137));
        let failed = TerminalEvent::Error {
            message: "no shell".into(),
        };
        assert_eq!(parse_event(&to_json(&failed)), Some(failed.clone()));
        assert_eq!(failed.exit_status(), Some(255));
    }

    #[test]
    fn output_frames_keep_streams_apart() {
        let frame = encode_output(OutputStream::Stderr, b"oops\n");
        assert_eq!(frame[0], 2);
        assert_eq!(
            decode_output(&frame),
            Some((OutputStream::Stderr, &b"oops\n"[..]))
        );
        assert_eq!(
            decode_output(&encode_output(OutputStream::Stdout, b"")),
            Some((OutputStream::Stdout, &b""[..]))
        );
        assert_eq!(decode_output(&[]), None);
        assert_eq!(decode_output(&[7, 1]), None);
    }

    #[test]
    fn sizes_are_clamped() {
        assert_eq!(clamp_size(0, 0), (1, 1));
        assert_eq!(clamp_size(80, 24), (80, 24));
        assert_eq!(clamp_size(u16::MAX, 5000), (1000, 1000));
    }
}
