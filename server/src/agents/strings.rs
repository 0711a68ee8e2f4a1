//! Text that agents send (their `agentName`, the AuthInfo hostname, `agentinfo`) is data from a
//! machine we do not control. Before it is stored, broadcast to consoles or printed by tools it is
//! cleaned and bounded here:
//!
//! - control characters (C0, DEL, C1: terminal escapes, line breaks) and the invisible characters
//!   that make one name look like another (bidirectional overrides and isolates, marks, zero-width
//!   characters, the BOM) are removed;
//! - a device name follows the rule of names typed in the console (`renameDevice`): 1 to 64
//!   characters; a hostname and every `agentinfo` string at most 255 characters, every list at
//!   most 64 items, and a whole `agentinfo` at most 16 KiB of JSON.

use tether_common::agent_proto::{AgentInfo, NetInterface};
use tether_common::apf::AmtUuid;

pub(crate) const MAX_DEVICE_NAME_CHARS: usize = 64;
/// Hostnames and each `agentinfo` string (a DNS name is at most 253 characters).
pub(super) const MAX_FIELD_CHARS: usize = 255;
pub(super) const MAX_LIST_ITEMS: usize = 64;
/// The serialized `agentinfo` a device record keeps; a real one is well under 2 KiB.
pub(super) const MAX_AGENT_INFO_BYTES: usize = 16 * 1024;

/// Characters that render as nothing but change how text around them is shown: bidi embeddings,
/// overrides and isolates, direction marks, zero-width spaces and joiners, invisible operators,
/// the BOM, the soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}')
}

fn is_unwanted(c: char) -> bool {
    c.is_control() || is_invisible(c)
}

/// Whether a name typed in the console is acceptable as it is (the same rule agents' names are
/// cleaned to): 1 to 64 characters, none of them control or invisible.
pub(crate) fn device_name_is_clean(name: &str) -> bool {
    let count = name.chars().count();
    (1..=MAX_DEVICE_NAME_CHARS).contains(&count) && !name.chars().any(is_unwanted)
}

/// `text` without unwanted characters, trimmed, cut at `max_chars`; and whether anything but
/// surrounding whitespace had to go.
pub(super) fn clean(text: &str, max_chars: usize) -> (String, bool) {
    let kept: String = text.chars().filter(|c| !is_unwanted(*c)).collect();
    let trimmed = kept.trim();
    let mut changed = kept.len() != text.len();
    let cut: String = trimmed.chars().take(max_chars).collect();
    changed |= cut.len() != trimmed.len();
    (cut.trim_end().to_owned(), changed)
}

/// An agent-supplied device name made acceptable; `None` when nothing is left of it.
pub(super) fn device_name(raw: &str) -> Option<String> {
    let (name, _) = clean(raw, MAX_DEVICE_NAME_CHARS);
    (!name.is_empty()).then_some(name)
}

/// A hostname as an agent reported it, made acceptable (empty when nothing is left).
pub(super) fn hostname(raw: &str) -> String {
    clean(raw, MAX_FIELD_CHARS).0
}

/// `info` with every string cleaned and cut, every list cut, and (if still over
/// [`MAX_AGENT_INFO_BYTES`]) its longest lists halved until it fits; and whether anything went.
pub(super) fn bounded_agent_info(info: &AgentInfo) -> (AgentInfo, bool) {
    let mut changed = false;
    let mut field = |text: &str| {
        let (text, cut) = clean(text, MAX_FIELD_CHARS);
        changed |= cut;
        text
    };
    let mut bounded = AgentInfo {
        protocol: info.protocol,
        hostname: field(&info.hostname),
        os_name: field(&info.os_name),
        os_version: field(&info.os_version),
        arch: field(&info.arch),
        agent_version: field(&info.agent_version),
        platform: field(&info.platform),
        interfaces: info
            .interfaces
            .iter()
            .take(MAX_LIST_ITEMS)
            .map(|i| NetInterface {
                name: field(&i.name),
                mac: field(&i.mac),
                addresses: i
                    .addresses
                    .iter()
                    .take(MAX_LIST_ITEMS)
                    .map(|a| field(a))
                    .collect(),
            })
            .collect(),
        users: info
            .users
            .iter()
            .take(MAX_LIST_ITEMS)
            .map(|u| field(u))
            .collect(),
        uptime_secs: info.uptime_secs,
        // Only a real UUID, in one spelling, so that AMT's can be matched against it.
        system_uuid: AmtUuid::parse(&info.system_uuid)
            .map(|uuid| uuid.to_string())
            .unwrap_or_default(),
    };
    changed |= info.interfaces.len() > MAX_LIST_ITEMS
        || info.users.len() > MAX_LIST_ITEMS
        || info
            .interfaces
            .iter()
            .any(|i| i.addresses.len() > MAX_LIST_ITEMS);
    while serialized_len(&bounded) > MAX_AGENT_INFO_BYTES {
        if !halve_longest_list(&mut bounded) {
            break;
        }
        changed = true;
    }
    (bounded, changed)
}

fn serialized_len(info: &AgentInfo) -> usize {
    serde_json::to_vec(info).map_or(usize::MAX, |v| v.len())
}

/// Halves the longest of the lists (users, interfaces, an interface's addresses); `false` when
/// every list is down to one item. With one item each and 255-character strings the JSON is a few
/// KiB, so the loop always ends within the limit.
fn halve_longest_list(info: &mut AgentInfo) -> bool {
    let interfaces = info.interfaces.len();
    let users = info.users.len();
    let (widest, addresses) = info
        .interfaces
        .iter()
        .enumerate()
        .map(|(index, i)| (index, i.addresses.len()))
        .max_by_key(|(_, count)| *count)
        .unwrap_or_default();
    let longest = users.max(addresses);
    if longest > 1 && longest >= interfaces {
        if users >= addresses {
            info.users.truncate(users / 2);
        } else {
            info.interfaces[widest].addresses.truncate(addresses / 2);
        }
        true
    } else if interfaces > 1 {
        info.interfaces.truncate(interfaces / 2);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_bidi_and_zero_width_characters_are_removed() {
        assert_eq!(
            device_name("db\u{1b}[31m-prod\u{202E}10-\u{200B}bd\u{7}"),
            Some("db[31m-prod10-bd".into())
        );
        assert_eq!(device_name("  \u{2066}\u{2069}\t "), None);
        assert_eq!(clean("a\nb", 10), ("ab".into(), true), "line breaks go too");
        assert_eq!(clean("  Straße  ", 10), ("Straße".into(), false));
    }

    #[test]
    fn names_are_cut_on_characters_not_bytes() {
        let long = "é".repeat(100);
        assert_eq!(device_name(&long), Some("é".repeat(64)));
        assert_eq!(hostname(&"h".repeat(70_000)).len(), MAX_FIELD_CHARS);
    }

    #[test]
    fn the_console_rule_matches_what_agents_are_cleaned_to() {
        assert!(device_name_is_clean("Front desk PC"));
        assert!(!device_name_is_clean(""));
        assert!(!device_name_is_clean(&"x".repeat(65)));
        assert!(!device_name_is_clean("evil\u{202E}gpj.exe"));
        assert!(!device_name_is_clean("a\u{1b}b"));
        let cleaned = device_name("x\u{200D}y\u{85}z").unwrap();
        assert!(device_name_is_clean(&cleaned), "{cleaned:?}");
    }

    #[test]
    fn a_huge_agent_info_is_cut_to_its_budget() {
        let info = AgentInfo {
            hostname: "h".repeat(900 * 1024),
            os_name: "Linux\u{1b}]52;c;AAAA\u{7}".into(),
            users: (0..10_000).map(|i| format!("user{i}")).collect(),
            interfaces: (0..200)
                .map(|i| NetInterface {
                    name: format!("eth{i}"),
                    mac: String::new(),
                    addresses: (0..300).map(|a| format!("10.0.{a}.1/24")).collect(),
                })
                .collect(),
            ..AgentInfo::default()
        };
        let (bounded, changed) = bounded_agent_info(&info);
        assert!(changed);
        assert!(serialized_len(&bounded) <= MAX_AGENT_INFO_BYTES);
        assert_eq!(bounded.hostname.len(), MAX_FIELD_CHARS);
        assert_eq!(bounded.os_name, "Linux]52;c;AAAA");
        assert!(!bounded.users.is_empty() && !bounded.interfaces.is_empty());
    }

    #[test]
    fn a_normal_agent_info_passes_unchanged() {
        let info = AgentInfo {
            protocol: 1,
            hostname: "pc1".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12 (bookworm)".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            platform: "linux-x86_64".into(),
            interfaces: vec![NetInterface {
                name: "eth0".into(),
                mac: "02:00:00:00:00:01".into(),
                addresses: vec!["10.0.0.2/24".into(), "fe80::1/64".into()],
            }],
            users: vec!["alice".into(), "bob".into()],
            uptime_secs: 42,
            system_uuid: "4c4c4544-0042-3510-8051-b4c04f4e3332".into(),
        };
        assert_eq!(bounded_agent_info(&info), (info, false));
    }

    #[test]
    fn a_system_uuid_is_kept_only_as_a_uuid_in_lower_case() {
        let with = |uuid: &str| AgentInfo {
            system_uuid: uuid.into(),
            ..AgentInfo::default()
        };
        let (cleaned, _) = bounded_agent_info(&with("4C4C4544-0042-3510-8051-B4C04F4E3332"));
        assert_eq!(cleaned.system_uuid, "4c4c4544-0042-3510-8051-b4c04f4e3332");
        for bad in [
            "",
            "not-a-uuid",
            "4c4c4544-0042-3510-8051-b4c04f4e333\u{1b}",
            "4c4c45440042351080 51b4c04f4e3332",
        ] {
            assert_eq!(bounded_agent_info(&with(bad)).0.system_uuid, "", "{bad:?}");
        }
    }
}
