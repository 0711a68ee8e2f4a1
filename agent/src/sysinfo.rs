//! What the agent reports about its machine (`agentinfo`). Everything here is best effort: a part
//! that cannot be read is left empty rather than failing the report.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::Command;

use tether_common::agent_proto::{AGENT_PROTOCOL_VERSION, AgentInfo, NetInterface};

/// The machine as it is now, read on a blocking thread (`None`, logged, if that thread failed).
pub(crate) async fn collect_off_thread() -> Option<AgentInfo> {
    match tokio::task::spawn_blocking(collect).await {
        Ok(info) => Some(info),
        Err(e) => {
            tracing::warn!("cannot collect the machine's information: {e}");
            None
        }
    }
}

/// Blocking (reads files, runs `who`): call from a blocking thread.
pub(crate) fn collect() -> AgentInfo {
    let (os_name, os_version) = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .map(|text| parse_os_release(&text))
        .unwrap_or_else(|| ("Linux".to_owned(), String::new()));
    AgentInfo {
        protocol: AGENT_PROTOCOL_VERSION,
        hostname: hostname(),
        os_name,
        os_version,
        arch: std::env::consts::ARCH.to_owned(),
        agent_version: crate::version::VERSION.to_owned(),
        platform: tether_common::agent_update::platform(),
        interfaces: interfaces(),
        users: Command::new("who")
            .output()
            .map(|o| parse_who(&String::from_utf8_lossy(&o.stdout)))
            .unwrap_or_default(),
        uptime_secs: std::fs::read_to_string("/proc/uptime")
            .map(|t| parse_uptime(&t))
            .unwrap_or_default(),
        // Readable by root only; an agent running as a user reports none.
        system_uuid: std::fs::read_to_string("/sys/class/dmi/id/product_uuid")
            .map(|text| text.trim().to_ascii_lowercase())
            .unwrap_or_default(),
    }
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// (`NAME`, `VERSION` or else `VERSION_ID`) from os-release, quotes removed.
fn parse_os_release(text: &str) -> (String, String) {
    let fields: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches(|c| c == '"' || c == '\'')))
        .collect();
    let name = fields.get("NAME").copied().unwrap_or("Linux");
    let version = fields
        .get("VERSION")
        .or_else(|| fields.get("VERSION_ID"))
        .copied()
        .unwrap_or_default();
    (name.to_owned(), version.to_owned())
}

/// Distinct user names from `who`'s first column, sorted.
fn parse_who(text: &str) -> Vec<String> {
    let mut users: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    users.sort();
    users.dedup();
    users
}

fn parse_uptime(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map(|s| s as u64)
        .unwrap_or_default()
}

/// Every interface but loopback, with its MAC and addresses (`addr/prefix`).
fn interfaces() -> Vec<NetInterface> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut by_name: BTreeMap<String, NetInterface> = BTreeMap::new();
    for entry in addresses {
        if entry
            .flags
            .contains(nix::net::if_::InterfaceFlags::IFF_LOOPBACK)
        {
            continue;
        }
        let interface = by_name
            .entry(entry.interface_name.clone())
            .or_insert_with(|| NetInterface {
                name: entry.interface_name.clone(),
                ..NetInterface::default()
            });
        let Some(address) = entry.address else {
            continue;
        };
        if let Some(mac) = address.as_link_addr().and_then(|link| link.addr()) {
            interface.mac = format_mac(&mac);
            continue;
        }
        let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => continue,
        };
        let prefix =
            entry.netmask.and_then(
                |mask| match (mask.as_sockaddr_in(), mask.as_sockaddr_in6()) {
                    (Some(v4), _) => Some(u32::from(v4.ip()).count_ones()),
                    (_, Some(v6)) => Some(u128::from(v6.ip()).count_ones()),
                    _ => None,
                },
            );
        interface.addresses.push(match prefix {
            Some(prefix) => format!("{ip}/{prefix}"),
            None => ip.to_string(),
        });
    }
    by_name.into_values().collect()
}

fn format_mac(bytes: &[u8; 6]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_os_release() {
        let debian = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\n";
        assert_eq!(
            parse_os_release(debian),
            ("Debian GNU/Linux".into(), "12 (bookworm)".into())
        );
        assert_eq!(
            parse_os_release("NAME=Arch\nVERSION_ID=rolling\n"),
            ("Arch".into(), "rolling".into())
        );
        assert_eq!(parse_os_release(""), ("Linux".into(), String::new()));
    }

    #[test]
    fn reads_who_and_uptime() {
        let who = "alice    pts/0        2024-05-01 10:00 (10.0.0.9)\nbob      tty1         2024-05-01 09:00\nalice    pts/1        2024-05-01 10:05\n";
        assert_eq!(parse_who(who), ["alice", "bob"]);
        assert_eq!(parse_uptime("12345.67 2345.00\n"), 12345);
        assert_eq!(parse_uptime("garbage"), 0);
    }

    #[test]
    fn collects_something_on_this_machine() {
        let info = collect();
        assert!(!info.hostname.is_empty());
        assert_eq!(info.arch, std::env::consts::ARCH);
        assert!(info.interfaces.iter().all(|i| i.name != "lo"));
        assert_eq!(
            format_mac(&[0x02, 0, 0, 0xab, 0xcd, 0xef]),
            "02:00:00:ab:cd:ef"
        );
    }
}
