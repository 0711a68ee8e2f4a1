//! Relayed sessions (`WSS /meshrelay.ashx?id=TOKEN`): what a session is, what its tokens claim,
//! how the server asks an agent to join, and the messages each session kind exchanges.
//!
//! A session starts with a control request (`createSession { device, kind }`). The server checks
//! the caller's rights, mints two single-use tokens for one session (one per side, see
//! [`RelaySide`]), sends the agent a [`TunnelRequest`] carrying its token over the agent's control
//! channel, and answers the console with a [`SessionTicket`] carrying the other. Both sides open
//! `RELAY_PATH?id=TOKEN`; once both are there the server sends the text frame [`PAIRED`] (`"c"`)
//! to each and from then on passes every frame through unchanged.
//!
//! On the relay, by convention (MeshCentral's): **text frames carry small JSON control messages**,
//! **binary frames carry the session's bytes**. Neither side may send before it has read `"c"`.
//! The per-kind messages are in [`terminal`], [`files`] and [`desktop`].

pub mod chat;
pub mod consent;
pub mod desktop;
pub mod files;
pub mod identity;
pub mod pieces;
pub mod signal;
pub mod switch;
pub mod terminal;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::agent_proto::ServerToAgent;
use crate::ids::{DeviceId, UserId};
use crate::rights::Rights;

/// The relay's path (MeshCentral's); `/relay` is an alias.
pub const RELAY_PATH: &str = "/meshrelay.ashx";

/// Largest WebSocket message either side may send on a relay socket; bigger ones close it.
pub const MAX_RELAY_FRAME: usize = 1024 * 1024;

/// The text frame the server sends to both sides once they are paired.
pub const PAIRED: &str = "c";

/// What a relayed session is for. The names are the wire names (`"terminal"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum SessionKind {
    Terminal,
    Files,
    Desktop,
    Chat,
}

impl SessionKind {
    pub const ALL: [SessionKind; 4] = [
        SessionKind::Terminal,
        SessionKind::Files,
        SessionKind::Desktop,
        SessionKind::Chat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Terminal => "terminal",
            SessionKind::Files => "files",
            SessionKind::Desktop => "desktop",
            SessionKind::Chat => "chat",
        }
    }

    /// Whether `rights` (a user's rights on the device's group) allow opening this kind at all.
    /// A desktop opened with only `DESKTOP_VIEW_ONLY` is view-only: the agent enforces that from
    /// the rights the tunnel request carries.
    pub fn allowed_by(self, rights: Rights) -> bool {
        match self {
            SessionKind::Terminal => rights.contains(Rights::TERMINAL),
            SessionKind::Files => rights.contains(Rights::FILES),
            SessionKind::Desktop => {
                rights.contains(Rights::REMOTE_CONTROL)
                    || rights.contains(Rights::DESKTOP_VIEW_ONLY)
            }
            SessionKind::Chat => rights.contains(Rights::CHAT),
        }
    }

    /// The right to name in a refusal.
    pub fn required_right(self) -> Rights {
        match self {
            SessionKind::Terminal => Rights::TERMINAL,
            SessionKind::Files => Rights::FILES,
            SessionKind::Desktop => Rights::REMOTE_CONTROL,
            SessionKind::Chat => Rights::CHAT,
        }
    }
}

impl fmt::Display for SessionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session kind \"{0}\" (expected terminal, files, desktop or chat)")]
pub struct UnknownSessionKind(pub String);

impl FromStr for SessionKind {
    type Err = UnknownSessionKind;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        SessionKind::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownSessionKind(text.to_owned()))
    }
}

/// Which end of a session a token admits. The two ends get different tokens so that the console's
/// token (which travels through a browser: history, extensions, proxy logs) can never be used to
/// pose as the device; the agent's token only ever travels over the agent's authenticated channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelaySide {
    /// A user's console or tool; must also present that user's session cookie.
    Console,
    /// The device's agent.
    Agent,
}

impl RelaySide {
    pub fn other(self) -> RelaySide {
        match self {
            RelaySide::Console => RelaySide::Agent,
            RelaySide::Agent => RelaySide::Console,
        }
    }
}

/// What a relay token says. The server MACs this; holders cannot change it, and the claims are
/// not secret (the holder knows them anyway).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayClaims {
    /// Random, unique per session (both sides' tokens carry the same value): the pairing key.
    #[serde(rename = "sid")]
    pub session: String,
    pub side: RelaySide,
    pub device: DeviceId,
    pub user: UserId,
    pub kind: SessionKind,
    /// The user's rights on the device's group when the session was created.
    pub rights: Rights,
    /// Unix milliseconds after which the token no longer admits anyone.
    #[serde(rename = "exp")]
    pub expires_ms: i64,
    /// Set when a guest opens the session with a sharing link (`crate::share`): the link's id.
    /// The console end then needs no login cookie; the session lives as long as the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    /// Set for a chat between two users (`inviteChat`): the invitee, whose login the agent-side
    /// end must come with (there is no agent; `device` is then `user:<invitee>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<UserId>,
    /// The server that minted the session and holds its meeting point, when several servers
    /// share the work: an end that reaches another server is passed on to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<String>,
}

impl RelayClaims {
    pub fn is_expired(&self, now_ms: i64) -> bool {
        now_ms >= self.expires_ms
    }

    /// The same session, seen from the other side.
    pub fn for_side(&self, side: RelaySide) -> RelayClaims {
        RelayClaims {
            side,
            ..self.clone()
        }
    }
}

/// The relay URL (a path; each side resolves it against the server it talks to) for a token.
/// Tokens use only URL-safe characters.
pub fn relay_url(token: &str) -> String {
    format!("{RELAY_PATH}?id={token}")
}

/// Server → agent, on the agent's control channel: "join this session", sent as
/// [`ServerToAgent::Tunnel`](crate::agent_proto::ServerToAgent::Tunnel):
/// `{"action":"tunnel","url":"/meshrelay.ashx?id=…","kind":"terminal","rights":…,"user":"alice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelRequest {
    /// A path on the server the agent is connected to.
    pub url: String,
    pub kind: SessionKind,
    /// What the user may do; the agent limits the session to these.
    pub rights: Rights,
    /// Who asked, for the agent's log and for consent prompts.
    pub user: UserId,
    /// Present when the session may move to a direct WebRTC path: the ICE servers to gather
    /// candidates with. Absent (stock MeshAgents never see it) means stay on the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct: Option<DirectPath>,
    /// Present when the group's policy wants the person at the device told or asked (`consent`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<consent::ConsentRequest>,
    /// Desktop sessions: the device's group lets viewers listen to its microphone (never unseen:
    /// the agent shows the person at the device a notice while it does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub microphone: bool,
}

impl TunnelRequest {
    /// The whole message, `action` included.
    pub fn to_json(&self) -> String {
        crate::agent_proto::to_json(&ServerToAgent::Tunnel(self.clone()))
    }
}

/// Reads a `tunnel` message; `None` for anything else.
pub fn parse_tunnel(text: &str) -> Option<TunnelRequest> {
    match crate::agent_proto::parse_from_server(text) {
        Some(ServerToAgent::Tunnel(request)) => Some(request),
        _ => None,
    }
}

/// The `result` of a successful `createSession`: where the console connects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct SessionTicket {
    /// A path on this server: `/meshrelay.ashx?id=TOKEN`; connect with the session cookie.
    pub url: String,
    pub device: DeviceId,
    pub kind: SessionKind,
    /// The rights the agent was told.
    pub rights: Rights,
    /// Unix milliseconds; the console must connect before then.
    pub expires_ms: i64,
    /// Present when the session may move to a direct path (the device group allows direct
    /// connections); `None` keeps it on the relay.
    pub direct: Option<DirectPath>,
    /// What the person at the device is shown or asked: with `prompt`, wait for the agent's
    /// `consent` `granted` frame before sending anything (`consent.rs`).
    #[serde(default)]
    pub consent: consent::ConsentMode,
    /// Chat sessions: whom the messenger window opened for on the device (the agent's report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub chat: Option<chat::ChatWindow>,
}

/// What a session's two ends need to try a direct path: the shape of WebRTC's `RTCConfiguration`,
/// so the browser console passes it to `new RTCPeerConnection(..)` unchanged, and the agent reads
/// the same object from its tunnel request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DirectPath {
    pub ice_servers: Vec<IceServer>,
    /// Viewers reach the device through the TURN server only (a browser's
    /// `iceTransportPolicy: "relay"`), so the device never learns a viewer's address; a viewer
    /// without a TURN client (tetherctl) stays relayed. The server's `[turn] relay_only`.
    #[serde(default)]
    pub relay_only: bool,
}

/// One STUN or TURN server (WebRTC's `RTCIceServer`): `stun:host:port`, or `turn:`/`turns:` URLs
/// with time-limited credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> RelayClaims {
        RelayClaims {
            session: "s1".into(),
            side: RelaySide::Console,
            device: "dev@$".into(),
            user: "alice".into(),
            kind: SessionKind::Terminal,
            rights: Rights::TERMINAL,
            expires_ms: 1_000,
            share: None,
            peer: None,
            home: None,
        }
    }

    #[test]
    fn kinds_parse_and_print_their_wire_names() {
        for kind in SessionKind::ALL {
            assert_eq!(kind.as_str().parse::<SessionKind>().unwrap(), kind);
            assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{kind}\""));
        }
        assert_eq!("Files".parse::<SessionKind>().unwrap(), SessionKind::Files);
        assert!("shell".parse::<SessionKind>().is_err());
    }

    #[test]
    fn each_kind_needs_its_right() {
        use SessionKind::*;
        assert!(Terminal.allowed_by(Rights::TERMINAL));
        assert!(!Terminal.allowed_by(Rights::FILES.union(Rights::VIEW)));
        assert!(Files.allowed_by(Rights::FILES));
        assert!(Desktop.allowed_by(Rights::REMOTE_CONTROL));
        assert!(Desktop.allowed_by(Rights::DESKTOP_VIEW_ONLY));
        assert!(!Desktop.allowed_by(Rights::TERMINAL));
        assert!(Chat.allowed_by(Rights::CHAT));
        for kind in SessionKind::ALL {
            assert!(kind.allowed_by(Rights::FULL));
            assert!(!kind.allowed_by(Rights::VIEW));
            assert!(kind.allowed_by(kind.required_right()));
        }
    }

    #[test]
    fn claims_expire_at_their_deadline() {
        let c = claims();
        assert!(!c.is_expired(999));
        assert!(c.is_expired(1_000));
        let agent = c.for_side(RelaySide::Agent);
        assert_eq!(agent.side, RelaySide::Agent);
        assert_eq!(agent.session, c.session);
        assert_eq!(RelaySide::Agent.other(), RelaySide::Console);
    }

    #[test]
    fn claims_use_short_names() {
        let json = serde_json::to_value(claims()).unwrap();
        assert_eq!(json["sid"], "s1");
        assert_eq!(json["exp"], 1_000);
        assert_eq!(json["side"], "console");
        let back: RelayClaims = serde_json::from_value(json).unwrap();
        assert_eq!(back, claims());
    }

    #[test]
    fn tunnel_requests_are_tagged_and_round_trip() {
        let request = TunnelRequest {
            url: relay_url("abc.def"),
            kind: SessionKind::Files,
            rights: Rights(3),
            user: "alice".into(),
            direct: None,
            consent: None,
            microphone: false,
        };
        let text = request.to_json();
        // Without a direct path the message is exactly what it was before direct sessions.
        assert_eq!(
            text,
            r#"{"action":"tunnel","url":"/meshrelay.ashx?id=abc.def","kind":"files","rights":3,"user":"alice"}"#
        );
        assert_eq!(parse_tunnel(&text), Some(request.clone()));
        let direct = TunnelRequest {
            direct: Some(DirectPath {
                ice_servers: vec![IceServer {
                    urls: vec!["stun:tether.example:443".into()],
                    username: None,
                    credential: None,
                }],
                relay_only: false,
            }),
            ..request
        };
        let text = direct.to_json();
        assert!(
            text.ends_with(r#","direct":{"iceServers":[{"urls":["stun:tether.example:443"]}],"relayOnly":false}}"#),
            "{text}"
        );
        assert_eq!(parse_tunnel(&text), Some(direct));
        assert_eq!(parse_tunnel(r#"{"action":"ping"}"#), None);
        assert_eq!(parse_tunnel("not json"), None);
    }
}
