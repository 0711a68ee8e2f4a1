//! What the server pushes unasked: `{"action": "event", "event": {"type": ..., ...}}`.

use serde::{Deserialize, Serialize};

use super::results::{DeviceInfo, EventRecord, GroupInfo, UserInfo};
use crate::ids::{DeviceId, GroupId, UserId};

/// A pushed event frame: `{"action": "event", "event": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct EventFrame {
    pub action: EventTag,
    pub event: Event,
}

/// The constant `"event"` tag of [`EventFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum EventTag {
    Event,
}

impl EventFrame {
    pub fn new(event: Event) -> Self {
        EventFrame {
            action: EventTag::Event,
            event,
        }
    }

    /// Reads a text frame as an event frame; `None` for anything else (a reply, say).
    pub fn parse(text: &str) -> Option<EventFrame> {
        serde_json::from_str(text).ok()
    }
}

/// Something that happened, pushed to every console allowed to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "ServerEvent"))]
pub enum Event {
    GroupCreated {
        group: GroupInfo,
    },
    /// Also sent to a user whose rights were just removed: a client drops the group when its
    /// own id is no longer among `members` (and it is not a site admin).
    GroupChanged {
        group: GroupInfo,
    },
    GroupDeleted {
        group: GroupId,
    },
    DeviceAdded {
        device: DeviceInfo,
    },
    DeviceChanged {
        device: DeviceInfo,
    },
    DeviceRemoved {
        device: DeviceId,
        group: GroupId,
    },
    DeviceOnline {
        device: DeviceId,
        group: GroupId,
    },
    DeviceOffline {
        device: DeviceId,
        group: GroupId,
    },
    UserAdded {
        user: UserInfo,
    },
    UserChanged {
        user: UserInfo,
    },
    UserRemoved {
        user: UserId,
    },
    /// An audit record was written (login, session start, …) that this console may read.
    Logged {
        record: EventRecord,
    },
    /// An agent update campaign moved on (site admins; at most about once a second).
    AgentUpdate {
        campaign: crate::agent_update::CampaignInfo,
    },
    /// Another user invites this one to chat (sent to the invitee alone): `url` is the
    /// invitee's end of the session (open it with the session cookie before `expiresMs`), or
    /// `declineChat` the `invitation`.
    ChatInvitation {
        invitation: String,
        from: UserId,
        from_name: String,
        url: String,
        expires_ms: i64,
    },
    /// The invitee turned the invitation down (sent to the inviter alone).
    ChatDeclined {
        invitation: String,
        by_name: String,
    },
}
