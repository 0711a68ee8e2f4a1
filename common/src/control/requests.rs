//! One struct per control action: its arguments, exactly as they travel next to `action` and `id`.
//!
//! A request struct is named after its action (`createGroup` → [`CreateGroup`]); the three actions
//! named after what they return get a `Get` prefix so that the name stays free for the result
//! (`serverInfo` → [`GetServerInfo`] answers a [`ServerInfo`](super::ServerInfo)).
//!
//! Optional arguments are left out of the JSON when they have their default, so a client that
//! does not know them yet sends the same bytes as before.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, GroupId, UserId};
use crate::relay::SessionKind;
use crate::rights::Rights;

impl EditGroup {
    /// An edit of `group` that changes nothing yet: set the fields to change.
    pub fn of(group: GroupId) -> EditGroup {
        EditGroup {
            group,
            name: None,
            description: None,
            direct_connections: None,
            record_sessions: None,
            chat_transcripts: None,
            microphone: None,
            consent: None,
        }
    }
}

/// What `amtPower` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum AmtPowerAction {
    /// Only read the state.
    State,
    On,
    Off,
    Reset,
    /// Off, then on.
    Cycle,
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

fn is_zero_usize(value: &usize) -> bool {
    *value == 0
}

/// Declares request structs with the attributes every one of them shares: camelCase field names,
/// unknown fields refused (a misspelt argument is an error, not a silently ignored default).
macro_rules! requests {
    ($( $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* } )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        #[cfg_attr(test, derive(ts_rs::TS))]
        pub struct $name { $($body)* }
    )*};
}

requests! {
    pub struct GetServerInfo {}

    /// Who am I, and what may I do.
    pub struct GetWhoAmI {}

    pub struct ListGroups {}

    pub struct CreateGroup {
        pub name: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub description: String,
    }

    pub struct EditGroup {
        pub group: GroupId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub direct_connections: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub record_sessions: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub chat_transcripts: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub microphone: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub consent: Option<crate::relay::consent::ConsentPolicy>,
    }

    pub struct DeleteGroup {
        pub group: GroupId,
    }

    /// Sets `user`'s rights on `group`; `Rights::NONE` removes the user from the group.
    pub struct SetGroupRights {
        pub group: GroupId,
        pub user: UserId,
        pub rights: Rights,
    }

    pub struct ListDevices {
        /// Only this group's devices (all visible ones when absent).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<GroupId>,
    }

    pub struct RenameDevice {
        pub device: DeviceId,
        pub name: String,
    }

    /// Asks the device's agent to remove itself from the machine (needs UNINSTALL); the device
    /// then goes offline and stays listed until it is removed.
    pub struct UninstallAgent {
        pub device: DeviceId,
    }

    /// Removes a device; with `block`, its id is also refused if the agent tries to enrol again.
    pub struct DeleteDevice {
        pub device: DeviceId,
        #[serde(default, skip_serializing_if = "is_false")]
        pub block: bool,
    }

    pub struct ListUsers {}

    pub struct AddUser {
        pub name: String,
        pub password: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email: Option<String>,
        #[serde(default, skip_serializing_if = "is_false")]
        pub site_admin: bool,
    }

    pub struct RemoveUser {
        pub user: UserId,
    }

    pub struct ResetPassword {
        pub user: UserId,
        pub password: String,
    }

    /// Changes another account's e-mail address or site-administrator flag (site admins only).
    pub struct EditUser {
        pub user: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub email: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub site_admin: Option<bool>,
    }

    /// Change one's own password; the old one must be given.
    pub struct ChangePassword {
        pub old_password: String,
        pub new_password: String,
    }

    /// Starts setting up two-factor sign-in for oneself: a new TOTP secret, shown this once and
    /// kept pending until `confirmTotp`. Replaces any pending one.
    pub struct BeginTotp {}

    /// A code from the authenticator app turns the pending secret on; answers the backup codes,
    /// shown this once.
    pub struct ConfirmTotp {
        pub code: String,
    }

    /// Turns one's own second factor off; needs a current code or a backup code.
    pub struct DisableTotp {
        pub code: String,
    }

    /// New backup codes for oneself (the old ones stop working); needs a current code.
    pub struct NewBackupCodes {
        pub code: String,
    }

    /// Starts adding a passkey (WebAuthn) to one's own account: the options for
    /// `navigator.credentials.create`.
    pub struct BeginPasskey {
        /// What to call it ("laptop", "YubiKey").
        pub name: String,
    }

    /// The authenticator's answer (`PublicKeyCredential.toJSON()`) adds the passkey.
    pub struct FinishPasskey {
        pub name: String,
        #[cfg_attr(test, ts(type = "unknown"))]
        pub credential: serde_json::Value,
    }

    /// Removes one of one's own passkeys.
    pub struct RemovePasskey {
        pub name: String,
    }

    /// A site administrator turns another account's second factor off (a lost phone); logged.
    pub struct ResetSecondFactor {
        pub user: UserId,
    }

    /// The audit log, newest first, narrowed by any of the optional filters.
    #[derive(Default)]
    pub struct ListEvents {
        /// At most this many records (the server caps it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub limit: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<GroupId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub device: Option<DeviceId>,
        /// Records about this account.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<UserId>,
        /// Records of this kind (`login`, `session_ended`, …).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        /// Records whose message contains this text, ignoring case.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub text: Option<String>,
        /// Records from this time on (Unix ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub since_ms: Option<i64>,
        /// Records before this time (Unix ms).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub until_ms: Option<i64>,
        /// Records older than this id: the next page back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub before_id: Option<u64>,
    }

    /// The recorded sessions the caller may see (those of one device, when given), newest first.
    pub struct ListRecordings {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub device: Option<DeviceId>,
    }

    /// Makes a guest sharing link to one device and one kind of session (see [`crate::share`]).
    pub struct CreateShare {
        pub device: DeviceId,
        pub kind: crate::share::ShareKind,
        /// How long the link (and the sessions opened with it) lasts, 1 to a week.
        pub minutes: u32,
        /// The link opens one session, then no more.
        #[serde(default, skip_serializing_if = "is_false")]
        pub single_use: bool,
        /// Who it is for.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pub label: String,
    }

    /// The sharing links the caller may see (those of one device, when given), newest first.
    pub struct ListShares {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub device: Option<DeviceId>,
    }

    /// Ends a sharing link and every session opened with it.
    pub struct RevokeShare {
        pub share: String,
    }

    /// Opens a relayed session to a device (see [`crate::relay`]).
    pub struct CreateSession {
        pub device: DeviceId,
        pub kind: SessionKind,
    }

    /// The group's `.msh` install file (needs MANAGE_GROUP or MANAGE_DEVICES on it).
    pub struct GetAgentConfig {
        pub group: GroupId,
    }

    /// A short-lived token that lets a machine download the agent and the group's `.msh`
    /// without logging in (same rights as `agentConfig`). Minutes default to
    /// [`DEFAULT_INVITE_MINUTES`](crate::install::DEFAULT_INVITE_MINUTES), at most
    /// [`MAX_INVITE_MINUTES`](crate::install::MAX_INVITE_MINUTES).
    pub struct CreateInvite {
        pub group: GroupId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub expires_minutes: Option<u32>,
        /// At most this many new devices may enrol with it (none: no limit but the expiry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_devices: Option<u32>,
    }

    /// Makes the group's login for Intel AMT machines that connect with CIRA (replacing any
    /// earlier one, whose machines then fail to log in). The password is shown this once.
    pub struct CreateCiraLogin {
        pub group: GroupId,
    }

    /// The administrator account the server uses on an Intel AMT machine's web services (its
    /// power control). The password is kept sealed with a key of the server's, never shown again.
    pub struct SetAmtAdmin {
        pub device: DeviceId,
        pub user: String,
        pub password: String,
    }

    /// Reads or changes an Intel AMT machine's power, through its CIRA tunnel. (Not `action`:
    /// that name is the request's own.)
    pub struct AmtPower {
        pub device: DeviceId,
        pub power: AmtPowerAction,
    }

    /// A link to an Intel AMT machine's own web UI (its port 16992), proxied by the server through
    /// the CIRA tunnel and logged in with the machine's administrator (`setAmtAdmin`).
    pub struct OpenAmtWeb {
        pub device: DeviceId,
    }

    /// A new enrolment key for the group (same rights as `agentConfig`): `.msh` files handed out
    /// before admit no new device; enrolled devices keep connecting.
    pub struct RotateEnrolmentKey {
        pub group: GroupId,
    }

    /// Makes a MeshCentral device group's `MeshID` (from its `.msh`, `0x` and 96 hex digits) this
    /// group's enrolment key, so that MeshAgents installed for that MeshCentral group enrol here
    /// once they reach this server (same rights as `agentConfig`). Replaces the group's key.
    pub struct ImportEnrolmentKey {
        pub group: GroupId,
        pub mesh_id: String,
    }

    /// The group's invites, revoked and expired ones included (same rights as `agentConfig`).
    pub struct ListInvites {
        pub group: GroupId,
    }

    /// Ends an invite at once: its links and its `.msh` stop working.
    pub struct RevokeInvite {
        pub invite: String,
    }

    /// Device ids kept from enrolling again, listed under the group they were removed from.
    pub struct ListBlockedDevices {
        pub group: GroupId,
    }

    pub struct UnblockDevice {
        pub device: DeviceId,
    }

    /// The agent version this server ships and the update campaign under way (site admins).
    pub struct GetAgentUpdates {}

    /// Starts updating agents to the version this server ships, in waves (site admins). Devices
    /// of `group` (or all) whose agent reports another version take part; stock MeshAgents and
    /// agents for other platforms do not.
    pub struct StartAgentUpdate {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub group: Option<GroupId>,
        /// Cumulative percentages, rising to 100; empty: 1, 10, 50, 100.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub waves: Vec<u8>,
        /// How long each device has to come back on the new version; 0: 600 s.
        #[serde(default, skip_serializing_if = "is_zero")]
        pub wave_timeout_secs: u64,
        /// More failures than this in one wave pause the campaign and roll those devices back.
        #[serde(default, skip_serializing_if = "is_zero_usize")]
        pub max_failures: usize,
    }

    /// Holds the campaign after the offers already out (site admins).
    pub struct PauseAgentUpdate {}

    /// Goes on with a paused campaign; devices that failed are not offered again (site admins).
    pub struct ResumeAgentUpdate {}

    /// Ends the campaign; devices already updated stay updated (site admins).
    pub struct CancelAgentUpdate {}

    /// Asks one device's agent to go back to the version it ran before its last update (site
    /// admins); it answers by reconnecting on that version, or reports why it cannot.
    pub struct RollbackAgent {
        pub device: DeviceId,
    }

    /// The users with a console open now whom the caller may invite to chat: anyone for a site
    /// administrator; else those who share a device group with the caller.
    pub struct ListChatPeers {}

    /// Invites `user` (who must have a console open, and be one of the caller's chat peers) to a
    /// chat. The answer is the caller's end of it; the invitee is sent a `chatInvitation` event
    /// with theirs.
    pub struct InviteChat {
        pub user: UserId,
    }

    /// The invitee turns an invitation down; the inviter is told (`chatDeclined`).
    pub struct DeclineChat {
        pub invitation: String,
    }
}
