//! The console ↔ server control channel (`WSS /control`): JSON text frames.
//!
//! A client sends `{"action": "...", "id": 7, ...arguments}`. The server answers every request with
//! exactly one [`Reply`] carrying the same `action` and `id`, and pushes [`Event`]s as
//! `{"action": "event", "event": {...}}` whenever something the client may see changes.
//!
//! `result` of a successful reply, per action:
//!
//! | action | result |
//! |---|---|
//! | `serverInfo` | [`ServerInfo`] |
//! | `whoAmI` | [`WhoAmI`] |
//! | `listGroups` | `[GroupInfo]` (the groups the caller can see) |
//! | `createGroup`, `editGroup`, `setGroupRights` | the [`GroupInfo`] as it is now |
//! | `listDevices` | `[DeviceInfo]` |
//! | `renameDevice` | the [`DeviceInfo`] as it is now |
//! | `listUsers` | `[UserInfo]` |
//! | `addUser`, `resetPassword`, `editUser` | the [`UserInfo`] as it is now |
//! | `listEvents` | `[EventRecord]`, newest first |
//! | `deleteGroup`, `deleteDevice`, `removeUser` | `{"deleted": "<id>"}` |
//! | `changePassword` | `{}` |
//! | `createSession` | [`SessionTicket`](crate::relay::SessionTicket) (see [`crate::relay`]) |
//! | `agentConfig`, `rotateEnrolmentKey` | [`AgentConfig`](crate::install::AgentConfig): the group's `.msh` |
//! | `createInvite` | [`Invite`](crate::install::Invite) (see [`crate::install`]) |
//! | `listInvites` | `[InviteInfo]` ([`crate::install::InviteInfo`]), oldest first |
//! | `revokeInvite` | the [`InviteInfo`](crate::install::InviteInfo) as it is now |
//! | `listBlockedDevices` | `[BlockedDevice]` ([`crate::install::BlockedDevice`]) |
//! | `unblockDevice` | `{"unblocked": "<device id>"}` |
//!
//! A group the caller may not see answers `not_found`, exactly as a group that does not exist, so
//! that ids cannot be probed; `forbidden` means "you can see it but may not do that".

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{DeviceId, GroupId, UserId};
use crate::rights::Rights;

/// Largest text frame the server accepts on `/control`; bigger ones close the connection.
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// Bumped whenever a change would break an older client.
pub const PROTOCOL_VERSION: u32 = 1;

/// One request: `id` is chosen by the client and echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "camelCase", deny_unknown_fields)]
pub enum RequestBody {
    ServerInfo,
    /// Who am I, and what may I do.
    WhoAmI,
    ListGroups,
    CreateGroup {
        name: String,
        #[serde(default)]
        description: String,
    },
    EditGroup {
        group: GroupId,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        description: Option<String>,
    },
    DeleteGroup {
        group: GroupId,
    },
    ListDevices {
        #[serde(default)]
        group: Option<GroupId>,
    },
    RenameDevice {
        device: DeviceId,
        name: String,
    },
    /// Removes a device; with `block`, its id is also refused if the agent tries to enrol again.
    DeleteDevice {
        device: DeviceId,
        #[serde(default)]
        block: bool,
    },
    ListUsers,
    AddUser {
        name: String,
        password: String,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        site_admin: bool,
    },
    RemoveUser {
        user: UserId,
    },
    ResetPassword {
        user: UserId,
        password: String,
    },
    /// Changes another account's e-mail address or site-administrator flag (site admins only).
    EditUser {
        user: UserId,
        #[serde(default)]
        email: Option<String>,
        #[serde(default)]
        site_admin: Option<bool>,
    },
    /// Change one's own password; the old one must be given.
    ChangePassword {
        old_password: String,
        new_password: String,
    },
    /// Sets `user`'s rights on `group`; `Rights::NONE` removes the user from the group.
    SetGroupRights {
        group: GroupId,
        user: UserId,
        rights: Rights,
    },
    ListEvents {
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        group: Option<GroupId>,
        #[serde(default)]
        device: Option<DeviceId>,
    },
    /// Opens a relayed session to a device (see [`crate::relay`]).
    CreateSession {
        device: DeviceId,
        kind: crate::relay::SessionKind,
    },
    /// The group's `.msh` install file (needs MANAGE_GROUP or MANAGE_DEVICES on it).
    AgentConfig {
        group: GroupId,
    },
    /// A short-lived token that lets a machine download the agent and the group's `.msh`
    /// without logging in (same rights as `agentConfig`). Minutes default to
    /// [`DEFAULT_INVITE_MINUTES`](crate::install::DEFAULT_INVITE_MINUTES), at most
    /// [`MAX_INVITE_MINUTES`](crate::install::MAX_INVITE_MINUTES).
    CreateInvite {
        group: GroupId,
        #[serde(default)]
        expires_minutes: Option<u32>,
        /// At most this many new devices may enrol with it (none: no limit but the expiry).
        #[serde(default)]
        max_devices: Option<u32>,
    },
    /// A new enrolment key for the group (same rights as `agentConfig`): `.msh` files handed out
    /// before admit no new device; enrolled devices keep connecting.
    RotateEnrolmentKey {
        group: GroupId,
    },
    /// The group's invites, revoked and expired ones included (same rights as `agentConfig`).
    ListInvites {
        group: GroupId,
    },
    /// Ends an invite at once: its links and its `.msh` stop working.
    RevokeInvite {
        invite: String,
    },
    /// Device ids kept from enrolling again, listed under the group they were removed from.
    ListBlockedDevices {
        group: GroupId,
    },
    UnblockDevice {
        device: DeviceId,
    },
}

impl RequestBody {
    /// The `action` name this request travels under.
    pub fn action(&self) -> &'static str {
        match self {
            RequestBody::ServerInfo => "serverInfo",
            RequestBody::WhoAmI => "whoAmI",
            RequestBody::ListGroups => "listGroups",
            RequestBody::CreateGroup { .. } => "createGroup",
            RequestBody::EditGroup { .. } => "editGroup",
            RequestBody::DeleteGroup { .. } => "deleteGroup",
            RequestBody::ListDevices { .. } => "listDevices",
            RequestBody::RenameDevice { .. } => "renameDevice",
            RequestBody::DeleteDevice { .. } => "deleteDevice",
            RequestBody::ListUsers => "listUsers",
            RequestBody::AddUser { .. } => "addUser",
            RequestBody::RemoveUser { .. } => "removeUser",
            RequestBody::ResetPassword { .. } => "resetPassword",
            RequestBody::EditUser { .. } => "editUser",
            RequestBody::ChangePassword { .. } => "changePassword",
            RequestBody::SetGroupRights { .. } => "setGroupRights",
            RequestBody::ListEvents { .. } => "listEvents",
            RequestBody::CreateSession { .. } => "createSession",
            RequestBody::AgentConfig { .. } => "agentConfig",
            RequestBody::CreateInvite { .. } => "createInvite",
            RequestBody::RotateEnrolmentKey { .. } => "rotateEnrolmentKey",
            RequestBody::ListInvites { .. } => "listInvites",
            RequestBody::RevokeInvite { .. } => "revokeInvite",
            RequestBody::ListBlockedDevices { .. } => "listBlockedDevices",
            RequestBody::UnblockDevice { .. } => "unblockDevice",
        }
    }
}

/// Every action name the server knows, so that "unknown action" can be told from "bad arguments".
pub const ACTIONS: &[&str] = &[
    "serverInfo",
    "whoAmI",
    "listGroups",
    "createGroup",
    "editGroup",
    "deleteGroup",
    "listDevices",
    "renameDevice",
    "deleteDevice",
    "listUsers",
    "addUser",
    "removeUser",
    "resetPassword",
    "editUser",
    "changePassword",
    "setGroupRights",
    "listEvents",
    "createSession",
    "agentConfig",
    "createInvite",
    "rotateEnrolmentKey",
    "listInvites",
    "revokeInvite",
    "listBlockedDevices",
    "unblockDevice",
];

/// Why a request or frame could not be read, before any action ran.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the frame is not a JSON object")]
    NotJson,
    #[error("missing or non-numeric \"id\"")]
    MissingId,
    #[error("missing \"action\"")]
    MissingAction,
    #[error("unknown action \"{0}\"")]
    UnknownAction(String),
    #[error("bad arguments for \"{action}\": {detail}")]
    BadArguments { action: String, detail: String },
}

impl ParseError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ParseError::UnknownAction(_) => ErrorCode::UnknownAction,
            _ => ErrorCode::BadRequest,
        }
    }
}

/// Parses one text frame. On failure returns the request id (when one could be read) so the reply
/// can still be matched by the client.
pub fn parse_request(text: &str) -> Result<Request, (Option<u64>, Option<String>, ParseError)> {
    let value: Value = serde_json::from_str(text).map_err(|_| (None, None, ParseError::NotJson))?;
    let Some(object) = value.as_object() else {
        return Err((None, None, ParseError::NotJson));
    };
    let id = object.get("id").and_then(Value::as_u64);
    let action = object
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(id) = id else {
        return Err((None, action, ParseError::MissingId));
    };
    let Some(action) = action else {
        return Err((Some(id), None, ParseError::MissingAction));
    };
    if !ACTIONS.contains(&action.as_str()) {
        return Err((
            Some(id),
            Some(action.clone()),
            ParseError::UnknownAction(action),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let detail = e.to_string();
        (
            Some(id),
            Some(action.clone()),
            ParseError::BadArguments { action, detail },
        )
    })
}

/// Machine-readable error codes; `message` in [`ErrorBody`] is for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    UnknownAction,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// Echo of the request's action (empty when it could not be read).
    pub action: String,
    /// Echo of the request's id (absent when it could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    pub fn ok(action: &str, id: u64, result: Value) -> Reply {
        Reply {
            action: action.to_owned(),
            id: Some(id),
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    pub fn error(
        action: Option<&str>,
        id: Option<u64>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Reply {
        Reply {
            action: action.unwrap_or_default().to_owned(),
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
        }
    }
}

/// A pushed event frame: `{"action": "event", "event": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFrame {
    pub action: EventTag,
    pub event: Event,
}

/// The constant `"event"` tag of [`EventFrame`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
}

/// Something that happened, pushed to every console allowed to see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub protocol: u32,
    /// Hex SHA-384 of the agent-server certificate's public key: the `ServerID` in `.msh` files.
    pub agent_cert_hash: String,
    /// Hex SHA-384 of the web certificate (full DER), as agents pin it.
    pub web_cert_hash: String,
    pub https_port: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhoAmI {
    pub user: UserInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub id: GroupId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Every user with rights on this group.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub user: UserId,
    pub rights: Rights,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub name: String,
    pub group: GroupId,
    pub online: bool,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub hostname: String,
    /// Unix seconds of the last time the agent was connected (now, when online); 0 if never.
    pub lastseen: i64,
    /// What the agent reported about itself (hostname, OS, addresses, users, …).
    #[serde(default)]
    pub agent: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub site_admin: bool,
    pub created: i64,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Monotonic per server: a later record has a larger id.
    pub id: u64,
    /// Unix milliseconds.
    pub time: i64,
    /// What happened, e.g. `login`, `login_failed`, `group_created`, `device_online`.
    pub kind: String,
    #[serde(default)]
    pub user: Option<UserId>,
    #[serde(default)]
    pub group: Option<GroupId>,
    #[serde(default)]
    pub device: Option<DeviceId>,
    /// A human-readable line.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_with_arguments() {
        let r = parse_request(r#"{"action":"createGroup","id":3,"name":"Office"}"#).unwrap();
        assert_eq!(r.id, 3);
        assert_eq!(
            r.body,
            RequestBody::CreateGroup {
                name: "Office".into(),
                description: String::new()
            }
        );
    }

    #[test]
    fn tells_unknown_actions_from_bad_arguments() {
        let (id, _, e) = parse_request(r#"{"action":"launchRockets","id":9}"#).unwrap_err();
        assert_eq!((id, e.code()), (Some(9), ErrorCode::UnknownAction));
        let (id, _, e) = parse_request(r#"{"action":"createGroup","id":4,"name":5}"#).unwrap_err();
        assert_eq!((id, e.code()), (Some(4), ErrorCode::BadRequest));
        assert_eq!(parse_request("[1,2]").unwrap_err().2, ParseError::NotJson);
        assert_eq!(
            parse_request(r#"{"action":"listGroups"}"#).unwrap_err().2,
            ParseError::MissingId
        );
    }

    #[test]
    fn request_action_names_match_the_list() {
        let body = RequestBody::SetGroupRights {
            group: "g".into(),
            user: "u".into(),
            rights: Rights::VIEW,
        };
        let json = serde_json::to_value(Request {
            id: 1,
            body: body.clone(),
        })
        .unwrap();
        assert_eq!(json["action"], body.action());
        assert!(ACTIONS.contains(&body.action()));
    }

    #[test]
    fn event_frames_carry_the_event_tag() {
        let frame = EventFrame::new(Event::GroupDeleted { group: "g".into() });
        let json = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            json,
            r#"{"action":"event","event":{"type":"groupDeleted","group":"g"}}"#
        );
    }
}
