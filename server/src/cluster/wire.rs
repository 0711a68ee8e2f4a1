//! What servers say to each other over NATS, and on which subjects. Everything is JSON; every
//! subject starts with the configured prefix (`cluster_subject_prefix`, default `tether`), so
//! several clusters (or test runs) can share one NATS server.
//!
//! | subject | payload | who listens |
//! |---|---|---|
//! | `P.presence` | [`PresenceMessage`] | every server (`presence.rs`) |
//! | `P.events` | [`ForwardedEvent`] | every server: pushed to its own consoles |
//! | `P.signals` | [`ForwardedSignal`] | every server (logouts close sockets everywhere) |
//! | `P.agent.SERVER` | [`AgentMessage`] | the server holding the agent |

use serde::{Deserialize, Serialize};
use tether_common::control::Event;
use tether_common::ids::{DeviceId, GroupId, UserId};

use crate::events::{Audience, Signal};

/// A server's name in the cluster: random per process, so a restarted server is a new one and
/// the claims of its previous life expire with it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct ServerId(String);

impl ServerId {
    pub(crate) fn random() -> ServerId {
        ServerId(hex::encode(rand::random::<[u8; 8]>()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for ServerId {
    fn from(id: &str) -> ServerId {
        ServerId(id.to_owned())
    }
}

impl std::fmt::Display for ServerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One device a server holds, in a full list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HeldDevice {
    pub device: DeviceId,
    pub group: GroupId,
    pub since_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub(crate) enum PresenceMessage {
    /// Every few seconds: alive, where peers reach it, and the digest of what it holds.
    Heartbeat {
        server: ServerId,
        address: String,
        count: u64,
        digest: u64,
        /// Who has a console open on it (for the messenger's "who is here").
        #[serde(default)]
        listeners: Vec<UserId>,
    },
    Online {
        server: ServerId,
        device: DeviceId,
        group: GroupId,
        since_ms: i64,
    },
    Offline {
        server: ServerId,
        device: DeviceId,
    },
    /// Please publish your full list (a newcomer, or a digest mismatch). `to: None` asks all.
    SyncRequest {
        from: ServerId,
        to: Option<ServerId>,
    },
    /// A chunk of a server's full list.
    Holdings {
        server: ServerId,
        epoch: u64,
        devices: Vec<HeldDevice>,
        last: bool,
    },
    /// The server is stopping: its agents will come back through the others.
    Gone {
        server: ServerId,
    },
    /// Close the device's agent connection wherever it is (the device was deleted).
    Disconnect {
        device: DeviceId,
    },
    /// Close every agent connection of the group (the group was deleted).
    DisconnectGroup {
        group: GroupId,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardedEvent {
    pub origin: ServerId,
    pub event: Event,
    pub audience: Audience,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ForwardedSignal {
    pub origin: ServerId,
    pub signal: Signal,
}

/// A message for an agent connected to another server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AgentMessage {
    pub device: DeviceId,
    #[serde(flatten)]
    pub body: AgentBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AgentBody {
    Text(String),
    Binary(Vec<u8>),
}

/// The subjects of one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(prefix: &str) -> Subjects {
        Subjects {
            prefix: prefix.to_owned(),
        }
    }

    pub(crate) fn presence(&self) -> String {
        format!("{}.presence", self.prefix)
    }

    pub(crate) fn events(&self) -> String {
        format!("{}.events", self.prefix)
    }

    pub(crate) fn signals(&self) -> String {
        format!("{}.signals", self.prefix)
    }

    pub(crate) fn agent(&self, server: &ServerId) -> String {
        format!("{}.agent.{}", self.prefix, server.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_messages_round_trip_as_tagged_json() {
        let message = PresenceMessage::Online {
            server: ServerId::from("a1"),
            device: DeviceId::from("d"),
            group: GroupId::from("g"),
            since_ms: 7,
        };
        let json = serde_json::to_string(&message).unwrap();
        assert!(json.contains(r#""t":"online""#) && json.contains(r#""sinceMs":7"#));
        assert_eq!(
            serde_json::from_str::<PresenceMessage>(&json).unwrap(),
            message
        );
        let agent = AgentMessage {
            device: DeviceId::from("d"),
            body: AgentBody::Text("{}".into()),
        };
        let back: AgentMessage =
            serde_json::from_str(&serde_json::to_string(&agent).unwrap()).unwrap();
        assert_eq!(back.body, agent.body);
    }
}
