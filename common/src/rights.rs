//! What a user may do on the devices of one group, as bit flags.
//!
//! Unlike MeshCentral's mask (which mixes grants with "NO…" denials), every bit here is a grant, so
//! "more bits" always means "more power" and a check is one `contains`. The bit values are ours; the
//! names map one-to-one onto MeshCentral's rights where it has them, so a migration tool can translate.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Rights(pub u32);

impl Rights {
    pub const NONE: Rights = Rights(0);
    /// See the group and its devices at all.
    pub const VIEW: Rights = Rights(1 << 0);
    /// Rename or delete the group, manage its users' rights and its devices.
    pub const MANAGE_GROUP: Rights = Rights(1 << 1);
    /// Full remote desktop (view and input).
    pub const REMOTE_CONTROL: Rights = Rights(1 << 2);
    /// Remote desktop without input.
    pub const DESKTOP_VIEW_ONLY: Rights = Rights(1 << 3);
    pub const TERMINAL: Rights = Rights(1 << 4);
    pub const FILES: Rights = Rights(1 << 5);
    pub const CHAT: Rights = Rights(1 << 6);
    /// Wake-on-LAN, power off, reset.
    pub const POWER: Rights = Rights(1 << 7);
    /// Read the group's and its devices' event history.
    pub const EVENTS: Rights = Rights(1 << 8);
    pub const UNINSTALL: Rights = Rights(1 << 9);
    /// Rename and remove devices of the group.
    pub const MANAGE_DEVICES: Rights = Rights(1 << 10);
    /// Every right there is, including ones added later.
    pub const FULL: Rights = Rights(u32::MAX);

    /// Names as accepted by `tetherctl grouprights --rights` and shown in the console.
    pub const NAMED: [(&'static str, Rights); 11] = [
        ("view", Rights::VIEW),
        ("manage", Rights::MANAGE_GROUP),
        ("devices", Rights::MANAGE_DEVICES),
        ("desktop", Rights::REMOTE_CONTROL),
        ("viewonly", Rights::DESKTOP_VIEW_ONLY),
        ("terminal", Rights::TERMINAL),
        ("files", Rights::FILES),
        ("chat", Rights::CHAT),
        ("power", Rights::POWER),
        ("events", Rights::EVENTS),
        ("uninstall", Rights::UNINSTALL),
    ];

    pub fn contains(self, other: Rights) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: Rights) -> Rights {
        Rights(self.0 | other.0)
    }

    /// Any right implies seeing the group: a user who may open a terminal can see the device.
    pub fn normalized(self) -> Rights {
        if self.is_empty() {
            self
        } else {
            self.union(Rights::VIEW)
        }
    }

    /// Parses `full`, `none`, a number, or a comma-separated list of names (`view,terminal,files`).
    pub fn parse(text: &str) -> Result<Rights, UnknownRight> {
        let text = text.trim();
        match text {
            "full" | "all" => return Ok(Rights::FULL),
            "none" | "" => return Ok(Rights::NONE),
            _ => {}
        }
        if let Ok(bits) = text.parse::<u32>() {
            return Ok(Rights(bits));
        }
        text.split(',')
            .map(str::trim)
            .try_fold(Rights::NONE, |acc, name| {
                Rights::NAMED
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, r)| acc.union(*r))
                    .ok_or_else(|| UnknownRight(name.to_owned()))
            })
    }

    pub fn names(self) -> Vec<&'static str> {
        Rights::NAMED
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(n, _)| *n)
            .collect()
    }
}

impl fmt::Display for Rights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Rights::FULL {
            return f.write_str("full");
        }
        if self.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&self.names().join(","))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown right '{0}' (known: full, none, view, manage, devices, desktop, viewonly, terminal, files, chat, power, events, uninstall)"
)]
pub struct UnknownRight(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_numbers_and_full() {
        assert_eq!(Rights::parse("view,terminal").unwrap(), Rights(0b1_0001));
        assert_eq!(Rights::parse("17").unwrap(), Rights(17));
        assert_eq!(Rights::parse("full").unwrap(), Rights::FULL);
        assert_eq!(
            Rights::parse("view,bogus"),
            Err(UnknownRight("bogus".into()))
        );
    }

    #[test]
    fn display_round_trips_through_parse() {
        let r = Rights::VIEW.union(Rights::FILES).union(Rights::POWER);
        assert_eq!(Rights::parse(&r.to_string()).unwrap(), r);
        assert_eq!(Rights::FULL.to_string(), "full");
    }

    #[test]
    fn full_contains_everything() {
        for (_, r) in Rights::NAMED {
            assert!(Rights::FULL.contains(r));
        }
        assert!(!Rights::VIEW.contains(Rights::TERMINAL));
        assert_eq!(
            Rights::TERMINAL.normalized(),
            Rights::TERMINAL.union(Rights::VIEW)
        );
    }
}
