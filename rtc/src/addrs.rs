//! The machine's addresses that become host candidates.

use std::net::IpAddr;

/// Up, non-link-local IPv4 addresses (loopback only when `allow_loopback`), loopback last.
///
/// Loopback is for two Rust peers on one machine (tests, a tetherctl next to its agent); browsers
/// never use it. IPv6 is left out for now: a dual-stack pair connects over IPv4 anyway, and
/// link-local v6 needs scope ids str0m's candidates do not carry.
pub(crate) fn host_addresses(allow_loopback: bool) -> Vec<IpAddr> {
    let mut found = Vec::new();
    match nix::ifaddrs::getifaddrs() {
        Ok(interfaces) => {
            for interface in interfaces {
                let Some(ip) = interface
                    .address
                    .as_ref()
                    .and_then(|a| a.as_sockaddr_in())
                    .map(|a| IpAddr::V4(a.ip()))
                else {
                    continue;
                };
                let up = interface
                    .flags
                    .contains(nix::net::if_::InterfaceFlags::IFF_UP);
                if up && !ip.is_loopback() && !is_link_local(ip) && !found.contains(&ip) {
                    found.push(ip);
                }
            }
        }
        Err(e) => tracing::debug!("direct: cannot list the machine's addresses: {e}"),
    }
    if allow_loopback {
        found.push(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    }
    found
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(_) => false,
    }
}
