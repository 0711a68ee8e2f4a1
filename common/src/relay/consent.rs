//! Consent of the person at the device: a group's policy says, per session kind, whether the
//! agent just shows a notice while a session lasts, or asks the person sitting there to accept it
//! first.
//!
//! The server puts the policy's verdict for one session in the agent's [`TunnelRequest`]
//! (`consent`, a [`ConsentRequest`]) and in the viewer's [`SessionTicket`] (`consent`, the
//! [`ConsentMode`]); the agent enforces it, since only it can reach the person at the screen.
//! With a prompt, the agent joins the relay, then, before the session's first byte:
//!
//! ```text
//!   agent ── {"type":"consent","state":"asking","timeoutSecs":30} ──▶ viewer   (prompt on screen)
//!   agent ── {"type":"consent","state":"granted"} ─────────────────▶ viewer   (the session starts)
//!   or: agent ── {"type":"error","message":"…declined…"}, close 4003 "…declined…" ▶ viewer
//! ```
//!
//! The viewer waits for `granted` before it sends anything (and before it offers a direct path);
//! it reads nothing the agent has not sent, so an older viewer that does not wait loses nothing
//! either: the agent reads the session's first frame only once the person has accepted.
//!
//! [`TunnelRequest`]: super::TunnelRequest
//! [`SessionTicket`]: super::SessionTicket

use serde::{Deserialize, Serialize};

use super::SessionKind;

/// What the person at the device sees of one kind of session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ConsentMode {
    /// Nothing: the session starts at once and nothing is shown.
    #[default]
    None,
    /// A notice on the device's screen for as long as the session lasts, naming who is connected,
    /// with a button that ends the session.
    Notify,
    /// The person at the device must accept within the policy's time, or the session is refused;
    /// once accepted, the notice is shown as with `Notify`.
    Prompt,
}

/// What happens when consent is needed and nobody is signed in at the device's screen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum WhenNobody {
    /// Start the session: an unattended machine is administered without anyone to ask.
    #[default]
    Allow,
    /// Refuse the session: nobody can agree to it.
    Refuse,
}

/// Shortest and longest time the person at the device is given to answer.
pub const PROMPT_SECS: std::ops::RangeInclusive<u16> = 5..=300;
/// The time to answer when the policy does not say.
pub const DEFAULT_PROMPT_SECS: u16 = 30;

/// A device group's consent policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ConsentPolicy {
    #[serde(default)]
    pub desktop: ConsentMode,
    #[serde(default)]
    pub terminal: ConsentMode,
    #[serde(default)]
    pub files: ConsentMode,
    /// How long a prompt waits for an answer (within [`PROMPT_SECS`]).
    #[serde(default = "default_prompt_secs")]
    pub prompt_secs: u16,
    #[serde(default)]
    pub when_nobody: WhenNobody,
}

fn default_prompt_secs() -> u16 {
    DEFAULT_PROMPT_SECS
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        ConsentPolicy {
            desktop: ConsentMode::None,
            terminal: ConsentMode::None,
            files: ConsentMode::None,
            prompt_secs: DEFAULT_PROMPT_SECS,
            when_nobody: WhenNobody::Allow,
        }
    }
}

impl ConsentPolicy {
    /// The mode for sessions of `kind` (chat sessions are the person's own conversation: none).
    pub fn mode_for(&self, kind: SessionKind) -> ConsentMode {
        match kind {
            SessionKind::Desktop => self.desktop,
            SessionKind::Terminal => self.terminal,
            SessionKind::Files => self.files,
            SessionKind::Chat => ConsentMode::None,
        }
    }

    /// What the agent is told for one session of `kind` opened by `viewer` (a name for people).
    pub fn request_for(&self, kind: SessionKind, viewer: &str) -> Option<ConsentRequest> {
        let mode = self.mode_for(kind);
        (mode != ConsentMode::None).then(|| ConsentRequest {
            mode,
            prompt_secs: self
                .prompt_secs
                .clamp(*PROMPT_SECS.start(), *PROMPT_SECS.end()),
            when_nobody: self.when_nobody,
            viewer: viewer.to_owned(),
        })
    }

    /// An error for a policy the server should not store.
    pub fn check(&self) -> Result<(), String> {
        if !PROMPT_SECS.contains(&self.prompt_secs) {
            return Err(format!(
                "the time to answer must be {} to {} seconds, not {}",
                PROMPT_SECS.start(),
                PROMPT_SECS.end(),
                self.prompt_secs
            ));
        }
        Ok(())
    }
}

/// In a tunnel request: what the agent must show or ask before and during this session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConsentRequest {
    pub mode: ConsentMode,
    pub prompt_secs: u16,
    pub when_nobody: WhenNobody,
    /// Who is connecting, as the person at the device should read it ("Alice Martin (alice)").
    pub viewer: String,
}

/// Agent → viewer on the relay, text frames before the session's own (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum ConsentState {
    /// The prompt is on the device's screen; the answer comes within `timeout_secs`.
    #[serde(rename_all = "camelCase")]
    Asking { timeout_secs: u16 },
    /// The session may start; `how` says why ("accepted", "nobody is signed in", …) for the log.
    Granted { how: String },
}

/// The relay text frame's `type`.
pub const CONSENT_TYPE: &str = "consent";

#[derive(Serialize, Deserialize)]
struct Tagged {
    #[serde(rename = "type")]
    kind: String,
    #[serde(flatten)]
    state: ConsentState,
}

impl ConsentState {
    pub fn to_text(&self) -> String {
        let tagged = Tagged {
            kind: CONSENT_TYPE.to_owned(),
            state: self.clone(),
        };
        serde_json::to_string(&tagged).unwrap_or_default()
    }

    /// `None` for any frame that is not a consent message.
    pub fn parse(text: &str) -> Option<ConsentState> {
        if !text.contains("\"consent\"") {
            return None;
        }
        serde_json::from_str::<Tagged>(text)
            .ok()
            .filter(|tagged| tagged.kind == CONSENT_TYPE)
            .map(|tagged| tagged.state)
    }
}

/// The close code an agent uses when consent was not given (the reason says why).
pub const REFUSED_CLOSE_CODE: u16 = 4003;

/// Why the agent refused a session for want of consent; the text is what the viewer shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the person at the device declined the session")]
    Declined,
    #[error("nobody at the device answered within {0} s")]
    Unanswered(u16),
    #[error("nobody is signed in at the device, and its group refuses sessions then")]
    Nobody,
}

/// A name as the person at the device reads it: no control or formatting characters, at most
/// `max_chars` characters (an ellipsis marks a cut).
pub fn readable_name(name: &str, max_chars: usize) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_whitespace() { ' ' } else { c })
        .filter(|c| !c.is_control() && !is_format_char(*c))
        .collect();
    let clean = clean.trim();
    if clean.chars().count() <= max_chars {
        return clean.to_owned();
    }
    let mut cut: String = clean.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Bidi controls, zero-width and other invisible formatting characters (Unicode category Cf
/// members a name has no use for).
fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_a_mode_per_kind_and_clamps_the_time() {
        let policy = ConsentPolicy {
            desktop: ConsentMode::Prompt,
            files: ConsentMode::Notify,
            prompt_secs: 1000,
            ..ConsentPolicy::default()
        };
        assert!(policy.check().is_err());
        let asked = policy.request_for(SessionKind::Desktop, "Alice").unwrap();
        assert_eq!(asked.mode, ConsentMode::Prompt);
        assert_eq!(asked.prompt_secs, 300);
        assert_eq!(
            policy
                .request_for(SessionKind::Files, "Alice")
                .unwrap()
                .mode,
            ConsentMode::Notify
        );
        assert_eq!(policy.request_for(SessionKind::Terminal, "Alice"), None);
        assert_eq!(policy.request_for(SessionKind::Chat, "Alice"), None);
        assert!(ConsentPolicy::default().check().is_ok());
    }

    #[test]
    fn stored_groups_without_a_policy_read_as_none() {
        let policy: ConsentPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy, ConsentPolicy::default());
        let policy: ConsentPolicy =
            serde_json::from_str(r#"{"terminal":"prompt","whenNobody":"refuse"}"#).unwrap();
        assert_eq!(policy.terminal, ConsentMode::Prompt);
        assert_eq!(policy.when_nobody, WhenNobody::Refuse);
    }

    #[test]
    fn consent_frames_round_trip_and_nothing_else_parses_as_one() {
        let asking = ConsentState::Asking { timeout_secs: 30 };
        let text = asking.to_text();
        assert_eq!(
            text,
            r#"{"type":"consent","state":"asking","timeoutSecs":30}"#
        );
        assert_eq!(ConsentState::parse(&text), Some(asking));
        let granted = ConsentState::Granted {
            how: "accepted".into(),
        };
        assert_eq!(ConsentState::parse(&granted.to_text()), Some(granted));
        assert_eq!(ConsentState::parse(r#"{"type":"exit","code":0}"#), None);
        assert_eq!(
            ConsentState::parse(
                r#"{"type":"other","state":"asking","timeoutSecs":1,"x":"consent"}"#
            ),
            None
        );
        assert_eq!(
            ConsentState::parse(r#"{"type":"consent","state":"nope"}"#),
            None
        );
    }

    #[test]
    fn names_lose_what_could_mislead_the_person_reading_them() {
        assert_eq!(readable_name("  Alice\tMartin\n", 64), "Alice Martin");
        assert_eq!(
            readable_name("admin\u{202e}nimda\u{200b}\u{7}", 64),
            "adminnimda"
        );
        assert_eq!(readable_name("abcdefgh", 5), "abcd…");
        assert_eq!(readable_name("Zoë 张", 64), "Zoë 张");
    }
}
