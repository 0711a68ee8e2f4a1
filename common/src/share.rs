//! Guest sharing links: a user with the right makes a time-limited link to one device and one kind
//! of session; whoever holds the link opens that session without an account.
//!
//! The link is `https://SERVER/share#ID.SECRET`. The part after `#` never reaches the server in a
//! request line, a log or a `Referer`; the guest page posts it to [`GUEST_SESSION_PATH`], and the
//! server, which keeps only the secret's SHA-256, answers with a [`GuestTicket`] (a relay ticket
//! like `createSession`'s). Sessions opened this way run on the creator's rights (never more
//! than the link names) and end when the link is revoked or expires, or the creator loses the
//! right; every use is in the audit log.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, UserId};
use crate::relay::consent::ConsentMode;
use crate::relay::{DirectPath, SessionKind};
use crate::rights::Rights;

/// Where the guest page trades a link for a session ticket (`POST`, JSON [`GuestRequest`]).
pub const GUEST_SESSION_PATH: &str = "/api/share/session";
/// The guest page's path; the link's token follows `#`.
pub const GUEST_PAGE_PATH: &str = "/share";
/// Longest a link may live: one week.
pub const MAX_SHARE_MINUTES: u32 = 7 * 24 * 60;
/// Longest label.
pub const MAX_SHARE_LABEL: usize = 64;

/// What a link opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ShareKind {
    /// The desktop, watched only.
    DesktopView,
    /// The desktop with mouse and keyboard.
    DesktopControl,
    /// A terminal.
    Terminal,
    /// The file manager (browse, download, upload).
    Files,
}

impl ShareKind {
    pub fn session_kind(self) -> SessionKind {
        match self {
            ShareKind::DesktopView | ShareKind::DesktopControl => SessionKind::Desktop,
            ShareKind::Terminal => SessionKind::Terminal,
            ShareKind::Files => SessionKind::Files,
        }
    }

    /// The one right a guest's session carries; the creator must hold it.
    pub fn right(self) -> Rights {
        match self {
            ShareKind::DesktopView => Rights::DESKTOP_VIEW_ONLY,
            ShareKind::DesktopControl => Rights::REMOTE_CONTROL,
            ShareKind::Terminal => Rights::TERMINAL,
            ShareKind::Files => Rights::FILES,
        }
    }

    /// Whether a creator holding `rights` may make such a link (desktop control covers viewing).
    pub fn allowed_by(self, rights: Rights) -> bool {
        match self {
            ShareKind::DesktopView => {
                rights.contains(Rights::DESKTOP_VIEW_ONLY)
                    || rights.contains(Rights::REMOTE_CONTROL)
            }
            other => rights.contains(other.right()),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            ShareKind::DesktopView => "desktop (view only)",
            ShareKind::DesktopControl => "desktop (control)",
            ShareKind::Terminal => "terminal",
            ShareKind::Files => "files",
        }
    }
}

/// Whether a link still opens sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ShareStatus {
    Active,
    Expired,
    /// A single-use link that was used.
    Used,
    Revoked,
}

/// A sharing link as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ShareInfo {
    pub id: String,
    pub device: DeviceId,
    pub device_name: String,
    pub kind: ShareKind,
    /// Who it is for, in the creator's words ("Bob from accounting").
    pub label: String,
    pub creator: UserId,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub expires_ms: i64,
    pub single_use: bool,
    /// Sessions opened with it.
    pub uses: u32,
    pub status: ShareStatus,
}

/// `createShare`'s result: the link, shown once (the server keeps only a hash of its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ShareLink {
    pub share: ShareInfo,
    pub url: String,
}

/// The guest page's request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestRequest {
    /// `ID.SECRET`, the link's fragment.
    pub token: String,
}

/// The answer to a guest: where to connect, and what the session is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct GuestTicket {
    /// A path on this server: `/meshrelay.ashx?id=TOKEN` (no cookie needed).
    pub url: String,
    pub device: DeviceId,
    pub device_name: String,
    pub kind: ShareKind,
    /// Whose link this is, for the guest page.
    pub creator: UserId,
    /// Unix milliseconds at which the link (and its sessions) end.
    pub link_expires_ms: i64,
    pub direct: Option<DirectPath>,
    #[serde(default)]
    pub consent: ConsentMode,
}

/// Splits a link's token into its id and secret; `None` when it cannot be one.
pub fn split_token(token: &str) -> Option<(&str, &str)> {
    let (id, secret) = token.split_once('.')?;
    let plausible = |part: &str, len: std::ops::RangeInclusive<usize>| {
        len.contains(&part.len())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (plausible(id, 8..=64) && plausible(secret, 16..=128)).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_kind_needs_its_right_and_control_covers_viewing() {
        assert!(ShareKind::DesktopView.allowed_by(Rights::REMOTE_CONTROL));
        assert!(ShareKind::DesktopView.allowed_by(Rights::DESKTOP_VIEW_ONLY));
        assert!(!ShareKind::DesktopControl.allowed_by(Rights::DESKTOP_VIEW_ONLY));
        assert!(!ShareKind::Terminal.allowed_by(Rights::REMOTE_CONTROL));
        assert_eq!(ShareKind::Terminal.session_kind(), SessionKind::Terminal);
        assert_eq!(ShareKind::Files.session_kind(), SessionKind::Files);
        assert!(!ShareKind::Files.allowed_by(Rights::TERMINAL));
        assert!(SessionKind::Desktop.allowed_by(ShareKind::DesktopView.right()));
    }

    #[test]
    fn tokens_split_only_when_plausible() {
        assert_eq!(
            split_token("abcdefgh.0123456789abcdef"),
            Some(("abcdefgh", "0123456789abcdef"))
        );
        assert_eq!(split_token("abcdefgh"), None);
        assert_eq!(split_token("abc.0123456789abcdef"), None);
        assert_eq!(split_token("abcdefgh.short"), None);
        assert_eq!(split_token("abcdefgh.0123456789abcdef/../x"), None);
        assert_eq!(split_token("abcd efgh.0123456789abcdef"), None);
    }
}
