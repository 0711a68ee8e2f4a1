//! Enrolling machines: the results of the `agentConfig` and `createInvite` control actions, and
//! the HTTP paths an installer downloads from.
//!
//! An invite is a short-lived token that stands in for a login on exactly three downloads:
//!
//! | path | what |
//! |---|---|
//! | `/api/invite/{token}/agent.msh` | a `.msh` for the group whose `MeshID` is the invite's own enrolment key |
//! | `/api/invite/{token}/tether-agent` | the agent binary |
//! | `/api/invite/{token}/install.sh` | a POSIX `sh` script that fetches both and starts the agent |
//!
//! `/api/root.crt` (public) is the root certificate the server's web certificate chains to; an
//! installer checks its SHA-256 against [`Invite::root_cert_sha256`], which the administrator got
//! over an authenticated channel, and then trusts it for the downloads (see [`install_command`]).
//!
//! A `.msh`'s `MeshID` is an enrolment key, not the group id: the secret that admits new devices.
//! The group's key (from `agentConfig`) lasts until `rotateEnrolmentKey`; an invite's key admits
//! only while the invite is usable ([`InviteStatus::Active`]).

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, GroupId, UserId};

/// `createInvite` without `expires_minutes`.
pub const DEFAULT_INVITE_MINUTES: u32 = 60;
/// The longest an invite may live: seven days.
pub const MAX_INVITE_MINUTES: u32 = 7 * 24 * 60;

/// Public: the root certificate, PEM.
pub const ROOT_CERT_PATH: &str = "/api/root.crt";

/// The result of `agentConfig`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AgentConfig {
    pub group: GroupId,
    /// The `.msh` file's text (CRLF line ends, as MeshCentral writes it).
    pub msh: String,
}

/// The result of `createInvite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Invite {
    /// Names the invite in `listInvites`, `revokeInvite` and the audit log.
    #[serde(default)]
    pub id: String,
    pub group: GroupId,
    /// The credential: whoever holds it may download the three files until `expires`.
    pub token: String,
    /// Unix seconds.
    pub expires: i64,
    pub msh_url: String,
    pub agent_url: String,
    pub install_url: String,
    pub root_cert_url: String,
    /// Hex SHA-256 of the bytes served at `root_cert_url` (what `sha256sum` prints).
    pub root_cert_sha256: String,
    /// One shell line that checks the root certificate and runs the install script.
    pub install_command: String,
}

/// Whether an invite still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum InviteStatus {
    Active,
    Revoked,
    Expired,
    /// It enrolled its `maxDevices`.
    UsedUp,
}

/// One invite as `listInvites` shows it (never its token or key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct InviteInfo {
    pub id: String,
    pub group: GroupId,
    pub created_by: UserId,
    /// Unix seconds.
    pub created: i64,
    pub expires: i64,
    /// New devices enrolled with it.
    pub enrolled: u32,
    #[serde(default)]
    pub max_devices: Option<u32>,
    pub status: InviteStatus,
    #[serde(default)]
    pub revoked: Option<i64>,
    #[serde(default)]
    pub revoked_by: Option<UserId>,
}

/// A device id refused at enrolment, as `listBlockedDevices` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct BlockedDevice {
    pub device: DeviceId,
    /// The group it was removed from.
    pub group: GroupId,
    /// Its name then.
    pub name: String,
    pub blocked_by: UserId,
    /// Unix seconds.
    pub time: i64,
}

/// `https://{authority}/api/invite/{token}/{file}`.
pub fn invite_url(authority: &str, token: &str, file: &str) -> String {
    format!("https://{authority}/api/invite/{token}/{file}")
}

/// The line an administrator pastes on the machine to enrol. The root certificate is fetched
/// without TLS verification (`-k`): it is the thing being bootstrapped. Its hash, which came over
/// the administrator's authenticated connection, decides whether it is trusted; `sha256sum -c`
/// stops the chain on a mismatch, before anything is downloaded with it or run.
pub fn install_command(root_cert_url: &str, root_cert_sha256: &str, install_url: &str) -> String {
    format!(
        "curl -fsSk -o tether-root.crt {root_cert_url} && \
         echo '{root_cert_sha256}  tether-root.crt' | sha256sum -c - && \
         curl -fsS --cacert tether-root.crt {install_url} | sh"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_checks_the_root_before_using_it() {
        let command = install_command(
            "https://h:1/api/root.crt",
            "ab12",
            &invite_url("h:1", "T.K", "install.sh"),
        );
        assert_eq!(
            command,
            "curl -fsSk -o tether-root.crt https://h:1/api/root.crt && \
             echo 'ab12  tether-root.crt' | sha256sum -c - && \
             curl -fsS --cacert tether-root.crt https://h:1/api/invite/T.K/install.sh | sh"
        );
    }
}
