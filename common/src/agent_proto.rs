//! JSON messages on `/agent.ashx` after the handshake, agent ↔ server.
//!
//! Names and shapes follow MeshCentral where it has the message (`ping`/`pong`); `agentinfo` is
//! Tether's own summary of the machine, sent once per connection and again when it changes.
//! Unknown actions parse as `Unknown` so either side can grow the protocol without breaking the other.

use serde::{Deserialize, Serialize};

use crate::relay::TunnelRequest;

/// Largest JSON frame either side sends on the control channel.
pub const MAX_AGENT_JSON: usize = 1024 * 1024;

/// Version of this agent protocol, reported in [`AgentInfo::protocol`].
pub const AGENT_PROTOCOL_VERSION: u32 = 1;

// A message lives from its parse to its handling, one at a time per agent: boxing the report to
// save 200 bytes on the small variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum AgentToServer {
    AgentInfo(AgentInfo),
    Ping,
    Pong,
    /// An update offer came to nothing; the agent runs `running` still (or again).
    UpdateFailed {
        version: String,
        running: String,
        why: String,
    },
    /// What became of an `openchat`: opened for whom, or why not.
    ChatOpened(crate::relay::chat::ChatOpened),
    #[serde(other)]
    Unknown,
}

/// Everything the server sends an agent as JSON, in one type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ServerToAgent {
    Ping,
    Pong,
    /// "Join this relay session" (see [`TunnelRequest`]).
    Tunnel(TunnelRequest),
    /// "Remove yourself from this machine": asked by `by` (a user holding UNINSTALL on the
    /// device's group). The agent deletes what its installer put in place, then exits.
    Uninstall {
        by: crate::ids::UserId,
    },
    /// "Replace yourself with this version" (see [`crate::agent_update`]): the agent checks the
    /// signature, fetches and checks the binary, runs it once as a trial, then swaps and restarts.
    Update(crate::agent_update::UpdateOffer),
    /// "Go back to the version you ran before the last update" (a staged rollout paused on
    /// failures). An agent with nothing to go back to answers `updatefailed`.
    Rollback,
    /// "Open the messenger for the person at the screen" (see [`crate::relay::chat`]); the agent
    /// answers `chatopened`.
    OpenChat(crate::relay::chat::OpenChat),
    #[serde(other)]
    Unknown,
}

/// What the agent reports about its machine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    pub protocol: u32,
    pub hostname: String,
    /// e.g. "Debian GNU/Linux" (os-release `NAME`).
    pub os_name: String,
    /// e.g. "12 (bookworm)" (os-release `VERSION`, else `VERSION_ID`).
    pub os_version: String,
    /// e.g. "x86_64".
    pub arch: String,
    pub agent_version: String,
    /// What update offers must be built for, `os-arch` (e.g. `linux-x86_64`); empty from agents
    /// that cannot replace themselves (packaged ones, whose package manager updates them), which
    /// update campaigns then leave out.
    pub platform: String,
    pub interfaces: Vec<NetInterface>,
    /// Users with a login session (one entry per user, sorted).
    pub users: Vec<String>,
    pub uptime_secs: u64,
    /// The machine's SMBIOS UUID (`/sys/class/dmi/id/product_uuid`), empty when unknown. Intel
    /// AMT reports the same UUID, which is how a machine with both shows as one device.
    pub system_uuid: String,
}

impl AgentInfo {
    /// One line for device lists: "Debian GNU/Linux 12 (bookworm)".
    pub fn os_description(&self) -> String {
        format!("{} {}", self.os_name, self.os_version)
            .trim()
            .to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct NetInterface {
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`, empty when the interface has none (loopback, tunnels).
    pub mac: String,
    /// Addresses with prefix length, e.g. `192.168.1.7/24`, `fe80::1/64`.
    pub addresses: Vec<String>,
}

/// Reads one JSON frame; `None` if it is not a JSON object with a string `action`.
pub fn parse_from_agent(text: &str) -> Option<AgentToServer> {
    serde_json::from_str(text).ok()
}

pub fn parse_from_server(text: &str) -> Option<ServerToAgent> {
    serde_json::from_str(text).ok()
}

/// The text of a message, for sending.
pub fn to_json<T: Serialize>(message: &T) -> String {
    // Serialising these plain structs cannot fail (no maps with non-string keys, no foreign types).
    serde_json::to_string(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_and_pong_match_meshcentral() {
        assert_eq!(to_json(&ServerToAgent::Ping), r#"{"action":"ping"}"#);
        assert_eq!(to_json(&AgentToServer::Pong), r#"{"action":"pong"}"#);
        assert_eq!(
            parse_from_server(r#"{"action":"pong"}"#),
            Some(ServerToAgent::Pong)
        );
    }

    #[test]
    fn unknown_actions_do_not_break_parsing() {
        assert_eq!(
            parse_from_server(r#"{"action":"sysinfo","hash":"x"}"#),
            Some(ServerToAgent::Unknown)
        );
        assert_eq!(
            parse_from_agent(r#"{"action":"coreinfo","value":"1"}"#),
            Some(AgentToServer::Unknown)
        );
        assert_eq!(parse_from_agent("[1]"), None);
        assert_eq!(parse_from_agent(r#"{"value":1}"#), None);
    }

    #[test]
    fn agent_info_round_trips_and_tolerates_missing_fields() {
        let info = AgentInfo {
            protocol: AGENT_PROTOCOL_VERSION,
            hostname: "pc1".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12 (bookworm)".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            platform: "linux-x86_64".into(),
            interfaces: vec![NetInterface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                addresses: vec!["10.0.0.2/24".into()],
            }],
            users: vec!["alice".into()],
            uptime_secs: 42,
            system_uuid: "4c4c4544-0042-3510-8051-b4c04f4e3332".into(),
        };
        let text = to_json(&AgentToServer::AgentInfo(info.clone()));
        assert!(text.starts_with(r#"{"action":"agentinfo","#), "{text}");
        assert_eq!(
            parse_from_agent(&text),
            Some(AgentToServer::AgentInfo(info.clone()))
        );
        assert_eq!(info.os_description(), "Debian GNU/Linux 12 (bookworm)");
        let sparse = parse_from_agent(r#"{"action":"agentinfo","hostname":"h"}"#).unwrap();
        assert!(
            matches!(sparse, AgentToServer::AgentInfo(AgentInfo { ref hostname, .. }) if hostname == "h")
        );
    }
}
