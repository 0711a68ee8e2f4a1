//! What a successful action answers (its `result`), and the shapes events carry: groups, devices,
//! users and audit records as clients see them.

use serde::{Deserialize, Serialize};

use crate::agent_proto::{AgentInfo, NetInterface};
use crate::ids::{DeviceId, GroupId, UserId};
use crate::rights::Rights;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    pub protocol: u32,
    /// Hex SHA-384 of the agent-server certificate's public key: the `ServerID` in `.msh` files.
    pub agent_cert_hash: String,
    /// Hex SHA-384 of the web certificate (full DER), as agents pin it.
    pub web_cert_hash: String,
    pub https_port: u16,
    /// The UDP port answering STUN (`None`: off), the server-reflexive half of direct sessions.
    pub stun_port: Option<u16>,
    /// The TLS port Intel AMT machines connect to with CIRA (`None`: off).
    #[serde(default)]
    pub mps_port: Option<u16>,
}

/// The result of `whoAmI`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct WhoAmI {
    pub user: UserInfo,
    /// The site requires a second factor of this account and it has none: until it sets one up,
    /// only that (and reading who one is) is allowed.
    #[serde(default)]
    pub second_factor_needed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct GroupInfo {
    pub id: GroupId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Every user with rights on this group.
    #[serde(default)]
    pub members: Vec<GroupMember>,
    pub created: i64,
    /// Whether sessions to its devices may leave the relay for a direct path. Off when every
    /// session must pass through the server (for recording, or a network that forbids it).
    pub direct_connections: bool,
    /// Terminal and desktop sessions are recorded on the server (they then stay relayed).
    #[serde(default)]
    pub record_sessions: bool,
    /// Chat messages with its devices' users are kept in the audit log (chats then stay relayed).
    #[serde(default)]
    pub chat_transcripts: bool,
    /// Desktop viewers may listen to its devices' microphones (the person there is shown it).
    #[serde(default)]
    pub microphone: bool,
    /// What the person at a device is shown or asked per session kind.
    #[serde(default)]
    pub consent: crate::relay::consent::ConsentPolicy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct GroupMember {
    pub user: UserId,
    pub rights: Rights,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
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
    /// What a Tether agent reported about itself; `None` for a stock MeshAgent (which sends no
    /// such report) and before the first report.
    #[serde(default)]
    pub agent: Option<AgentDetails>,
    /// The machine's Intel AMT UUID once AMT has connected over CIRA (with or without an agent).
    #[serde(default)]
    pub amt_uuid: Option<String>,
}

/// A Tether agent's report about its machine, as clients see it. The agent sends it as
/// [`AgentInfo`] on its own channel, whose snake_case names agents in the field already speak;
/// this is the same data under the control channel's camelCase names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AgentDetails {
    /// The agent protocol version it speaks.
    pub protocol: u32,
    pub hostname: String,
    /// e.g. "Debian GNU/Linux".
    pub os_name: String,
    /// e.g. "12 (bookworm)".
    pub os_version: String,
    /// e.g. "x86_64".
    pub arch: String,
    pub agent_version: String,
    pub interfaces: Vec<NetInterface>,
    /// Users with a login session.
    pub users: Vec<String>,
    pub uptime_secs: u64,
    pub system_uuid: String,
}

impl From<AgentInfo> for AgentDetails {
    fn from(info: AgentInfo) -> Self {
        AgentDetails {
            protocol: info.protocol,
            hostname: info.hostname,
            os_name: info.os_name,
            os_version: info.os_version,
            arch: info.arch,
            agent_version: info.agent_version,
            interfaces: info.interfaces,
            users: info.users,
            uptime_secs: info.uptime_secs,
            system_uuid: info.system_uuid,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UserInfo {
    pub id: UserId,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    pub site_admin: bool,
    pub created: i64,
    /// Signs in with a TOTP code as a second factor.
    #[serde(default)]
    pub second_factor: bool,
    /// The names of the passkeys that sign this account in as a second factor.
    #[serde(default)]
    pub passkeys: Vec<String>,
}

/// What `navigator.credentials.create` needs to make a passkey (`{publicKey: …}`, base64url).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PasskeyOptions {
    #[cfg_attr(test, ts(type = "unknown"))]
    pub options: serde_json::Value,
}

/// One recorded session (`GET /api/recordings/{id}` downloads it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RecordingInfo {
    pub id: String,
    pub device: DeviceId,
    pub device_name: String,
    /// Who ran the session.
    pub user: String,
    pub kind: crate::relay::SessionKind,
    /// Unix milliseconds.
    pub started_ms: i64,
    pub duration_ms: i64,
    pub bytes: u64,
}

/// Setting up TOTP: what the authenticator app needs, shown once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TotpSetup {
    /// The secret in base32, to type in when the QR code cannot be scanned.
    pub secret: String,
    /// `otpauth://totp/…`
    pub uri: String,
    /// The URI as a QR code, an SVG document (shown as an image, never inlined).
    pub qr_svg: String,
}

/// Single-use backup codes, shown once (the server keeps only their hashes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct BackupCodes {
    pub codes: Vec<String>,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
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

/// The result of `deleteGroup`, `deleteDevice` and `removeUser`: the id that is gone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Deleted<Id> {
    pub deleted: Id,
}

/// Someone the caller may chat with who has a console open now (`listChatPeers`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChatPeer {
    pub id: UserId,
    pub name: String,
    pub email: Option<String>,
}

/// The result of `declineChat`: the invitation that is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ChatDeclined {
    pub invitation: String,
}

/// The result of `changePassword`: `{}` (nothing to tell but success).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PasswordChanged {}

/// The result of `unblockDevice`: the device id that may enrol again.
/// An Intel AMT machine's power state, as AMT reports it (CIM `PowerState`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AmtPowerState {
    /// 2 on, 3 or 4 sleeping, 7 hibernating, 8 off, others rarer.
    pub state: u32,
    /// The state in words ("on", "off", "sleeping", ...).
    pub label: String,
}

impl AmtPowerState {
    pub fn of(state: u32) -> AmtPowerState {
        let label = match state {
            2 => "on",
            3 | 4 => "sleeping",
            7 => "hibernating",
            6 | 8 | 12 | 13 => "off",
            _ => "other",
        };
        AmtPowerState {
            state,
            label: label.to_owned(),
        }
    }
}

/// What an Intel AMT machine needs to be provisioned for CIRA to this server (what MeshCommander
/// and Intel's RPC tools ask for): the MPS address, the login, and the root it must trust.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct CiraLogin {
    pub user: String,
    /// Shown once: the server keeps only its argon2id hash.
    pub password: String,
    pub mps_host: String,
    pub mps_port: u16,
    /// SHA-256 of the server's root certificate (DER), upper-case hex.
    pub root_cert_sha256: String,
    /// The root certificate, PEM, for AMT's trusted roots.
    pub root_cert_pem: String,
}

/// Where an Intel AMT machine's web UI is proxied for the caller: a path on this server that
/// carries a signed, short-lived capability for that one machine, good until `expiresMs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AmtWebLink {
    /// `/amt-web/TOKEN/`, to open in a new tab.
    pub path: String,
    /// Unix milliseconds; the link stops working then.
    pub expires_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Unblocked {
    pub unblocked: DeviceId,
}
