//! The console ↔ server control channel (`WSS /control`): JSON text frames.
//!
//! A client sends `{"action": "...", "id": 7, ...arguments}`. The server answers every request with
//! exactly one [`Reply`] carrying the same `action` and `id`, and pushes [`Event`]s as
//! `{"action": "event", "event": {...}}` whenever something the client may see changes. Every
//! field name on this channel is camelCase; enum *values* (error codes, invite statuses, session
//! kinds) keep their own spelling.
//!
//! Each action is a struct of its arguments ([`requests`]) implementing [`Action`], which names
//! its result type. The one list below ([`control_actions!`](action::control_actions)) generates
//! [`RequestBody`], [`ACTIONS`], the trait impls and the console's TypeScript `Actions` map, so
//! adding an action is: a struct, one line there, the server function.
//!
//! | action | arguments | result |
//! |---|---|---|
//! | `serverInfo` | [`GetServerInfo`] | [`ServerInfo`] |
//! | `whoAmI` | [`GetWhoAmI`] | [`WhoAmI`] |
//! | `listGroups` | [`ListGroups`] | `[GroupInfo]` (the groups the caller can see) |
//! | `createGroup`, `editGroup`, `setGroupRights` | [`CreateGroup`], [`EditGroup`], [`SetGroupRights`] | the [`GroupInfo`] as it is now |
//! | `deleteGroup` | [`DeleteGroup`] | [`Deleted`]`<GroupId>` |
//! | `listDevices` | [`ListDevices`] | `[DeviceInfo]` |
//! | `renameDevice` | [`RenameDevice`] | the [`DeviceInfo`] as it is now |
//! | `deleteDevice` | [`DeleteDevice`] | [`Deleted`]`<DeviceId>` |
//! | `uninstallAgent` | [`UninstallAgent`] | the [`DeviceInfo`] as it is now (online until the agent is gone) |
//! | `listUsers` | [`ListUsers`] | `[UserInfo]` |
//! | `addUser`, `resetPassword`, `editUser` | [`AddUser`], [`ResetPassword`], [`EditUser`] | the [`UserInfo`] as it is now |
//! | `removeUser` | [`RemoveUser`] | [`Deleted`]`<UserId>` |
//! | `changePassword` | [`ChangePassword`] | [`PasswordChanged`] (`{}`) |
//! | `beginTotp`, `confirmTotp` | [`BeginTotp`], [`ConfirmTotp`] | [`TotpSetup`] (shown once), then [`BackupCodes`] |
//! | `disableTotp`, `resetSecondFactor` | [`DisableTotp`], [`ResetSecondFactor`] | the [`UserInfo`] as it is now |
//! | `newBackupCodes` | [`NewBackupCodes`] | [`BackupCodes`] |
//! | `beginPasskey`, `finishPasskey`, `removePasskey` | [`BeginPasskey`], [`FinishPasskey`], [`RemovePasskey`] | [`PasskeyOptions`], then the [`UserInfo`] as it is now |
//! | `listEvents` | [`ListEvents`] | `[EventRecord]`, newest first |
//! | `listRecordings` | [`ListRecordings`] | `[RecordingInfo]`, newest first |
//! | `createSession` | [`CreateSession`] | [`SessionTicket`](crate::relay::SessionTicket) (see [`crate::relay`]) |
//! | `createShare` | [`CreateShare`] | [`ShareLink`](crate::share::ShareLink): the guest link, shown once |
//! | `listShares`, `revokeShare` | [`ListShares`], [`RevokeShare`] | `[ShareInfo]`, newest first; the [`ShareInfo`](crate::share::ShareInfo) as it is now |
//! | `agentConfig`, `rotateEnrolmentKey`, `importEnrolmentKey` | [`GetAgentConfig`], [`RotateEnrolmentKey`], [`ImportEnrolmentKey`] | [`AgentConfig`](crate::install::AgentConfig): the group's `.msh` |
//! | `createCiraLogin` | [`CreateCiraLogin`] | [`CiraLogin`]: the group's new login for Intel AMT (CIRA) |
//! | `setAmtAdmin` | [`SetAmtAdmin`] | the [`DeviceInfo`] as it is now |
//! | `amtPower` | [`AmtPower`] | [`AmtPowerState`], after the change |
//! | `openAmtWeb` | [`OpenAmtWeb`] | [`AmtWebLink`]: where the machine's own web UI is proxied |
//! | `createInvite` | [`CreateInvite`] | [`Invite`](crate::install::Invite) (see [`crate::install`]) |
//! | `listInvites` | [`ListInvites`] | `[InviteInfo]` ([`crate::install::InviteInfo`]), oldest first |
//! | `revokeInvite` | [`RevokeInvite`] | the [`InviteInfo`](crate::install::InviteInfo) as it is now |
//! | `listBlockedDevices` | [`ListBlockedDevices`] | `[BlockedDevice]` ([`crate::install::BlockedDevice`]) |
//! | `unblockDevice` | [`UnblockDevice`] | [`Unblocked`] |
//! | `agentUpdates` | [`GetAgentUpdates`] | [`AgentUpdates`]: the version shipped and the campaign |
//! | `startAgentUpdate`, `pauseAgentUpdate`, `resumeAgentUpdate`, `cancelAgentUpdate` | [`StartAgentUpdate`], [`PauseAgentUpdate`], [`ResumeAgentUpdate`], [`CancelAgentUpdate`] | the [`CampaignInfo`] as it is now |
//! | `rollbackAgent` | [`RollbackAgent`] | the [`DeviceInfo`] as it is now (the agent reconnects on its previous version) |
//!
//! A group the caller may not see answers `not_found`, exactly as a group that does not exist, so
//! that ids cannot be probed; `forbidden` means "you can see it but may not do that".

mod action;
mod events;
mod reply;
pub mod requests;
mod results;
#[cfg(test)]
mod typescript;
#[cfg(test)]
mod wire_casing;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use action::Action;
pub use events::{Event, EventFrame, EventTag};
pub use reply::{ErrorBody, ErrorCode, ParseError, Reply, ReplyError};
pub use requests::*;
pub use results::{
    AgentDetails, AmtPowerState, AmtWebLink, BackupCodes, ChatDeclined, ChatPeer, CiraLogin,
    Deleted, DeviceInfo, EventRecord, GroupInfo, GroupMember, PasskeyOptions, PasswordChanged,
    RecordingInfo, ServerInfo, TotpSetup, Unblocked, UserInfo, WhoAmI,
};

use crate::agent_update::{AgentUpdates, CampaignInfo};
use crate::ids::{DeviceId, GroupId, UserId};
use crate::install::{AgentConfig, BlockedDevice, Invite, InviteInfo};
use crate::relay::SessionTicket;
use crate::share::{ShareInfo, ShareLink};

/// Largest text frame the server accepts on `/control`; bigger ones close the connection.
pub const MAX_CONTROL_FRAME: usize = 64 * 1024;

/// Bumped whenever a change would break an older client. 2: every field name is camelCase, and
/// `DeviceInfo.agent` is a typed [`AgentDetails`] or `null`.
pub const PROTOCOL_VERSION: u32 = 2;

/// One request: `id` is chosen by the client and echoed in the reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

action::control_actions! {
    "serverInfo" => GetServerInfo -> ServerInfo,
    "whoAmI" => GetWhoAmI -> WhoAmI,
    "listGroups" => ListGroups -> Vec<GroupInfo>,
    "createGroup" => CreateGroup -> GroupInfo,
    "editGroup" => EditGroup -> GroupInfo,
    "deleteGroup" => DeleteGroup -> Deleted<GroupId>,
    "listDevices" => ListDevices -> Vec<DeviceInfo>,
    "renameDevice" => RenameDevice -> DeviceInfo,
    "uninstallAgent" => UninstallAgent -> DeviceInfo,
    "deleteDevice" => DeleteDevice -> Deleted<DeviceId>,
    "listUsers" => ListUsers -> Vec<UserInfo>,
    "addUser" => AddUser -> UserInfo,
    "removeUser" => RemoveUser -> Deleted<UserId>,
    "resetPassword" => ResetPassword -> UserInfo,
    "editUser" => EditUser -> UserInfo,
    "changePassword" => ChangePassword -> PasswordChanged,
    "beginTotp" => BeginTotp -> TotpSetup,
    "confirmTotp" => ConfirmTotp -> BackupCodes,
    "disableTotp" => DisableTotp -> UserInfo,
    "newBackupCodes" => NewBackupCodes -> BackupCodes,
    "resetSecondFactor" => ResetSecondFactor -> UserInfo,
    "beginPasskey" => BeginPasskey -> PasskeyOptions,
    "finishPasskey" => FinishPasskey -> UserInfo,
    "removePasskey" => RemovePasskey -> UserInfo,
    "setGroupRights" => SetGroupRights -> GroupInfo,
    "listEvents" => ListEvents -> Vec<EventRecord>,
    "listRecordings" => ListRecordings -> Vec<RecordingInfo>,
    "createSession" => CreateSession -> SessionTicket,
    "createShare" => CreateShare -> ShareLink,
    "listShares" => ListShares -> Vec<ShareInfo>,
    "revokeShare" => RevokeShare -> ShareInfo,
    "agentConfig" => GetAgentConfig -> AgentConfig,
    "createInvite" => CreateInvite -> Invite,
    "rotateEnrolmentKey" => RotateEnrolmentKey -> AgentConfig,
    "importEnrolmentKey" => ImportEnrolmentKey -> AgentConfig,
    "createCiraLogin" => CreateCiraLogin -> CiraLogin,
    "setAmtAdmin" => SetAmtAdmin -> DeviceInfo,
    "amtPower" => AmtPower -> AmtPowerState,
    "openAmtWeb" => OpenAmtWeb -> AmtWebLink,
    "listInvites" => ListInvites -> Vec<InviteInfo>,
    "revokeInvite" => RevokeInvite -> InviteInfo,
    "listBlockedDevices" => ListBlockedDevices -> Vec<BlockedDevice>,
    "unblockDevice" => UnblockDevice -> Unblocked,
    "agentUpdates" => GetAgentUpdates -> AgentUpdates,
    "startAgentUpdate" => StartAgentUpdate -> CampaignInfo,
    "pauseAgentUpdate" => PauseAgentUpdate -> CampaignInfo,
    "resumeAgentUpdate" => ResumeAgentUpdate -> CampaignInfo,
    "cancelAgentUpdate" => CancelAgentUpdate -> CampaignInfo,
    "rollbackAgent" => RollbackAgent -> DeviceInfo,
    "listChatPeers" => ListChatPeers -> Vec<ChatPeer>,
    "inviteChat" => InviteChat -> SessionTicket,
    "declineChat" => DeclineChat -> ChatDeclined,
}

impl Request {
    /// The request for `action` with id `id`.
    pub fn new(id: u64, action: impl Action) -> Request {
        Request {
            id,
            body: action.into(),
        }
    }
}

/// The two fields every request has, read leniently (any JSON type) so that a wrong type is
/// reported as "missing or non-numeric" rather than as unreadable JSON.
#[derive(Default, Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    action: Value,
}

/// Parses one text frame. On failure returns the request id (when one could be read) so the reply
/// can still be matched by the client.
pub fn parse_request(text: &str) -> Result<Request, (Option<u64>, Option<String>, ParseError)> {
    let value: Value = serde_json::from_str(text).map_err(|_| (None, None, ParseError::NotJson))?;
    if !value.is_object() {
        return Err((None, None, ParseError::NotJson));
    }
    // Read on their own first, so that a reply can echo them even when the arguments are bad.
    let envelope = Envelope::deserialize(&value).unwrap_or_default();
    let id = envelope.id.as_u64();
    let action = envelope.action.as_str().map(str::to_owned);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rights::Rights;

    #[test]
    fn parses_a_request_with_arguments() {
        let r = parse_request(r#"{"action":"createGroup","id":3,"name":"Office"}"#).unwrap();
        assert_eq!(r.id, 3);
        assert_eq!(
            r.body,
            RequestBody::CreateGroup(CreateGroup {
                name: "Office".into(),
                description: String::new()
            })
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
    fn argument_free_actions_and_unknown_arguments() {
        let r = parse_request(r#"{"action":"serverInfo","id":1}"#).unwrap();
        assert_eq!(r.body, RequestBody::GetServerInfo(GetServerInfo {}));
        let (id, action, e) =
            parse_request(r#"{"action":"createGroup","id":5,"name":"x","colour":"red"}"#)
                .unwrap_err();
        assert_eq!((id, action.as_deref()), (Some(5), Some("createGroup")));
        assert!(matches!(e, ParseError::BadArguments { .. }), "{e:?}");
        // Arguments are camelCase on the wire; the old snake_case spelling is refused.
        let (_, _, e) = parse_request(
            r#"{"action":"addUser","id":6,"name":"a","password":"p","site_admin":true}"#,
        )
        .unwrap_err();
        assert!(matches!(e, ParseError::BadArguments { .. }), "{e:?}");
        let r = parse_request(
            r#"{"action":"addUser","id":6,"name":"a","password":"p","siteAdmin":true}"#,
        )
        .unwrap();
        assert!(matches!(
            r.body,
            RequestBody::AddUser(AddUser {
                site_admin: true,
                ..
            })
        ));
    }

    #[test]
    fn a_typed_request_round_trips_under_its_action_name() {
        let request = Request::new(
            8,
            CreateInvite {
                group: "g".into(),
                expires_minutes: Some(30),
                max_devices: None,
            },
        );
        let text = serde_json::to_string(&request).unwrap();
        assert_eq!(
            text,
            r#"{"id":8,"action":"createInvite","group":"g","expiresMinutes":30}"#
        );
        assert_eq!(parse_request(&text).unwrap(), request);
        assert_eq!(<CreateInvite as Action>::NAME, request.body.action());
    }

    #[test]
    fn a_reply_reads_back_as_the_actions_output() {
        let reply = Reply::ok("deleteGroup", 3, serde_json::json!({"deleted": "g1"}));
        let deleted: <DeleteGroup as Action>::Output = reply.into_result().unwrap();
        assert_eq!(deleted.deleted, GroupId::from("g1"));
        let refused = Reply::error(Some("deleteGroup"), Some(3), ErrorCode::NotFound, "no");
        let error = refused.into_result::<Deleted<GroupId>>().unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
        let odd = Reply::ok("deleteGroup", 3, serde_json::json!([1]));
        assert!(matches!(
            odd.into_result::<Deleted<GroupId>>(),
            Err(ReplyError::Unexpected { .. })
        ));
    }

    #[test]
    fn request_action_names_match_the_list() {
        let body = RequestBody::from(SetGroupRights {
            group: "g".into(),
            user: "u".into(),
            rights: Rights::VIEW,
        });
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
